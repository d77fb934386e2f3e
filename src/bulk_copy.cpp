#include "bulk_copy.hpp"

#include "source.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
extern "C" {
#include "commands/copyfrom_internal.h"  // cur_attname, cur_lineno: where a conversion failed
#include "storage/ipc.h"
#include "utils/acl.h"
#include "utils/rls.h"
}
#pragma GCC diagnostic pop

#include <string>
#include <vector>

namespace sicoop {

namespace {

// ------------------------------------------------------------------------------------------
// The source's errors, as the source reported them
// ------------------------------------------------------------------------------------------

// When the statement now running on the source was sent: a cancel after sicoop.source_timeout
// is that timeout, whatever language the source's messages are in.
TimestampTz statement_sent_at = 0;

// A copy of a text from the source with card numbers masked (palloc'd), or nullptr.
char* masked(const char* text) {
    if (text == nullptr || text[0] == '\0') return nullptr;
    char* copy = nullptr;
    try {
        const std::string m = redact_card_numbers(text);
        copy = static_cast<char*>(palloc_extended(m.size() + 1, MCXT_ALLOC_NO_OOM));
        if (copy != nullptr) memcpy(copy, m.c_str(), m.size() + 1);
    } catch (...) {
        copy = nullptr;
    }
    return copy ? copy : pstrdup("(withheld: it could not be checked for card numbers)");
}

// What the source said of a failed statement (or libpq, when no result came back).
struct SourceReport {
    char* sqlstate;  // nullptr when libpq alone speaks
    char* message;
    char* detail;
    char* hint;
};

SourceReport source_report(PGconn* conn, const PGresult* res) {
    SourceReport r{nullptr, nullptr, nullptr, nullptr};
    if (res != nullptr && PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) != nullptr) {
        const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state != nullptr && strlen(state) == 5) r.sqlstate = pstrdup(state);
        r.message = masked(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
        r.detail = masked(PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL));
        r.hint = masked(PQresultErrorField(res, PG_DIAG_MESSAGE_HINT));
    }
    if (r.message == nullptr) r.message = masked(pchomp(PQerrorMessage(conn)));
    if (r.message == nullptr) r.message = pstrdup("no error message");
    return r;
}

// "the source said: <message> (SQLSTATE xxxxx): <detail>", for the detail of a sicoop error.
char* said(const SourceReport& r) {
    return psprintf("The source said: %s%s%s%s%s.", r.message, r.sqlstate ? " (SQLSTATE " : "", r.sqlstate ? r.sqlstate : "",
                    r.sqlstate ? ")" : "", r.detail ? psprintf(": %s", r.detail) : "");
}

bool timed_out(const SourceReport& r) {
    if (r.message != nullptr && strstr(r.message, "statement timeout") != nullptr) return true;
    return source_timeout_setting > 0 && statement_sent_at != 0 &&
           GetCurrentTimestamp() - statement_sent_at >= static_cast<int64>(source_timeout_setting) * 1000;
}

// Raises the error of a failed source statement with the source's own SQLSTATE, message,
// detail and hint (card numbers masked), saying what really happened: the connection lost
// (the source session terminated, the server gone), sicoop.source_timeout reached by the
// statement (statement timeout) or by a lock wait there (lock timeout), a cancel at the
// source, or a refusal. `res` may be null (no result came back); it is freed.
[[noreturn]] void source_error(PGconn* conn, PGresult* res, const char* what) {
    const SourceReport r = source_report(conn, res);
    const bool lost = PQstatus(conn) == CONNECTION_BAD || (r.sqlstate && strncmp(r.sqlstate, "57P", 3) == 0);
    PQclear(res);
    if (lost)
        ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
                        errmsg("sicoop: the connection to the source was lost while trying to %s", what),
                        errdetail_internal("%s", said(r))));
    if (r.sqlstate && strcmp(r.sqlstate, "55P03") == 0)
        ereport(ERROR, (errcode(ERRCODE_LOCK_NOT_AVAILABLE),
                        errmsg("sicoop: trying to %s, the source's lock timeout expired: a lock there was held longer "
                               "than sicoop.source_timeout (%d ms)", what, source_timeout_setting),
                        errdetail_internal("%s", said(r)),
                        errhint("A session at the source holds a lock on the table: see pg_locks there.")));
    if (r.sqlstate && strcmp(r.sqlstate, "57014") == 0 && timed_out(r))
        ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED),
                        errmsg("sicoop: trying to %s, the source's statement timeout expired: the statement ran longer "
                               "than sicoop.source_timeout (%d ms)", what, source_timeout_setting),
                        errdetail_internal("%s", said(r)),
                        errhint("Raise sicoop.source_timeout (0: no limit), or find what slows the source down.")));
    if (r.sqlstate && strcmp(r.sqlstate, "57014") == 0)
        ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED),
                        errmsg("sicoop: trying to %s, the statement was cancelled at the source", what),
                        errdetail_internal("%s", said(r))));
    // Anything else: the source's own error, under its own SQLSTATE.
    ereport(ERROR, (r.sqlstate ? errcode(MAKE_SQLSTATE(r.sqlstate[0], r.sqlstate[1], r.sqlstate[2], r.sqlstate[3],
                                                       r.sqlstate[4]))
                               : errcode(ERRCODE_CONNECTION_EXCEPTION),
                    errmsg("sicoop: the source refused to %s: %s", what, r.message),
                    r.detail ? errdetail_internal("%s", r.detail) : 0, r.hint ? errhint("%s", r.hint) : 0));
    pg_unreachable();
}

// ------------------------------------------------------------------------------------------
// The stream: the source's COPY TO STDOUT feeding this backend's COPY FROM
// ------------------------------------------------------------------------------------------

// COPY FROM's data-source callback has no user argument: the stream being read is here.
struct CopyStream {
    PGconn* conn;
    const char* what;  // "copy public.cartao", for its errors
    char* buffer;      // the current CopyData message (libpq's memory)
    int length;
    int offset;
    bool done;         // the source ended the copy and said it succeeded
    bool failed;       // the error being raised is the source's (not the warehouse's conversion)
};
CopyStream stream;

void release_buffer() {
    if (stream.buffer) PQfreemem(stream.buffer);
    stream.buffer = nullptr;
    stream.length = stream.offset = 0;
}

[[noreturn]] void stream_error(PGresult* res) {
    stream.failed = true;
    source_error(stream.conn, res, stream.what);
}

// The end of the copy: the source's verdict on it, read at once. A source that failed
// mid-stream (a statement timeout, a cancel, an error of its own) is reported as such here,
// before the warehouse's COPY FROM could take the cut stream for a malformed file.
void end_of_copy() {
    PGresult* res = libpqsrv_get_result(stream.conn, PG_WAIT_EXTENSION);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) stream_error(res);
    PQclear(res);
    // Drain to the end of the command before anything else is sent.
    while ((res = libpqsrv_get_result(stream.conn, PG_WAIT_EXTENSION)) != nullptr) PQclear(res);
    stream.done = true;
}

// Waits for the next CopyData message without blocking interrupts (pg_cancel_backend works).
bool next_message() {
    release_buffer();
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        char* buf = nullptr;
        int n = PQgetCopyData(stream.conn, &buf, 1 /* async */);
        if (n > 0) {
            stream.buffer = buf;
            stream.length = n;
            stream.offset = 0;
            return true;
        }
        if (n == -1) {
            end_of_copy();
            return false;
        }
        if (n == -2) stream_error(libpqsrv_get_result(stream.conn, PG_WAIT_EXTENSION));
        (void) WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_SOCKET_READABLE | WL_EXIT_ON_PM_DEATH,
                                 PQsocket(stream.conn), -1L, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        if (PQconsumeInput(stream.conn) == 0) stream_error(nullptr);
    }
}

// Hands COPY FROM at least minread bytes (fewer only at the end of the stream).
extern "C" int read_source_stream(void* outbuf, int minread, int maxread) {
    int copied = 0;
    while (copied < minread && !stream.done) {
        if (stream.offset >= stream.length && !next_message()) break;
        int n = Min(stream.length - stream.offset, maxread - copied);
        memcpy(static_cast<char*>(outbuf) + copied, stream.buffer + stream.offset, n);
        stream.offset += n;
        copied += n;
    }
    return copied;
}

// ------------------------------------------------------------------------------------------
// The source session
// ------------------------------------------------------------------------------------------

// Foreign table sicoop.<name>'s remote schema and table, as connect_source() set them.
void remote_name(const char* foreign_table, char** schema, char** table) {
    Oid relid = get_relname_relid(foreign_table, get_namespace_oid("sicoop", false));
    if (!OidIsValid(relid)) elog(ERROR, "sicoop: foreign table sicoop.%s is missing", foreign_table);
    ForeignTable* ft = GetForeignTable(relid);
    *schema = pstrdup("public");
    *table = pstrdup(foreign_table);
    ListCell* lc;
    foreach (lc, ft->options) {
        DefElem* d = lfirst_node(DefElem, lc);
        if (strcmp(d->defname, "schema_name") == 0) *schema = defGetString(d);
        if (strcmp(d->defname, "table_name") == 0) *table = defGetString(d);
    }
}

// Runs a statement on the source ($1 = `param`, if given); its result, or the source's error.
PGresult* remote_exec(PGconn* conn, const char* sql, const char* param, const char* what) {
    statement_sent_at = GetCurrentTimestamp();
    const char* params[1] = {param};
    PGresult* res = param ? libpqsrv_exec_params(conn, sql, 1, nullptr, params, nullptr, nullptr, 0, PG_WAIT_EXTENSION)
                          : libpqsrv_exec(conn, sql, PG_WAIT_EXTENSION);
    if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK) source_error(conn, res, what);
    return res;
}

// Runs a simple statement on the source and returns its first value (palloc'd), or nullptr.
char* remote_value(PGconn* conn, const char* sql, const char* what) {
    PGresult* res = remote_exec(conn, sql, nullptr, what);
    char* value = PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ? pstrdup(PQgetvalue(res, 0, 0)) : nullptr;
    PQclear(res);
    return value;
}

// The source session of the table being loaded: every copy of one source table in a step reads
// the same snapshot (one REPEATABLE READ transaction), so the rows, the re-read keys, the day
// totals and the snapshot recorded for the next run agree with each other.
struct SourceSession {
    PGconn* conn = nullptr;
    std::string source_table;      // foreign table (src_*)
    std::string snapshot_xmin;     // the snapshot's xmin, recorded in source_sync at the end
    std::string watermark;         // movements: the latest movement time in the snapshot
    bool has_watermark = false;
    bool record_snapshot = false;
    // The table's columns at the source: name, type (format_type without typmod). The table is
    // locked against changes to its definition until the session ends, so they hold.
    PGresult* column_types = nullptr;
};
SourceSession session;

// Closes the session's connection, as it was opened (libpqsrv_*: its external FD released).
void close_session() {
    PQclear(session.column_types);
    PGconn* conn = session.conn;
    session = SourceSession{};
    libpqsrv_disconnect(conn);
}

// A source column's type (format_type, no typmod), or "" if the source has no such column.
std::string source_type(const std::string& column) {
    PGresult* types = session.column_types;
    for (int i = 0; types != nullptr && i < PQntuples(types); ++i)
        if (column == PQgetvalue(types, i, 0)) return PQgetvalue(types, i, 1);
    return "";
}

bool is_time(const std::string& type) {
    return type == "timestamp without time zone" || type == "timestamp with time zone" || type == "date";
}

bool is_number(const std::string& type) {
    return type == "numeric" || type == "smallint" || type == "integer" || type == "bigint" || type == "real" ||
           type == "double precision";
}

// Refuses, before anything is sent, a copy that would need the source to cast a value in a way
// that may fail on it (the failed statement would put the value in the source's log).
[[noreturn]] void refuse_type(const char* table, const char* column, const char* type, const char* needed,
                              const char* purpose, const char* hint) {
    ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                    errmsg("sicoop: cannot %s: the source's column %s.%s is %s, not %s", purpose, table, column,
                           type[0] ? type : "missing", needed),
                    errdetail("The warehouse never has the source cast a value in a way that may fail on it."),
                    errhint("%s", hint)));
    pg_unreachable();
}

// Sends libpq's cancel for the statement the source session is running, if any. Never raises.
void cancel_source_statement() {
    if (session.conn == nullptr || PQtransactionStatus(session.conn) != PQTRANS_ACTIVE) return;
    if (PGcancel* cancel = PQgetCancel(session.conn)) {
        char errbuf[256];
        (void) PQcancel(cancel, errbuf, sizeof errbuf);
        PQfreeCancel(cancel);
    }
}

// At backend exit (pg_terminate_backend, a FATAL error, the end of the session), when no error
// handling ran: the source's statement is cancelled, so the source session ends with this
// backend instead of waiting on there until sicoop.source_timeout. (A crash runs no exit
// callback: then the source-side timeout alone ends it.)
void cancel_source_at_exit(int, Datum) { cancel_source_statement(); }

// Ends the session: closes the source transaction and records what the next run starts from.
void finish_session() {
    if (session.conn == nullptr) return;
    remote_value(session.conn, "COMMIT", "commit");
    if (session.record_snapshot) {
        Oid argtypes[3] = {TEXTOID, INT8OID, TEXTOID};
        Datum args[3] = {CStringGetTextDatum(session.source_table.c_str()),
                         DirectFunctionCall1(int8in, CStringGetDatum(session.snapshot_xmin.c_str())),
                         session.has_watermark ? CStringGetTextDatum(session.watermark.c_str()) : (Datum) 0};
        const char nulls[3] = {' ', ' ', session.has_watermark ? ' ' : 'n'};
        if (SPI_execute_with_args("INSERT INTO sicoop.source_sync (table_name, snapshot_xmin, watermark)"
                                  " VALUES ($1, $2, $3::timestamp)"
                                  " ON CONFLICT (table_name) DO UPDATE"
                                  " SET snapshot_xmin = EXCLUDED.snapshot_xmin, copied_at = now(),"
                                  " watermark = coalesce(EXCLUDED.watermark, source_sync.watermark)",
                                  3, argtypes, args, nulls, false, 0) != SPI_OK_INSERT)
            elog(ERROR, "sicoop: could not record the source snapshot");
    }
    close_session();
}

// Opens the session of a source table (ending another table's first).
void open_session(const BulkCopy& copy, const char* remote, const char* remote_label) {
    if (session.conn != nullptr && session.source_table == copy.source_table) return;
    finish_session();
    static bool exit_callback_registered = false;
    if (!exit_callback_registered) {
        before_shmem_exit(cancel_source_at_exit, (Datum) 0);
        exit_callback_registered = true;
    }
    PGconn* conn = source::open_connection();
    session.conn = conn;
    session.source_table = copy.source_table;
    remote_value(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "open a transaction");
    // The table's definition holds until the session ends (as pg_dump holds its tables): the
    // catalog the first copy reads is the one every later copy's casts rely on, so a column
    // altered at the source in between cannot be cut or rounded on its way into raw. Waits at
    // most sicoop.source_timeout behind a DDL that holds the table.
    remote_value(conn, psprintf("LOCK TABLE %s IN ACCESS SHARE MODE", remote), "lock the table against changes to its definition");
    session.column_types = remote_exec(conn, R"sql(
SELECT a.attname::text, format_type(a.atttypid, NULL) FROM pg_attribute a
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped)sql", remote, "read the table's column types");
    char* xmin = remote_value(conn, "SELECT txid_snapshot_xmin(txid_current_snapshot())::text", "report its snapshot");
    session.snapshot_xmin = xmin ? xmin : "0";
    if (!copy.watermark_column.empty()) {
        const char* column = copy.watermark_column.c_str();
        // max() of a time, as text: total (the warehouse reads it back as a timestamp).
        if (!is_time(source_type(column)))
            refuse_type(remote_label, column, source_type(column).c_str(), "a date or time",
                        "take the movements' latest time", "Give the column type timestamp at the source.");
        char* watermark = remote_value(conn, psprintf("SELECT max(%s)::text FROM %s", quote_identifier(column), remote),
                                       "report its latest movement time");
        session.has_watermark = watermark != nullptr;
        if (watermark) session.watermark = watermark;
    }
}

// ------------------------------------------------------------------------------------------
// What the source is asked: expressions that cannot fail on a value
// ------------------------------------------------------------------------------------------

// A type without its typmod: "varchar(50)" -> "varchar".
std::string base_type(const std::string& type) { return type.substr(0, type.find('(')); }

// Whether the source casts a value of its type `from` (format_type, no typmod) to `to` (a base
// type) without ever failing: then the cast runs at the source, and the value travels in the
// warehouse's binary format. The total casts, and why:
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

// A column the warehouse converts itself: it travels as text.
struct Conversion {
    std::string column;
    std::string from;  // its type at the source
    std::string to;    // the warehouse's
};

// What the source is asked for one copy: COPY (SELECT <select> FROM <table> <rows> <suffix>).
struct RemoteRead {
    std::string select;
    std::string suffix;                  // after the rows asked for: grouping
    bool as_text = false;                // COPY in text format (a column travels as text)
    std::vector<Conversion> converted;   // those columns
    // Day totals whose amounts are no numbers at the source: it counts the rows per day and
    // amount as written (the amount as text), and the warehouse sums them (sum_day_amounts).
    bool day_amounts = false;
    // Nothing is sent: the copy is refused, saying which column makes it impossible.
    std::string refused_column, refused_type, refused_need, refused_purpose, refused_hint;
};

// The source's column `column` read as warehouse type `type`: the cast, if it is total; else
// the column as text, converted in the warehouse.
std::string read_as(const std::string& column, const std::string& type, RemoteRead& read) {
    const std::string from = source_type(column);
    if (total_cast(from, base_type(type))) return column + "::" + base_type(type);
    read.as_text = true;
    read.converted.push_back({column, from, type});
    return column + "::text";
}

// Refuses the copy unless `column`'s type at the source passes `ok` (the first refusal stands).
void require(RemoteRead& read, const std::string& column, bool (*ok)(const std::string&), const char* need,
             const char* purpose, const char* hint) {
    if (!read.refused_column.empty() || ok(source_type(column))) return;
    read.refused_column = column;
    read.refused_type = source_type(column);
    read.refused_need = need;
    read.refused_purpose = purpose;
    read.refused_hint = hint;
}

// The source table a copy reads, as the pipeline describes it (src_<name>).
const SourceTable* table_of(const BulkCopy& copy) {
    for (const SourceTable& t : source_tables())
        if ("src_" + t.name == copy.source_table) return &t;
    return nullptr;
}

// A row checksum hashes every column of the table as the stage reads it (row_hash_sql):
// each must reach its stage type by a total cast.
void require_hashable(RemoteRead& read, const BulkCopy& copy) {
    const SourceTable* t = table_of(copy);
    for (size_t i = 0; t != nullptr && i < t->columns.size() && read.refused_column.empty(); ++i) {
        const auto& [column, type] = t->columns[i];
        const std::string wide = type.rfind("varchar", 0) == 0 ? "text" : base_type(type);  // raw.cpp's stage_type
        if (total_cast(source_type(column), wide)) continue;
        read.refused_column = column;
        read.refused_type = source_type(column);
        read.refused_need = wide;
        read.refused_purpose = "compare the table by row checksums (a full run)";
        read.refused_hint = "SET sicoop.full_run = 'rebuild' for the run: it reads every row, and the warehouse converts "
                            "them. Or give the column the warehouse's type at the source.";
    }
}

constexpr const char* kTimeHint = "Give the column type timestamp at the source.";
constexpr const char* kAmountHint = "Give the column a numeric type at the source.";
// The sum of a day's amounts: the finite ones (NaN and +-Infinity are left out of the sum, as
// sicoop._reconcile sums the fact's and the rejects'; their rows still count).
constexpr const char* kFiniteSum = "coalesce(sum(v) FILTER (WHERE v < 'Infinity'::numeric AND v > '-Infinity'::numeric), 0)::numeric";

RemoteRead plan_read(const BulkCopy& copy, int64 run_id) {
    using Rows = BulkCopy::Rows;
    RemoteRead read;
    const std::string& key = copy.key_column;
    const std::string& day = copy.window_column;
    // Hashes of key::text (hashtext is total), counts, and sums of bigints as numeric: total.
    if (copy.rows == Rows::KeyChecksums) {
        read.select = key_bucket_sql(key) + "::int, count(*)::bigint, sum(" + key_hash_sql(key) + ")::numeric";
        read.suffix = " GROUP BY 1";
    } else if (copy.rows == Rows::KeysInBuckets) {
        read.select = key + "::text";
    } else if (copy.rows == Rows::RowChecksumsAndDayTotals) {
        // One scan of the source for both: grouping sets, told apart by GROUPING().
        require(read, day, is_time, "a date or time", "sum the movements per day", kTimeHint);
        require(read, "valor_movimentacao", is_number, "a number", "sum the movements per day", kAmountHint);
        require_hashable(read, copy);
        read.select = "GROUPING(b, d)::int, b, d, count(*)::bigint, sum(h)::numeric, " + std::string(kFiniteSum) +
                      " FROM (SELECT " + row_bucket_sql(key, copy.bucket_bits) + " AS b, " + day + "::date AS d, " +
                      copy.row_hash + " AS h, valor_movimentacao::numeric AS v";
        read.suffix = ") s GROUP BY GROUPING SETS ((b), (d))";
    } else if (copy.rows == Rows::RowChecksums) {
        require_hashable(read, copy);
        read.select = row_bucket_sql(key, copy.bucket_bits) + "::int, count(*)::bigint, sum(" + copy.row_hash + ")::numeric";
        read.suffix = " GROUP BY 1";
    } else if (copy.rows == Rows::DayTotals) {
        require(read, day, is_time, "a date or time", "sum the movements per day", kTimeHint);
        if (is_number(source_type("valor_movimentacao"))) {
            read.select = day + "::date, count(*)::bigint, " + std::string(kFiniteSum) + " FROM (SELECT " + day +
                          ", valor_movimentacao::numeric AS v";
            read.suffix = ") s GROUP BY 1";
        } else {
            read.day_amounts = true;
            read.as_text = true;
            read.converted.push_back({"valor_movimentacao", source_type("valor_movimentacao"), "numeric"});
            read.select = day + "::date, valor_movimentacao::text, count(*)::bigint";
            read.suffix = " GROUP BY 1, 2";
        }
    } else if (copy.rows != Rows::ColumnTypes) {
        if (copy.rows == Rows::Window)  // compared with a timestamp, and its day with dates
            require(read, day, is_time, "a date or time", "read the movements' window", kTimeHint);
        if (copy.types.size() != copy.columns.size()) throw std::logic_error("bulk copy of " + copy.source_table + ": one type per column");
        for (size_t i = 0; i < copy.columns.size(); ++i)
            read.select += (i ? ", " : "") + read_as(copy.columns[i], copy.types[i], read);
    }
    if (copy.stamp_run_id)  // the run's id, a number of ours: the rows land in raw stamped
        read.select += ", " + std::to_string(run_id) + "::bigint";
    return read;
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

void run_local(const char* sql) {
    int rc = SPI_execute(sql, false, 0);
    if (rc != SPI_OK_UTILITY && rc != SPI_OK_DELETE && rc != SPI_OK_INSERT) elog(ERROR, "sicoop: %s failed", sql);
}

// An error message without the values it quotes ("invalid input syntax for type date: "…""):
// the warehouse's log gets no more of a row than the source's does.
char* without_values(const char* message) {
    StringInfoData out;
    initStringInfo(&out);
    bool quoted = false;
    for (const char* c = message ? message : ""; *c; ++c) {
        if (*c == '"') {
            appendStringInfoString(&out, quoted ? "\"" : "\"...");
            quoted = !quoted;
        } else if (!quoted) {
            appendStringInfoChar(&out, *c);
        }
    }
    if (quoted) appendStringInfoChar(&out, '"');
    return out.data;
}

// Where the warehouse converts columns a copy carries as text (RemoteRead::converted).
struct ConversionSite {
    const char* table;           // the source's schema.table
    const Conversion* columns;
    size_t count;
};

// Called in PG_CATCH: if the error is the warehouse's failure to convert a value of a column it
// converts, raises it again saying which source column and why, without the value. Returns
// otherwise (the caller re-throws the error as it is).
void explain_conversion_error(const ConversionSite& site, const char* attname, uint64 line, MemoryContext cxt) {
    MemoryContext error_cxt = MemoryContextSwitchTo(cxt);
    ErrorData* e = CopyErrorData();
    MemoryContextSwitchTo(error_cxt);
    const Conversion* c = nullptr;
    for (size_t i = 0; i < site.count; ++i)
        if (attname == nullptr ? site.count == 1 : site.columns[i].column == attname) c = &site.columns[i];
    if (c == nullptr || stream.failed || ERRCODE_TO_CATEGORY(e->sqlerrcode) != ERRCODE_DATA_EXCEPTION) return;
    FlushErrorState();
    const char* where = line > 0 ? psprintf(" (line %llu of the copy)", static_cast<unsigned long long>(line)) : "";
    ereport(ERROR, (errcode(e->sqlerrcode),
                    errmsg("sicoop: a value of the source's column %s.%s (%s there) is not a valid %s: %s", site.table,
                           c->column.c_str(), c->from.empty() ? "of unknown type" : c->from.c_str(), c->to.c_str(),
                           without_values(e->message)),
                    errdetail("The warehouse converts the column itself%s: no value of it is cast at the source.", where),
                    errhint("Fix the value at the source, or give the column type %s there.", c->to.c_str())));
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

// The rows of the source's copy, streamed into `rel` by COPY FROM; conversion errors explained.
int64 copy_from_stream(Relation rel, List* attnames, bool as_text, const ConversionSite& site) {
    ParseState* pstate = make_parsestate(nullptr);
    (void) addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock, nullptr, false, false);
    List* options = as_text ? NIL : list_make1(makeDefElem(pstrdup("format"), (Node*) makeString(pstrdup("binary")), -1));
    CopyFromState cstate = BeginCopyFrom(pstate, rel, nullptr, nullptr, false, read_source_stream, attnames, options);
    MemoryContext cxt = CurrentMemoryContext;
    int64 rows = 0;
    PG_TRY();
    { rows = static_cast<int64>(CopyFrom(cstate)); }
    PG_CATCH();
    {
        if (as_text) explain_conversion_error(site, cstate->cur_attname, cstate->cur_lineno, cxt);
        PG_RE_THROW();
    }
    PG_END_TRY();
    EndCopyFrom(cstate);
    return rows;
}

// The rows the copy asks for: the WHERE clause after the table (literals quoted; identifiers
// are the extension's). Every expression in it is total: comparisons of the key as text, of a
// time with a timestamp, of a time's day with dates, of xmin's age with a number of ours.
// Returns nullptr when nothing is to be copied.
const char* rows_asked(const BulkCopy& copy, const spi::RunParams& params, const char* target) {
    using Rows = BulkCopy::Rows;
    const char* window_column = quote_identifier(copy.window_column.c_str());
    const char* key_column = quote_identifier(copy.key_column.c_str());
    const char* keys_query = copy.keys_query.c_str();
    if (copy.rows == Rows::Window && params.has_window) {
        // ±infinity has no to_char(): NULL, which must never reach quote_literal_cstr().
        char* from = spi_text_value("SELECT to_char($5, 'YYYY-MM-DD HH24:MI:SS.US')", params);
        if (from == nullptr)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("sicoop: the movements' window has no finite start"),
                            errhint("Check sicoop.as_of and sicoop.lookback.")));
        const char* tail = psprintf(" WHERE %s >= %s::timestamp", window_column, quote_literal_cstr(from));
        // ...and the whole of the days asked for (days before the window that changed).
        char* days = keys_query[0] ? spi_text_value(keys_query, params) : nullptr;
        if (days != nullptr) {
            tail = psprintf("%s OR %s::date = ANY (%s::date[])", tail, window_column, quote_literal_cstr(days));
            if (has_null_element(days)) tail = psprintf("%s OR %s IS NULL", tail, window_column);
        }
        return tail;
    }
    if (copy.rows == Rows::Keys) {
        char* keys = spi_text_value(keys_query, params);
        if (keys == nullptr) return nullptr;  // no key asked for: nothing to copy
        const char* asked = psprintf("%s::text = ANY (%s::text[])%s", key_column, quote_literal_cstr(keys),
                                     has_null_element(keys) ? psprintf(" OR %s IS NULL", key_column) : "");
        if (copy.replace_keys)  // read again: what the stage holds of these keys goes first
            run_local(psprintf("DELETE FROM %s WHERE %s", target, asked));
        return psprintf(" WHERE %s", asked);
    }
    if (copy.rows == Rows::KeysInBuckets || copy.rows == Rows::RowsInBuckets) {
        char* buckets = spi_text_value(keys_query, params);
        if (buckets == nullptr) {  // no bucket differs: no key to read
            run_local(psprintf("TRUNCATE %s", target));
            return nullptr;
        }
        const std::string& key = copy.key_column;
        const char* bucket = copy.rows == Rows::RowsInBuckets ? pstrdup(row_bucket_sql(key, copy.bucket_bits).c_str())
                                                              : pstrdup(key_bucket_sql(key).c_str());
        return psprintf(" WHERE %s = ANY (%s::int[])", bucket, quote_literal_cstr(buckets));
    }
    if (copy.rows == Rows::ChangedSinceSnapshot) {
        // Rows whose xmin is at or after the snapshot xmin the previous copy recorded
        // (frozen rows are old: their age is the largest there is).
        Oid argtypes[1] = {TEXTOID};
        Datum args[1] = {CStringGetTextDatum(copy.source_table.c_str())};
        if (SPI_execute_with_args("SELECT snapshot_xmin::text FROM sicoop.source_sync WHERE table_name = $1", 1, argtypes,
                                  args, nullptr, false, 1) != SPI_OK_SELECT)
            elog(ERROR, "sicoop: could not read sicoop.source_sync");
        if (SPI_processed != 1) return "";
        char* since = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
        // Both ages count back from the same transaction id; a recorded snapshot the source
        // has not reached yet (another source, or a restore) means "read all".
        return psprintf(" WHERE %s::bigint >= txid_snapshot_xmax(txid_current_snapshot())"
                        " OR age(xmin) <= age((%s::bigint %% 4294967296)::text::xid)",
                        quote_literal_cstr(since), quote_literal_cstr(since));
    }
    return "";
}

// The source's catalog: each column's type, and whether a unique index (total, valid, on that
// column alone) guarantees its values. (The literals are ours; format_type is total.)
char* column_types_command(const char* table_label, const char* remote) {
    return psprintf(R"sql(COPY (SELECT %s::text, a.attname::text, format_type(a.atttypid, a.atttypmod),
 EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique AND i.indisvalid
 AND i.indnatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL), a.attnotnull
 FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped) TO STDOUT (FORMAT binary))sql",
                    quote_literal_cstr(table_label), quote_literal_cstr(remote));
}

// What COPY FROM checks before it writes (DoCopy): the caller may insert into the table, and no
// row-level security applies to it (COPY FROM refuses RLS too).
void check_may_copy_into(Oid target_oid, const char* target_table) {
    AclResult acl = pg_class_aclcheck(target_oid, GetUserId(), ACL_INSERT);
    if (acl != ACLCHECK_OK) aclcheck_error(acl, OBJECT_TABLE, get_rel_name(target_oid));
    if (check_enable_rls(target_oid, InvalidOid, false) == RLS_ENABLED)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("sicoop: table sicoop.%s has row-level security enabled, which the bulk copy "
                               "(as COPY FROM) does not support", target_table)));
}

}  // namespace

void end_source_session() {
    pg_call([] { finish_session(); });
}

void abort_source_session() {
    if (session.conn == nullptr) return;
    release_buffer();
    stream = CopyStream{};
    // A statement still running on the source (a COPY, or one waiting on a lock) is cancelled
    // there too, not left to run on after the run has given up.
    cancel_source_statement();
    close_session();
}

int64 bulk_copy(const BulkCopy& copy, const spi::RunParams& params) {
    using Rows = BulkCopy::Rows;
    // Whether this copy is wanted; then the table's source session, and its column types.
    bool wanted = true;
    char* remote_schema = nullptr;
    char* remote_table = nullptr;
    const char* remote = nullptr;
    const char* remote_label = nullptr;
    pg_call([&] {
        if (!copy.only_if.empty()) {
            char* answer = spi_text_value(copy.only_if.c_str(), params);
            wanted = answer != nullptr && strcmp(answer, "t") == 0;
        }
        if (!wanted) return;  // this copy is not the one wanted
        remote_name(copy.source_table.c_str(), &remote_schema, &remote_table);
        remote = quote_qualified_identifier(remote_schema, remote_table);
        remote_label = psprintf("%s.%s", remote_schema, remote_table);
        open_session(copy, remote, remote_label);
        if (copy.capture_snapshot) session.record_snapshot = true;
    });
    if (!wanted) return 0;

    // What the source is asked: from the extension's own column list, and its types there.
    const RemoteRead read = plan_read(copy, params.run_id);
    if (!read.refused_column.empty())
        pg_call([&] {
            refuse_type(remote_label, read.refused_column.c_str(), read.refused_type.c_str(), read.refused_need.c_str(),
                        read.refused_purpose.c_str(), read.refused_hint.c_str());
        });
    std::vector<std::string> target_columns = copy.columns;
    if (copy.stamp_run_id) target_columns.push_back("run_id");
    const char* target_schema = read.day_amounts ? "pg_temp" : copy.target_schema.c_str();
    const char* target_table = read.day_amounts ? "sicoop_day_amounts" : copy.target_table.c_str();
    if (read.day_amounts) target_columns = {"dia", "valor", "n"};
    std::vector<const char*> column_names;
    for (const auto& c : target_columns) column_names.push_back(c.c_str());
    const ConversionSite site{remote_label, read.converted.data(), read.converted.size()};
    int64 rows = 0;

    pg_call([&] {
        const char* target = quote_qualified_identifier(copy.target_schema.c_str(), copy.target_table.c_str());
        const char* landing = quote_qualified_identifier(target_schema, target_table);
        if (read.day_amounts)
            run_local("DROP TABLE IF EXISTS pg_temp.sicoop_day_amounts;"
                      " CREATE TEMP TABLE sicoop_day_amounts (dia date, valor text, n bigint) ON COMMIT DROP");
        const char* tail = copy.rows == Rows::ColumnTypes ? "" : rows_asked(copy, params, landing);
        if (tail == nullptr) return;  // nothing asked for
        char* command = copy.rows == Rows::ColumnTypes
                            ? column_types_command(copy.table_label.c_str(), remote)
                            : psprintf("COPY (SELECT %s FROM %s%s%s) TO STDOUT%s", read.select.c_str(), remote, tail,
                                       read.suffix.c_str(), read.as_text ? "" : " (FORMAT binary)");

        // ("pg_temp" names this session's temporary schema.)
        Oid target_oid = RangeVarGetRelid(makeRangeVar(pstrdup(target_schema), pstrdup(target_table), -1), NoLock, true);
        if (!OidIsValid(target_oid)) elog(ERROR, "sicoop: table %s.%s is missing", target_schema, target_table);
        if (copy.truncate_first) run_local(psprintf("TRUNCATE %s", target));
        // The target's columns this copy fills (raw_* also has run_id and loaded_at, from defaults).
        List* attnames = NIL;
        for (const char* c : column_names) attnames = lappend(attnames, makeString(pstrdup(c)));

        const char* what = psprintf("copy %s", remote_label);
        stream = CopyStream{session.conn, what, nullptr, 0, 0, false, false};
        statement_sent_at = GetCurrentTimestamp();
        PGresult* res = nullptr;
        if (PQsendQuery(stream.conn, command))
            res = libpqsrv_get_result(stream.conn, PG_WAIT_EXTENSION);  // interruptible wait
        if (PQresultStatus(res) != PGRES_COPY_OUT) source_error(stream.conn, res, what);
        PQclear(res);
        if (!copy.while_source_works.empty() && SPI_execute(copy.while_source_works.c_str(), false, 0) < 0)
            elog(ERROR, "sicoop: could not run %s", copy.while_source_works.c_str());

        check_may_copy_into(target_oid, target_table);
        Relation rel = table_open(target_oid, RowExclusiveLock);
        rows = copy_from_stream(rel, attnames, read.as_text, site);
        table_close(rel, NoLock);
        release_buffer();
        // COPY FROM reads to the end of the stream, where the source's verdict was taken.
        if (!stream.done) elog(ERROR, "sicoop: the copy from %s ended before the source's data did", remote_label);
        stream = CopyStream{};
        if (read.day_amounts) sum_day_amounts(target, copy.columns, site);
    });
    return rows;
}

}  // namespace sicoop
