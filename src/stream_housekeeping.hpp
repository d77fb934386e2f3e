// The stream's housekeeping between batches (src/stream_housekeeping.cpp): its health in
// stream_state, the time the warehouse is current as of (Freshness), the run log's retention.
#pragma once

#include "pg.hpp"
#include "stream_source.hpp"

#include <deque>
#include <utility>

namespace sicoop::stream {

// A plain connection to the source beside the replication one: its WAL position, sampled each
// second. The warehouse is current as of a sample's time once the stream holds that position;
// stream_state.current_at keeps that time, what stream_status()'s lag in seconds counts from
// (a stall, a stopped stream or a batch held behind a lock: the lag grows, as it truly does).
class Freshness {
public:
    Freshness() = default;
    ~Freshness() { close(); }
    Freshness(const Freshness&) = delete;
    Freshness& operator=(const Freshness&) = delete;
    // A sample of the source's position now (in the caller's worker transaction: the source's
    // server and user mapping are read from the catalog); nothing if it cannot be read.
    void sample(TimestampTz now);
    // The stream holds the source up to `position`: the latest sample it covers is its time.
    void held(pgo::Lsn position);
    TimestampTz current_at() const { return current_at_; }

private:
    void close();
    PGconn* conn_ = nullptr;
    std::deque<std::pair<pgo::Lsn, TimestampTz>> samples_;
    TimestampTz current_at_ = 0;
};

// What housekeeping keeps between its rounds: the last message from the source, and whether a
// full check was asked for (stream_state.full_check_requested_at).
struct Health {
    TimestampTz last_message = 0;
    bool full_check_requested = false;
};

// Each second between batches: whether the stream is still wanted (and sicoop_etl still
// installed; not wanted: Stopped), and the stream's health recorded: the received position, the
// last message from the source, the time the warehouse was current as of, the state `running`
// (Paused or Streaming). `caught_up`: nothing pending (no batch, no transaction open): the stream holds
// everything up to what was received, which is stored as applied too (the lag is nil, not the
// source's other WAL) -- stored before it is ever confirmed to the source, so the slot is never
// ahead of the warehouse (check_position()). False: no longer wanted.
bool idle_check(pgo::Lsn received, StreamState running, bool caught_up, Freshness& freshness, Health& health);

// The run log's retention (as run_pipeline does after each run); a micro-batch's row (several a
// second) is kept for sicoop.stream_log_retention only. A retention that fails is a WARNING.
void purge_logs();

}  // namespace sicoop::stream
