#include "bulk_copy.hpp"

#include "source.hpp"
#include "steps/copy_filter.hpp"
#include "steps/remote_query.hpp"


#include <optional>
#include <stdexcept>
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
    const char* data;  // what COPY FROM is handed of it: the message, or the filter's rewrite
};
CopyStream stream;
// Every byte from the source passes through it before COPY FROM sees it: card numbers are
// masked in memory, before the first write (steps/copy_filter.hpp).
CopyFilter stream_filter;

void release_buffer() {
    if (stream.buffer) PQfreemem(stream.buffer);
    stream.buffer = nullptr;
    stream.data = nullptr;
    stream.length = stream.offset = 0;
}

// What COPY FROM gets of `bytes`: the filter's output (C++ memory errors raised as PG's, out
// of the catch: this runs inside COPY FROM's callback).
std::string_view filtered(std::string_view bytes, bool at_end) {
    std::string_view out;
    bool failed = false;
    try {
        out = at_end ? stream_filter.finish() : stream_filter.feed(bytes);
    } catch (...) {
        failed = true;
    }
    if (failed)
        ereport(ERROR,
                (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("sicoop: out of memory masking the copy from the source")));
    return out;
}

void hand_over(std::string_view bytes) {
    stream.data = bytes.data();
    stream.length = static_cast<int>(bytes.size());
    stream.offset = 0;
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

// Waits for the next CopyData message without blocking interrupts (pg_cancel_backend works),
// and hands over what the filter makes of it (a message that ends no row yet: the next one).
bool next_message() {
    release_buffer();
    if (stream.done) return false;
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        char* buf = nullptr;
        int n = PQgetCopyData(stream.conn, &buf, 1 /* async */);
        if (n > 0) {
            stream.buffer = buf;
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
    while (copied < minread) {
        if (stream.offset >= stream.length && !next_message()) break;
        int n = Min(stream.length - stream.offset, maxread - copied);
        memcpy(static_cast<char*>(outbuf) + copied, stream.data + stream.offset, n);
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

// The snapshot every source session imports, if set (a stream's initial sync: the one its new
// replication slot exported, so the copy and the stream meet with no gap and no overlap).
std::string imported_snapshot;

// Closes the session's connection, as it was opened (libpqsrv_*: its external FD released).
void close_session() {
    PQclear(session.column_types);
    PGconn* conn = session.conn;
    session = SourceSession{};
    libpqsrv_disconnect(conn);
}

// The table's columns at the source, as the session read them.
remote::ColumnTypes session_column_types() {
    remote::ColumnTypes types;
    PGresult* r = session.column_types;
    for (int i = 0; r != nullptr && i < PQntuples(r); ++i) types.emplace_back(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
    return types;
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
    remote_value(session.conn, remote::kCommitSql, "commit");
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

// The source table a copy reads: as the source's statements name it (quoted), and as its errors
// do (schema.table).
struct RemoteTable {
    std::string quoted;
    std::string label;
};

// Foreign table sicoop.<name>'s remote schema and table, as connect_source() set them.
RemoteTable remote_table_of(const BulkCopy& copy) {
    char* schema = nullptr;
    char* table = nullptr;
    const char* foreign_table = copy.source_table.c_str();
    pg_call([&] { remote_name(foreign_table, &schema, &table); });
    return {remote::quote_qualified_identifier(schema, table, quote_all_identifiers), std::string(schema) + "." + table};
}

// Opens the session of a source table and its transaction, locks the table there and reads its
// column types and snapshot (ending another table's session first).
void start_session(const BulkCopy& copy, const char* remote, const char* lock_table) {
    finish_session();
    static bool exit_callback_registered = false;
    if (!exit_callback_registered) {
        before_shmem_exit(cancel_source_at_exit, (Datum) 0);
        exit_callback_registered = true;
    }
    PGconn* conn = source::open_connection();
    session.conn = conn;
    session.source_table = copy.source_table;
    remote_value(conn, remote::kBeginSql, "open a transaction");
    if (!imported_snapshot.empty()) {
        char* literal = quote_literal_cstr(imported_snapshot.c_str());
        remote_value(conn, psprintf("SET TRANSACTION SNAPSHOT %s", literal), "import the stream's snapshot");
    }
    // The table's definition holds until the session ends (as pg_dump holds its tables): the
    // catalog the first copy reads is the one every later copy's casts rely on, so a column
    // altered at the source in between cannot be cut or rounded on its way into raw. Waits at
    // most sicoop.source_timeout behind a DDL that holds the table.
    remote_value(conn, lock_table, "lock the table against changes to its definition");
    session.column_types = remote_exec(conn, remote::kColumnTypesSql, remote, "read the table's column types");
    char* xmin = remote_value(conn, remote::kSnapshotXminSql, "report its snapshot");
    session.snapshot_xmin = xmin ? xmin : "0";
}

// The movements' watermark: the latest time of `column` in the session's snapshot.
void read_watermark(const RemoteTable& table, const std::string& column) {
    const std::string type = remote::type_of(session_column_types(), column);
    const std::string latest = remote::latest_value_sql(column, table.quoted, quote_all_identifiers);
    pg_call([&] {
        if (!remote::is_time(type))
            refuse_type(table.label.c_str(), column.c_str(), type.c_str(), "a date or time",
                        "take the movements' latest time", "Give the column type timestamp at the source.");
        char* watermark = remote_value(session.conn, latest.c_str(), "report its latest movement time");
        session.has_watermark = watermark != nullptr;
        if (watermark) session.watermark = watermark;
    });
}

// Opens the session of a source table, unless it is open already.
void open_session(const BulkCopy& copy, const RemoteTable& table) {
    if (session.conn != nullptr && session.source_table == copy.source_table) return;
    const std::string lock_table = remote::lock_table_sql(table.quoted);
    pg_call([&] { start_session(copy, table.quoted.c_str(), lock_table.c_str()); });
    if (!copy.watermark_column.empty()) read_watermark(table, copy.watermark_column);
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
    char* out = nullptr;
    try {  // sicoop::without_values (src/steps/values.cpp): the same rule as the stream worker's
        const std::string text = sicoop::without_values(std::string_view(message ? message : ""));
        out = static_cast<char*>(palloc_extended(text.size() + 1, MCXT_ALLOC_NO_OOM));
        if (out != nullptr) memcpy(out, text.c_str(), text.size() + 1);
    } catch (...) {
        out = nullptr;
    }
    return out != nullptr ? out : pstrdup("");
}

// Where the warehouse converts columns a copy carries as text (RemoteRead::converted).
struct ConversionSite {
    const char* table;           // the source's schema.table
    const remote::Conversion* columns;
    size_t count;
};

// Called in PG_CATCH: if the error is the warehouse's failure to convert a value of a column it
// converts, raises it again saying which source column and why, without the value. Returns
// otherwise (the caller re-throws the error as it is).
void explain_conversion_error(const ConversionSite& site, const char* attname, uint64 line, MemoryContext cxt) {
    MemoryContext error_cxt = MemoryContextSwitchTo(cxt);
    ErrorData* e = CopyErrorData();
    MemoryContextSwitchTo(error_cxt);
    const remote::Conversion* c = nullptr;
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
int64 copy_from_stream(Relation rel, List* attnames, bool as_text, const ConversionSite& site,
                       copy_data_source_cb source = read_source_stream) {
    ParseState* pstate = make_parsestate(nullptr);
    (void) addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock, nullptr, false, false);
    List* options = as_text ? NIL : list_make1(makeDefElem(pstrdup("format"), (Node*) makeString(pstrdup("binary")), -1));
    CopyFromState cstate = BeginCopyFrom(pstate, rel, nullptr, nullptr, false, source, attnames, options);
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
                  const std::string& command, const RemoteTable& table) {
    std::vector<const char*> column_names;
    for (const auto& c : landing.columns) column_names.push_back(c.c_str());
    const ConversionSite site{table.label.c_str(), read.converted.data(), read.converted.size()};
    stream_filter = CopyFilter(!read.as_text, copy_masks(landing.table, landing.columns));
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

        const char* what = psprintf("copy %s", table.label.c_str());
        stream = CopyStream{session.conn, what, nullptr, 0, 0, false, false, nullptr};
        statement_sent_at = GetCurrentTimestamp();
        PGresult* res = nullptr;
        if (PQsendQuery(stream.conn, command.c_str()))
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
        if (!stream.done) elog(ERROR, "sicoop: the copy from %s ended before the source's data did", site.table);
        stream = CopyStream{};
        stream_filter = CopyFilter{};
        if (read.day_amounts) sum_day_amounts(landing.target.c_str(), copy.columns, site);
    });
    return rows;
}

// A stream's rows, from memory: COPY FROM's data-source callback has no user argument.
struct MemoryText {
    const std::string* text = nullptr;
    size_t offset = 0;
};
MemoryText memory_text;

extern "C" int read_memory_text(void* outbuf, int /*minread*/, int maxread) {
    const size_t left = memory_text.text->size() - memory_text.offset;
    const size_t n = Min(left, static_cast<size_t>(maxread));
    memcpy(outbuf, memory_text.text->data() + memory_text.offset, n);
    memory_text.offset += n;
    return static_cast<int>(n);
}

}  // namespace

int64 copy_text_into(const char* table, const std::vector<std::string>& columns, const std::string& text) {
    // Card numbers masked in memory before COPY FROM writes a byte (steps/copy_filter.hpp).
    CopyFilter filter(false, copy_masks(table, columns));
    std::string masked;
    const std::string& data = filter.filter_all(text, masked);
    int64 rows = 0;
    pg_call([&] {
        Oid target_oid = RangeVarGetRelid(makeRangeVar(pstrdup("sicoop"), pstrdup(table), -1), NoLock, false);
        List* attnames = NIL;
        for (const auto& c : columns) attnames = lappend(attnames, makeString(pstrdup(c.c_str())));
        check_may_copy_into(target_oid, table);
        Relation rel = table_open(target_oid, RowExclusiveLock);
        memory_text = MemoryText{&data, 0};
        const ConversionSite site{table, nullptr, 0};
        rows = copy_from_stream(rel, attnames, true, site, read_memory_text);
        memory_text = MemoryText{};
        table_close(rel, NoLock);
    });
    return rows;
}

void import_source_snapshot(const char* name) { imported_snapshot = name ? name : ""; }

void end_source_session() {
    pg_call([] { finish_session(); });
}

void abort_source_session() {
    if (session.conn == nullptr) return;
    release_buffer();
    stream = CopyStream{};
    stream_filter = CopyFilter{};
    // A statement still running on the source (a COPY, or one waiting on a lock) is cancelled
    // there too, not left to run on after the run has given up.
    cancel_source_statement();
    close_session();
}

int64 bulk_copy(const BulkCopy& copy, const spi::RunParams& params) {
    if (!copy_wanted(copy, params)) return 0;
    // The table's source session (one snapshot for all its copies), and its column types there.
    const RemoteTable table = remote_table_of(copy);
    open_session(copy, table);
    if (copy.capture_snapshot) session.record_snapshot = true;

    // What the source is asked: from the extension's own column list, and its types there.
    const remote::RemoteRead read = remote::plan_read(copy, params.run_id, session_column_types());
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
    return stream_copy(copy, read, landing, command, table);
}

}  // namespace sicoop
