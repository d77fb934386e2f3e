#include "steps/pure_cpp.hpp"

#include "steps/remote_query.hpp"

#include <algorithm>
#include <stdexcept>

namespace sicoop::remote {

// ------------------------------------------------------------------------------------------
// Quoting
// ------------------------------------------------------------------------------------------

namespace {

// PostgreSQL 15's keywords that are not unreserved (parser/kwlist.h): quote_identifier()
// quotes them. Sorted, for binary search.
const char* const kQuotedKeywords[] = {
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization", "between",
    "bigint", "binary", "bit", "boolean", "both", "case", "cast", "char", "character", "check", "coalesce",
    "collate", "collation", "column", "concurrently", "constraint", "create", "cross", "current_catalog",
    "current_date", "current_role", "current_schema", "current_time", "current_timestamp", "current_user", "dec",
    "decimal", "default", "deferrable", "desc", "distinct", "do", "else", "end", "except", "exists", "extract",
    "false", "fetch", "float", "for", "foreign", "freeze", "from", "full", "grant", "greatest", "group", "grouping",
    "having", "ilike", "in", "initially", "inner", "inout", "int", "integer", "intersect", "interval", "into", "is",
    "isnull", "join", "lateral", "leading", "least", "left", "like", "limit", "localtime", "localtimestamp",
    "national", "natural", "nchar", "none", "normalize", "not", "notnull", "null", "nullif", "numeric", "offset",
    "on", "only", "or", "order", "out", "outer", "overlaps", "overlay", "placing", "position", "precision",
    "primary", "real", "references", "returning", "right", "row", "select", "session_user", "setof", "similar",
    "smallint", "some", "substring", "symmetric", "table", "tablesample", "then", "time", "timestamp", "to",
    "trailing", "treat", "trim", "true", "union", "unique", "user", "using", "values", "varchar", "variadic",
    "verbose", "when", "where", "window", "with", "xmlattributes", "xmlconcat", "xmlelement", "xmlexists",
    "xmlforest", "xmlnamespaces", "xmlparse", "xmlpi", "xmlroot", "xmlserialize", "xmltable",
};

bool is_quoted_keyword(const std::string& word) {
    return std::binary_search(std::begin(kQuotedKeywords), std::end(kQuotedKeywords), word,
                              [](const std::string& a, const std::string& b) { return a < b; });
}

bool is_plain_identifier(const std::string& ident) {
    if (ident.empty() || !((ident[0] >= 'a' && ident[0] <= 'z') || ident[0] == '_')) return false;
    for (char c : ident)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    return true;
}

}  // namespace

std::string quote_identifier(const std::string& ident, bool quote_all) {
    if (!quote_all && is_plain_identifier(ident) && !is_quoted_keyword(ident)) return ident;
    std::string quoted = "\"";
    for (char c : ident) quoted += (c == '"' ? std::string("\"\"") : std::string(1, c));
    return quoted + "\"";
}

std::string quote_qualified_identifier(const std::string& schema, const std::string& name, bool quote_all) {
    return quote_identifier(schema, quote_all) + "." + quote_identifier(name, quote_all);
}

std::string quote_literal(const std::string& value) {
    std::string quoted = value.find('\\') != std::string::npos ? "E'" : "'";
    for (char c : value) {
        if (c == '\'' || c == '\\') quoted += c;
        quoted += c;
    }
    return quoted + "'";
}

// ------------------------------------------------------------------------------------------
// Casts
// ------------------------------------------------------------------------------------------

std::string type_of(const ColumnTypes& types, const std::string& column) {
    for (const auto& [name, type] : types)
        if (name == column) return type;
    return "";
}

bool is_time(const std::string& type) {
    return type == "timestamp without time zone" || type == "timestamp with time zone" || type == "date";
}

bool is_number(const std::string& type) {
    return type == "numeric" || type == "smallint" || type == "integer" || type == "bigint" || type == "real" ||
           type == "double precision";
}

std::string base_type(const std::string& type) { return type.substr(0, type.find('(')); }

// The total casts, and why:
//   - to text, varchar: every type has an output function, which renders any value;
//   - to numeric (no typmod): from numeric of any typmod (nothing rounded, no limit), the
//     integers, and real / double precision (NaN and +-Infinity are numerics too);
//   - to date: from date; from timestamp and timestamptz, their day (+-infinity stays so; every
//     timestamptz has a day in any time zone, the ends of the range included);
//   - to timestamp: from timestamp alone (a date after 294276 AD has no timestamp, nor has a
//     timestamptz near the ends of the range in every time zone).
// No typmod is cast to at the source: the warehouse's column applies its own where the copy
// lands (a direct copy into raw, raw_*'s varchar(n) and numeric(p,s), refuses what does not
// fit). Anything else travels as text and the warehouse converts it.
bool total_cast(const std::string& from, const std::string& to) {
    if (to == "text" || to == "varchar") return true;
    if (to == "numeric") return is_number(from);
    if (to == "date") return is_time(from);
    if (to == "timestamp") return from == "timestamp without time zone";
    return false;
}

// ------------------------------------------------------------------------------------------
// The select list of each kind of read
// ------------------------------------------------------------------------------------------

namespace {

constexpr const char* kTimeHint = "Give the column type timestamp at the source.";
constexpr const char* kAmountHint = "Give the column a numeric type at the source.";
constexpr const char* kAmount = "valor_movimentacao";
// The sum of a day's amounts: the finite ones (NaN and +-Infinity are left out of the sum, as
// sicoop._reconcile sums the fact's and the rejects'; their rows still count).
constexpr const char* kFiniteSum =
    "coalesce(sum(v) FILTER (WHERE v < 'Infinity'::numeric AND v > '-Infinity'::numeric), 0)::numeric";

// Refuses the copy unless `column`'s type at the source passes `ok` (the first refusal stands).
void require(RemoteRead& read, const ColumnTypes& types, const std::string& column, bool (*ok)(const std::string&),
             const char* need, const char* purpose, const char* hint) {
    if (!read.refused.empty() || ok(type_of(types, column))) return;
    read.refused = {column, type_of(types, column), need, purpose, hint};
}

// The source table a copy reads, as the pipeline describes it (src_<name>).
const SourceTable* table_of(const BulkCopy& copy) {
    for (const SourceTable& t : source_tables())
        if ("src_" + t.name == copy.source_table) return &t;
    return nullptr;
}

// A row checksum hashes every column of the table as the stage reads it (row_hash_sql):
// each must reach its stage type by a total cast.
void require_hashable(RemoteRead& read, const ColumnTypes& types, const BulkCopy& copy) {
    const SourceTable* t = table_of(copy);
    for (size_t i = 0; t != nullptr && i < t->columns.size() && read.refused.empty(); ++i) {
        const auto& [column, type] = t->columns[i];
        const std::string wide = type.rfind("varchar", 0) == 0 ? "text" : base_type(type);  // source_model's stage_type, of the declared types
        if (total_cast(type_of(types, column), wide)) continue;
        read.refused = {column, type_of(types, column), wide, "compare the table by row checksums (a full run)",
                        "SET sicoop.full_run = 'rebuild' for the run: it reads every row, and the warehouse converts "
                        "them. Or give the column the warehouse's type at the source."};
    }
}

// An aggregate of values computed per row, grouped by one of them: the values are computed in a
// subquery that OFFSET 0 keeps apart. Else the source's planner sees the grouping expression
// through to the column under it, a key or a time with about one value per row, and expects a
// group per row: it sorts every row (on disk, with 4 MB of work_mem), and may JIT-compile the
// statement for that cost. Kept apart, the groups are estimated at the planner's default, and
// it aggregates in one pass with a hash table (which spills, bounded by work_mem, should there
// be more groups than that). The groups here are at most 2^bits buckets, or the days.
RemoteSelect grouped_read(const std::string& aggregates, const std::string& values, const std::string& group_by) {
    return {aggregates + " FROM (SELECT " + values, " OFFSET 0) s GROUP BY " + group_by};
}

// Each movement's day and amount, for the sums per day.
std::string day_values(const std::string& day) { return day + "::date AS d, valor_movimentacao::numeric AS v"; }

RemoteRead read_of(const RemoteSelect& first) {
    RemoteRead read;
    read.select = first.select;
    read.suffix = first.suffix;
    return read;
}

// Rows::KeyChecksums. Hashes of key::text (hashtext is total), counts, and sums of bigints as
// numeric: total.
RemoteRead key_checksums_read(const BulkCopy& copy) {
    return read_of(grouped_read("b, count(*)::bigint, sum(h)::numeric",
                                key_bucket_sql(copy.key_column) + "::int AS b, " + key_hash_sql(copy.key_column) + " AS h",
                                "b"));
}

// Rows::KeysInBuckets.
RemoteRead keys_read(const BulkCopy& copy) {
    RemoteRead read;
    read.select = copy.key_column + "::text";
    return read;
}

// Rows::RowHashes: each row's bucket and hash, summed in the warehouse (row_hash_delta.hpp).
RemoteRead row_hashes_read(const BulkCopy& copy, const ColumnTypes& types) {
    RemoteRead read;
    read.select = row_bucket_sql(copy.key_column, copy.bucket_bits) + "::int, " + copy.row_hash + "::bigint";
    require_hashable(read, types, copy);
    return read;
}

// Rows::DayTotals: summed at the source when its amounts are numbers; else counted per day and
// amount as written, and summed in the warehouse.
RemoteRead day_totals_read(const BulkCopy& copy, const ColumnTypes& types) {
    RemoteRead read;
    const std::string& day = copy.window_column;
    if (is_number(type_of(types, kAmount))) {
        read = read_of(grouped_read("d, count(*)::bigint, " + std::string(kFiniteSum), day_values(day), "d"));
    } else {
        read.day_amounts = true;
        read.as_text = true;
        read.converted.push_back({kAmount, type_of(types, kAmount), "numeric"});
        read.select = day + "::date, valor_movimentacao::text, count(*)::bigint";
        read.suffix = " GROUP BY 1, 2";
    }
    require(read, types, day, is_time, "a date or time", "sum the movements per day", kTimeHint);
    return read;
}

// The source's column `column` read as warehouse type `type`: the cast, if it is total; else
// the column as text, converted in the warehouse.
std::string read_as(const std::string& column, const std::string& type, const ColumnTypes& types, RemoteRead& read) {
    const std::string from = type_of(types, column);
    if (total_cast(from, base_type(type))) return column + "::" + base_type(type);
    read.as_text = true;
    read.converted.push_back({column, from, type});
    return column + "::text";
}

// The rows themselves (every kind of read that copies rows), each column in its type.
RemoteRead rows_read(const BulkCopy& copy, const ColumnTypes& types) {
    RemoteRead read;
    if (copy.rows == BulkCopy::Rows::Window)  // compared with a timestamp, and its day with dates
        require(read, types, copy.window_column, is_time, "a date or time", "read the movements' window", kTimeHint);
    if (copy.types.size() != copy.columns.size())
        throw std::logic_error("bulk copy of " + copy.source_table + ": one type per column");
    for (size_t i = 0; i < copy.columns.size(); ++i)
        read.select += (i ? ", " : "") + read_as(copy.columns[i], copy.types[i], types, read);
    return read;
}

}  // namespace

RemoteRead plan_read(const BulkCopy& copy, int64_t run_id, const ColumnTypes& types) {
    using Rows = BulkCopy::Rows;
    RemoteRead read;
    switch (copy.rows) {
        case Rows::KeyChecksums: read = key_checksums_read(copy); break;
        case Rows::KeysInBuckets: read = keys_read(copy); break;
        case Rows::RowHashes: read = row_hashes_read(copy, types); break;
        case Rows::DayTotals: read = day_totals_read(copy, types); break;
        case Rows::ColumnTypes: break;  // column_types_copy_sql() says it all
        case Rows::All:
        case Rows::Window:
        case Rows::Keys:
        case Rows::ChangedSinceSnapshot:
        case Rows::RowsInBuckets: read = rows_read(copy, types); break;
    }
    if (copy.stamp_run_id)  // the run's id, a number of ours: the rows land in raw stamped
        read.select += ", " + std::to_string(run_id) + "::bigint";
    return read;
}

// ------------------------------------------------------------------------------------------
// The rows asked for. Every expression is total: comparisons of the key as text, of a time
// with a timestamp, of a time's day with dates, of xmin's age with a number of ours.
// ------------------------------------------------------------------------------------------

std::string window_rows(const std::string& column, const std::string& from, const std::optional<std::string>& days,
                        bool days_have_null, bool quote_all) {
    const std::string c = quote_identifier(column, quote_all);
    std::string rows = " WHERE " + c + " >= " + quote_literal(from) + "::timestamp";
    // ...and the whole of the days asked for (days before the window that changed).
    if (days) {
        rows += " OR " + c + "::date = ANY (" + quote_literal(*days) + "::date[])";
        if (days_have_null) rows += " OR " + c + " IS NULL";
    }
    return rows;
}

std::string keys_condition(const std::string& key_column, const std::string& keys, bool keys_have_null,
                           bool quote_all) {
    const std::string k = quote_identifier(key_column, quote_all);
    return k + "::text = ANY (" + quote_literal(keys) + "::text[])" + (keys_have_null ? " OR " + k + " IS NULL" : "");
}

std::string where(const std::string& condition) { return " WHERE " + condition; }

std::string buckets_rows(const BulkCopy& copy, const std::string& buckets) {
    const std::string bucket = copy.rows == BulkCopy::Rows::RowsInBuckets
                                   ? row_bucket_sql(copy.key_column, copy.bucket_bits)
                                   : key_bucket_sql(copy.key_column);
    return " WHERE " + bucket + " = ANY (" + quote_literal(buckets) + "::int[])";
}

// Both ages count back from the same transaction id; a recorded snapshot the source has not
// reached yet (another source, or a restore) means "read all". Frozen rows are old: their age
// is the largest there is.
std::string changed_since_rows(const std::string& since) {
    const std::string s = quote_literal(since);
    return " WHERE " + s + "::bigint >= txid_snapshot_xmax(txid_current_snapshot())" +
           " OR age(xmin) <= age((" + s + "::bigint % 4294967296)::text::xid)";
}

// ------------------------------------------------------------------------------------------
// The statements sent
// ------------------------------------------------------------------------------------------

const char* const kBeginSql = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
const char* const kColumnTypesSql = R"sql(
SELECT a.attname::text, format_type(a.atttypid, NULL) FROM pg_attribute a
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped)sql";
const char* const kSnapshotXminSql = "SELECT txid_snapshot_xmin(txid_current_snapshot())::text";
const char* const kCommitSql = "COMMIT";

std::string lock_table_sql(const std::string& remote) { return "LOCK TABLE " + remote + " IN ACCESS SHARE MODE"; }

// max() of a time, as text: total (the warehouse reads it back as a timestamp).
std::string latest_value_sql(const std::string& column, const std::string& remote, bool quote_all) {
    return "SELECT max(" + quote_identifier(column, quote_all) + ")::text FROM " + remote;
}

std::string copy_sql(const RemoteRead& read, const std::string& remote, const std::string& rows) {
    std::string query = "SELECT " + read.select + " FROM " + remote + rows + read.suffix;
    return "COPY (" + query + ") TO STDOUT" + (read.as_text ? "" : " (FORMAT binary)");
}

// Each column's type, and whether a unique index (total, valid, on that column alone)
// guarantees its values. (The literals are ours; format_type is total.)
std::string column_types_copy_sql(const std::string& table_label, const std::string& remote) {
    const std::string sql = R"sql(COPY (SELECT @label::text, a.attname::text, format_type(a.atttypid, a.atttypmod),
 EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique AND i.indisvalid
 AND i.indnatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL), a.attnotnull
 FROM pg_attribute a WHERE a.attrelid = @table::regclass AND a.attnum > 0 AND NOT a.attisdropped) TO STDOUT (FORMAT binary))sql";
    const size_t label = sql.find("@label"), table = sql.find("@table");
    return sql.substr(0, label) + quote_literal(table_label) + sql.substr(label + 6, table - label - 6) +
           quote_literal(remote) + sql.substr(table + 6);
}

}  // namespace sicoop::remote
