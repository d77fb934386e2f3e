// Step load_dims: dim_data, dim_conta and dim_cartao.
// dim_conta and dim_cartao are type 1: changed attributes are overwritten in place, new ids
// get a new surrogate key. They also keep their parent's id (a card's account, an account's
// member), which is how facts find their keys, and the run that last changed them. Updates and inserts are separate statements so that surrogate
// sequences only advance for rows really inserted. Rows are never deleted from a dimension:
// facts may still point at them.
// dim_data covers every day from the earliest to the latest movement, extended as new
// movements arrive. Only trusted rows changed since this step's last run ($4) are looked at.
#include "steps/pure_cpp.hpp"

#include "steps/sql_patterns.hpp"
#include "steps/step.hpp"

namespace sicoop {

namespace {

// The statements, written whole. A type 1 dimension's: ${dim} (from its trusted table ${trusted},
// aliased s) by business key ${key}; ${changed} is the filter on the trusted rows changed since
// this step last ran ("true" on a full run); ${values} are its attribute columns as
// "expression AS name", ${sets} "name = v.name", ${dim_values} "d.name", ${v_values} "v.name"
// and ${names} "name", comma-separated.
// The trusted side is read first, into v (MATERIALIZED), and the dimension written from it: on
// Citus the dimension is a reference table, which a statement may modify from a coordinator's
// table only through such a result (ARCHITECTURE.md, "On Citus").
const char* const kType1CountRead = R"sql(SELECT count(*) AS rows_read FROM ${trusted} s WHERE ${changed})sql";

const char* const kType1Update = R"sql(WITH v AS MATERIALIZED (
  SELECT s.${key}, ${values} FROM ${trusted} s WHERE ${changed}),
changed AS (
  UPDATE ${dim} d SET ${sets}, data_hora_atualizacao_registro = $1, run_id = $2
  FROM v
  WHERE d.${key} = v.${key} AND (${dim_values}) IS DISTINCT FROM (${v_values})
  RETURNING 1)
SELECT count(*) AS rows_updated FROM changed)sql";

// Surrogate keys in business-key order, byte-wise: the same rows get the same keys in every
// copy of the warehouse (a restore, another collation), whatever the scan order.
const char* const kType1Insert = R"sql(WITH v AS MATERIALIZED (
  SELECT s.${key}, ${values} FROM ${trusted} s
  WHERE ${changed} AND NOT EXISTS (SELECT 1 FROM ${dim} d WHERE d.${key} = s.${key})),
added AS (
  INSERT INTO ${dim} (${key}, ${names}, data_hora_atualizacao_registro, run_id)
  SELECT v.${key}, ${v_values}, $1, $2 FROM v
  ORDER BY v.${key} COLLATE "C"
  RETURNING 1)
SELECT count(*) AS rows_inserted FROM added)sql";

// The days the new or changed movements need (the whole span on a full run), from
// ${changed_movements}.
const char* const kDimData = R"sql(
WITH changed AS (
  SELECT min(data_movimentacao)::date AS first_day, max(data_movimentacao)::date AS last_day
  FROM ${changed_movements}),
known AS (SELECT min(data) AS first_day, max(data) AS last_day FROM sicoop.dim_data WHERE sk_data <> -1),
span AS (  -- contiguous: from the days already there to the new movements, gaps filled
  SELECT least(changed.first_day, known.first_day) AS first_day, greatest(changed.last_day, known.last_day) AS last_day
  FROM changed, known),
added AS (
  INSERT INTO sicoop.dim_data (sk_data, data, dia, mes, ano, trimestre, dia_da_semana, fim_de_semana)
  SELECT to_char(d, 'YYYYMMDD')::int, d, extract(day FROM d), extract(month FROM d), extract(year FROM d),
         extract(quarter FROM d),
         (ARRAY['DOMINGO', 'SEGUNDA-FEIRA', 'TERÇA-FEIRA', 'QUARTA-FEIRA', 'QUINTA-FEIRA',
                'SEXTA-FEIRA', 'SÁBADO'])[extract(dow FROM d)::int + 1],
         extract(dow FROM d) IN (0, 6)
  FROM span, generate_series(span.first_day, span.last_day, interval '1 day') AS g(day),
       LATERAL (SELECT g.day::date AS d) x
  WHERE NOT EXISTS (SELECT 1 FROM sicoop.dim_data dd WHERE dd.data = x.d)
  RETURNING 1)
SELECT count(*) AS rows_inserted FROM added)sql";

// Type 1 load of one dimension from its trusted table.
void add_type1_dimension(std::vector<Action>& actions, const RunContext& ctx, const std::string& dim,
                         const std::string& trusted, const std::string& key, const std::vector<Column>& columns) {
    const std::string label = dim.substr(dim.find('.') + 1);  // timings per table, as elsewhere
    std::string values, sets, dim_values, v_values, names;
    for (size_t i = 0; i < columns.size(); ++i) {
        const std::string sep = i ? ", " : "";
        const std::string& name = columns[i].name;
        values += sep + columns[i].expression + " AS " + name;
        sets += sep + name + " = v." + name;
        dim_values += sep + "d." + name;
        v_values += sep + "v." + name;
        names += sep + name;
    }
    auto statement = [&](const char* sql) {
        return sql_action(fill(sql, {{"dim", dim},
                                     {"trusted", trusted},
                                     {"key", key},
                                     {"changed", ctx.everything() ? "true" : "s.run_id > $4"},
                                     {"values", values},
                                     {"sets", sets},
                                     {"dim_values", dim_values},
                                     {"v_values", v_values},
                                     {"names", names}}),
                          label);
    };
    for (const char* sql : {kType1CountRead, kType1Update, kType1Insert}) actions.push_back(statement(sql));
}

}  // namespace

std::vector<Action> plan_dims(const RunContext& ctx) {
    std::vector<Action> actions;
    // (On a full run raw's index on data_movimentacao gives the span at once; movements keep
    // their times from raw to trusted.)
    const std::string changed_movements =
        ctx.stream ? stream_movements_sql(ctx)
        : ctx.everything() ? "sicoop.raw_movimentacao_cartao" : "sicoop.trusted_movimentacao_cartao WHERE run_id > $4";
    actions.push_back(sql_action(fill(kDimData, {{"changed_movements", changed_movements}}), "dim_data"));

    add_type1_dimension(actions, ctx, "sicoop.dim_conta", "sicoop.trusted_conta", "id_conta",
                        {{"id_associado", "s.id_associado"},
                         {"tipo_conta", "s.tipo_conta"},
                         {"agencia_conta", "s.agencia"},
                         {"situacao_conta", "s.situacao_conta"},
                         {"data_criacao_conta", "s.data_criacao_conta"}});
    add_type1_dimension(actions, ctx, "sicoop.dim_cartao", "sicoop.trusted_cartao", "id_cartao",
                        {{"id_conta", "s.id_conta"},
                         {"numero_cartao", "s.numero_cartao"},
                         {"nome_impresso_cartao", "s.nome_impresso_cartao"},
                         {"bandeira_cartao", "s.bandeira_cartao"},
                         {"tipo_cartao", "s.tipo_cartao"},
                         {"data_emissao_cartao", "s.data_emissao"}});
    // Fresh statistics after a bulk load, so load_fato joins these tables the right way round
    // (small changes leave them to autovacuum).
    if (ctx.everything()) actions.push_back(sql_action("SELECT sicoop._analyze('sicoop.dim_data', 'sicoop.dim_conta', 'sicoop.dim_cartao')"));
    return actions;
}

}  // namespace sicoop
