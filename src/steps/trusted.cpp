// Step load_trusted: raw_* cleaned into trusted_*, by the rules of the domain:
// text trimmed, inner white space collapsed, upper-cased with accents kept (sicoop.clean_text);
// nome split at the first space into nome / sobrenome; idade_atual_associado in whole years
// on the reference date; card numbers masked to their last four characters.
// "The reference date" is the reference time's date in the cooperative's time zone ($3).
// Identifiers are carried unchanged: they are keys, and cleaning them could merge two rows.
// Descriptive values (estado_civil, escolaridade, tipo_conta, bandeira_cartao) take their
// canonical form from sicoop.canonical_value (as sicoop._canonical); values it does not know are
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

// The cleaned value of a descriptive column in its canonical form (r: the raw row), as
// sicoop._canonical gives it: the column's mapping is read once per statement into a jsonb
// object (an InitPlan), then looked up per row -- a function call or a subquery per row probed
// canonical_value's index 4 µs a row, a tenth of load_trusted. (jsonb keys compare byte-wise,
// as text equality does under a deterministic collation.)
std::string canonical_sql(const std::string& column, const std::string& row) {
    return fill(R"sql(coalesce((SELECT jsonb_object_agg(c.source_value, c.canonical) FROM ONLY sicoop.canonical_value c
                  WHERE c.domain = '${column}') ->> sicoop.clean_text(${row}.${column}),
         sicoop.clean_text(${row}.${column})))sql",
                {{"column", column}, {"row", row}});
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
    actions.push_back(sql_action(fill(R"sql(SELECT sicoop._check_canonical('${table}', $2))sql", {{"table", t.name}}), t.name));
}

// The statements of a table, written whole: ${table} is its name (sicoop.raw_${table} cleaned into
// sicoop.trusted_${table}), ${key} its key, ${changed} the filter on the raw rows to (re)clean:
// "true" (all of them), or those changed since this step last ran.
const char* const kRead = R"sql(SELECT * FROM sicoop.raw_${table} r WHERE ${changed})sql";
const char* const kCountRead = R"sql(SELECT count(*) AS rows_read FROM sicoop.raw_${table} r WHERE ${changed})sql";
const char* const kRestoreIndexes = R"sql(SELECT sicoop._restore_indexes('sicoop.trusted_${table}'))sql";

// Deletions on a full run: every row no longer in raw.
const char* const kDeleteMissing = R"sql(WITH gone AS (
  DELETE FROM sicoop.trusted_${table} t WHERE NOT EXISTS (SELECT 1 FROM sicoop.raw_${table} r WHERE r.${key} = t.${key})
  RETURNING 1)
SELECT count(*) AS rows_deleted FROM gone)sql";

// Deletions otherwise: what the tombstones since this step last ran tell, unless raw has the
// row again.
const char* const kDeleteTombstoned = R"sql(WITH gone AS (
  DELETE FROM sicoop.trusted_${table} t WHERE t.${key} IN (SELECT b.record_id FROM sicoop.raw_tombstone b WHERE b.table_name = '${table}' AND b.run_id > $4)
    AND NOT EXISTS (SELECT 1 FROM sicoop.raw_${table} r WHERE r.${key} = t.${key})
  RETURNING 1)
SELECT count(*) AS rows_deleted FROM gone)sql";

// Ages move on with the reference date, whether or not the source changed.
const char* const kAge = R"sql(WITH aged AS (
  UPDATE sicoop.trusted_associado
  SET idade_atual_associado = sicoop.age_years(data_nascimento, ($1 AT TIME ZONE $3)::date),
      run_id = $2, updated_at = $1
  WHERE idade_atual_associado IS DISTINCT FROM sicoop.age_years(data_nascimento, ($1 AT TIME ZONE $3)::date)${new_day}
  RETURNING 1)
SELECT count(*) AS rows_updated FROM aged)sql";
// A stream's micro-batch ages the members only on the first batch of a new day (the previous
// run's date, from the run log): the pass reads every member, and ages move once a day.
const char* const kNewDay = R"sql(
    AND (SELECT (l.as_of AT TIME ZONE $3)::date FROM sicoop.run_log l WHERE l.run_id = $4 LIMIT 1)
        IS DISTINCT FROM ($1 AT TIME ZONE $3)::date)sql";

// A stream's batch movements (not on Citus, whose merge is not of what a CTE holds): kept in a
// temporary table as they are merged into trusted, for load_dims and load_fato.
const char* const kBatchMovementsTable = "sicoop_batch_movements";
const std::string kBatchMovements = std::string("pg_temp.") + kBatchMovementsTable;
bool keeps_batch_movements(const RunContext& ctx) { return ctx.stream && !ctx.movements_distributed; }

// A stream's batch movements, for a path that does not keep them as it merges (an empty
// trusted: the insert of a first load): read back from trusted by the batch's keys.
const char* const kKeepBatchMovements = R"sql(INSERT INTO ${kept} (${names})
SELECT ${names} FROM sicoop.trusted_${table} r WHERE ${changed})sql";

// The batch movements' table, made if need be, and empty.
void start_batch_movements(std::vector<Action>& actions, const TrustedTable& t) {
    actions.push_back(sql_action(temp_movements_table_sql(kBatchMovementsTable), t.name));
    actions.push_back(sql_action(fill("DELETE FROM ${kept}", {{"kept", kBatchMovements}}), t.name));
}

void keep_from_trusted(std::vector<Action>& actions, const TrustedTable& t) {
    std::string names = t.key;
    for (const Column& c : t.columns) names += ", " + c.name;
    actions.push_back(sql_action(fill(kKeepBatchMovements, {{"kept", kBatchMovements},
                                                            {"names", names},
                                                            {"table", t.name},
                                                            {"changed", in_stream_keys_sql("r." + t.key, t.name)}}),
                                 t.name));
}

}  // namespace

std::string stream_movements_sql(const RunContext& ctx) {
    return keeps_batch_movements(ctx)
               ? kBatchMovements
               : "sicoop.trusted_movimentacao_cartao WHERE " + in_stream_keys_sql("id_movimentacao_cartao", "movimentacao_cartao");
}

std::vector<std::pair<std::string, std::string>> trusted_expressions(const std::string& table) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const TrustedTable& t : trusted_tables())
        if (t.name == table)
            for (const Column& c : t.columns) out.emplace_back(c.name, c.expression);
    return out;
}

std::vector<Action> plan_trusted(const RunContext& ctx) {
    std::vector<Action> actions;
    const std::vector<Column> stamps = {{"run_id", "$2"}, {"updated_at", "$1"}};
    for (const TrustedTable& t : trusted_tables()) {
        const std::string trusted_table = "trusted_" + t.name;
        const std::string trusted = "sicoop." + trusted_table;
        // The raw rows to (re)clean: all of them, or those changed since this step last ran.
        auto sql = [&](const char* text) {
            // (A stream's batch: the keys it touched, by index; the run id is a lossy BRIN pass.)
            const std::string changed = ctx.stream ? in_stream_keys_sql("r." + t.key, t.name)
                                        : ctx.everything() ? "true" : "r.run_id > $4";
            return fill(text, {{"table", t.name}, {"key", t.key}, {"changed", changed}});
        };
        const std::string taken = "(" + sql(kRead) + ") s";  // (as a FROM item)
        const SourceTable* source = find_source_table(t.name);
        const bool distributed = source != nullptr && ctx.distributed(*source);
        // (The movements of a stream's batch, kept as they are merged; read back by their keys
        // after an insert or a whole merge, which do not keep them.)
        const bool keep = source != nullptr && source->is_dated() && keeps_batch_movements(ctx);
        if (keep) start_batch_movements(actions, t);
        if (ctx.is_empty(trusted_table)) {
            // Secondary indexes the run dropped before the step (run_pipeline.cpp) are built after
            // the insert, BRIN ranges summarized and statistics gathered (_restore_indexes); none
            // is dropped here (its lock would hold readers for the whole step).
            actions.push_back(sql_action(sql(kCountRead), t.name));
            actions.push_back(
                dml_action(insert_all_sql(trusted, t.key, t.columns, stamps, taken), "rows_inserted", t.name));
            actions.push_back(sql_action(sql(kRestoreIndexes), t.name));
            if (keep) keep_from_trusted(actions, t);
        } else if (ctx.everything() || distributed) {
            // (Every raw row is too many to hold: read twice. On Citus the merge of what a CTE
            // holds is not pushed down to the shards: the SELECT is.)
            actions.push_back(sql_action(sql(kCountRead), t.name));
            actions.push_back(sql_action(merge_changed_sql(trusted, t.key, t.columns, stamps, taken), t.name));
            if (keep) keep_from_trusted(actions, t);
        } else {
            // The changed rows read once: after an old change they are spread over the whole heap,
            // and a second pass through raw's run_id ranges to count them cost 1.5 s at 10M.
            actions.push_back(sql_action(
                merge_taken_sql(trusted, t.key, t.columns, stamps, sql(kRead), keep ? kBatchMovements : ""), t.name));
        }
        // (The canonical check reads the whole table: a stream leaves it to the full check.)
        if (!t.canonical_columns.empty() && !ctx.stream) check_canonical(actions, t);
        if (ctx.is_empty(trusted_table)) continue;  // nothing to delete from an empty table
        // Deletions: everything not in raw on a full run, else what the tombstones tell.
        actions.push_back(sql_action(sql(ctx.everything() ? kDeleteMissing : kDeleteTombstoned), t.name));
        if (!ctx.stream && source != nullptr && source->is_dated())
            actions.push_back(sql_action(summarize_ranges_sql(trusted), t.name));
    }
    actions.push_back(sql_action(fill(kAge, {{"new_day", ctx.stream ? kNewDay : ""}}), "associado"));
    return actions;
}

}  // namespace sicoop
