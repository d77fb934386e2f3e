#include "bulk_copy.hpp"

#include "copy_text.hpp"
#include "row_hash_compare.hpp"
#include "steps/copy_filter.hpp"
#include "steps/remote_query.hpp"

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace sicoop {

namespace {

// ------------------------------------------------------------------------------------------
// The stream: the source's COPY TO STDOUT feeding this backend's COPY FROM
// ------------------------------------------------------------------------------------------

// A copy from the source being read by COPY FROM, for the length of stream_copy().
struct CopyStream {
    SourceSession* session;
    const char* what;            // "copy public.cartao", for its errors
    char* buffer = nullptr;      // the current CopyData message (libpq's memory)
    int length = 0;
    int offset = 0;
    bool done = false;           // the source ended the copy and said it succeeded
    bool failed = false;         // the error being raised is the source's (not the warehouse's conversion)
    const char* data = nullptr;  // what COPY FROM is handed of it: the message, or the filter's rewrite
    // Every byte from the source passes through it before COPY FROM sees it: card numbers are
    // masked in memory, before the first write (steps/copy_filter.hpp).
    CopyFilter filter;
    PGconn* conn() const { return session->connection(); }
    ~CopyStream();
};
// COPY FROM's data-source callback has no user argument: the copy being read is here.
CopyStream* stream = nullptr;

void release_buffer() {
    if (stream->buffer) PQfreemem(stream->buffer);
    stream->buffer = nullptr;
    stream->data = nullptr;
    stream->length = stream->offset = 0;
}

// What COPY FROM gets of `bytes`: the filter's output (C++ memory errors raised as PG's, out
// of the catch: this runs inside COPY FROM's callback).
std::string_view filtered(std::string_view bytes, bool at_end) {
    std::string_view out;
    bool failed = false;
    try {
        out = at_end ? stream->filter.finish() : stream->filter.feed(bytes);
    } catch (...) {
        failed = true;
    }
    if (failed)
        ereport(ERROR,
                (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("sicoop: out of memory masking the copy from the source")));
    return out;
}

CopyStream::~CopyStream() {
    if (stream != this) return;
    release_buffer();
    stream = nullptr;
}

void hand_over(std::string_view bytes) {
    stream->data = bytes.data();
    stream->length = static_cast<int>(bytes.size());
    stream->offset = 0;
}

[[noreturn]] void stream_error(PGresult* res) {
    stream->failed = true;
    stream->session->fail(res, stream->what);
}

// The end of the copy: the source's verdict on it, read at once. A source that failed
// mid-stream (a statement timeout, a cancel, an error of its own) is reported as such here,
// before the warehouse's COPY FROM could take the cut stream for a malformed file.
void end_of_copy() {
    PGresult* res = libpqsrv_get_result(stream->conn(), PG_WAIT_EXTENSION);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) stream_error(res);
    PQclear(res);
    // Drain to the end of the command before anything else is sent.
    while ((res = libpqsrv_get_result(stream->conn(), PG_WAIT_EXTENSION)) != nullptr) PQclear(res);
    stream->done = true;
}

// Waits for the next CopyData message without blocking interrupts (pg_cancel_backend works),
// and hands over what the filter makes of it (a message that ends no row yet: the next one).
bool next_message() {
    release_buffer();
    if (stream->done) return false;
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        char* buf = nullptr;
        int n = PQgetCopyData(stream->conn(), &buf, 1 /* async */);
        if (n > 0) {
            stream->buffer = buf;
            const std::string_view out = filtered(std::string_view(buf, n), false);
            if (out.empty()) {
                release_buffer();
                continue;
            }
            hand_over(out);
            return true;
        }
        if (n == -1) {
            end_of_copy();
            const std::string_view rest = filtered({}, true);  // a last row without its newline
            if (rest.empty()) return false;
            hand_over(rest);
            return true;
        }
        if (n == -2) stream_error(libpqsrv_get_result(stream->conn(), PG_WAIT_EXTENSION));
        (void) WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_SOCKET_READABLE | WL_EXIT_ON_PM_DEATH,
                                 PQsocket(stream->conn()), -1L, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        if (PQconsumeInput(stream->conn()) == 0) stream_error(nullptr);
    }
}

// Hands COPY FROM at least minread bytes (fewer only at the end of the stream).
extern "C" int read_source_stream(void* outbuf, int minread, int maxread) {
    int copied = 0;
    while (copied < minread) {
        if (stream->offset >= stream->length && !next_message()) break;
        int n = Min(stream->length - stream->offset, maxread - copied);
        memcpy(static_cast<char*>(outbuf) + copied, stream->data + stream->offset, n);
        stream->offset += n;
        copied += n;
    }
    return copied;
}

// ------------------------------------------------------------------------------------------
// The warehouse's side
// ------------------------------------------------------------------------------------------

// A SQL-side value as text, through SPI with the run's parameters (NULL -> nullptr). Dates
// and times come out in ISO form, which the source reads back as the same values whatever
// either side's DateStyle.
char* spi_text_value(const char* sql, const spi::RunParams& params) {
    int level = NewGUCNestLevel();
    (void) set_config_option("datestyle", "ISO, YMD", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    spi::execute_with_run_params(sql, params);
    if (SPI_processed != 1) elog(ERROR, "sicoop: could not evaluate: %s", sql);
    char* value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
    AtEOXact_GUC(true, level);
    return value;
}

// Whether a text[] literal holds a NULL element (a key that is NULL: matched with IS NULL).
bool has_null_element(const char* array_literal) {
    Oid argtypes[1] = {TEXTOID};
    Datum args[1] = {CStringGetTextDatum(array_literal)};
    if (SPI_execute_with_args("SELECT array_position($1::text[], NULL) IS NOT NULL", 1, argtypes, args, nullptr, true, 1) !=
            SPI_OK_SELECT ||
        SPI_processed != 1)
        elog(ERROR, "sicoop: could not read a key list");
    bool isnull = false;
    return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

// The day totals of RemoteRead::day_amounts: the rows per day and amount, converted and summed.
void sum_day_amounts(const char* target, const std::vector<std::string>& columns, const ConversionSite& site) {
    const char* sql = psprintf(R"sql(
INSERT INTO %s (%s, %s, %s)
SELECT a.dia, sum(a.n), coalesce(sum(v.valor * a.n) FILTER (WHERE v.valor < 'Infinity'::numeric AND v.valor > '-Infinity'::numeric), 0)
FROM pg_temp.sicoop_day_amounts a, LATERAL (SELECT a.valor::numeric AS valor) v
GROUP BY a.dia)sql", target, quote_identifier(columns[0].c_str()), quote_identifier(columns[1].c_str()),
                               quote_identifier(columns[2].c_str()));
    MemoryContext cxt = CurrentMemoryContext;
    PG_TRY();
    { run_local(sql); }
    PG_CATCH();
    {
        explain_conversion_error(site, nullptr, 0, cxt);
        PG_RE_THROW();
    }
    PG_END_TRY();
}

// ------------------------------------------------------------------------------------------
// The rows the copy asks for: the values the WHERE clause quotes, read in the warehouse
// (remote_query.cpp builds the clause). Each returns std::nullopt when nothing is to be copied.
// ------------------------------------------------------------------------------------------

// Rows::Window: from the window start ($5), and the days before it that changed.
std::optional<std::string> window_asked(const BulkCopy& copy, const spi::RunParams& params) {
    char* from = nullptr;
    char* days = nullptr;
    bool days_have_null = false;
    const char* keys_query = copy.keys_query.c_str();
    pg_call([&] {
        // ±infinity has no to_char(): NULL, which must never be quoted as a literal.
        from = spi_text_value("SELECT to_char($5, 'YYYY-MM-DD HH24:MI:SS.US')", params);
        if (from == nullptr)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("sicoop: the movements' window has no finite start"),
                            errhint("Check sicoop.as_of and sicoop.lookback.")));
        days = keys_query[0] ? spi_text_value(keys_query, params) : nullptr;
        if (days != nullptr) days_have_null = has_null_element(days);
    });
    const std::optional<std::string> day_list = days ? std::optional<std::string>(days) : std::nullopt;
    return remote::window_rows(copy.window_column, from, day_list, days_have_null, quote_all_identifiers);
}

// Rows::Keys: the keys `keys_query` returns; the landing table's rows of them go first if the
// copy reads them again.
std::optional<std::string> keys_asked(const BulkCopy& copy, const spi::RunParams& params, const std::string& landing) {
    char* keys = nullptr;
    bool keys_have_null = false;
    const char* keys_query = copy.keys_query.c_str();
    pg_call([&] {
        keys = spi_text_value(keys_query, params);
        if (keys != nullptr) keys_have_null = has_null_element(keys);
    });
    if (keys == nullptr) return std::nullopt;  // no key asked for: nothing to copy
    const std::string asked = remote::keys_condition(copy.key_column, keys, keys_have_null, quote_all_identifiers);
    if (copy.replace_keys) {  // read again: what the stage holds of these keys goes first
        const std::string replaced = "DELETE FROM " + landing + " WHERE " + asked;
        pg_call([&] { run_local(replaced.c_str()); });
    }
    return remote::where(asked);
}

// Rows::KeysInBuckets, Rows::RowsInBuckets: the buckets `keys_query` returns.
std::optional<std::string> buckets_asked(const BulkCopy& copy, const spi::RunParams& params,
                                         const std::string& landing) {
    char* buckets = nullptr;
    const char* keys_query = copy.keys_query.c_str();
    const std::string empty_landing = "TRUNCATE " + landing;
    pg_call([&] {
        buckets = spi_text_value(keys_query, params);
        if (buckets == nullptr) run_local(empty_landing.c_str());  // no bucket differs: no key to read
    });
    if (buckets == nullptr) return std::nullopt;
    return remote::buckets_rows(copy, buckets);
}

// Rows::ChangedSinceSnapshot: the rows whose xmin is at or after the snapshot xmin the previous
// copy recorded; every row if none was.
std::string changed_since_asked(const BulkCopy& copy) {
    char* since = nullptr;
    const char* source_table = copy.source_table.c_str();
    pg_call([&] {
        Oid argtypes[1] = {TEXTOID};
        Datum args[1] = {CStringGetTextDatum(source_table)};
        if (SPI_execute_with_args("SELECT snapshot_xmin::text FROM sicoop.source_sync WHERE table_name = $1", 1, argtypes,
                                  args, nullptr, false, 1) != SPI_OK_SELECT)
            elog(ERROR, "sicoop: could not read sicoop.source_sync");
        if (SPI_processed == 1) since = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
    });
    return since == nullptr ? std::string() : remote::changed_since_rows(since);
}

// The rows the copy asks for: the WHERE clause after the table ("" for every row).
std::optional<std::string> rows_asked(const BulkCopy& copy, const spi::RunParams& params, const std::string& landing) {
    using Rows = BulkCopy::Rows;
    if (copy.rows == Rows::Window && params.has_window) return window_asked(copy, params);
    if (copy.rows == Rows::Keys) return keys_asked(copy, params, landing);
    if (copy.rows == Rows::KeysInBuckets || copy.rows == Rows::RowsInBuckets) return buckets_asked(copy, params, landing);
    if (copy.rows == Rows::ChangedSinceSnapshot) return changed_since_asked(copy);
    return std::string();
}

// ------------------------------------------------------------------------------------------
// One copy
// ------------------------------------------------------------------------------------------

// Whether this copy is wanted (its only_if query, run with the run's parameters, says true).
bool copy_wanted(const BulkCopy& copy, const spi::RunParams& params) {
    if (copy.only_if.empty()) return true;
    bool wanted = true;
    const char* only_if = copy.only_if.c_str();
    pg_call([&] {
        char* answer = spi_text_value(only_if, params);
        wanted = answer != nullptr && strcmp(answer, "t") == 0;
    });
    return wanted;
}

// Refuses the copy (RemoteRead::refused) before anything is sent.
[[noreturn]] void refuse(const RemoteTable& table, const remote::Refusal& r) {
    pg_call([&] {
        refuse_type(table.label.c_str(), r.column.c_str(), r.type.c_str(), r.need.c_str(), r.purpose.c_str(),
                    r.hint.c_str());
    });
    throw std::logic_error("unreachable");
}

// Where a copy's rows land: its target table, or, for day totals the warehouse sums itself
// (RemoteRead::day_amounts), a temporary table of the rows per day and amount.
struct Landing {
    std::string schema;
    std::string table;
    std::vector<std::string> columns;  // the columns the copy fills
    std::string quoted;                // schema.table, quoted
    std::string target;                // the copy's own target, quoted
};

Landing landing_of(const BulkCopy& copy, const remote::RemoteRead& read) {
    Landing landing;
    landing.schema = read.day_amounts ? "pg_temp" : copy.target_schema;
    landing.table = read.day_amounts ? "sicoop_day_amounts" : copy.target_table;
    landing.columns = copy.columns;
    if (copy.stamp_run_id) landing.columns.push_back("run_id");
    if (read.day_amounts) landing.columns = {"dia", "valor", "n"};
    landing.quoted = remote::quote_qualified_identifier(landing.schema, landing.table, quote_all_identifiers);
    landing.target = remote::quote_qualified_identifier(copy.target_schema, copy.target_table, quote_all_identifiers);
    return landing;
}

// Sends `command` (a COPY TO STDOUT) to the source and streams its rows into the landing table
// by COPY FROM; returns the rows copied. The raw_* table's other columns (run_id, loaded_at)
// come from their defaults.
int64 stream_copy(const BulkCopy& copy, const remote::RemoteRead& read, const Landing& landing,
                  const std::string& command, const RemoteTable& table, SourceSession& session) {
    std::vector<const char*> column_names;
    for (const auto& c : landing.columns) column_names.push_back(c.c_str());
    CopyStream reading{&session, nullptr};
    reading.filter = CopyFilter(!read.as_text, copy_masks(landing.table, landing.columns));
    const ConversionSite site{table.label.c_str(), read.converted.data(), read.converted.size(), &reading.failed};
    int64 rows = 0;
    pg_call([&] {
        const char* target_schema = landing.schema.c_str();
        const char* target_table = landing.table.c_str();
        // ("pg_temp" names this session's temporary schema.)
        Oid target_oid = RangeVarGetRelid(makeRangeVar(pstrdup(target_schema), pstrdup(target_table), -1), NoLock, true);
        if (!OidIsValid(target_oid)) elog(ERROR, "sicoop: table %s.%s is missing", target_schema, target_table);
        if (copy.truncate_first) run_local(psprintf("TRUNCATE %s", landing.target.c_str()));
        List* attnames = NIL;
        for (const char* c : column_names) attnames = lappend(attnames, makeString(pstrdup(c)));

        reading.what = psprintf("copy %s", table.label.c_str());
        stream = &reading;
        // (A copy sent early has its rows waiting: its wait starts now.)
        const bool sent_early = session.take_early(command);
        session.statement_sent();
        if (!sent_early && !PQsendQuery(reading.conn(), command.c_str())) session.fail(nullptr, reading.what);
        PGresult* res = libpqsrv_get_result(reading.conn(), PG_WAIT_EXTENSION);  // interruptible wait
        if (PQresultStatus(res) != PGRES_COPY_OUT) session.fail(res, reading.what);
        PQclear(res);

        check_may_copy_into(target_oid, target_table);
        Relation rel = table_open(target_oid, RowExclusiveLock);
        rows = copy_from(rel, attnames, read.as_text, site, read_source_stream);
        table_close(rel, NoLock);
        release_buffer();
        // COPY FROM reads to the end of the stream, where the source's verdict was taken.
        if (!reading.done) elog(ERROR, "sicoop: the copy from %s ended before the source's data did", site.table);
        stream = nullptr;
        if (read.day_amounts) sum_day_amounts(landing.target.c_str(), copy.columns, site);
    });
    return rows;
}

}  // namespace

int64 bulk_copy(const BulkCopy& copy, const spi::RunParams& params, SourceSessions& sessions) {
    if (!copy_wanted(copy, params)) return 0;
    // The table's source session (one snapshot for all its copies), and its column types there.
    SourceSession& session = sessions.for_copy(copy);
    if (copy.timing != BulkCopy::Timing::LandSent) pg_call([&] { session.require_idle(); });
    const RemoteTable table = remote_table_of(copy);
    session.open_for(copy, table);
    if (copy.capture_snapshot) session.record_snapshot();

    // What the source is asked: from the extension's own column list, and its types there.
    const remote::RemoteRead read = remote::plan_read(copy, params.run_id, session.column_types());
    if (!read.refused.empty()) refuse(table, read.refused);
    const Landing landing = landing_of(copy, read);
    if (read.day_amounts)
        pg_call([] {
            run_local("DROP TABLE IF EXISTS pg_temp.sicoop_day_amounts;"
                      " CREATE TEMP TABLE sicoop_day_amounts (dia date, valor text, n bigint) ON COMMIT DROP");
        });
    const bool catalog = copy.rows == BulkCopy::Rows::ColumnTypes;
    const std::optional<std::string> rows = catalog ? std::string() : rows_asked(copy, params, landing.quoted);
    if (!rows) return 0;  // nothing asked for
    const std::string command = catalog ? remote::column_types_copy_sql(copy.table_label, table.quoted)
                                        : remote::copy_sql(read, table.quoted, *rows);
    if (copy.timing == BulkCopy::Timing::SendOnly) {
        session.send_early(command, table.label);
        return 0;
    }
    if (copy.rows == BulkCopy::Rows::RowHashes) return compare_row_hashes(copy, command, table, session);
    return stream_copy(copy, read, landing, command, table, session);
}

}  // namespace sicoop