// What the bulk copy (src/bulk_copy.cpp) asks the source: the text of every statement sent
// there, built in pure C++ from plain strings. The boundary layer opens the session, reads the
// values these statements quote (from the warehouse, through SPI), and streams the rows.
//
// Quoting is PostgreSQL's own, rewritten here without its headers: identifiers as
// quote_identifier() quotes them (only when needed, or always under quote_all_identifiers),
// literals as quote_literal_cstr() does. Column and table names of the extension's own
// (keys, the window column, the source table's columns) are not quoted, as before: they are
// constants of the pipeline, never input.
#pragma once

#include "steps/step.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sicoop::remote {

// ------------------------------------------------------------------------------------------
// Quoting
// ------------------------------------------------------------------------------------------

// As PostgreSQL 15's quote_identifier(): unquoted when it is lower-case letters, digits and
// underscores (not starting with a digit) and no keyword but an unreserved one; else in double
// quotes, double quotes doubled. `quote_all`: the setting quote_all_identifiers.
std::string quote_identifier(const std::string& ident, bool quote_all = false);
// schema.name, each part quoted as quote_identifier() does.
std::string quote_qualified_identifier(const std::string& schema, const std::string& name, bool quote_all = false);
// As quote_literal_cstr(): in single quotes, quotes and backslashes doubled, and E'...' when
// there is a backslash.
std::string quote_literal(const std::string& value);

// ------------------------------------------------------------------------------------------
// The source table's columns, and the casts that cannot fail there
// ------------------------------------------------------------------------------------------

// The table's columns at the source: name, type (format_type without typmod).
using ColumnTypes = std::vector<std::pair<std::string, std::string>>;
// A column's type there, or "" if the source has no such column.
std::string type_of(const ColumnTypes& types, const std::string& column);

bool is_time(const std::string& type);
bool is_number(const std::string& type);
// A type without its typmod: "varchar(50)" -> "varchar".
std::string base_type(const std::string& type);
// Whether the source casts a value of its type `from` to `to` (a base type) without ever failing.
bool total_cast(const std::string& from, const std::string& to);

// ------------------------------------------------------------------------------------------
// What the source is asked for one copy: COPY (SELECT <select> FROM <table> <rows> <suffix>)
// ------------------------------------------------------------------------------------------

// A column the warehouse converts itself: it travels as text.
struct Conversion {
    std::string column;
    std::string from;  // its type at the source
    std::string to;    // the warehouse's
};

// A copy refused before anything is sent: which column makes it impossible, and why.
struct Refusal {
    std::string column, type, need, purpose, hint;
    bool empty() const { return column.empty(); }
};

// One SELECT of a read: its select list (with FROM's start, if it reads a subquery) before the
// table and the rows asked for, and what follows them (the subquery's end, grouping).
struct RemoteSelect {
    std::string select;
    std::string suffix;
};

struct RemoteRead {
    std::string select;
    std::string suffix;                 // after the rows asked for: grouping
    bool as_text = false;               // COPY in text format (a column travels as text)
    std::vector<Conversion> converted;  // those columns
    // Day totals whose amounts are no numbers at the source: it counts the rows per day and
    // amount as written (the amount as text), and the warehouse sums them (sum_day_amounts).
    bool day_amounts = false;
    Refusal refused;  // nothing is sent when it is set
};

// The select list (and grouping) of a copy, from the extension's own column list and the
// source's column types; the rows are stamped with `run_id` if the copy asks for it.
RemoteRead plan_read(const BulkCopy& copy, int64_t run_id, const ColumnTypes& types);

// ------------------------------------------------------------------------------------------
// The rows asked for: the WHERE clause after the table (" WHERE ...", or "" for every row)
// ------------------------------------------------------------------------------------------

// Rows::Window: the rows from `from` (a timestamp, ISO) on, and those of the days `days` (a
// date[] literal) if given, and the NULL times if `days` holds a NULL.
std::string window_rows(const std::string& column, const std::string& from, const std::optional<std::string>& days,
                        bool days_have_null, bool quote_all = false);
// Rows::Keys: the condition on the key (the keys, a text[] literal; NULL keys if it holds one),
// also used to delete the landing table's copies of these keys.
std::string keys_condition(const std::string& key_column, const std::string& keys, bool keys_have_null,
                           bool quote_all = false);
std::string where(const std::string& condition);
// Rows::KeysInBuckets, Rows::RowsInBuckets: the rows whose bucket is in `buckets` (an int[] literal).
std::string buckets_rows(const BulkCopy& copy, const std::string& buckets);
// Rows::ChangedSinceSnapshot: the rows written at or after snapshot xmin `since`.
std::string changed_since_rows(const std::string& since);

// ------------------------------------------------------------------------------------------
// The statements sent
// ------------------------------------------------------------------------------------------

extern const char* const kBeginSql;        // the session's transaction: one snapshot
extern const char* const kColumnTypesSql;  // the table's column types ($1: the table)
extern const char* const kSnapshotXminSql;
extern const char* const kCommitSql;
// Holds the table's definition until the session ends.
std::string lock_table_sql(const std::string& remote);
// The greatest value of `column` in the snapshot, as text (the movements' watermark).
std::string latest_value_sql(const std::string& column, const std::string& remote, bool quote_all = false);
// The copy itself: `rows` from window_rows() and its siblings.
std::string copy_sql(const RemoteRead& read, const std::string& remote, const std::string& rows);
// Rows::ColumnTypes: the source's catalog of the table, for stage_source_column.
std::string column_types_copy_sql(const std::string& table_label, const std::string& remote);

}  // namespace sicoop::remote
