// Full runs the stream makes at a source snapshot (src/stream_sync.cpp): the initial sync at a
// new slot's consistent point, and the full check asked for at the stream's own position.
#pragma once

#include "pg.hpp"
#include "stream_busy.hpp"
#include "stream_source.hpp"
#include "stream_state.hpp"

#include <memory>
#include <optional>
#include <string>

namespace sicoop::stream {

// The slot, created with an exported snapshot, and the warehouse brought to that snapshot by a
// full run; the applied LSN is the slot's consistent point, stored with the run's data.
pgo::Lsn initial_sync(Replication& source, const StreamConfig& config);

// run_pipeline(full => true) while a stream is wanted asks the worker (stream_state.
// full_check_requested_at) rather than reading the source itself: a check that read the source
// ahead of the stream would load member changes the stream has not applied yet as one version
// from the check's time, and the versions in between would be lost. The worker makes a
// temporary slot on a second replication connection: its consistent point C and a snapshot of
// the source exactly at C. It applies every source transaction that ended at or before C, then
// runs every step as a full run on that snapshot (as the initial sync does), and streams on
// from C: the check sees what the stream holds, no more, no less.
struct FullCheck {
    std::unique_ptr<Replication> connection;  // holds the temporary slot and its snapshot
    std::string snapshot;
    pgo::Lsn at = 0;
};

// The temporary slot made; nullopt: it could not be (the request answered with the error).
std::optional<FullCheck> begin_full_check();

// The check itself, the stream holding everything up to check.at (and nothing after). A failure
// answers the request with the error (the run log); the stream goes on.
void run_full_check(const FullCheck& check, const BusyReply& busy);

}  // namespace sicoop::stream
