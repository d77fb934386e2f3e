// The replication connection and the feedback to the source (see stream_source.hpp).
#include "stream_source.hpp"

#include "source.hpp"
#include "spi_session.hpp"
#include "stream_session.hpp"

extern "C" {
#include "pgstat.h"
}

#include <algorithm>
#include <iterator>

namespace sicoop::stream {

bool send_feedback(PGconn* conn, const Position& position, pgo::Timestamp now, bool reply_requested) {
    const std::string m =
        pgo::standby_status_update(position.received(), position.flushed(), position.applied(), now, reply_requested);
    return PQputCopyData(conn, m.data(), static_cast<int>(m.size())) == 1 && PQflush(conn) == 0;
}

Replication::~Replication() {
    if (conn_ != nullptr) libpqsrv_disconnect(conn_);
}

PGresult* Replication::exec(const std::string& command, ExecStatusType expected, const char* what) {
    PGresult* res = nullptr;
    const char* c = command.c_str();
    pg_call([&] { res = libpqsrv_exec(conn_, c, PG_WAIT_EXTENSION); });
    if (PQresultStatus(res) != expected) {
        std::string message = PQresultErrorMessage(res);
        const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        std::string sqlstate = state ? state : "";
        PQclear(res);
        if (PQstatus(conn_) != CONNECTION_OK) throw Transient(std::string("the source closed the stream: ") + message);
        fail(what, message, sqlstate);
    }
    return res;
}

void Replication::fail(const char* what, const std::string& message, const std::string& sqlstate) {
    const bool lost = message.find("can no longer get changes") != std::string::npos ||
                      message.find("invalidated") != std::string::npos;
    const bool missing = message.find("does not exist") != std::string::npos;
    constexpr size_t kSqlstateLength = 5;
    const char* m = message.c_str();
    const char* s = sqlstate.c_str();
    pg_call([&] {
        ereport(ERROR,
                (errcode(sqlstate.size() == kSqlstateLength ? MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]) : ERRCODE_CONNECTION_EXCEPTION),
                 errmsg("sicoop: the source refused to %s: %s", what, m),
                 lost ? errhint("The slot lost the WAL the stream needs (max_slot_wal_keep_size): SELECT sicoop.stop_stream(); "
                                "SELECT sicoop.resync_stream(); SELECT sicoop.start_stream(); -- a fresh snapshot, "
                                "compared with the warehouse; the history is kept.")
                 : missing ? errhint("Check the publication and the slot at the source (the README's Streaming section); "
                                     "if the slot was dropped: SELECT sicoop.stop_stream(); SELECT sicoop.resync_stream(); "
                                     "SELECT sicoop.start_stream();")
                           : 0));
    });
    throw std::logic_error("unreachable");
}

void Replication::feedback(const Position& position, bool reply_requested) {
    if (!send_feedback(conn_, position, GetCurrentTimestamp(), reply_requested))
        throw Transient(std::string("could not write to the source: ") + PQerrorMessage(conn_));
}

namespace {

// A connection the source refused for who the stream is (authentication, pg_hba.conf, no
// REPLICATION, no LOGIN, no such role or database): no retry helps, unlike a source that is down.
bool refused_login(const char* detail) {
    if (detail == nullptr) return false;
    static const char* const kRefusals[] = {"authentication failed", "no pg_hba.conf entry", "pg_hba.conf rejects",
                                            "must be superuser or replication role", "is not permitted to log in",
                                            "permission denied", "does not exist", "password is required",
                                            "no password supplied", "role \"", "SCRAM"};
    const std::string d = detail;
    return std::any_of(std::begin(kRefusals), std::end(kRefusals), [&](const char* r) { return d.find(r) != std::string::npos; });
}

// The owner's user mapping (the owner may have changed since the stream was started).
void check_user_mapping() {
    if (spi::exec_text(R"sql(
SELECT (EXISTS (SELECT 1 FROM pg_catalog.pg_user_mappings m
                WHERE m.srvname = 'sicoop_source' AND (m.umuser = 0 OR m.usename = current_user)))::text)sql") == "true")
        return;
    const std::string owner = spi::exec_text("SELECT current_user::text");
    pg_call([&] {
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("sicoop: %s, the warehouse's owner the stream acts for, has no user mapping for the source",
                               owner.c_str()),
                        errhint("As %s: SELECT sicoop.connect_source(host, port, dbname, username, password); "
                                "then SELECT sicoop.start_stream();",
                                owner.c_str())));
    });
}

// A refused login fails the stream with the fix; a source that is down is Transient.
[[noreturn]] void connection_failed(PgError& e) {
    if (e.edata->sqlerrcode == ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION && refused_login(e.edata->detail)) {
        ErrorData* edata = e.edata;
        pg_call([&] {
            ereport(ERROR, (errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
                            errmsg("sicoop: the source refused the stream's connection: %s",
                                   edata->detail ? edata->detail : edata->message),
                            errhint("The source role needs LOGIN, REPLICATION, the right password and a pg_hba.conf "
                                    "entry for the database: fix it at the source, or call sicoop.connect_source(...) "
                                    "again as the warehouse's owner; then SELECT sicoop.start_stream();")));
        });
    }
    if (Transient::covers(e)) throw Transient(e.edata->message ? e.edata->message : "cannot connect to the source");
    throw;
}

}  // namespace

PGconn* connect_replication() {
    PGconn* conn = nullptr;
    WorkerTransaction tx;  // (the server and the owner's user mapping are read from the catalog)
    check_user_mapping();
    try {
        pg_call([&] { conn = source::open_connection(true); });
    } catch (PgError& e) {
        connection_failed(e);
    }
    tx.commit();
    return conn;
}

std::string literal(PGconn* conn, const std::string& s) {
    char* q = PQescapeLiteral(conn, s.c_str(), s.size());
    if (q == nullptr) throw Transient(std::string("cannot quote for the source: ") + PQerrorMessage(conn));
    std::string out = q;
    PQfreemem(q);
    return out;
}

std::string identifier(Replication& source, const std::string& s) {
    PGresult* r = source.exec("SELECT pg_catalog.quote_ident(" + literal(source.conn(), s) + ")", PGRES_TUPLES_OK,
                              "quote an identifier");
    std::string out = PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : s;
    PQclear(r);
    return out;
}

}  // namespace sicoop::stream
