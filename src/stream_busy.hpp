// While the worker runs steps, the source is still answered (src/stream_busy.cpp).
#pragma once

#include "stream_source.hpp"

#include <condition_variable>
#include <mutex>
#include <thread>

namespace sicoop::stream {

// While the steps of an apply or a full check run, the worker reads nothing from the source, and
// one statement alone can outlast the source's wal_sender_timeout (60 s by default; load_fato
// over a million-row UPDATE took 68 s): the walsender would end the connection. Meanwhile a
// thread of the worker's own sends the source `position` each second (send_feedback(): the
// source's keepalives ask for just that; what it sends waits in the socket and is read after).
// The thread touches nothing of PostgreSQL's -- only libpq, on the replication connection the
// worker does not use until it is joined -- and takes no signal (all blocked in it): as DuckDB's
// threads in pg_duckdb. No thread to be had: the worker goes without (the source may end the
// connection; the worker reconnects after its commit, nothing lost). `conn` null: nothing to tell.
class Busy {
public:
    Busy(PGconn* conn, const Position& position);
    ~Busy();
    Busy(const Busy&) = delete;
    Busy& operator=(const Busy&) = delete;

private:
    void beat() noexcept;
    PGconn* const conn_;
    const Position position_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stop_ = false;
    std::thread thread_;
};

// What Busy needs: the replication connection and the position to tell.
struct BusyReply {
    PGconn* conn = nullptr;
    Position position;
};

}  // namespace sicoop::stream
