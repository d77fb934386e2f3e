// The stream's state row, sicoop.stream_state: the worker's states and the one place in C++
// that writes its `state` column (src/stream_state.cpp). Plain SQL on the stream's own row,
// nothing of the extension's: it is written even when sicoop_etl was dropped under the worker.
#pragma once

#include "pg.hpp"
#include "steps/pgoutput.hpp"

#include <optional>
#include <string>

namespace sicoop::stream {

// The worker's states, as stream_state.state stores them (stream_status() shows them).
enum class StreamState {
    Starting,      // claimed, connecting
    Syncing,       // the first start: the slot made, the warehouse brought to its snapshot
    Streaming,     // the source took START_REPLICATION; micro-batches apply
    Paused,        // a run holds the pipeline lock: the batch waits
    Stopped,       // no longer wanted (stop_stream())
    Failed,        // an error no retry helps: the fix in stream_state, start_stream() again
    Stalled,       // the source sent nothing for sicoop.stream_receive_timeout: reconnecting
    Reconnecting,  // a transient error: the postmaster starts the worker again in 5 s
};
const char* state_text(StreamState s);

// What claim() read from the row (the stream lock held).
struct StreamConfig {
    std::string slot;
    std::string publication;
    std::string source_schema;
    bool has_applied = false;
    pgoutput::Lsn applied = 0;
    bool slot_is_ours = false;  // this warehouse created the slot (stream_state.created_slot)
};

// The one writer of the state: `s`, with the error that led to it (none: cleared). An exit to
// start again (Reconnecting) keeps Stalled (the source still sends nothing); every exit state
// records when the worker ended (stopped_at); Failed and Stalled notify sicoop_alerts.
void set_state(StreamState s, const PgError* error = nullptr, const char* message = nullptr);

// set_state() in a transaction of its own (the failed one is gone), as the owner of now.
void record_failure(StreamState s, const PgError* error, const char* message);

// The stream's lock, for this worker's whole life; false if another worker has it.
bool take_stream_lock();

// Reads the stream's configuration and records the worker (Starting, or Syncing on a first
// start; Reconnecting or Stalled stay until the source takes START_REPLICATION); nullopt:
// nothing to do (not wanted, or sicoop.stream_state gone).
std::optional<StreamConfig> claim();

// Whether stream_state.wanted (in the caller's transaction).
bool still_wanted();

// The slot `created` (<slot>@<warehouse>) is this warehouse's: recorded in a transaction of its own.
void record_created_slot(const std::string& created);

// The source took START_REPLICATION: Streaming, no error pending.
void mark_streaming();

// The initial sync's consistent point, stored with its data (Streaming).
void record_synced(const std::string& consistent_point);

// A micro-batch or a large source transaction applied, stored with its data (Streaming).
struct AppliedBatch {
    std::string applied_lsn;
    std::string received_lsn;
    int64 changes = 0;
    int64 transactions = 0;
    std::string commit_time;
};
void record_applied(const AppliedBatch& batch);

// Housekeeping's state of a wanted stream: Streaming, or Paused (a batch held back by a run).
void record_running(StreamState s);

}  // namespace sicoop::stream
