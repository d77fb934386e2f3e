// What a run is asked to do, passed down from its entry point (run_pipeline, run_step, the
// stream worker) to every step and copy of it: no value of a run travels through a global.
#pragma once

#include "pg.hpp"

#include <string>
#include <vector>

namespace sicoop {

// A stream's micro-batch, as the worker staged it (src/stream_apply.hpp: Staged).
struct StreamBatch {
    std::vector<std::string> tables;     // the source tables it touched (the others have nothing to merge)
    std::vector<std::string> truncated;  // those of them truncated at the source in it
    int member_rounds = 0;               // the most earlier states one member has in it (scd2.cpp)
};

struct RunRequest {
    // Incremental: what changed since the step's last run. Full: the whole source compared
    // (a first load on an empty warehouse is one). Rebuild: every row copied and every layer
    // recomputed (an owed full run, sicoop.full_run = 'rebuild', a step's full run). Stream: a
    // micro-batch the stream worker staged.
    enum class Mode { Incremental, Full, Rebuild, Stream };
    Mode mode = Mode::Incremental;
    int64 run_id = 0;
    TimestampTz reference_time = 0;
    StreamBatch batch;     // Mode::Stream only
    std::string snapshot;  // the source snapshot every source session imports ("": its own)

    bool full() const { return mode == Mode::Full || mode == Mode::Rebuild; }
    bool rebuild() const { return mode == Mode::Rebuild; }
    bool stream() const { return mode == Mode::Stream; }
};

// The mode of a batch run: `full` asked for (or owed), `rebuild` how.
inline RunRequest::Mode batch_mode(bool full, bool rebuild) {
    return rebuild ? RunRequest::Mode::Rebuild : full ? RunRequest::Mode::Full : RunRequest::Mode::Incremental;
}

}  // namespace sicoop
