// Step load_raw: the four source tables, as they are, into raw_* -- each source row either
// enters raw or is kept out, in sicoop.reject, by the data-quality rules (sicoop.dq_rule).
//
// Every table streams from the source with COPY (bulk path, src/bulk_copy.cpp) into its
// unlogged stage_* table, read with wide types (text, unbounded numeric) so that every row
// arrives as it is; all copies of a table share one source snapshot. Then:
//   - sicoop._apply_row_rules() moves the rows that break a 'reject' rule to sicoop.reject
//     (every copy of a duplicated key, a value too long or too precise, a date out of range,
//     ...), and counts every rule's findings in sicoop.dq_result;
//   - the rest is merged into raw_*: new rows inserted, changed rows updated (and stamped with
//     the run id, which later steps follow), rows gone from the source -- or now rejected --
//     deleted with a tombstone, identical rows left alone.
// The keys rejected so far are read again by every run, so a row fixed at the source loads.
// associado, conta and cartao are read incrementally by the source rows' xmin: the rows
// written since the snapshot of the previous copy (sicoop.source_sync); their deletions are
// found by comparing per-bucket checksums of the keys, then reading only the keys of the
// buckets that differ. (The source tables must be tables, not views: xmin is a system column.)
// movimentacao_cartao, the big one, is read incrementally: only the source rows whose
// data_movimentacao is at or after the window start ($5: the watermark, the latest movement
// time the previous copy saw in the source, minus the lookback sicoop.lookback, default 3
// days, taken back to midnight: the days before it are compared whole, so it covers whole
// days, sicoop.movement_window_start()). Rows of that window missing from the source's answer
// are looked up again by id before being deleted, so a movement whose time was edited out of
// the window is updated, not lost.
// Changes older than the window that keep their day's count and sum (an old description
// edited) are caught by a full run, CALL sicoop.run_pipeline(full => true), which compares
// every table whole without copying it: the source sums a 64-bit hash of every row per bucket
// of keys (some 16 rows each), raw does the same, and only the rows of the buckets that differ
// are copied and merged -- an insert, edit or deletion of any age changes its bucket. A
// rebuild (a full run the warehouse owes: the rules changed, a full run failed half-way, or
// SET sicoop.full_run = 'rebuild') copies every row again instead, so the rules see them all.
// Without a unique index on a source table's key, the source rows sharing a key with a changed
// row are read too, so that a duplicate is seen with its older copy.
// The source needs an index on movimentacao_cartao(data_movimentacao) for the window query.
#include "steps/pure_cpp.hpp"

#include "steps/raw_parts.hpp"

#include <algorithm>

namespace sicoop {

namespace raw {

// What raw keeps of each non-key source column (s: the stage row). All of it as it is, but
// card numbers, which raw keeps masked to their last four characters, never in clear (PCI DSS
// 3); a change shows in the masked number, which is all any later layer holds. (A keyed hash
// of the whole number beside it would let whoever owns raw -- and so reads the key and feeds
// the stage -- recover numbers from their last four digits by trying candidates.)
//
// Free text (every other text column but the keys) keeps no card number either: one typed
// into a description or a name is masked as sicoop._redact_card_numbers does. Keys are not
// masked -- an id cannot be, without breaking it -- but a rule of their own rejects a card-like
// one (sicoop.dq_rule, kind no_card_number).
//
// (1.6) All of this is done first on the COPY stream, in memory, before any byte reaches the
// stage or raw (copy_masks in source_model.cpp, src/steps/copy_filter.cpp): no full card number is written,
// not as a live row, a dead one, a WAL record or a stage page. A card-like key reaches the stage
// masked, and the key rule -- which reads a masked number as a card number -- rejects it. The
// expressions here apply the same masks again (they change nothing then): the merge stays right
// whatever filled the stage.
std::vector<Column> raw_columns(const SourceTable& t) {
    std::vector<Column> columns;
    for (const auto& [col, type] : t.columns) {
        if (col == t.key) continue;
        if (t.is_card_number(col)) {
            columns.push_back({col, fill(R"sql(sicoop.mask_card(s.${column}))sql", {{"column", col}})});
        } else if (t.is_free_text(col, type)) {
            columns.push_back({col, fill(R"sql(sicoop._redact_card_numbers(s.${column}))sql", {{"column", col}})});
        } else {
            columns.push_back({col, "s." + col});
        }
    }
    return columns;
}

std::string stage_of(const SourceTable& t) { return "sicoop.stage_" + t.name; }
std::string raw_of(const SourceTable& t) { return "sicoop.raw_" + t.name; }

BulkCopy source_copy(const SourceTable& t, const char* target, std::vector<std::string> columns, BulkCopy::Rows rows) {
    BulkCopy copy;
    copy.source_table = "src_" + t.name;
    copy.target_table = target;
    copy.columns = std::move(columns);
    copy.rows = rows;
    return copy;
}

// A table's copy into its stage: every column read in the stage's wide type.
BulkCopy copy_of(const SourceTable& t) {
    BulkCopy copy;
    copy.source_table = "src_" + t.name;
    copy.target_table = "stage_" + t.name;
    for (const auto& [col, type] : t.columns) {
        copy.columns.push_back(col);
        copy.types.push_back(stage_type(type));
    }
    return copy;
}

// The stage merged into raw: new rows inserted, changed rows updated.
void add_merge(std::vector<Action>& actions, const SourceTable& t, bool skip_identical) {
    const std::vector<Column> stamps = {{"run_id", "$2"}, {"loaded_at", "now()"}};
    actions.push_back(sql_action(fill(R"sql(SELECT sicoop._analyze('${stage}'))sql", {{"stage", stage_of(t)}}), t.name));
    actions.push_back(sql_action(
        merge_changed_sql(raw_of(t), t.key, raw_columns(t), stamps, stage_of(t) + " s", skip_identical), t.name));
}

// A batch run's stage repeats rows raw holds as they are (the window's lookback, the buckets
// of a full comparison, a rebuild's every row): they are left out before the merge, but where
// raw is distributed (see merge_changed_sql).
void add_batch_merge(std::vector<Action>& actions, const SourceTable& t, const RunContext& ctx) {
    add_merge(actions, t, !ctx.distributed(t));
}

// Raw's row `r` has no copy in the stage. Distributed movements: an uncorrelated NOT IN, which
// Citus evaluates on each shard against the stage's keys sent to the workers (a correlated
// subquery on a coordinator's table is refused there); else an anti-join, which stays fast
// whatever the stage's size.
std::string not_in_stage(const SourceTable& t, const RunContext& ctx) {
    const SqlValues names = {{"stage", stage_of(t)}, {"key", t.key}};
    if (ctx.distributed(t))
        return fill(R"sql(r.${key} NOT IN (SELECT s.${key} FROM ${stage} s WHERE s.${key} IS NOT NULL))sql", names);
    return fill(R"sql(NOT EXISTS (SELECT 1 FROM ${stage} s WHERE s.${key} = r.${key}))sql", names);
}

// Raw's row `r` is in the window this run read: at or after the window start ($5), or on one of
// the older days read whole (sicoop.stage_day). One scan, bounded below by the window start or
// the oldest such day, whichever is earlier: the BRIN index on the time serves the bound, so a
// run that read no old day reads the window's block ranges only, and one whose days lie across
// the history reads the table once -- never once per day, which a BRIN index made lossy by
// months of updates would turn into a pass over raw for each day. A day no timestamp has
// (past timestamp's last day) sets no bound; an infinite one sets the lowest.
const char* const kInWindow = R"sql((r.data_movimentacao >= (
        SELECT CASE WHEN min(d.dia) IS NULL OR min(d.dia) > date '294276-12-31' THEN $5
                    WHEN NOT isfinite(min(d.dia)) THEN timestamp '-infinity'
                    ELSE least($5, min(d.dia)::timestamp) END
        FROM sicoop.stage_day d)
      AND (r.data_movimentacao >= $5 OR r.data_movimentacao::date IN (SELECT d.dia FROM sicoop.stage_day d))))sql";

// The source's count and sum per movement day, in the same snapshot: what the reconciliation
// after load_fato compares the fact with, and what tells an incremental load which older days
// changed.
void add_day_totals(std::vector<Action>& actions, const SourceTable& t, BulkCopy::Timing timing) {
    BulkCopy totals = source_copy(t, "source_day_total", {"dia", "source_rows", "source_valor"}, BulkCopy::Rows::DayTotals);
    totals.window_column = t.time_column;
    totals.timing = timing;
    actions.push_back(bulk_action(totals, t.name));
}
// They are a pass over the source (4 s at 10M), sent early and landed later, so that the
// source computes them while the warehouse works: a first load, a rebuild or a full check sends
// them once the table's last copy is read and lands them after its own statements (nothing
// before load_fato's reconciliation reads them); an incremental run, whose window needs them
// first, sends them before the other tables load (plan_window_ahead).
constexpr auto kSendDayTotals = BulkCopy::Timing::SendOnly;
constexpr auto kLandDayTotals = BulkCopy::Timing::LandSent;

namespace {

// What direct_load_decision_sql decided for the table being loaded.
const char* const kDirect = "SELECT direct FROM pg_temp.sicoop_direct_load";
const char* const kNotDirect = "SELECT NOT direct FROM pg_temp.sicoop_direct_load";

// A first load's copy straight into raw_<t>, at COPY speed: the columns in raw's own types,
// stamped with the run. Only when direct_load_decision_sql says so.
BulkCopy direct_copy_of(const SourceTable& t) {
    BulkCopy copy = copy_of(t);
    copy.target_table = "raw_" + t.name;
    copy.truncate_first = false;
    copy.types.clear();
    for (const auto& column : t.columns) copy.types.push_back(column.second);
    copy.stamp_run_id = true;
    copy.only_if = kDirect;
    return copy;
}

// Whether this first load copies `t` straight into raw (pg_temp.sicoop_direct_load.direct):
// raw is empty, and the source's catalog, read by this run, says that no source row can be
// refused by raw or changed on its way in -- every column the load reads has raw's very type
// (so nothing is too long, cut or rounded), is NOT NULL at the source where raw requires a
// value, and a unique index guarantees the key. The rules then check the rows in raw. Else
// the rows go through the stage, where nothing is refused. A Citus table is never copied into
// directly: COPY FROM inside the backend writes the coordinator's own table, not Citus's
// shards; from the stage, the merge's INSERT reaches the shards through Citus.
const char* const kDirectLoadDecision = R"sql(
CREATE TEMP TABLE sicoop_direct_load ON COMMIT DROP AS
SELECT NOT EXISTS (SELECT 1 FROM ${raw}) AND NOT sicoop._is_citus_table('${raw}')
       AND (SELECT count(*) = ${column_count}
                   AND bool_and(k.source_type = pg_catalog.format_type(r.atttypid, r.atttypmod)
                                AND (k.not_null OR NOT r.attnotnull)
                                AND (k.unique_key OR k.column_name <> '${key}'))
            FROM sicoop.stage_source_column k
            JOIN pg_catalog.pg_attribute r ON r.attrelid = '${raw}'::regclass
                                          AND r.attname = k.column_name AND r.attnum > 0 AND NOT r.attisdropped
            WHERE k.table_name = '${table}' AND k.column_name IN (${column_names})) AS direct)sql";

std::string direct_load_decision_sql(const SourceTable& t) {
    std::string names;
    for (const auto& column : t.columns) names += (names.empty() ? "'" : ", '") + column.first + "'";
    return fill(kDirectLoadDecision, {{"raw", raw_of(t)},
                                      {"column_count", std::to_string(t.columns.size())},
                                      {"key", t.key},
                                      {"table", t.name},
                                      {"column_names", names}});
}

// The source rows that share a key with the stage's, every copy of them: without a unique index
// on the source's key, a new copy of an old key must be seen with the old one (both are
// rejected) rather than overwrite it. Nothing is read when the source's index guarantees it.
BulkCopy all_copies_of_staged_keys(const SourceTable& t) {
    BulkCopy copy = copy_of(t);
    copy.rows = BulkCopy::Rows::Keys;
    copy.key_column = t.key;
    copy.keys_query = fill(R"sql(SELECT CASE WHEN (SELECT bool_or(k.unique_key) FROM sicoop.stage_source_column k
                  WHERE k.table_name = '${table}' AND k.column_name = '${key}')
            THEN NULL ELSE array_agg(DISTINCT s.${key}) END
FROM sicoop.stage_${table} s)sql", {{"table", t.name}, {"key", t.key}});
    return copy;
}

// The source rows of the keys rejected so far (NULL keys included), read again whatever their
// age: a row fixed at the source, or whose duplicate was deleted, loads; a row deleted there
// leaves the rejects. A key rejected as a card number is kept masked, and the source has no such
// key: it is not asked for, and a row of it the run read otherwise (its masked copy in the
// stage, from the COPY filter) is not taken out of the stage, so the rule rejects it again.
BulkCopy rejected_keys(const SourceTable& t) {
    BulkCopy copy = copy_of(t);
    copy.truncate_first = false;
    copy.replace_keys = true;
    copy.rows = BulkCopy::Rows::Keys;
    copy.key_column = t.key;
    copy.keys_query = fill(R"sql(SELECT array_agg(DISTINCT j.record_id) FROM sicoop.reject j WHERE j.table_name = '${table}' AND (j.record_id IS NULL OR NOT sicoop.contains_card_number(j.record_id)))sql",
                           {{"table", t.name}});
    return copy;
}

// The movements' new BRIN ranges summarized (a first load's _summarize does it).
Action summarize_ranges(const SourceTable& t) { return sql_action(summarize_ranges_sql(raw_of(t)), t.name); }

// The source's catalog, first: it opens the table's source session (one snapshot for every
// copy after it, recorded for the next run), and says whether the key is unique there.
void add_catalog(std::vector<Action>& actions, const SourceTable& t) {
    BulkCopy catalog = source_copy(t, "stage_source_column",
                                   {"table_name", "column_name", "source_type", "unique_key", "not_null"},
                                   BulkCopy::Rows::ColumnTypes);
    catalog.table_label = t.name;
    catalog.truncate_first = false;
    catalog.capture_snapshot = true;
    catalog.watermark_column = t.time_column;
    actions.push_back(bulk_action(catalog, t.name));
    actions.push_back(sql_action(fill(R"sql(SELECT sicoop._check_source_drift('${table}', $2))sql", {{"table", t.name}}), t.name));
}

// Days before the window whose totals differ from raw's plus the rejects' (an old movement
// inserted, edited or deleted at the source) are read whole too. What raw and the rejects hold
// per day is what the source held at the last run, when that run's reconciliation balanced
// every day and no load_raw ran after it: then the reconciliation's source totals stand for
// them, and raw is not scanned (its scan grows with the history, not with the change). The
// run that reconciled last is the one with the reconciliation rule's latest result (a
// reconciliation row keeps the run that last changed its day).
// Otherwise raw and the rejects are summed. (A change made to raw outside the pipeline is the
// full check's to find.)
void add_changed_days(std::vector<Action>& actions, const SourceTable& t) {
    actions.push_back(sql_action("TRUNCATE sicoop.stage_day", t.name));
    actions.push_back(sql_action(R"sql(
WITH last_run AS (
  SELECT coalesce((SELECT st.last_run_id FROM sicoop.step_state st WHERE st.step = 'load_raw')
                    = (SELECT d.run_id FROM sicoop.dq_result d
                       WHERE d.table_name = 'movimentacao_cartao'
                         AND d.rule_name IN (SELECT q.rule_name FROM ONLY sicoop.dq_rule q WHERE q.kind = 'reconciliation')
                       ORDER BY d.run_id DESC LIMIT 1)
                  AND NOT EXISTS (SELECT 1 FROM sicoop.reconciliation c WHERE NOT c.balanced), false) AS balanced)
INSERT INTO sicoop.stage_day (dia)
SELECT dia FROM (
  SELECT s.dia, s.source_rows AS n, s.source_valor AS v FROM sicoop.source_day_total s
  UNION ALL
  SELECT c.dia, -c.source_rows, -c.source_valor FROM sicoop.reconciliation c
  WHERE (SELECT l.balanced FROM last_run l)
  UNION ALL
  SELECT r.data_movimentacao::date, -count(*), -sum(r.valor_movimentacao) FROM sicoop.raw_movimentacao_cartao r
  WHERE NOT (SELECT l.balanced FROM last_run l) GROUP BY 1
  UNION ALL
  SELECT (j.record->>'data_movimentacao')::timestamp::date, -count(*),
         -coalesce(sum(v.valor) FILTER (WHERE v.valor < 'Infinity'::numeric AND v.valor > '-Infinity'::numeric), 0)  -- as the source's sum: finite amounts
  FROM sicoop.reject j, LATERAL (SELECT (j.record->>'valor_movimentacao')::numeric AS valor) v
  WHERE j.table_name = 'movimentacao_cartao' AND NOT (SELECT l.balanced FROM last_run l) GROUP BY 1) d
WHERE dia IS NULL OR dia < $5::date
GROUP BY dia HAVING sum(n) <> 0 OR sum(v) <> 0)sql", t.name));
}

// A first load's copy straight into raw, when the run finds the source's columns can hold
// nothing raw would refuse (direct_load_decision_sql). Its free text is masked on the COPY
// stream, before the first write (copy_masks): no card number is ever in raw, not even as a
// dead tuple or in the WAL.
void add_direct_load(std::vector<Action>& actions, const SourceTable& t) {
    actions.push_back(sql_action(drop_temp_table_sql("sicoop_direct_load"), t.name));
    actions.push_back(sql_action(direct_load_decision_sql(t), t.name));
    actions.push_back(bulk_action(direct_copy_of(t), t.name));
}

// The data-quality rules: what breaks a 'reject' rule leaves the stage for sicoop.reject.
Action apply_rules(const SourceTable& t) {
    return sql_action(
        fill(R"sql(SELECT r.rows_rejected FROM sicoop._apply_row_rules('${table}', $2, ($1 AT TIME ZONE $3)::date) r)sql",
             {{"table", t.name}}),
        t.name);
}

// ...or raw, after a direct copy.
Action apply_rules_after_direct_load(const SourceTable& t) {
    return sql_action(fill(R"sql(
SELECT r.rows_rejected, CASE WHEN d.direct THEN r.rows_checked - r.rows_rejected ELSE 0 END AS rows_inserted
FROM pg_temp.sicoop_direct_load d,
     sicoop._apply_row_rules('${table}', $2, ($1 AT TIME ZONE $3)::date,
                             CASE WHEN d.direct THEN '${raw}' ELSE '${stage}' END::regclass) r)sql",
                           {{"table", t.name}, {"raw", raw_of(t)}, {"stage", stage_of(t)}}),
                      t.name);
}

// A row now rejected (a duplicate of it appeared, or it was changed into a bad one) leaves raw,
// and so every later layer.
Action delete_rejected(const SourceTable& t) {
    const std::string rejected = fill(R"sql(r.${key} IN (SELECT j.record_id FROM sicoop.reject j WHERE j.table_name = '${table}'))sql",
                                      {{"key", t.key}, {"table", t.name}});
    return sql_action(delete_with_tombstones_sql(t.name, t.key, rejected), t.name);
}

// ------------------------------------------------------------------------------------------
// The paths a table takes: first load, whole, full comparison, window, keyed
// ------------------------------------------------------------------------------------------

// A first load (raw is empty): every row, inserted plainly -- or copied straight into raw.
void plan_first_load(std::vector<Action>& actions, const SourceTable& t) {
    add_catalog(actions, t);
    // A table whose rows raw keeps as they are may be copied straight into raw.
    const bool may_go_direct = !t.has_card_numbers();
    if (may_go_direct) add_direct_load(actions, t);
    BulkCopy rows = copy_of(t);
    if (may_go_direct) rows.only_if = kNotDirect;
    actions.push_back(bulk_action(rows, t.name));
    if (t.is_dated()) add_day_totals(actions, t, kSendDayTotals);
    actions.push_back(may_go_direct ? apply_rules_after_direct_load(t) : apply_rules(t));
    const std::vector<Column> stamps = {{"run_id", "$2"}, {"loaded_at", "now()"}};  // (after a direct copy: no stage row)
    actions.push_back(
        dml_action(insert_all_sql(raw_of(t), t.key, raw_columns(t), stamps, stage_of(t) + " s"), "rows_inserted", t.name));
    actions.push_back(sql_action(fill(R"sql(SELECT sicoop._summarize('${raw}'))sql", {{"raw", raw_of(t)}}), t.name));
    if (t.is_dated()) add_day_totals(actions, t, kLandDayTotals);
}

// A rebuild, or movements without a watermark: every row read, and compared whole.
void plan_whole(std::vector<Action>& actions, const SourceTable& t, const RunContext& ctx) {
    add_catalog(actions, t);
    actions.push_back(bulk_action(copy_of(t), t.name));
    if (t.is_dated()) add_day_totals(actions, t, kSendDayTotals);
    actions.push_back(apply_rules(t));
    add_batch_merge(actions, t, ctx);
    actions.push_back(sql_action(delete_with_tombstones_sql(t.name, t.key, not_in_stage(t, ctx)), t.name));
    actions.push_back(delete_rejected(t));
    if (t.is_dated()) {
        actions.push_back(summarize_ranges(t));
        add_day_totals(actions, t, kLandDayTotals);  // (sent early: still the table's last action)
    }
}

// A full run that is no rebuild: compared by row checksums, only what differs is read.
void plan_compared(std::vector<Action>& actions, const SourceTable& t, int bits, const RunContext& ctx) {
    add_catalog(actions, t);
    BulkCopy rows = copy_of(t);
    add_full_comparison(actions, t, bits, rows);
    actions.push_back(bulk_action(rows, t.name));
    // Every copy of a key is in its key's bucket: all of them are in the stage already.
    actions.push_back(bulk_action(rejected_keys(t), t.name));
    if (t.is_dated()) add_day_totals(actions, t, kSendDayTotals);
    actions.push_back(apply_rules(t));
    add_batch_merge(actions, t, ctx);
    add_bucket_deletions(actions, t, bits, ctx);
    actions.push_back(delete_rejected(t));
    if (t.is_dated()) {
        actions.push_back(summarize_ranges(t));
        add_day_totals(actions, t, kLandDayTotals);  // (sent early: still the table's last action)
    }
}

// Movements, incrementally, first: their source session opened (its snapshot), and the day
// totals sent, which the source computes while the other tables load (see kSendDayTotals).
void plan_window_ahead(std::vector<Action>& actions, const SourceTable& t) {
    add_catalog(actions, t);
    add_day_totals(actions, t, kSendDayTotals);
}

// ...then the window after the watermark, and the days that differ.
void plan_window(std::vector<Action>& actions, const SourceTable& t, const RunContext& ctx) {
    add_day_totals(actions, t, kLandDayTotals);
    add_changed_days(actions, t);
    BulkCopy rows = copy_of(t);
    rows.rows = BulkCopy::Rows::Window;
    rows.window_column = t.time_column;
    rows.keys_query = "SELECT array_agg(dia)::text FROM sicoop.stage_day";
    actions.push_back(bulk_action(rows, t.name));
    actions.push_back(bulk_action(all_copies_of_staged_keys(t), t.name));
    // Rows of the window the source did not return: fetch them by id, in case their time moved
    // out of the window; what still is not found was deleted. Found once, before the merge, and
    // kept for the deletion, which takes them by key: a second read of the window after the
    // merge (whose rows widen raw's BRIN ranges over it) took 0.5-1.8 s at 10M movements.
    actions.push_back(sql_action(drop_temp_table_sql("sicoop_window_missing"), t.name));
    actions.push_back(sql_action(fill(R"sql(CREATE TEMP TABLE sicoop_window_missing ON COMMIT DROP AS
SELECT r.${key} FROM ${raw} r WHERE ${in_window}
    AND ${not_in_stage})sql",
                                      {{"key", t.key},
                                       {"raw", raw_of(t)},
                                       {"in_window", kInWindow},
                                       {"not_in_stage", not_in_stage(t, ctx)}}),
                                 t.name));
    BulkCopy recheck = copy_of(t);
    recheck.truncate_first = false;
    recheck.rows = BulkCopy::Rows::Keys;
    recheck.key_column = t.key;
    recheck.keys_query = fill(R"sql(SELECT array_agg(m.${key}::text) FROM pg_temp.sicoop_window_missing m)sql", {{"key", t.key}});
    actions.push_back(bulk_action(recheck, t.name));
    actions.push_back(bulk_action(rejected_keys(t), t.name));
    actions.push_back(apply_rules(t));
    add_batch_merge(actions, t, ctx);
    const std::string gone = fill(R"sql(r.${key} IN (SELECT m.${key} FROM pg_temp.sicoop_window_missing m)
    AND ${not_in_stage})sql", {{"key", t.key}, {"not_in_stage", not_in_stage(t, ctx)}});
    actions.push_back(sql_action(delete_with_tombstones_sql(t.name, t.key, gone), t.name));
    actions.push_back(delete_rejected(t));
    actions.push_back(summarize_ranges(t));
}

// The path a table takes in a batch run.
enum class Path { FirstLoad, Whole, Compared, Window, Keyed };

Path path_of(const SourceTable& t, const RunContext& ctx) {
    if (ctx.is_empty("raw_" + t.name)) return Path::FirstLoad;
    if (ctx.rebuild || (t.is_dated() && !ctx.has_window)) return Path::Whole;
    if (ctx.full) return Path::Compared;
    return t.is_dated() ? Path::Window : Path::Keyed;
}

// associado, conta and cartao, incrementally: the rows written in the source since the last
// copy's snapshot (by their xmin).
void plan_keyed(std::vector<Action>& actions, const SourceTable& t) {
    add_catalog(actions, t);
    BulkCopy rows = copy_of(t);
    rows.rows = BulkCopy::Rows::ChangedSinceSnapshot;
    actions.push_back(bulk_action(rows, t.name));
    actions.push_back(bulk_action(all_copies_of_staged_keys(t), t.name));
    actions.push_back(bulk_action(rejected_keys(t), t.name));
    send_key_checksums(actions, t);
    actions.push_back(apply_rules(t));
    add_merge(actions, t, false);  // (rows written since the last copy: changes)
    add_keyed_deletions(actions, t);
    actions.push_back(delete_rejected(t));
}

}  // namespace

}  // namespace raw

std::vector<Action> plan_raw(const RunContext& ctx) {
    using namespace raw;
    std::vector<Action> actions;
    if (ctx.stream) {
        // Only the tables the batch touched: a TRUNCATE makes new files, and costs more than
        // the rest of a small batch's step for each table it needlessly empties.
        std::string touched;
        for (const SourceTable& t : source_tables())
            if (std::find(ctx.stream_tables.begin(), ctx.stream_tables.end(), t.name) != ctx.stream_tables.end()) {
                plan_streamed(actions, t, ctx, ctx.stream_truncated_table(t.name),
                              t.name == "associado" && ctx.stream_member_rounds > 0);
                touched += (touched.empty() ? "" : ", ") + stage_of(t);
            }
        // Nothing stays in the stage after the step, not even as dead rows: it held source rows,
        // full card numbers included. (The rejects' scratch rows are masked: DELETE is enough.)
        if (!touched.empty()) actions.push_back(sql_action(fill(R"sql(TRUNCATE ${tables})sql", {{"tables", touched}})));
        actions.push_back(sql_action("DELETE FROM sicoop.stage_reject"));
        return actions;
    }
    actions.push_back(sql_action("TRUNCATE sicoop.stage_source_column"));
    for (const SourceTable& t : source_tables())
        if (path_of(t, ctx) == Path::Window) plan_window_ahead(actions, t);
    for (const SourceTable& t : source_tables()) {
        switch (path_of(t, ctx)) {
            case Path::FirstLoad: plan_first_load(actions, t); break;
            case Path::Whole: plan_whole(actions, t, ctx); break;
            case Path::Compared: plan_compared(actions, t, row_bucket_bits(ctx.rows_of("raw_" + t.name)), ctx); break;
            case Path::Window: plan_window(actions, t, ctx); break;
            case Path::Keyed: plan_keyed(actions, t); break;
        }
    }
    // Nothing stays in the stage after the step: it held source rows, full card numbers included.
    actions.push_back(sql_action(R"sql(
TRUNCATE sicoop.stage_associado, sicoop.stage_conta, sicoop.stage_cartao, sicoop.stage_movimentacao_cartao,
         sicoop.stage_key_checksum, sicoop.stage_bucket, sicoop.stage_key, sicoop.stage_reject,
         sicoop.stage_source_column, sicoop.stage_day)sql"));
    return actions;
}

}  // namespace sicoop
