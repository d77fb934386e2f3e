// The pipeline's steps as data: each step plans, for the run at hand, a list of set-based SQL
// statements run in order through SPI, plus (for the raw step) bulk transfers from the source.
// A first load inserts plainly into empty tables; later runs process only what changed since
// the step's last run (tracked by run ids on rows and tombstones for deletions); a full run
// reconciles everything.
// Pure C++: no PostgreSQL headers, so it compiles and unit-tests without a server (the
// unit-test build compiles src/steps/ with no PostgreSQL include path, which enforces it).
#pragma once

#include "steps/source_model.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sicoop {

// What a step did. Every statement of a step returns one row whose columns are named after
// these counters (rows_read, rows_inserted, ...); the executor adds them up.
struct StepCounts {
    int64_t rows_read = 0;
    int64_t rows_inserted = 0;
    int64_t rows_updated = 0;
    int64_t rows_deleted = 0;
    int64_t rows_unchanged = -1;  // -1: derive as read - inserted - updated
    int64_t rows_unknown = 0;
    int64_t rows_rejected = 0;  // source rows kept out of trusted, with the reason in sicoop.reject

    // The counters, by their column name (a statement's result column, the run log's column),
    // in the run log's order: the one list of them, for whoever reads or writes them all.
    struct Field {
        const char* column;
        int64_t StepCounts::*value;
    };
    static const std::vector<Field>& fields();
    // Adds one counter by its column name; false if the name is not a counter.
    bool add(const std::string& column, int64_t value);
    // Fills rows_unchanged when no statement reported it.
    void finish();
};

// A bulk copy of one source table at COPY speed (src/bulk_copy.cpp): libpq COPY TO STDOUT on
// the source feeding this backend's COPY FROM.
struct BulkCopy {
    std::string source_table;          // foreign table in schema sicoop describing it (src_*)
    std::string target_table;          // table in schema sicoop it lands in (stage_* or raw_*)
    std::vector<std::string> columns;  // column list, in order, with their SQL types
    std::vector<std::string> types;
    bool truncate_first = true;        // empty the target first (stage tables)

    // Which source rows, and what of them, the copy reads:
    enum class Rows {
        All,                   // every row
        Window,                // rows whose `window_column` >= the run's window start ($5), or whose date is in the date[] `keys_query` returns
        Keys,                  // rows whose key is in the text[] `keys_query` returns
        ChangedSinceSnapshot,  // rows written since the source snapshot of the last copy (xmin)
        KeyChecksums,          // per key bucket: bucket, count and sum of key hashes (no rows)
        KeysInBuckets,         // the keys of the buckets in the int[] `keys_query` returns
        ColumnTypes,           // the source's catalog: column, type, unique key (`table_label`)
        DayTotals,             // per date of `window_column`: count and sum of valor_movimentacao
        RowHashes,             // per row: its bucket (`bucket_bits`) and `row_hash`, compared with raw's (`local_row_hashes`)
        RowsInBuckets,         // the rows of the row buckets in the int[] `keys_query` returns
    } rows = Rows::All;
    std::string target_schema = "sicoop";  // or pg_temp
    // Keys: the stage's rows of the keys asked for are deleted first (they are read again).
    bool replace_keys = false;
    std::string table_label;  // ColumnTypes: the pipeline's name of the table
    std::string window_column;
    // A local query, run with the run's parameters; nothing is copied when it returns NULL.
    std::string keys_query;
    std::string key_column;
    // Remember the source snapshot this copy read (its xmin, in sicoop.source_sync), so that
    // the next ChangedSinceSnapshot copy of the table starts from it; and, if set on the
    // table's first copy, the greatest value of `watermark_column` in that snapshot (the
    // movements' watermark).
    bool capture_snapshot = false;
    std::string watermark_column;
    // RowHashes, RowsInBuckets: how many bits of the key's hash make a row bucket, and the
    // row hash, as the source computes it (see row_hash_sql).
    int bucket_bits = 12;
    std::string row_hash;
    // A local query (run with the run's parameters) deciding at run time whether the copy
    // happens: unless it returns true, nothing is copied. Empty: always.
    std::string only_if;
    // The rows are stamped with the run's id in column run_id (a copy straight into raw).
    bool stamp_run_id = false;
    // RowHashes: raw's side, a local query of each row's bucket (int) and hash (bigint), read
    // while the source sends its own (the two sides at once, on two cores); the buckets that
    // differ land in the target table (its one column, `bucket`).
    std::string local_row_hashes;
    // When the copy runs: at once (Now); or its statement sent to the source now (SendOnly)
    // and its rows landed by the same copy later in the table's actions (LandSent), the
    // session idle in between, so that the source computes it while the warehouse runs the
    // statements between (the movements' day totals, read by nothing before the next step).
    enum class Timing { Now, SendOnly, LandSent } timing = Timing::Now;
};

// Keys are spread over buckets to find deleted source rows without reading every key:
// the same expressions on both sides (PostgreSQL's hashtext), compared bucket by bucket.
std::string key_bucket_sql(const std::string& key_column);  // int bucket of a key
std::string key_hash_sql(const std::string& key_column);    // bigint hash of a key
// Rows, likewise, for a full run's comparison: the bucket of a row by its key's hash (`bits` of
// it), and each row's 64-bit hash (row_hash_sql in raw_compare.cpp), summed per bucket on both sides.
std::string row_bucket_sql(const std::string& key_column, int bits);
// Bits for a table of about `rows` rows: some 16 rows per bucket, from 2^12 to 2^22 buckets.
int row_bucket_bits(int64_t rows);

// One unit of work inside a step: a bulk copy, or a SQL statement. Statements take
// $1 = the run's reference time (timestamptz), $2 = the run id (bigint), $3 = the
// cooperative's time zone (text, setting sicoop.timezone), in which naive times are local,
// $4 = the last run this step already processed (bigint; 0 = process everything) and
// $5 = the movements' window start (timestamp; NULL outside an incremental raw load).
struct Action {
    enum class Kind { Sql, Bulk } kind;
    std::string sql;    // Kind::Sql: returns one row of counters
    BulkCopy bulk;      // Kind::Bulk: its row count is added to rows_read
    std::string label;  // time and rows are reported per label (e.g. per source table)
    // Kind::Sql without a result row: the counter its affected rows (SPI_processed) add to.
    std::string processed_counter;
};

// What a run knows before a step starts, read from the warehouse (src/run_shared.cpp).
struct RunContext {
    // A full run compares the whole source with raw (rows by checksums per bucket: only the
    // buckets that differ travel) and the later layers follow what changed; a rebuild re-reads
    // every source row (the rules re-check all of them) and recomputes every layer.
    bool full = false;
    bool rebuild = false;
    int64_t since_run_id = 0;           // the last run this step processed (0: none)
    std::vector<std::pair<std::string, int64_t>> table_rows;  // raw_* row estimates (load_raw)
    std::vector<std::string> empty_tables;  // warehouse tables (sicoop.*) that are empty
    bool has_window = false;            // raw movements have a watermark (window start in $5)
    // A stream's micro-batch (src/stream_apply.cpp): the stage already holds the batch's rows and
    // sicoop.stream_key every key it touched; nothing is read from the source, and every later
    // step follows what changed, whatever the history's size.
    bool stream = false;
    std::vector<std::string> stream_tables;     // stream: the source tables the batch touched
    std::vector<std::string> stream_truncated;  // stream: those truncated at the source in it
    // stream: the most states one member had before its last in the batch, which
    // sicoop.stage_associado_state holds (0: every member changed once; issue 25)
    int stream_member_rounds = 0;
    bool stream_truncated_table(const std::string& table) const;
    // The movements' tables are Citus tables, distributed (sicoop.distribute()): a statement on
    // them reads the coordinator's own tables only through uncorrelated subqueries or
    // MATERIALIZED results, which Citus sends to the workers (ARCHITECTURE.md, "On Citus").
    bool movements_distributed = false;
    // Table t's raw and trusted copies are distributed (the movements, when the above holds).
    bool distributed(const SourceTable& t) const { return movements_distributed && t.is_dated(); }

    bool is_empty(const std::string& table) const;
    int64_t rows_of(const std::string& table) const;  // 0 when unknown
    // Process everything rather than what changed since the last run.
    bool everything() const { return rebuild || since_run_id == 0; }
};

// Per label: rows and seconds, for the run log's detail; copy_seconds: the part of the
// seconds spent copying rows from the source (the ingestion, without the rules and merges).
struct Timing {
    std::string label;
    int64_t rows = 0;
    double seconds = 0;
    double copy_seconds = 0;
};
std::string timings_json(const std::vector<Timing>& timings);

struct Step {
    std::string name;  // also the name of its SQL function, sicoop.<name>()
    std::string summary;
    std::vector<Action> (*plan)(const RunContext&);  // the actions for this run
    std::vector<std::string> first_load_tables;       // tables whose emptiness the plan looks at
};

Action sql_action(std::string sql, std::string label = "");
// A plain INSERT/UPDATE/DELETE whose affected rows count as `counter` (no CTE to materialize).
Action dml_action(std::string sql, std::string counter, std::string label = "");
Action bulk_action(BulkCopy copy, std::string label = "");

// The steps in pipeline order.
const std::vector<Step>& pipeline_steps();
// A step by name, nullptr if there is none.
const Step* find_step(const std::string& name);

// A row's 64-bit hash for a full run's comparison (raw_compare.cpp): on the source side (`row` empty)
// from its columns read as the stage reads them, card numbers masked; on raw's side from raw
// row `row`. Equal rows give equal hashes on both sides.
std::string row_hash_sql(const SourceTable& t, const std::string& row, bool source_side);

// How load_trusted cleans a source table's row `s` (raw's columns) into trusted's columns
// (trusted.cpp): SCD2 cleans a member's earlier states in a micro-batch the same way.
std::vector<std::pair<std::string, std::string>> trusted_expressions(const std::string& table);

// The movements a stream's micro-batch touched, as trusted holds them once load_trusted has run
// (a FROM item): the temporary table load_trusted kept them in as it merged them (looking each
// of the batch's keys up in trusted again is a B-tree descent per key, under the database's
// collation); on Citus, trusted by the batch's keys.
std::string stream_movements_sql(const RunContext& ctx);

// The steps' plans, one per file in src/steps/.
std::vector<Action> plan_raw(const RunContext& ctx);
std::vector<Action> plan_trusted(const RunContext& ctx);
std::vector<Action> plan_dims(const RunContext& ctx);
std::vector<Action> plan_scd2(const RunContext& ctx);
std::vector<Action> plan_fato(const RunContext& ctx);

}  // namespace sicoop
