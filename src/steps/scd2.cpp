// Step scd2_associado: dim_associado as a slowly changing dimension of type 2.
//
// Historized attributes: estado civil, escolaridade and idade (the original design's choice).
// nome, sobrenome and data de nascimento are type 1: corrected in place on every version.
// At reference time T ($1):
//   - a member whose historized attributes changed has its current version closed at T and
//     a new version opened from T (half-open vigência [inicio, fim): no gap, no overlap);
//   - if the current version itself was opened at T (a second run at the same instant), it is
//     corrected in place instead, so no empty version is ever made;
//   - a member gone from the source has its current version closed at T, with no new one;
//   - a member seen for the first time gets a version valid from 1900-01-01, so movements
//     older than the first load still find it; a member that comes back gets one from T.
// 1900-01-01 and 9999-12-31 are midnights in the cooperative's time zone ($3), as ages are
// taken on the reference time's date there.
// Only members whose trusted row changed since this step last ran ($4) are compared; gone
// members are found by comparing every current version with trusted (N/25 rows).
// Every version whose vigência this step opens or closes is stamped with the run id, which
// load_fato follows to re-key the movements from that time on.
// sicoop.check_vigencia() at the end and the partial unique index guarantee, whatever
// happens, no overlapping versions and at most one current version per member.
#include "steps/pure_cpp.hpp"

#include "steps/sql_patterns.hpp"
#include "steps/step.hpp"

namespace sicoop {

namespace {

// The statements, written whole. Each reads first, into a MATERIALIZED result (target, v), what
// it changes, and then changes the dimension from it by surrogate key: on Citus dim_associado is
// a reference table, which a statement may modify from the coordinator's own tables only
// through such a result (ARCHITECTURE.md, "On Citus").
// ${changed} is where the filter on the members whose trusted row
// changed since this step last ran goes (" AND s.run_id > $4"; nothing on a full run);
// ${dim_historized} and ${source_historized} are the member's historized attributes, as they are
// in the dimension (d) and in the source (s).
const char* const kDimHistorized =
    "(d.estado_civil_associado, d.escolaridade_associado, d.idade_atual_associado)";
const char* const kSourceHistorized =
    "(s.estado_civil, s.escolaridade, sicoop.age_years(s.data_nascimento, ($1 AT TIME ZONE $3)::date))";

// A canonical value is a label, not a change in the member's life: when sicoop.canonical_value
// is edited, every version (current and closed) takes the new label in place -- no version
// opened or closed, vigência and run id untouched, so load_fato re-keys nothing -- before the
// comparison with trusted (which load_trusted re-labelled). The old label is not in the edited
// table any more (UPDATE ... SET canonical = 'CASADO/CASADA' leaves no row saying what
// 'CASADO(A)' was): sicoop.warehouse_info.canonical_labels keeps the values the versions were
// labelled with, and sicoop._canonical_relabels() maps each old label to its new one. The
// values applied are then recorded, in the same transaction. Nothing to relabel (the usual
// case: the labels recorded are today's, which _canonical_relabels() would take 25 ms of every
// micro-batch to find): the one-time filters skip the work.
const char* const kRelabel = R"sql(
WITH relabels AS MATERIALIZED (SELECT r.domain, r.label, r.relabel, r.candidates FROM sicoop._canonical_relabels() r
                               WHERE (SELECT w.canonical_labels FROM ONLY sicoop.warehouse_info w)
                                     IS DISTINCT FROM sicoop._canonical_labels()),
target AS MATERIALIZED (
  SELECT d.sk_associado,
         coalesce((SELECT coalesce(
                     (SELECT s.estado_civil FROM sicoop.trusted_associado s
                      WHERE d.registro_ativo_associado AND s.id_associado = d.id_associado${changed}
                        AND s.estado_civil = ANY (r.candidates)), r.relabel)
                   FROM relabels r
                   WHERE r.domain = 'estado_civil' AND r.label = d.estado_civil_associado),
                  d.estado_civil_associado) AS estado_civil,
         coalesce((SELECT coalesce(
                     (SELECT s.escolaridade FROM sicoop.trusted_associado s
                      WHERE d.registro_ativo_associado AND s.id_associado = d.id_associado${changed}
                        AND s.escolaridade = ANY (r.candidates)), r.relabel)
                   FROM relabels r
                   WHERE r.domain = 'escolaridade' AND r.label = d.escolaridade_associado),
                  d.escolaridade_associado) AS escolaridade
  FROM sicoop.dim_associado d
  WHERE EXISTS (SELECT 1 FROM relabels)
    AND d.id_associado IS NOT NULL
    AND EXISTS (SELECT 1 FROM relabels r
                WHERE (r.domain = 'estado_civil' AND r.label = d.estado_civil_associado)
                   OR (r.domain = 'escolaridade' AND r.label = d.escolaridade_associado))),
relabelled AS (
  UPDATE sicoop.dim_associado d
  SET estado_civil_associado = t.estado_civil, escolaridade_associado = t.escolaridade
  FROM target t
  WHERE d.sk_associado = t.sk_associado
  RETURNING 1)
SELECT count(*) AS rows_updated FROM relabelled)sql";
const char* const kRecordLabels = R"sql(UPDATE ONLY sicoop.warehouse_info
SET canonical_labels = sicoop._canonical_labels()
WHERE canonical_labels IS DISTINCT FROM sicoop._canonical_labels())sql";

// Read and unchanged are counted before anything changes.
const char* const kCountRead = R"sql(SELECT count(*) AS rows_read,
       count(*) FILTER (WHERE d.sk_associado IS NOT NULL
         AND ${dim_historized} IS NOT DISTINCT FROM ${source_historized}
         AND (d.nome_associado, d.sobrenome_associado, d.data_nascimento_associado)
             IS NOT DISTINCT FROM (s.nome, s.sobrenome, s.data_nascimento)) AS rows_unchanged
FROM sicoop.trusted_associado s
LEFT JOIN sicoop.dim_associado d
  ON d.id_associado = s.id_associado AND d.registro_ativo_associado
WHERE true${changed})sql";

// Type 1 attributes: corrected on every version of the member.
const char* const kCorrectType1 = R"sql(WITH target AS MATERIALIZED (
  SELECT d.sk_associado, s.nome, s.sobrenome, s.data_nascimento
  FROM sicoop.dim_associado d JOIN sicoop.trusted_associado s ON d.id_associado = s.id_associado
  WHERE true${changed}
    AND (d.nome_associado, d.sobrenome_associado, d.data_nascimento_associado)
        IS DISTINCT FROM (s.nome, s.sobrenome, s.data_nascimento)),
corrected AS (
  UPDATE sicoop.dim_associado d
  SET nome_associado = t.nome, sobrenome_associado = t.sobrenome,
      data_nascimento_associado = t.data_nascimento, data_hora_atualizacao_registro = $1
  FROM target t
  WHERE d.sk_associado = t.sk_associado
  RETURNING 1)
SELECT count(*) AS rows_updated FROM corrected)sql";

// A second change at the very instant the current version opened: correct it in place.
const char* const kCorrectInPlace = R"sql(WITH target AS MATERIALIZED (
  SELECT d.sk_associado, s.estado_civil, s.escolaridade,
         sicoop.age_years(s.data_nascimento, ($1 AT TIME ZONE $3)::date) AS idade
  FROM sicoop.dim_associado d JOIN ${members} s ON d.id_associado = s.id_associado
  WHERE d.registro_ativo_associado${changed}
    AND d.inicio_vigencia_registro_associado = ${at_s}
    AND ${dim_historized} IS DISTINCT FROM ${source_historized}),
corrected AS (
  UPDATE sicoop.dim_associado d
  SET estado_civil_associado = t.estado_civil, escolaridade_associado = t.escolaridade,
      idade_atual_associado = t.idade, data_hora_atualizacao_registro = $1, run_id = $2
  FROM target t
  WHERE d.sk_associado = t.sk_associado
  RETURNING 1)
SELECT count(*) AS rows_updated FROM corrected)sql";

// Changed members: close the current version at T (the new one is inserted below).
const char* const kCloseChanged = R"sql(WITH target AS MATERIALIZED (
  SELECT d.sk_associado, ${at_s} AS closed_at
  FROM sicoop.dim_associado d JOIN ${members} s ON d.id_associado = s.id_associado
  WHERE d.registro_ativo_associado${changed}
    AND d.inicio_vigencia_registro_associado < ${at_s}
    AND ${dim_historized} IS DISTINCT FROM ${source_historized}),
closed AS (
  UPDATE sicoop.dim_associado d
  SET fim_vigencia_registro_associado = t.closed_at, registro_ativo_associado = false,
      data_hora_atualizacao_registro = $1, run_id = $2
  FROM target t
  WHERE d.sk_associado = t.sk_associado
  RETURNING 1)
SELECT count(*) AS rows_updated FROM closed)sql";

// Members gone from the source: close the current version, open none. A current version
// opened at this very instant never held: it goes, and the member's remaining versions are
// stamped so that load_fato re-keys the movements that pointed at it.
const char* const kDropGoneOpenedNow = R"sql(WITH target AS MATERIALIZED (
  SELECT d.sk_associado, d.id_associado
  FROM sicoop.dim_associado d
  WHERE d.registro_ativo_associado AND d.id_associado IS NOT NULL${gone_candidates}
    AND d.inicio_vigencia_registro_associado = ${at_d}
    AND NOT EXISTS (SELECT 1 FROM ${members} s WHERE s.id_associado = d.id_associado)),
dropped AS (
  DELETE FROM sicoop.dim_associado d USING target t
  WHERE d.sk_associado = t.sk_associado
  RETURNING d.id_associado),
stamped AS (
  UPDATE sicoop.dim_associado p SET run_id = $2
  WHERE p.id_associado IN (SELECT t.id_associado FROM target t)
  RETURNING 1)
SELECT count(*) AS rows_deleted FROM dropped)sql";
const char* const kCloseGone = R"sql(WITH target AS MATERIALIZED (
  SELECT d.sk_associado, ${at_d} AS closed_at
  FROM sicoop.dim_associado d
  WHERE d.registro_ativo_associado AND d.id_associado IS NOT NULL${gone_candidates}
    AND d.inicio_vigencia_registro_associado < ${at_d}
    AND NOT EXISTS (SELECT 1 FROM ${members} s WHERE s.id_associado = d.id_associado)),
closed AS (
  UPDATE sicoop.dim_associado d
  SET fim_vigencia_registro_associado = t.closed_at, registro_ativo_associado = false,
      data_hora_atualizacao_registro = $1, run_id = $2
  FROM target t
  WHERE d.sk_associado = t.sk_associado
  RETURNING 1)
SELECT count(*) AS rows_deleted FROM closed)sql";

// Members without a current version (new, changed, or back): open one. Surrogate keys in
// business-key order, byte-wise (as dims.cpp): deterministic.
const char* const kOpen = R"sql(WITH v AS MATERIALIZED (
  SELECT s.id_associado, s.nome, s.sobrenome, s.data_nascimento,
         sicoop.age_years(s.data_nascimento, ($1 AT TIME ZONE $3)::date) AS idade, s.estado_civil, s.escolaridade,
         CASE WHEN EXISTS (SELECT 1 FROM sicoop.dim_associado h WHERE h.id_associado = s.id_associado)
              THEN ${open_at} ELSE timestamp '1900-01-01' AT TIME ZONE $3 END AS opened_at
  FROM ${members} s
  WHERE true${changed} AND NOT EXISTS (SELECT 1 FROM sicoop.dim_associado d
                    WHERE d.id_associado = s.id_associado AND d.registro_ativo_associado)),
opened AS (
  INSERT INTO sicoop.dim_associado (id_associado, nome_associado, sobrenome_associado,
      data_nascimento_associado, idade_atual_associado, estado_civil_associado,
      escolaridade_associado, inicio_vigencia_registro_associado,
      fim_vigencia_registro_associado, registro_ativo_associado, data_hora_atualizacao_registro, run_id)
  SELECT v.id_associado, v.nome, v.sobrenome, v.data_nascimento, v.idade, v.estado_civil, v.escolaridade, v.opened_at,
         timestamp '9999-12-31' AT TIME ZONE $3, true, $1, $2
  FROM v
  ORDER BY v.id_associado COLLATE "C"
  RETURNING 1)
SELECT count(*) AS rows_inserted FROM opened)sql";

// When a version opens or closes. A batch run: at its reference time ($1). A stream's
// micro-batch (true history): at the commit time of the source transaction that left the
// member in its last state (sicoop.stream_key), never before the member's current version
// began -- a commit older than that (a batch run's version, clocks apart) corrects the current
// version in place instead of making versions overlap.
// A change's time, never before the member's current version began (d), or after its last
// version ended (a new version of s).
const char* const kNotBeforeVersion = R"sql(greatest(${time}, d.inicio_vigencia_registro_associado))sql";
const char* const kAfterLastVersion = R"sql(greatest(${time}, (SELECT max(h.fim_vigencia_registro_associado) FROM sicoop.dim_associado h
                                 WHERE h.id_associado = s.id_associado)))sql";
const char* const kStreamChangeTime = R"sql(coalesce((SELECT k.commit_time FROM sicoop.stream_key k
                     WHERE k.table_name = 'associado' AND k.record_id = ${member}), $1))sql";
// Stream: only the members the batch touched can have gone (every one, after a truncate).
const char* const kStreamGoneCandidates = R"sql(
    AND d.id_associado = ANY (ARRAY(SELECT k.record_id FROM sicoop.stream_key k
                                    WHERE k.table_name = 'associado' AND k.record_id IS NOT NULL)))sql";

// A member changed more than once in a micro-batch (issue 25): its states before the last
// (sicoop.stage_associado_state, round n: its nth) are replayed first, one round at a time,
// through the same statements as the last state, each at its own commit time: the versions and
// times that one batch per state would make. A round's members: its states that are rows (not
// deleted, not refused by a reject rule: sicoop._check_member_states), cleaned as load_trusted
// cleans (trusted_expressions); its other members are gone from that commit on.
const char* const kRoundMembers = R"sql((SELECT s.id_associado, s.commit_time${cleaned}
   FROM sicoop.stage_associado_state s WHERE s.round = ${round} AND NOT s.deleted AND NOT s.rejected))sql";
const char* const kRoundTime = R"sql((SELECT e.commit_time FROM sicoop.stage_associado_state e
                     WHERE e.round = ${round} AND e.id_associado = ${member}))sql";
const char* const kRoundCandidates = R"sql(
    AND d.id_associado = ANY (ARRAY(SELECT e.id_associado FROM sicoop.stage_associado_state e WHERE e.round = ${round})))sql";
// After the rounds, type 1 as the member's last accepted earlier state left it (its last state,
// if trusted has it, corrects it again below).
const char* const kRoundsType1 = R"sql(WITH last_accepted AS MATERIALIZED (
  SELECT DISTINCT ON (s.id_associado) s.id_associado${cleaned}
  FROM sicoop.stage_associado_state s WHERE NOT s.deleted AND NOT s.rejected
  ORDER BY s.id_associado, s.round DESC),
corrected AS (
  UPDATE sicoop.dim_associado d
  SET nome_associado = s.nome, sobrenome_associado = s.sobrenome,
      data_nascimento_associado = s.data_nascimento, data_hora_atualizacao_registro = $1
  FROM last_accepted s
  WHERE d.id_associado = s.id_associado
    AND (d.nome_associado, d.sobrenome_associado, d.data_nascimento_associado)
        IS DISTINCT FROM (s.nome, s.sobrenome, s.data_nascimento)
  RETURNING 1)
SELECT count(*) AS rows_updated FROM corrected)sql";
// The last states of members that had earlier ones are compared whatever trusted says (a member
// back to its state before the batch leaves trusted unchanged, but not its versions).
const char* const kChangedOrReplayed = R"sql( AND (s.run_id > $4 OR s.id_associado IN (SELECT e.id_associado FROM sicoop.stage_associado_state e)))sql";

std::string cleaned_columns() {
    std::string out;
    for (const auto& [name, expression] : trusted_expressions("associado")) out += ", " + expression + " AS " + name;
    return out;
}

SqlValues vigencia_times(const RunContext& ctx) {
    if (!ctx.stream)
        return {{"at_s", "$1"}, {"at_d", "$1"}, {"open_at", "$1"}, {"gone_candidates", ""}, {"members", "sicoop.trusted_associado"}};
    const std::string of_s = fill(kStreamChangeTime, {{"member", "s.id_associado"}});
    const std::string of_d = fill(kStreamChangeTime, {{"member", "d.id_associado"}});
    return {{"at_s", fill(kNotBeforeVersion, {{"time", of_s}})},
            {"at_d", fill(kNotBeforeVersion, {{"time", of_d}})},
            {"open_at", fill(kAfterLastVersion, {{"time", of_s}})},
            {"gone_candidates", ctx.stream_truncated_table("associado") ? "" : kStreamGoneCandidates},
            {"members", "sicoop.trusted_associado"}};
}

// Round `round` of the earlier states: the same substitutions, from sicoop.stage_associado_state.
SqlValues round_times(int round) {
    const SqlValues r = {{"round", std::to_string(round)}, {"member", "d.id_associado"}};
    return {{"at_s", fill(kNotBeforeVersion, {{"time", "s.commit_time"}})},
            {"at_d", fill(kNotBeforeVersion, {{"time", fill(kRoundTime, r)}})},
            {"open_at", fill(kAfterLastVersion, {{"time", "s.commit_time"}})},
            {"gone_candidates", fill(kRoundCandidates, r)},
            {"members", fill(kRoundMembers, {{"round", std::to_string(round)}, {"cleaned", cleaned_columns()}})},
            {"changed", ""}};
}

}  // namespace

std::vector<Action> plan_scd2(const RunContext& ctx) {
    const int rounds = ctx.stream ? ctx.stream_member_rounds : 0;
    // Members whose trusted row changed since this step last ran (load_trusted also stamps the
    // members whose age moved on); all of them on a full run.
    const std::string changed = ctx.everything() ? "" : rounds > 0 ? kChangedOrReplayed : " AND s.run_id > $4";
    auto values = vigencia_times(ctx);
    const SqlValues historized = {{"dim_historized", kDimHistorized}, {"source_historized", kSourceHistorized}};
    values.push_back({"changed", changed});
    values.insert(values.end(), historized.begin(), historized.end());
    auto statement = [&](const char* sql) { return sql_action(fill(sql, values)); };
    std::vector<Action> actions;
    // Runs go forward in time: closing a version before it started would be a lie. (A stream's
    // times are the source's commits, each clamped to its member's current version: the check,
    // a pass over every version, is a batch run's.)
    if (!ctx.stream) actions.push_back(sql_action("SELECT sicoop._check_scd2_reference_time($1)"));
    // Every run, a stream's micro-batch too: a batch after an edit of the canonical values
    // (whose full run relabels trusted and the type 1 dimensions) compares its members' new
    // labels with versions already relabelled, never opening a version for a label.
    actions.push_back(statement(kRelabel));
    actions.push_back(sql_action(kRecordLabels));
    if (rounds > 0) {
        // Earlier states: the rules first (a refused one makes its member gone from its commit
        // on), then each round, then type 1 as the last accepted one left it.
        actions.push_back(sql_action("SELECT r.rows_read, r.rows_rejected FROM sicoop._check_member_states($2, ($1 AT TIME ZONE $3)::date) r"));
        for (int round = 1; round <= rounds; ++round) {
            SqlValues v = round_times(round);
            v.insert(v.end(), historized.begin(), historized.end());
            for (const char* sql : {kCorrectInPlace, kCloseChanged, kDropGoneOpenedNow, kCloseGone, kOpen})
                actions.push_back(sql_action(fill(sql, v)));
        }
        actions.push_back(sql_action(fill(kRoundsType1, {{"cleaned", cleaned_columns()}})));
    }
    for (const char* sql : {kCountRead, kCorrectType1, kCorrectInPlace, kCloseChanged, kDropGoneOpenedNow, kCloseGone, kOpen})
        actions.push_back(statement(sql));
    // Whatever happened above, no two versions of a changed member may overlap.
    actions.push_back(sql_action("SELECT sicoop.check_vigencia(CASE WHEN $4 = 0 THEN 0 ELSE $2 - 1 END)"));
    // (The earlier states hold no card number -- masked on their way in, as the stage's -- and
    // a DELETE costs less than the new files of a TRUNCATE.)
    if (rounds > 0) actions.push_back(sql_action("DELETE FROM sicoop.stage_associado_state"));
    // Fresh statistics after a bulk load, so load_fato joins this table the right way round.
    if (ctx.everything()) actions.push_back(sql_action("SELECT sicoop._analyze('sicoop.dim_associado')"));
    return actions;
}

}  // namespace sicoop
