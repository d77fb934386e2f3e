// Step load_fato: fato_movimentacao_cartao, one row per movement, loaded incrementally.
// Keys: the card's dim_cartao row, its account's dim_conta row, and the dim_associado version
// valid at the movement's time (a naive local time, read in the cooperative's time zone, $3).
// What is not (yet) known lands on the unknown member (-1) instead of being dropped, and a
// later run re-keys such a fact once the late row has arrived.
//
// A first load inserts every movement. Later runs recompute the keys only of the movements
// that can have changed since this step's last run ($4): movements changed in trusted, facts
// still on an unknown member, and facts of cards whose card, account or member rows changed
// (dimension rows carry the run that last changed them). Changed facts are
// updated and re-stamped with the reference time; facts of deleted movements are deleted.
// Nothing else is touched, so a rerun with no change changes nothing.
#include "steps/pure_cpp.hpp"

#include "steps/sql_patterns.hpp"
#include "steps/step.hpp"

namespace sicoop {

namespace {

// The fact rows of the movements in ${movements} (trusted_movimentacao_cartao, or the
// candidates table with the same columns), with their keys looked up along the dimensions:
// the card's dim_cartao row, its account's dim_conta row (${card_keys}: kCardKeysBulk or
// kCardKeysJoined), the member version valid then (${member_versions}: kMemberVersionsJoined or
// kMemberVersionLookup). A FROM item, aliased s.
const char* const kKeyedMovements = R"sql((
  SELECT m.id_movimentacao_cartao,
         coalesce(a.sk_associado, -1) AS sk_associado,
         coalesce(k.sk_cartao, -1) AS sk_cartao,
         coalesce(k.sk_conta, -1) AS sk_conta,
         (date_part('year', m.data_movimentacao) * 10000 + date_part('month', m.data_movimentacao) * 100
          + date_part('day', m.data_movimentacao))::int AS sk_data,
         m.descricao_movimentacao,
         m.valor_movimentacao,
         m.data_movimentacao
  FROM ${movements} m
  LEFT JOIN ${card_keys}
  ${member_versions}) s)sql";

// When every movement is keyed, card and account keys come from sicoop_card_keys, joined once
// per card (N/20 rows) rather than once per movement (see add_card_keys).
const char* const kCardKeysBulk = R"sql(sicoop_card_keys k ON k.id_cartao = m.id_cartao)sql";
const char* const kCardKeysJoined = R"sql((SELECT dc.id_cartao, dc.sk_cartao, dco.sk_conta, dco.id_associado
   FROM sicoop.dim_cartao dc LEFT JOIN sicoop.dim_conta dco ON dco.id_conta = dc.id_conta) k
  ON k.id_cartao = m.id_cartao)sql";

// Every version's local vigência, computed once per version (OFFSET 0 keeps it so) rather than
// once per movement.
const char* const kMemberVersionsJoined = R"sql(LEFT JOIN (SELECT sk_associado, id_associado,
                    inicio_vigencia_registro_associado AT TIME ZONE $3 AS inicio_local,
                    fim_vigencia_registro_associado AT TIME ZONE $3 AS fim_local
             FROM sicoop.dim_associado WHERE id_associado IS NOT NULL OFFSET 0) a
         ON a.id_associado = k.id_associado
        AND m.data_movimentacao >= a.inicio_local AND m.data_movimentacao < a.fim_local)sql";
// A stream's few candidates find their member's version by index, one lookup each, rather
// than computing every version's local vigência (the whole dimension) for each micro-batch.
// Versions never overlap (check_vigencia), so the version is the latest one starting by the
// movement's time: read backwards from a bound on the start the index can use. The bound is
// loose on purpose (two days past the movement's time read in the zone: no zone's offset moves
// back that far), so the exact test stays the local vigência's, as the bulk join's; no bound
// for a time too near the ends of the range to convert. Without it, a member with many
// versions had every version read for every movement.
const char* const kMemberVersionLookup = R"sql(LEFT JOIN LATERAL (
    SELECT v.sk_associado FROM sicoop.dim_associado v
    WHERE v.id_associado = k.id_associado
      AND v.inicio_vigencia_registro_associado <=
          CASE WHEN m.data_movimentacao BETWEEN timestamp '1000-01-01' AND timestamp '294000-01-01'
               THEN (m.data_movimentacao AT TIME ZONE $3) + interval '2 days' ELSE timestamptz 'infinity' END
      AND m.data_movimentacao >= v.inicio_vigencia_registro_associado AT TIME ZONE $3
      AND m.data_movimentacao < v.fim_vigencia_registro_associado AT TIME ZONE $3
    ORDER BY v.inicio_vigencia_registro_associado DESC
    LIMIT 1) a ON true)sql";

// `bulk`: every movement is keyed (see kCardKeysBulk); `lookup`: members by index (a stream).
std::string keyed_movements(const std::string& movements, bool bulk, bool lookup = false) {
    return fill(kKeyedMovements, {{"movements", movements},
                                  {"card_keys", bulk ? kCardKeysBulk : kCardKeysJoined},
                                  {"member_versions", lookup ? kMemberVersionLookup : kMemberVersionsJoined}});
}

// The movements whose fact can have changed since run $4, as trusted rows: changed in
// trusted; still on an unknown member; of a card whose dim_cartao row or whose account's
// dim_conta row changed, when the fact's account or member is no longer the card's (a card's
// or an account's other attributes are not in the fact: renaming a card re-keyed its whole
// history before); or of a member whose vigência moved, from the moved boundary on (the close
// of a closed version, the start of a new one: older movements keep their version).
const char* const kCandidates = R"SQL(
INSERT INTO sicoop_fato_candidates
SELECT id_movimentacao_cartao, id_cartao, descricao_movimentacao, valor_movimentacao, data_movimentacao
FROM ${changed_movements}
UNION
SELECT m.id_movimentacao_cartao, m.id_cartao, m.descricao_movimentacao, m.valor_movimentacao, m.data_movimentacao
FROM sicoop.trusted_movimentacao_cartao m
WHERE m.id_movimentacao_cartao IN (
  SELECT id_movimentacao_cartao FROM sicoop.fato_movimentacao_cartao
  WHERE sk_associado = -1 OR sk_cartao = -1 OR sk_conta = -1
  UNION
  SELECT f.id_movimentacao_cartao
  FROM (SELECT sk_cartao FROM sicoop.dim_cartao WHERE run_id > $4
        UNION
        SELECT dc.sk_cartao FROM sicoop.dim_cartao dc
        JOIN sicoop.dim_conta co ON co.id_conta = dc.id_conta WHERE co.run_id > $4) changed_cards
  JOIN sicoop.dim_cartao dc ON dc.sk_cartao = changed_cards.sk_cartao
  LEFT JOIN sicoop.dim_conta co ON co.id_conta = dc.id_conta
  JOIN sicoop.fato_movimentacao_cartao f ON f.sk_cartao = dc.sk_cartao
  LEFT JOIN sicoop.dim_associado a ON a.sk_associado = f.sk_associado
  WHERE f.sk_conta IS DISTINCT FROM coalesce(co.sk_conta, -1) OR a.id_associado IS DISTINCT FROM co.id_associado
  UNION
  SELECT f.id_movimentacao_cartao
  FROM (SELECT id_associado,
               min(CASE WHEN registro_ativo_associado THEN inicio_vigencia_registro_associado
                        ELSE fim_vigencia_registro_associado END) AT TIME ZONE $3 AS moved_from
        FROM sicoop.dim_associado WHERE run_id > $4 GROUP BY id_associado) a
  JOIN sicoop.dim_conta co ON co.id_associado = a.id_associado
  JOIN sicoop.dim_cartao dc ON dc.id_conta = co.id_conta
  JOIN sicoop.fato_movimentacao_cartao f ON f.sk_cartao = dc.sk_cartao AND f.data_hora_movimentacao >= a.moved_from)
)SQL";

// Facts of movements deleted since run $4 (their tombstones), unless trusted has them again.
const char* const kDeleteTombstoned = R"sql(WITH gone AS (
  DELETE FROM sicoop.fato_movimentacao_cartao f
  WHERE f.id_movimentacao_cartao IN (SELECT record_id FROM sicoop.raw_tombstone
                          WHERE table_name = 'movimentacao_cartao' AND run_id > $4)
    AND NOT EXISTS (SELECT 1 FROM sicoop.trusted_movimentacao_cartao m WHERE m.id_movimentacao_cartao = f.id_movimentacao_cartao)
  RETURNING 1)
SELECT count(*) AS rows_deleted FROM gone)sql";

// Facts that still point at an unknown member, after this run (a partial index keeps it cheap).
const char* const kCountUnknown = R"sql(SELECT count(*) AS rows_unknown FROM sicoop.fato_movimentacao_cartao
WHERE sk_associado = -1 OR sk_cartao = -1 OR sk_conta = -1)sql";

// Tombstones every step has processed are no longer needed.
const char* const kForgetTombstones = R"sql(DELETE FROM sicoop.raw_tombstone
WHERE run_id <= (SELECT min(last_run_id) FROM sicoop.step_state HAVING count(*) = 5))sql";

// Card and account keys per card, for a bulk keying (a temporary table, with statistics).
void add_card_keys(std::vector<Action>& actions) {
    actions.push_back(sql_action(drop_temp_table_sql("sicoop_card_keys")));
    actions.push_back(sql_action(R"sql(CREATE TEMP TABLE sicoop_card_keys ON COMMIT DROP AS
SELECT dc.id_cartao, dc.sk_cartao, dco.sk_conta, dco.id_associado
FROM sicoop.dim_cartao dc LEFT JOIN sicoop.dim_conta dco ON dco.id_conta = dc.id_conta
WHERE dc.id_cartao IS NOT NULL)sql"));
    actions.push_back(sql_action("ANALYZE sicoop_card_keys"));
}

const std::vector<Column>& fact_columns() {
    static const std::vector<Column> columns = {
        {"sk_associado", "s.sk_associado"},
        {"sk_cartao", "s.sk_cartao"},
        {"sk_conta", "s.sk_conta"},
        {"sk_data", "s.sk_data"},
        {"descricao_movimentacao", "s.descricao_movimentacao"},
        {"valor_movimentacao", "s.valor_movimentacao"},
        {"data_hora_movimentacao", "s.data_movimentacao"}};
    return columns;
}

}  // namespace

std::vector<Action> plan_fato(const RunContext& ctx) {
    std::vector<Action> actions;
    const std::string fato = "sicoop.fato_movimentacao_cartao";
    const std::string key = "id_movimentacao_cartao";
    const std::vector<Column> stamps = {{"data_hora_atualizacao_registro", "$1"}};

    if (ctx.is_empty("fato_movimentacao_cartao")) {
        actions.push_back(sql_action(count_read_sql("sicoop.trusted_movimentacao_cartao")));
        add_card_keys(actions);
        // Secondary indexes the run dropped before the step (run_pipeline.cpp) are built after the
        // insert; none is dropped here (its lock would hold BI readers for the whole step).
        actions.push_back(dml_action(
            insert_all_sql(fato, key, fact_columns(), stamps, keyed_movements("sicoop.trusted_movimentacao_cartao", true)),
            "rows_inserted"));
        actions.push_back(sql_action(R"sql(SELECT sicoop._restore_indexes('sicoop.fato_movimentacao_cartao'))sql"));
    } else if (ctx.everything()) {
        actions.push_back(sql_action(count_read_sql("sicoop.trusted_movimentacao_cartao")));
        add_card_keys(actions);
        actions.push_back(sql_action(
            merge_changed_sql(fato, key, fact_columns(), stamps, keyed_movements("sicoop.trusted_movimentacao_cartao", true))));
        actions.push_back(sql_action(delete_missing_sql(fato, key, "sicoop.trusted_movimentacao_cartao")));
    } else {
        // The candidates are materialized once: counted, then keyed and merged.
        actions.push_back(sql_action(temp_movements_table_sql("sicoop_fato_candidates")));
        actions.push_back(sql_action("TRUNCATE sicoop_fato_candidates"));
        // (A stream's batch: the movements it touched; the run id is a lossy BRIN pass.)
        const std::string changed_movements =
            ctx.stream ? stream_movements_sql(ctx) : "sicoop.trusted_movimentacao_cartao WHERE run_id > $4";
        actions.push_back(dml_action(fill(kCandidates, {{"changed_movements", changed_movements}}), "rows_read"));
        // (Not in a stream's micro-batch: its merge finds members by index either way, the
        // planner still reads the table's size, and the ANALYZE took a tenth of the fact step.)
        if (!ctx.stream) actions.push_back(sql_action("ANALYZE sicoop_fato_candidates"));
        // (On Citus the merge's SELECT is planned by Citus, which refuses the lookup's LATERAL
        // LIMIT: the versions are joined there.)
        const bool lookup = ctx.stream && !ctx.movements_distributed;
        actions.push_back(sql_action(
            merge_changed_sql(fato, key, fact_columns(), stamps, keyed_movements("sicoop_fato_candidates", false, lookup))));
        actions.push_back(sql_action(kDeleteTombstoned));
    }
    actions.push_back(sql_action(kCountUnknown));
    actions.push_back(sql_action(kForgetTombstones));
    // The books: per movement day, the source's count and sum against the fact's plus the
    // rejects' (sicoop.reconciliation, sicoop.dq_result).
    // A stream's micro-batch leaves the books to the full check: the source's day totals are a
    // batch read, and the pass over the fact would make every micro-batch cost the history.
    if (!ctx.stream) actions.push_back(sql_action("SELECT sicoop._reconcile($2)"));
    return actions;
}

}  // namespace sicoop
