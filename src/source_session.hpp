// The source session of a step: the libpq connection its copies read through, one REPEATABLE
// READ transaction per source table, so every copy of one table in a step reads the same
// snapshot (the rows, the re-read keys, the day totals and the snapshot recorded for the next
// run agree with each other). An RAII object: a step owns one, and a session still open when it
// goes (an error) is cancelled at the source and closed.
#pragma once

#include "pg.hpp"
#include "steps/remote_query.hpp"
#include "steps/step.hpp"

#include <memory>
#include <string>
#include <vector>

namespace sicoop {

// The source table a copy reads: as the source's statements name it (quoted), and as its errors
// do (schema.table).
struct RemoteTable {
    std::string quoted;
    std::string label;
};

// Foreign table sicoop.<copy.source_table>'s table at the source, as connect_source() set it.
RemoteTable remote_table_of(const BulkCopy& copy);

// Refuses, before anything is sent, a copy that would need the source to cast a value in a way
// that may fail on it (the failed statement would put the value in the source's log).
// PostgreSQL side: call inside pg_call.
[[noreturn]] void refuse_type(const char* table, const char* column, const char* type, const char* needed,
                              const char* purpose, const char* hint);

class SourceSession {
public:
    // `snapshot`: the snapshot every transaction imports (SET TRANSACTION SNAPSHOT), as a
    // replication slot exported it (a stream's initial sync, its full check); "": its own.
    explicit SourceSession(std::string snapshot) : imported_snapshot_(std::move(snapshot)) {}
    // An open session is aborted (abort()). Never raises.
    ~SourceSession();
    SourceSession(const SourceSession&) = delete;
    SourceSession& operator=(const SourceSession&) = delete;

    // Opens the session of the copy's source table, unless it is open already: its transaction,
    // the table locked against changes to its definition, its column types and snapshot, and the
    // movements' watermark if the copy has one. A session serves one table (SourceSessions keeps
    // one per table).
    void open_for(const BulkCopy& copy, const RemoteTable& table);
    // Records the snapshot it read in sicoop.source_sync when it finishes (BulkCopy::capture_snapshot).
    void record_snapshot() { record_snapshot_ = true; }
    // Commits, and records the snapshot if asked. The step calls it once its actions are done.
    void finish();
    // As finish(), but the connection is handed over, idle, instead of closed (nullptr if the
    // session was not open): the next table's session may take it (SourceSessions).
    PGconn* finish_keeping_connection();
    // The connection the session will open its transaction on, instead of connecting: one a
    // finished session of the same step handed over (the same server, user and settings).
    void reuse_connection(PGconn* conn) { spare_ = conn; }
    // Cancels whatever the session runs at the source (a COPY, a statement waiting on a lock) and
    // closes it. Never raises.
    void abort();

    PGconn* connection() const { return conn_; }
    // The foreign table (src_*) whose session this is, once open.
    const std::string& source_table() const { return source_table_; }
    // A copy sent early is still to read: the session must stay open.
    bool has_early() const { return !sent_early_.empty(); }
    // The table's columns at the source, as the session read them.
    remote::ColumnTypes column_types() const;
    // A statement (a COPY) is being sent now: a cancel after sicoop.source_timeout is that timeout.
    void statement_sent();
    // A copy's statement sent now, its rows read later (BulkCopy::Timing::SendOnly): nothing
    // else may use the session until they are. `label`: the source table, for its errors.
    void send_early(const std::string& command, const std::string& label);
    // Whether `command` is the copy sent early (then its rows are the next thing to read, and
    // it is no longer pending). Raises if another copy was sent early: nothing may pass it.
    bool take_early(const std::string& command);
    // Raises if a copy sent early is still to read. PostgreSQL side: call inside pg_call.
    void require_idle() const;
    // Raises the error of a failed source statement (`res` may be null; it is freed), saying what
    // really happened: the connection lost, sicoop.source_timeout reached, a cancel, a refusal.
    // PostgreSQL side: call inside pg_call.
    [[noreturn]] void fail(PGresult* res, const char* what) const;

private:
    void start(const BulkCopy& copy, const char* remote, const char* lock_table);
    void read_watermark(const RemoteTable& table, const std::string& column);
    PGconn* finish_pg(bool keep_connection = false);
    PGconn* close(bool keep_connection = false);
    void cancel_statement() const;
    static void cancel_at_exit(int, Datum);
    void track_open();
    void untrack_open();
    PGresult* exec(const char* sql, const char* param, const char* what);
    char* value(const char* sql, const char* what);

    std::string imported_snapshot_;
    PGconn* conn_ = nullptr;
    PGconn* spare_ = nullptr;    // reuse_connection's, until start() takes it
    std::string source_table_;   // foreign table (src_*)
    std::string snapshot_xmin_;  // the snapshot's xmin, recorded in source_sync at the end
    std::string watermark_;      // movements: the latest movement time in the snapshot
    bool has_watermark_ = false;
    bool record_snapshot_ = false;
    TimestampTz statement_sent_at_ = 0;
    std::string sent_early_;  // the copy sent early whose rows are not read yet
    // The table's columns at the source: name, type (format_type without typmod). The table is
    // locked against changes to its definition until the session ends, so they hold.
    PGresult* column_types_ = nullptr;
    SourceSession* next_open_ = nullptr;  // the backend's open sessions, for cancel_at_exit
};

// The source sessions of a step: one per source table, opened by its first copy. Opening a
// table's session ends the others (each commits and records its snapshot), except a session
// whose copy was sent early and is not read yet: its statement goes on at the source while
// other tables load, in the snapshot its own table's later copies read. (An incremental run
// sends the movements' day totals, a pass over the source table, before the other tables:
// issue 28.) An RAII object: sessions still open when it goes (an error) are aborted.
//
// A finished session hands its connection to the next table's: a new connection to the source
// costs some 25 ms (authentication, a backend started there), four times a step.
class SourceSessions {
public:
    explicit SourceSessions(std::string snapshot) : snapshot_(std::move(snapshot)) {}
    ~SourceSessions();
    SourceSessions(const SourceSessions&) = delete;
    SourceSessions& operator=(const SourceSessions&) = delete;
    // The session of the copy's source table, ending the other tables' sessions that have no
    // copy sent early. The session is opened by the copy (SourceSession::open_for).
    SourceSession& for_copy(const BulkCopy& copy);
    // Finishes every open session, in the order they were opened. Call once the actions are done.
    void finish();

private:
    void keep_spare(PGconn* conn);

    std::string snapshot_;
    std::vector<std::unique_ptr<SourceSession>> sessions_;  // in the order they were opened
    PGconn* spare_ = nullptr;  // an idle connection a finished session handed over
};

}  // namespace sicoop
