// Step load_raw, a stream's micro-batch: the stage holds the last state of every key the batch
// inserted or updated, sicoop.stream_key every key it touched (src/stream_apply.cpp). The columns the
// source did not send (an unchanged TOAST value) are taken from raw; then the rules, the merge,
// and the keys deleted at the source (or every key, after a truncate) leave raw with a
// tombstone. Only the batch's keys are looked at: its cost follows the change, not the history.
// Pure C++.
#include "steps/pure_cpp.hpp"

#include "steps/raw_parts.hpp"

namespace sicoop::raw {

namespace {

// An unchanged TOAST value the source did not send: raw's (r), or -- for a key held in the
// rejects (a value too long for raw is what gets TOASTed) -- the rejected record's (j).
// ${kept}: the row saying which columns were not sent; ${row}: the row filled.
const char* const kFromRaw = R"sql(${column} = CASE WHEN '${column}' = ANY (${kept}.keep_from_raw) THEN r.${column} ELSE ${row}.${column} END)sql";
const char* const kFromReject = R"sql(${column} = CASE WHEN '${column}' = ANY (${kept}.keep_from_raw) THEN (j.record ->> '${column}')::${type} ELSE ${row}.${column} END)sql";
const char* const kSetSeparator = ",\n    ";

// A member's earlier states in the batch (issue 25; SCD2 makes their versions), from raw and
// the rejects as the batch found them, before the merge changes raw.
const char* const kStatesFromRaw = R"sql(
UPDATE sicoop.stage_${table}_state k
SET ${sets}
FROM ${raw} r
WHERE k.keep_from_raw <> '{}' AND r.${key} = k.${key})sql";
const char* const kStatesFromReject = R"sql(
UPDATE sicoop.stage_${table}_state k
SET ${sets}
FROM sicoop.reject j
WHERE k.keep_from_raw <> '{}' AND j.table_name = '${table}' AND j.record_id = k.${key} AND j.copy_no = 1
  AND NOT EXISTS (SELECT 1 FROM ${raw} r WHERE r.${key} = k.${key}))sql";
// The batch's last states, likewise, from ${raw_rows}: raw itself, or -- distributed movements
// on Citus, which a statement on the coordinator's tables cannot join -- its rows of the batch's
// keys, copied first (kKeptRawRows).
const char* const kStageFromRaw = R"sql(
UPDATE ${stage} s
SET ${sets}
FROM sicoop.stream_key k, ${raw_rows} r
WHERE k.table_name = '${table}' AND k.record_id = s.${key} AND k.keep_from_raw <> '{}' AND r.${key} = s.${key})sql";
const char* const kStageFromReject = R"sql(
UPDATE ${stage} s
SET ${sets}
FROM sicoop.stream_key k, sicoop.reject j
WHERE k.table_name = '${table}' AND k.record_id = s.${key} AND k.keep_from_raw <> '{}'
  AND j.table_name = '${table}' AND j.record_id = s.${key} AND j.copy_no = 1
  AND NOT EXISTS (SELECT 1 FROM ${raw_rows} r WHERE r.${key} = s.${key}))sql";
const char* const kKeptRawRows = R"sql(CREATE TEMP TABLE sicoop_kept_raw ON COMMIT DROP AS
SELECT r.* FROM ${raw} r
WHERE r.${key} = ANY (ARRAY(SELECT k.record_id FROM sicoop.stream_key k
                            WHERE k.table_name = '${table}' AND k.keep_from_raw <> '{}')))sql";

// The rules, for the batch (its last argument: a stream's).
const char* const kApplyRules =
    R"sql(SELECT r.rows_rejected FROM sicoop._apply_row_rules('${table}', $2, ($1 AT TIME ZONE $3)::date, NULL, true) r)sql";
// Raw's rows deleted at the source in this batch.
const char* const kDeletedAtSource = R"sql(r.${key} = ANY (ARRAY(SELECT k.record_id FROM sicoop.stream_key k
                WHERE k.table_name = '${table}' AND k.deleted AND k.record_id IS NOT NULL)))sql";
// A key deleted at the source leaves the rejects too.
const char* const kDeletedRejects = R"sql(
DELETE FROM sicoop.reject j
WHERE j.table_name = '${table}'
  AND j.record_id = ANY (ARRAY(SELECT k.record_id FROM sicoop.stream_key k WHERE k.table_name = '${table}' AND k.deleted))
  AND NOT EXISTS (SELECT 1 FROM sicoop.stage_reject n WHERE n.record_id = j.record_id))sql";
// After a truncate at the source, every reject the stage does not hold again.
const char* const kTruncatedRejects = R"sql(
DELETE FROM sicoop.reject j
WHERE j.table_name = '${table}' AND NOT EXISTS (SELECT 1 FROM sicoop.stage_reject n WHERE n.record_id = j.record_id))sql";
// Raw's rows now rejected (changed into a bad one).
const char* const kNowRejected = R"sql(r.${key} = ANY (ARRAY(SELECT n.record_id FROM sicoop.stage_reject n)))sql";

// The SET list of the non-key columns, each by `assignment` (kFromRaw or kFromReject).
std::string kept_columns(const SourceTable& t, const char* assignment, const char* kept, const char* row) {
    std::string sets;
    for (const auto& [column, type] : t.columns) {
        if (column == t.key) continue;
        sets += (sets.empty() ? "" : kSetSeparator) +
                fill(assignment, {{"column", column}, {"type", stage_type(type)}, {"kept", kept}, {"row", row}});
    }
    return sets;
}

// The statement `sql` for table `t`, its SET list `sets`; `copied_raw_rows`: raw's rows of the
// batch were copied into pg_temp.sicoop_kept_raw (kKeptRawRows).
Action statement(const SourceTable& t, const char* sql, const std::string& sets = "", bool copied_raw_rows = false) {
    return sql_action(
        fill(sql, {{"table", t.name}, {"key", t.key}, {"raw", raw_of(t)}, {"stage", stage_of(t)}, {"sets", sets},
                   {"raw_rows", copied_raw_rows ? "pg_temp.sicoop_kept_raw" : raw_of(t)}}),
        t.name);
}

// The columns the source did not send, in the earlier states (if any) and the last ones.
void add_unsent_columns(std::vector<Action>& actions, const SourceTable& t, const RunContext& ctx, bool earlier_states) {
    if (earlier_states) {
        actions.push_back(statement(t, kStatesFromRaw, kept_columns(t, kFromRaw, "k", "k")));
        actions.push_back(statement(t, kStatesFromReject, kept_columns(t, kFromReject, "k", "k")));
    }
    const bool copied = ctx.distributed(t);
    if (copied) {
        actions.push_back(sql_action(drop_temp_table_sql("sicoop_kept_raw"), t.name));
        actions.push_back(statement(t, kKeptRawRows));
    }
    actions.push_back(statement(t, kStageFromRaw, kept_columns(t, kFromRaw, "k", "s"), copied));
    actions.push_back(statement(t, kStageFromReject, kept_columns(t, kFromReject, "k", "s"), copied));
}

}  // namespace

void plan_streamed(std::vector<Action>& actions, const SourceTable& t, const RunContext& ctx, bool truncated, bool earlier_states) {
    add_unsent_columns(actions, t, ctx, earlier_states);
    actions.push_back(statement(t, kApplyRules));
    add_merge(actions, t, false);  // (a stream's rows are changes)
    const SqlValues keys = {{"key", t.key}, {"table", t.name}};
    actions.push_back(sql_action(delete_with_tombstones_sql(t.name, t.key, fill(kDeletedAtSource, keys)), t.name));
    actions.push_back(statement(t, kDeletedRejects));
    // Truncated at the source in this batch: every row the stage does not hold again goes.
    if (truncated) {
        actions.push_back(sql_action(delete_with_tombstones_sql(t.name, t.key, not_in_stage(t, ctx)), t.name));
        actions.push_back(statement(t, kTruncatedRejects));
    }
    // A row now rejected (changed into a bad one) leaves raw, and so every later layer.
    actions.push_back(sql_action(delete_with_tombstones_sql(t.name, t.key, fill(kNowRejected, keys)), t.name));
}

}  // namespace sicoop::raw
