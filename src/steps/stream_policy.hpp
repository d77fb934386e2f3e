// When the stream worker applies what it gathered, stops reading, waits and talks to the source
// (src/stream_loop.cpp): its timers as one pure policy, from the settings' values passed in, so
// that each rule is unit-tested without a server. Times are microseconds (PostgreSQL's
// TimestampTz, since 2000); only differences matter here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace sicoop::stream_policy {

using Micros = int64_t;

constexpr Micros kMicrosPerMilli = 1000;
constexpr Micros kMicrosPerSecond = 1000 * kMicrosPerMilli;
// Housekeeping (still wanted, health, the held position, a full check asked for): each second.
constexpr int kHousekeepingMs = 1000;
// A status update to the source at least this often, as wal_receiver_status_interval's default.
constexpr int kFeedbackMs = 10000;
// A batch held back by a run (the pipeline lock) is tried again each second.
constexpr int kRetryMs = 1000;
// The longest wait for the source while nothing is gathering (housekeeping stays on time).
constexpr int kIdleWaitMs = 1000;
// A held-back batch stops reading at this many times sicoop.stream_batch_changes: the source waits.
constexpr size_t kPausedBatchFactor = 10;
// The run log's retention runs after every this many applied batches.
constexpr int64_t kPurgeEveryBatches = 100;
// SCD2 replays a member's earlier states one round each (a few statements per round): a member
// changed more often than this in one batch applies the batch first.
constexpr size_t kMaxMemberStates = 32;
// A batch, or a part of a large source transaction, holds at most sicoop.stream_work_mem divided
// by this: applying it copies it about three times over (folded states, COPY text, its masked
// copy) while the next one may gather.
constexpr size_t kWorkMemShares = 4;
// A cleared batch that held at least a part divided by this gives its memory back to the system.
constexpr size_t kBigBatchShares = 4;

// The settings the policy reads, as the worker has them now.
struct Limits {
    size_t batch_changes = 0;   // sicoop.stream_batch_changes
    int interval_ms = 0;        // sicoop.stream_interval
    size_t part_bytes = 0;      // sicoop.stream_work_mem (kB) / kWorkMemShares, in bytes
    int receive_timeout_ms = 0; // sicoop.stream_receive_timeout (0: none)
};
Limits limits(int interval_ms, int batch_changes, int work_mem_kb, int receive_timeout_ms);

// `ms` milliseconds after `t`.
inline Micros after(Micros t, int64_t ms) { return t + ms * kMicrosPerMilli; }

// A gathering batch is due: it holds stream_batch_changes changes, or a part's bytes, or its
// oldest change arrived stream_interval ago.
bool due(Micros now, size_t changes, size_t bytes, Micros oldest, const Limits& limits);

// A batch held back by a run grew past its bound: the worker stops reading until it applies.
bool reading_paused(size_t changes, size_t bytes, const Limits& limits);

// How long to wait for the source (ms): until the gathering batch falls due, else kIdleWaitMs.
long wait_ms(Micros now, bool gathering, Micros oldest, const Limits& limits);

// Silence from the source since `silent_since`, as wal_receiver_timeout: at half the receive
// timeout a reply is asked for (once: `pinged`), at all of it the stream is stalled.
struct Silence {
    bool ask_reply = false;
    bool stalled = false;
};
Silence silence(Micros now, Micros silent_since, bool pinged, const Limits& limits);

// Adding a transaction's member states (key: states) to a batch's would give one member more
// than kMaxMemberStates: the batch is applied first.
bool too_many_states(const std::map<std::string, size_t>& batch, const std::map<std::string, size_t>& adding);

// A cleared batch of `bytes` is big enough to give its memory back.
bool big_batch(size_t bytes, const Limits& limits);

}  // namespace sicoop::stream_policy
