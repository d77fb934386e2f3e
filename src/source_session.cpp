#include "source_session.hpp"

#include "settings.hpp"
#include "source.hpp"

#include <algorithm>
#include <string>

namespace sicoop {

namespace {

// The backend's open sessions, whose statements are cancelled should it exit (cancel_at_exit):
// linked through the sessions themselves, so that keeping the list allocates nothing.
SourceSession* open_sessions = nullptr;

// ------------------------------------------------------------------------------------------
// The source's errors, as the source reported them
// ------------------------------------------------------------------------------------------

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

// Whether a cancel is sicoop.source_timeout's, whatever language the source's messages are in.
bool timed_out(const SourceReport& r, TimestampTz statement_sent_at) {
    if (r.message != nullptr && strstr(r.message, "statement timeout") != nullptr) return true;
    const int timeout_ms = settings::source_timeout_ms();
    return timeout_ms > 0 && statement_sent_at != 0 &&
           GetCurrentTimestamp() - statement_sent_at >= static_cast<int64>(timeout_ms) * 1000;
}

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

}  // namespace

// Raises the error of a failed source statement with the source's own SQLSTATE, message,
// detail and hint (card numbers masked), saying what really happened: the connection lost
// (the source session terminated, the server gone), sicoop.source_timeout reached by the
// statement (statement timeout) or by a lock wait there (lock timeout), a cancel at the
// source, or a refusal.
void SourceSession::fail(PGresult* res, const char* what) const {
    const SourceReport r = source_report(conn_, res);
    const bool lost = PQstatus(conn_) == CONNECTION_BAD || (r.sqlstate && strncmp(r.sqlstate, "57P", 3) == 0);
    const int timeout_ms = settings::source_timeout_ms();
    PQclear(res);
    if (lost)
        ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
                        errmsg("sicoop: the connection to the source was lost while trying to %s", what),
                        errdetail_internal("%s", said(r))));
    if (r.sqlstate && strcmp(r.sqlstate, "55P03") == 0)
        ereport(ERROR, (errcode(ERRCODE_LOCK_NOT_AVAILABLE),
                        errmsg("sicoop: trying to %s, the source's lock timeout expired: a lock there was held longer "
                               "than sicoop.source_timeout (%d ms)", what, timeout_ms),
                        errdetail_internal("%s", said(r)),
                        errhint("A session at the source holds a lock on the table: see pg_locks there.")));
    if (r.sqlstate && strcmp(r.sqlstate, "57014") == 0 && timed_out(r, statement_sent_at_))
        ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED),
                        errmsg("sicoop: trying to %s, the source's statement timeout expired: the statement ran longer "
                               "than sicoop.source_timeout (%d ms)", what, timeout_ms),
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

RemoteTable remote_table_of(const BulkCopy& copy) {
    char* schema = nullptr;
    char* table = nullptr;
    const char* foreign_table = copy.source_table.c_str();
    pg_call([&] { remote_name(foreign_table, &schema, &table); });
    return {remote::quote_qualified_identifier(schema, table, quote_all_identifiers), std::string(schema) + "." + table};
}

void refuse_type(const char* table, const char* column, const char* type, const char* needed, const char* purpose,
                 const char* hint) {
    ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                    errmsg("sicoop: cannot %s: the source's column %s.%s is %s, not %s", purpose, table, column,
                           type[0] ? type : "missing", needed),
                    errdetail("The warehouse never has the source cast a value in a way that may fail on it."),
                    errhint("%s", hint)));
    pg_unreachable();
}

// ------------------------------------------------------------------------------------------
// The session
// ------------------------------------------------------------------------------------------

SourceSession::~SourceSession() {
    abort();
    if (spare_ != nullptr) libpqsrv_disconnect(spare_);
}

void SourceSession::statement_sent() { statement_sent_at_ = GetCurrentTimestamp(); }

void SourceSession::require_idle() const {
    if (!sent_early_.empty()) elog(ERROR, "sicoop: the source session has a copy sent early still to read");
}

void SourceSession::send_early(const std::string& command, const std::string& label) {
    std::string pending = command;  // (copied before any PostgreSQL call: no C++ exception inside one)
    pg_call([&] {
        require_idle();
        statement_sent();
        if (!PQsendQuery(conn_, command.c_str())) fail(nullptr, psprintf("copy %s", label.c_str()));
    });
    sent_early_ = std::move(pending);
}

bool SourceSession::take_early(const std::string& command) {
    if (sent_early_.empty()) return false;
    if (sent_early_ != command) require_idle();
    sent_early_.clear();
    return true;
}

// Runs a statement on the source ($1 = `param`, if given); its result, or the source's error.
PGresult* SourceSession::exec(const char* sql, const char* param, const char* what) {
    require_idle();
    statement_sent();
    const char* params[1] = {param};
    PGresult* res = param ? libpqsrv_exec_params(conn_, sql, 1, nullptr, params, nullptr, nullptr, 0, PG_WAIT_EXTENSION)
                          : libpqsrv_exec(conn_, sql, PG_WAIT_EXTENSION);
    if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK) fail(res, what);
    return res;
}

// Runs a simple statement on the source and returns its first value (palloc'd), or nullptr.
char* SourceSession::value(const char* sql, const char* what) {
    PGresult* res = exec(sql, nullptr, what);
    char* value = PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ? pstrdup(PQgetvalue(res, 0, 0)) : nullptr;
    PQclear(res);
    return value;
}

// Closes the connection, as it was opened (libpqsrv_*: its external FD released); or, if asked
// and it is idle, returns it for the next session instead (else nullptr).
PGconn* SourceSession::close(bool keep_connection) {
    PQclear(column_types_);
    PGconn* conn = conn_;
    conn_ = nullptr;
    column_types_ = nullptr;
    source_table_.clear();
    snapshot_xmin_.clear();
    watermark_.clear();
    sent_early_.clear();
    has_watermark_ = record_snapshot_ = false;
    untrack_open();
    if (keep_connection && PQtransactionStatus(conn) == PQTRANS_IDLE) return conn;
    libpqsrv_disconnect(conn);
    return nullptr;
}

remote::ColumnTypes SourceSession::column_types() const {
    remote::ColumnTypes types;
    const PGresult* r = column_types_;
    for (int i = 0; r != nullptr && i < PQntuples(r); ++i) types.emplace_back(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
    return types;
}

// Sends libpq's cancel for the statement the session is running, if any. Never raises.
void SourceSession::cancel_statement() const {
    if (conn_ == nullptr || PQtransactionStatus(conn_) != PQTRANS_ACTIVE) return;
    if (PGcancel* cancel = PQgetCancel(conn_)) {
        char errbuf[256];
        (void) PQcancel(cancel, errbuf, sizeof errbuf);
        PQfreeCancel(cancel);
    }
}

// At backend exit (pg_terminate_backend, a FATAL error, the end of the session), when no error
// handling ran: the source's statement is cancelled, so the source session ends with this
// backend instead of waiting on there until sicoop.source_timeout. (A crash runs no exit
// callback: then the source-side timeout alone ends it.)
void SourceSession::cancel_at_exit(int, Datum) {
    for (SourceSession* s = open_sessions; s != nullptr; s = s->next_open_) s->cancel_statement();
}

void SourceSession::track_open() {
    for (SourceSession* s = open_sessions; s != nullptr; s = s->next_open_)
        if (s == this) return;
    next_open_ = open_sessions;
    open_sessions = this;
}

void SourceSession::untrack_open() {
    for (SourceSession** link = &open_sessions; *link != nullptr; link = &(*link)->next_open_)
        if (*link == this) {
            *link = next_open_;
            break;
        }
    next_open_ = nullptr;
}

// Ends the session: closes the source transaction and records what the next run starts from.
PGconn* SourceSession::finish_pg(bool keep_connection) {
    if (conn_ == nullptr) return nullptr;
    value(remote::kCommitSql, "commit");
    if (record_snapshot_) {
        Oid argtypes[3] = {TEXTOID, INT8OID, TEXTOID};
        Datum args[3] = {CStringGetTextDatum(source_table_.c_str()),
                         DirectFunctionCall1(int8in, CStringGetDatum(snapshot_xmin_.c_str())),
                         has_watermark_ ? CStringGetTextDatum(watermark_.c_str()) : (Datum) 0};
        const char nulls[3] = {' ', ' ', has_watermark_ ? ' ' : 'n'};
        if (SPI_execute_with_args("INSERT INTO sicoop.source_sync (table_name, snapshot_xmin, watermark)"
                                  " VALUES ($1, $2, $3::timestamp)"
                                  " ON CONFLICT (table_name) DO UPDATE"
                                  " SET snapshot_xmin = EXCLUDED.snapshot_xmin, copied_at = now(),"
                                  " watermark = coalesce(EXCLUDED.watermark, source_sync.watermark)",
                                  3, argtypes, args, nulls, false, 0) != SPI_OK_INSERT)
            elog(ERROR, "sicoop: could not record the source snapshot");
    }
    return close(keep_connection);
}

void SourceSession::finish() {
    pg_call([&] { (void) finish_pg(); });
}

PGconn* SourceSession::finish_keeping_connection() {
    PGconn* conn = nullptr;
    pg_call([&] { conn = finish_pg(true); });
    return conn;
}

void SourceSession::abort() {
    if (conn_ == nullptr) return;
    // A statement still running on the source (a COPY, or one waiting on a lock) is cancelled
    // there too, not left to run on after the run has given up.
    cancel_statement();
    close();
}

// Opens the session of a source table and its transaction, locks the table there and reads its
// column types and snapshot.
void SourceSession::start(const BulkCopy& copy, const char* remote, const char* lock_table) {
    if (conn_ != nullptr)
        elog(ERROR, "sicoop: the source session of %s cannot serve %s", source_table_.c_str(), copy.source_table.c_str());
    static bool exit_callback_registered = false;
    if (!exit_callback_registered) {
        before_shmem_exit(cancel_at_exit, (Datum) 0);
        exit_callback_registered = true;
    }
    conn_ = spare_ != nullptr ? spare_ : source::open_connection();
    spare_ = nullptr;
    track_open();
    source_table_ = copy.source_table;
    value(remote::kBeginSql, "open a transaction");
    if (!imported_snapshot_.empty()) {
        char* literal = quote_literal_cstr(imported_snapshot_.c_str());
        value(psprintf("SET TRANSACTION SNAPSHOT %s", literal), "import the stream's snapshot");
    }
    // The table's definition holds until the session ends (as pg_dump holds its tables): the
    // catalog the first copy reads is the one every later copy's casts rely on, so a column
    // altered at the source in between cannot be cut or rounded on its way into raw. Waits at
    // most sicoop.source_timeout behind a DDL that holds the table.
    value(lock_table, "lock the table against changes to its definition");
    column_types_ = exec(remote::kColumnTypesSql, remote, "read the table's column types");
    char* xmin = value(remote::kSnapshotXminSql, "report its snapshot");
    snapshot_xmin_ = xmin ? xmin : "0";
}

// The movements' watermark: the latest time of `column` in the session's snapshot.
void SourceSession::read_watermark(const RemoteTable& table, const std::string& column) {
    const std::string type = remote::type_of(column_types(), column);
    const std::string latest = remote::latest_value_sql(column, table.quoted, quote_all_identifiers);
    pg_call([&] {
        if (!remote::is_time(type))
            refuse_type(table.label.c_str(), column.c_str(), type.c_str(), "a date or time",
                        "take the movements' latest time", "Give the column type timestamp at the source.");
        char* watermark = value(latest.c_str(), "report its latest movement time");
        has_watermark_ = watermark != nullptr;
        if (watermark) watermark_ = watermark;
    });
}

void SourceSession::open_for(const BulkCopy& copy, const RemoteTable& table) {
    if (conn_ != nullptr && source_table_ == copy.source_table) return;
    const std::string lock_table = remote::lock_table_sql(table.quoted);
    pg_call([&] { start(copy, table.quoted.c_str(), lock_table.c_str()); });
    if (!copy.watermark_column.empty()) read_watermark(table, copy.watermark_column);
}

SourceSession& SourceSessions::for_copy(const BulkCopy& copy) {
    SourceSession* wanted = nullptr;
    for (auto& s : sessions_)
        if (s->source_table() == copy.source_table) wanted = s.get();
    // The other tables' sessions end here (as one session per table ended before the next
    // opened), unless their copy sent early is still running at the source.
    for (auto& s : sessions_)
        if (s.get() != wanted && !s->has_early()) keep_spare(s->finish_keeping_connection());
    sessions_.erase(std::remove_if(sessions_.begin(), sessions_.end(),
                                   [&](const auto& s) { return s.get() != wanted && s->connection() == nullptr; }),
                    sessions_.end());
    if (wanted == nullptr) {
        sessions_.push_back(std::make_unique<SourceSession>(snapshot_));
        wanted = sessions_.back().get();
        wanted->reuse_connection(spare_);
        spare_ = nullptr;
    }
    return *wanted;
}

void SourceSessions::keep_spare(PGconn* conn) {
    if (conn == nullptr) return;
    if (spare_ != nullptr) libpqsrv_disconnect(spare_);
    spare_ = conn;
}

void SourceSessions::finish() {
    for (auto& s : sessions_) s->finish();
    sessions_.clear();
    if (spare_ != nullptr) libpqsrv_disconnect(spare_);
    spare_ = nullptr;
}

SourceSessions::~SourceSessions() {
    sessions_.clear();  // (each open one aborted)
    if (spare_ != nullptr) libpqsrv_disconnect(spare_);
}

}  // namespace sicoop
