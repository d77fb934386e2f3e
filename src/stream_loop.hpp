// The stream worker's loop (src/stream_loop.cpp): START_REPLICATION, then read -> apply ->
// housekeeping -> feedback -> wait, until the stream is no longer wanted.
#pragma once

#include "stream_source.hpp"
#include "stream_state.hpp"

namespace sicoop::stream {

// Streams from `applied` (stored in the warehouse) until the stream is no longer wanted; an
// error ends it (Transient, Stalled, PgError: worker_main() says what becomes of the worker).
void stream_changes(Replication& source, const StreamConfig& config, pgo::Lsn applied);

}  // namespace sicoop::stream
