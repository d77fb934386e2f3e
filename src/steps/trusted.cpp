// Step load_trusted: raw_* cleaned into trusted_*, by the rules of the domain:
// text trimmed, inner white space collapsed, upper-cased with accents kept (sicoop.clean_text);
// nome split at the first space into nome / sobrenome; idade_atual_associado in whole years
// on the reference date; card numbers masked to their last four characters.
// "The reference date" is the reference time's date in the cooperative's time zone ($3).
// Identifiers are carried unchanged: they are keys, and cleaning them could merge two rows.
// A row that cannot be cleaned (a member whose nome is blank) is kept out of trusted and
// recorded, with the reason, in sicoop.reject: never silently dropped.
#include "steps/sql_patterns.hpp"
#include "steps/step.hpp"

namespace sicoop {

namespace {

// Records the raw rows of `table` that meet `condition` in sicoop.reject (one row each while
// they stay bad; a fixed row leaves it), and counts them as rows_rejected.
void add_rejects(Step& step, const std::string& table, const std::string& key, const std::string& condition,
                 const std::string& reason) {
    const std::string raw = "sicoop.raw_" + table;
    step.actions.push_back(sql_action(
        "WITH rejected AS (\n"
        "  INSERT INTO sicoop.reject AS j (table_name, record_id, reason, record, run_id, rejected_at)\n"
        "  SELECT '" + table + "', r." + key + ", '" + reason + "', to_jsonb(r) - 'run_id' - 'loaded_at', $2, $1\n"
        "  FROM " + raw + " r WHERE " + condition + "\n"
        "  ON CONFLICT (table_name, record_id) DO UPDATE\n"
        "  SET reason = EXCLUDED.reason, record = EXCLUDED.record, run_id = EXCLUDED.run_id,\n"
        "      rejected_at = EXCLUDED.rejected_at\n"
        "  WHERE (j.reason, j.record) IS DISTINCT FROM (EXCLUDED.reason, EXCLUDED.record)\n"
        "  RETURNING 1)\n"
        "SELECT count(*) AS rows_rejected FROM rejected"));
    step.actions.push_back(sql_action(
        "DELETE FROM sicoop.reject j WHERE j.table_name = '" + table + "'\n"
        "  AND NOT EXISTS (SELECT 1 FROM " + raw + " r WHERE r." + key + " = j.record_id AND " + condition + ")"));
}

}  // namespace

Step trusted_step() {
    Step step{"load_trusted", "clean raw_* into trusted_*", {}};
    const std::vector<Column> stamps = {{"run_id", "$2"}, {"updated_at", "$1"}};

    struct Table {
        std::string name, key;
        std::vector<Column> columns;
        // A source row the layer cannot take: the condition on raw row r, and why.
        std::string reject_if = "";
        std::string reject_reason = "";
    };
    const std::vector<Table> tables = {
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
    for (const Table& t : tables) {
        const std::string raw = "sicoop.raw_" + t.name;
        const std::string trusted = "sicoop.trusted_" + t.name;
        // What the layer takes: every raw row, but the rejected ones.
        const std::string accepted =
            t.reject_if.empty() ? raw : "(SELECT * FROM " + raw + " r WHERE NOT (" + t.reject_if + "))";
        step.actions.push_back(sql_action(count_read_sql(raw)));
        if (!t.reject_if.empty()) add_rejects(step, t.name, t.key, t.reject_if, t.reject_reason);
        step.actions.push_back(sql_action(merge_changed_sql(trusted, t.key, t.columns, stamps, accepted + " s")));
        step.actions.push_back(sql_action(delete_missing_sql(trusted, t.key, accepted)));
    }
    return step;
}

}  // namespace sicoop
