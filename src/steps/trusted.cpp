// Step load_trusted: raw_* cleaned into trusted_*, by the rules of the domain:
// text trimmed, inner white space collapsed, upper-cased with accents kept (sicoop.clean_text);
// nome split at the first space into nome / sobrenome; idade_atual_associado in whole years
// on the reference date; card numbers masked to their last four characters.
// "The reference date" is the reference time's date in the cooperative's time zone ($3).
// Identifiers are carried unchanged: they are keys, and cleaning them could merge two rows.
// A row that cannot be cleaned (a member whose nome is blank) is kept out of trusted and
// recorded, with the reason, in sicoop.reject: never silently dropped.
//
// Only raw rows changed since this step's last run ($4, by their run_id) are cleaned again,
// and tombstones tell which were deleted; ages are refreshed for every member whose age moved
// on with the reference date.
#include "steps/sql_patterns.hpp"
#include "steps/step.hpp"

namespace sicoop {

namespace {

struct TrustedTable {
    std::string name, key;
    std::vector<Column> columns;
    // A source row the layer cannot take: the condition on raw row r, and why.
    std::string reject_if = "";
    std::string reject_reason = "";
};

const std::vector<TrustedTable>& trusted_tables() {
    static const std::vector<TrustedTable> tables = {
        {"associado", "id_associado",
         {{"nome", "sicoop.first_name(s.nome)"},
          {"sobrenome", "sicoop.last_name(s.nome)"},
          {"data_nascimento", "s.data_nascimento"},
          {"idade_atual_associado", "sicoop.age_years(s.data_nascimento, ($1 AT TIME ZONE $3)::date)"},
          {"estado_civil", "sicoop.clean_text(s.estado_civil)"},
          {"escolaridade", "sicoop.clean_text(s.escolaridade)"}},
         "sicoop.first_name(r.nome) IS NULL", "nome is blank"},
        {"conta", "id_conta",
         {{"id_associado", "s.id_associado"},
          {"tipo_conta", "sicoop.clean_text(s.tipo_conta)"},
          {"agencia", "sicoop.clean_text(s.agencia)"},
          {"situacao_conta", "sicoop.clean_text(s.situacao_conta)"},
          {"data_criacao_conta", "s.data_criacao_conta"}}},
        {"cartao", "id_cartao",
         {{"id_conta", "s.id_conta"},
          {"numero_cartao", "sicoop.mask_card(s.numero_cartao)"},
          {"nome_impresso_cartao", "sicoop.clean_text(s.nome_impresso_cartao)"},
          {"bandeira_cartao", "sicoop.clean_text(s.bandeira_cartao)"},
          {"tipo_cartao", "sicoop.clean_text(s.tipo_cartao)"},
          {"data_emissao", "s.data_emissao"}}},
        {"movimentacao_cartao", "id_movimentacao_cartao",
         {{"id_cartao", "s.id_cartao"},
          {"descricao_movimentacao", "sicoop.clean_text(s.descricao_movimentacao)"},
          {"valor_movimentacao", "s.valor_movimentacao"},
          {"data_movimentacao", "s.data_movimentacao"}}},
    };
    return tables;
}

// Records the changed raw rows of `t` that cannot be taken in sicoop.reject (one row each
// while they stay bad), counts them as rows_rejected, and removes from sicoop.reject (and
// from trusted) what changed since.
void add_rejects(std::vector<Action>& actions, const TrustedTable& t, const std::string& changed) {
    const std::string raw = "sicoop.raw_" + t.name;
    actions.push_back(sql_action(
        "WITH rejected AS (\n"
        "  INSERT INTO sicoop.reject AS j (table_name, record_id, reason, record, run_id, rejected_at)\n"
        "  SELECT '" + t.name + "', r." + t.key + ", '" + t.reject_reason + "', to_jsonb(r) - 'run_id' - 'loaded_at', $2, $1\n"
        "  FROM " + raw + " r WHERE " + changed + " AND " + t.reject_if + "\n"
        "  ON CONFLICT (table_name, record_id) DO UPDATE\n"
        "  SET reason = EXCLUDED.reason, record = EXCLUDED.record, run_id = EXCLUDED.run_id,\n"
        "      rejected_at = EXCLUDED.rejected_at\n"
        "  WHERE (j.reason, j.record) IS DISTINCT FROM (EXCLUDED.reason, EXCLUDED.record)\n"
        "  RETURNING 1)\n"
        "SELECT count(*) AS rows_rejected FROM rejected", t.name));
    actions.push_back(sql_action(
        "DELETE FROM sicoop.reject j WHERE j.table_name = '" + t.name + "'\n"
        "  AND NOT EXISTS (SELECT 1 FROM " + raw + " r WHERE r." + t.key + " = j.record_id AND " + t.reject_if + ")",
        t.name));
    // A row that was fine and now is rejected leaves trusted.
    actions.push_back(sql_action(
        "WITH gone AS (\n"
        "  DELETE FROM sicoop.trusted_" + t.name + " t USING " + raw + " r\n"
        "  WHERE r." + t.key + " = t." + t.key + " AND " + changed + " AND " + t.reject_if + "\n"
        "  RETURNING 1)\n"
        "SELECT count(*) AS rows_deleted FROM gone", t.name));
}

}  // namespace

std::vector<Action> plan_trusted(const RunContext& ctx) {
    std::vector<Action> actions;
    const std::vector<Column> stamps = {{"run_id", "$2"}, {"updated_at", "$1"}};
    for (const TrustedTable& t : trusted_tables()) {
        const std::string raw = "sicoop.raw_" + t.name;
        const std::string trusted_table = "trusted_" + t.name;
        const std::string trusted = "sicoop." + trusted_table;
        // The raw rows to (re)clean: all of them, or those changed since this step last ran.
        const std::string changed = ctx.everything() ? "true" : "r.run_id > $4";
        const std::string taken = "(SELECT * FROM " + raw + " r WHERE " + changed +
                                  (t.reject_if.empty() ? "" : " AND NOT (" + t.reject_if + ")") + ") s";
        actions.push_back(sql_action("SELECT count(*) AS rows_read FROM " + raw + " r WHERE " + changed, t.name));
        if (!t.reject_if.empty()) add_rejects(actions, t, changed);
        if (ctx.is_empty(trusted_table)) {
            actions.push_back(sql_action("SELECT sicoop._defer_indexes('" + trusted + "')", t.name));
            actions.push_back(dml_action(insert_all_sql(trusted, t.key, t.columns, stamps, taken), "rows_inserted", t.name));
            actions.push_back(sql_action("SELECT sicoop._restore_indexes('" + trusted + "')", t.name));
        } else
            actions.push_back(sql_action(merge_changed_sql(trusted, t.key, t.columns, stamps, taken), t.name));
        if (ctx.is_empty(trusted_table)) continue;  // nothing to delete from an empty table
        // Deletions: everything not in raw on a full run, else what the tombstones tell.
        const std::string deleted =
            ctx.everything()
                ? "NOT EXISTS (SELECT 1 FROM " + raw + " r WHERE r." + t.key + " = t." + t.key + ")"
                : "t." + t.key + " IN (SELECT b.record_id FROM sicoop.raw_tombstone b WHERE b.table_name = '" + t.name +
                      "' AND b.run_id > $4)\n    AND NOT EXISTS (SELECT 1 FROM " + raw + " r WHERE r." + t.key +
                      " = t." + t.key + ")";
        actions.push_back(sql_action("WITH gone AS (\n  DELETE FROM " + trusted + " t WHERE " + deleted +
                                         "\n  RETURNING 1)\nSELECT count(*) AS rows_deleted FROM gone",
                                     t.name));
    }
    // Ages move on with the reference date, whether or not the source changed.
    actions.push_back(sql_action(
        "WITH aged AS (\n"
        "  UPDATE sicoop.trusted_associado\n"
        "  SET idade_atual_associado = sicoop.age_years(data_nascimento, ($1 AT TIME ZONE $3)::date),\n"
        "      run_id = $2, updated_at = $1\n"
        "  WHERE idade_atual_associado IS DISTINCT FROM sicoop.age_years(data_nascimento, ($1 AT TIME ZONE $3)::date)\n"
        "  RETURNING 1)\n"
        "SELECT count(*) AS rows_updated FROM aged", "associado"));
    return actions;
}

}  // namespace sicoop
