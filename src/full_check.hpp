// A full run while a stream is wanted: the check runs in the stream's worker, at the stream's
// own position (src/stream_sync.cpp; ARCHITECTURE.md, "A full check at the stream's position").
#pragma once

#include "run_shared.hpp"

namespace sicoop {

// Asks the stream's worker for the full check and waits, up to sicoop.full_check_wait, for its
// outcome in the run log (a failure is raised). False: no stream is wanted, the caller runs the
// check itself.
bool full_check_in_stream(RunTransaction& tx, bool nonatomic);

}  // namespace sicoop
