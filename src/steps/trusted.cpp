// Step load_trusted: raw_* cleaned into trusted_*, by the rules of the domain:
// text trimmed, inner white space collapsed, upper-cased with accents kept (sicoop.clean_text);
// nome split at the first space into nome / sobrenome; idade_atual_associado in whole years
// on the reference date; card numbers masked to their last four characters.
// "The reference date" is the reference time's date in the cooperative's time zone ($3).
// Identifiers are carried unchanged: they are keys, and cleaning them could merge two rows.
// Descriptive values (estado_civil, escolaridade, tipo_conta, bandeira_cartao) take their
// canonical form from sicoop.canonical_value (sicoop._canonical); values it does not know are
// kept as they are and counted by the 'canonical' rules in sicoop.dq_result. (An edit of the
// canonical values makes the next run a full one, which relabels every row.) Rows that cannot be
// cleaned never get here: the data-quality rules keep them out of raw (src/steps/raw.cpp).
//
// Only raw rows changed since this step's last run ($4, by their run_id) are cleaned again,
// and tombstones tell which were deleted; ages are refreshed for every member whose age moved
// on with the reference date.
#include "steps/pure_cpp.hpp"

#include "steps/sql_patterns.hpp"
#include "steps/step.hpp"

namespace sicoop {

namespace {

struct TrustedTable {
    std::string name, key;
    std::vector<Column> columns;
    std::vector<std::string> canonical_columns;  // mapped through sicoop.canonical_value
};

// The cleaned value of a descriptive column in its canonical form (r: the raw row).
std::string canonical_sql(const std::string& column, const std::string& row) {
    return "sicoop._canonical('" + column + "', sicoop.clean_text(" + row + "." + column + "))";
}

const std::vector<TrustedTable>& trusted_tables() {
    static const std::vector<TrustedTable> tables = {
        {"associado", "id_associado",
         {{"nome", "sicoop.first_name(s.nome)"},
          {"sobrenome", "sicoop.last_name(s.nome)"},
          {"data_nascimento", "s.data_nascimento"},
          {"idade_atual_associado", "sicoop.age_years(s.data_nascimento, ($1 AT TIME ZONE $3)::date)"},
          {"estado_civil", canonical_sql("estado_civil", "s")},
          {"escolaridade", canonical_sql("escolaridade", "s")}},
         {"estado_civil", "escolaridade"}},
        {"conta", "id_conta",
         {{"id_associado", "s.id_associado"},
          {"tipo_conta", canonical_sql("tipo_conta", "s")},
          {"agencia", "sicoop.clean_text(s.agencia)"},
          {"situacao_conta", "sicoop.clean_text(s.situacao_conta)"},
          {"data_criacao_conta", "s.data_criacao_conta"}},
         {"tipo_conta"}},
        {"cartao", "id_cartao",
         {{"id_conta", "s.id_conta"},
          {"numero_cartao", "sicoop.mask_card(s.numero_cartao)"},
          {"nome_impresso_cartao", "sicoop.clean_text(s.nome_impresso_cartao)"},
          {"bandeira_cartao", canonical_sql("bandeira_cartao", "s")},
          {"tipo_cartao", "sicoop.clean_text(s.tipo_cartao)"},
          {"data_emissao", "s.data_emissao"}},
         {"bandeira_cartao"}},
        {"movimentacao_cartao", "id_movimentacao_cartao",
         {{"id_cartao", "s.id_cartao"},
          {"descricao_movimentacao", "sicoop.clean_text(s.descricao_movimentacao)"},
          {"valor_movimentacao", "s.valor_movimentacao"},
          {"data_movimentacao", "s.data_movimentacao"}},
         {}},
    };
    return tables;
}

// The 'canonical' rules: values with no canonical form, counted in sicoop.dq_result.
void check_canonical(std::vector<Action>& actions, const TrustedTable& t) {
    actions.push_back(sql_action("SELECT sicoop._check_canonical('" + t.name + "', $2)", t.name));
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
        const std::string taken = "(SELECT * FROM " + raw + " r WHERE " + changed + ") s";
        actions.push_back(sql_action("SELECT count(*) AS rows_read FROM " + raw + " r WHERE " + changed, t.name));
        if (ctx.is_empty(trusted_table)) {
            // Secondary indexes the run dropped before the step (pipeline.cpp) are built after
            // the insert, and BRIN ranges summarized; none is dropped here (its lock would hold
            // readers for the whole step).
            actions.push_back(dml_action(insert_all_sql(trusted, t.key, t.columns, stamps, taken), "rows_inserted", t.name));
            actions.push_back(sql_action("SELECT sicoop._restore_indexes('" + trusted + "')", t.name));
            actions.push_back(sql_action("SELECT sicoop._summarize('" + trusted + "')", t.name));
        } else
            actions.push_back(sql_action(merge_changed_sql(trusted, t.key, t.columns, stamps, taken), t.name));
        if (!t.canonical_columns.empty()) check_canonical(actions, t);
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
