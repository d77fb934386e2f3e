// The pipeline's steps as data: each step is a list of set-based SQL statements, run in
// order through SPI, plus (for the raw step) bulk transfers from the source.
// Pure C++: no PostgreSQL headers, so it compiles and unit-tests without a server (the
// unit-test build compiles src/steps/ with no PostgreSQL include path, which enforces it).
#pragma once

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

    // Adds one counter by its column name; false if the name is not a counter.
    bool add(const std::string& column, int64_t value);
    // Fills rows_unchanged when no statement reported it.
    void finish();
};

// A bulk copy of one source table into its staging table, at COPY speed (src/bulk_copy.cpp).
struct BulkCopy {
    std::string source_table;          // foreign table in schema sicoop describing it (src_*)
    std::string stage_table;           // unlogged table in schema sicoop it lands in (stage_*)
    std::vector<std::string> columns;  // column list, in order, with their SQL types
    std::vector<std::string> types;
};

// One unit of work inside a step: a bulk copy, or a SQL statement. Statements take
// $1 = the run's reference time (timestamptz), $2 = the run id (bigint) and $3 = the
// cooperative's time zone (text, setting sicoop.timezone), in which naive times are local.
struct Action {
    enum class Kind { Sql, Bulk } kind;
    std::string sql;   // Kind::Sql: returns one row of counters
    BulkCopy bulk;     // Kind::Bulk: its row count is added to rows_read
};

struct Step {
    std::string name;  // also the name of its SQL function, sicoop.<name>()
    std::string summary;
    std::vector<Action> actions;
};

Action sql_action(std::string sql);
Action bulk_action(BulkCopy copy);

// The steps in pipeline order.
const std::vector<Step>& pipeline_steps();
// A step by name, nullptr if there is none.
const Step* find_step(const std::string& name);

// The source's four tables as the pipeline reads them (defined in raw.cpp).
struct SourceTable {
    std::string name;
    std::string key;
    std::vector<std::pair<std::string, std::string>> columns;  // name, SQL type; key first
};
const std::vector<SourceTable>& source_tables();

// Given the (table, column) pairs a source schema has, what the pipeline needs and misses:
// one message per missing table or column, empty if the source is complete.
std::vector<std::string> missing_source_columns(
    const std::vector<std::pair<std::string, std::string>>& present);

// The steps, one per file in src/steps/.
Step raw_step();
Step trusted_step();
Step dims_step();
Step scd2_step();
Step fato_step();

}  // namespace sicoop
