// SQL shapes the steps share: merge a set into a table (insert new, update changed, count
// both) and delete what left the set. Pure C++. Table and column names here are the
// extension's own constants, never user input.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace sicoop {

struct Column {
    std::string name;        // column of the target table
    std::string expression;  // how the source yields it (defaults to the same name)
};

// INSERT ... ON CONFLICT (key) DO UPDATE, touching only rows whose columns changed.
// `source` is a FROM item (table or subquery aliased s); `stamps` are set on insert and on
// update but are not compared. Returns rows_inserted and rows_updated. `skip_identical`: rows
// the target holds as they are are left out before the insert (see kChangedOnly), for a source
// that repeats many unchanged rows; not for a distributed target (Citus refuses the correlated
// subquery on it from a coordinator's table).
std::string merge_changed_sql(const std::string& target, const std::string& key,
                              const std::vector<Column>& columns,
                              const std::vector<Column>& stamps, const std::string& source,
                              bool skip_identical = false);

// The same merge, of the rows the query `read` returns (its columns the target's source columns,
// aliased s in the expressions), read once: also returns rows_read, their count, instead of a
// count of its own (a second pass over what is read). `kept`: a table the rows are also
// inserted into, as the target gets them (its key and `columns`, stamps left out).
std::string merge_taken_sql(const std::string& target, const std::string& key, const std::vector<Column>& columns,
                            const std::vector<Column>& stamps, const std::string& read, const std::string& kept = "");

// DELETE the rows of `target` whose key is no longer in `source_relation`. Returns rows_deleted.
std::string delete_missing_sql(const std::string& target, const std::string& key,
                               const std::string& source_relation, const std::string& extra_condition = "");

// A plain INSERT ... SELECT into an empty table (first loads: no conflict to look for).
// Returns no row: run it with dml_action(..., "rows_inserted").
std::string insert_all_sql(const std::string& target, const std::string& key, const std::vector<Column>& columns,
                           const std::vector<Column>& stamps, const std::string& source);

// DELETE the rows of raw table `table` (sicoop.raw_<table>, aliased r) that meet `condition`,
// leaving a tombstone for each in sicoop.raw_tombstone so that later steps can follow the
// deletion without rescanning. Returns rows_deleted.
std::string delete_with_tombstones_sql(const std::string& table, const std::string& key,
                                       const std::string& condition);

// Drops temporary table pg_temp.<name> if this session has one, without the NOTICE that
// DROP TABLE IF EXISTS would send the caller (a step's temporary tables are ON COMMIT DROP, so
// one is left only by a failed statement of the same transaction).
std::string drop_temp_table_sql(const std::string& name);

// Makes temporary table pg_temp.<name>, trusted_movimentacao_cartao's columns but run_id and
// updated_at, if this session has none yet; ON COMMIT DELETE ROWS (emptied in place at commit:
// no new file, as a TRUNCATE would make).
std::string temp_movements_table_sql(const std::string& name);

// A stream's micro-batch: the keys of source table `table` it touched (sicoop.stream_key), as
// an array, for `key = ANY (...)`: looked up by the table's index whatever the statistics of
// the small, fresh stream_key say (a join could pick a pass over the whole table).
std::string stream_keys_sql(const std::string& table);
// `column` = ANY (stream_keys_sql(table)).
std::string in_stream_keys_sql(const std::string& column, const std::string& table);

// A statement written whole, with named placeholders: each "${name}" in `sql` becomes its
// value, in one pass (a value is never scanned again). "${" never occurs in SQL of its own ($n
// parameters are digits, dollar quotes $$ or $tag$), so braces of SQL -- array literals '{}',
// regular expressions' {0,4} -- stay as they are. A placeholder without a value (missing, or
// misspelled on either side) throws std::logic_error: a plan with one fails its unit test.
// Values left unused are allowed, so that one set serves a family of statements. Values are
// the extension's own names and SQL fragments, never input: input travels as $n parameters.
using SqlValues = std::vector<std::pair<std::string, std::string>>;
std::string fill(const std::string& sql, const SqlValues& values);

// SELECT count(*) AS rows_read FROM relation.
std::string count_read_sql(const std::string& relation);

// The new BRIN ranges of `table` (qualified) summarized, after a batch step appended to it:
// its BRIN indexes have no autosummarize (sicoop._summarize_ranges, src/sql/loads.sql). A
// stream's micro-batch leaves them to the next batch run or VACUUM: none of its statements
// reads a BRIN index, and the pass over the range map would cost every batch.
std::string summarize_ranges_sql(const std::string& table);

}  // namespace sicoop
