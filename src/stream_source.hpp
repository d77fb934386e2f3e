// The stream's side of the source (src/stream_source.cpp, src/stream_checks.cpp): the logical
// replication connection, the stream's position and the feedback that confirms it, and the
// checks made before streaming (publication, replica identities, the slot's position).
#pragma once

#include "pg.hpp"
#include "stream_state.hpp"
#include "steps/pgoutput.hpp"

#include <string>

namespace sicoop::stream {

namespace pgo = sicoop::pgoutput;

// The stream's position: what it received from the source, what is flushed (stored in the
// warehouse with the data: the same as applied, since the LSN is stored in the transaction that
// applies it). The worker's own copy; stream_state.applied_lsn is written with the data. Values
// only go forward: an older one is ignored.
class Position {
public:
    explicit Position(pgo::Lsn start = 0) : received_(start), applied_(start) {}
    pgo::Lsn received() const { return received_; }
    pgo::Lsn flushed() const { return applied_; }
    pgo::Lsn applied() const { return applied_; }
    void receive(pgo::Lsn lsn) { received_ = std::max(received_, lsn); }
    // `lsn` is stored in the warehouse with the data up to it.
    void store(pgo::Lsn lsn) { applied_ = std::max(applied_, lsn); }

private:
    pgo::Lsn received_;
    pgo::Lsn applied_;
};

// The one standby status update: the position told to the source at time `now` (reply_requested:
// the source answers with a keepalive). Only libpq: the Busy thread sends it too. False: the
// connection could not take it.
bool send_feedback(PGconn* conn, const Position& position, pgo::Timestamp now, bool reply_requested);

class Replication {
public:
    explicit Replication(PGconn* conn) : conn_(conn) {}
    ~Replication();
    Replication(const Replication&) = delete;
    Replication& operator=(const Replication&) = delete;
    PGconn* conn() const { return conn_; }

    // A replication command or query; its result (the caller clears it).
    PGresult* exec(const std::string& command, ExecStatusType expected, const char* what);
    // The source's error, raised as a PostgreSQL error: a slot that is lost or gone stops the
    // stream with the fix.
    [[noreturn]] void fail(const char* what, const std::string& message, const std::string& sqlstate);
    // send_feedback() now; a connection that cannot take it is Transient.
    void feedback(const Position& position, bool reply_requested);

private:
    PGconn* conn_;
};

// A logical replication connection to the source as the warehouse's owner (its user mapping).
PGconn* connect_replication();

// Quotes for a replication connection's plain SQL (no parameters there).
std::string literal(PGconn* conn, const std::string& s);
// An identifier as the source's quote_ident() writes it (quoted only when it must be).
std::string identifier(Replication& source, const std::string& s);

// The publication gives the stream every change the pipeline reads, and each table's replica
// identity is the pipeline's key; otherwise the stream fails with the statements that fix it.
void check_publication(Replication& source, const StreamConfig& config);
// A Relation message whose key is not the pipeline's fails the stream with the fix.
void check_relation(const pgo::Message& m, const std::string& source_schema);
// No silent gap: the slot is not confirmed past the warehouse's applied LSN, nor in use.
void check_position(Replication& source, const StreamConfig& config);
// A slot this warehouse did not create is never used nor dropped.
[[noreturn]] void refuse_foreign_slot(const std::string& slot);

}  // namespace sicoop::stream
