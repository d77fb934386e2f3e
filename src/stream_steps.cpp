// The stream worker's side of the pipeline (src/stream_session.cpp): the same steps, in the worker's
// transaction, over a micro-batch or as a full run (the initial sync, a full check).
#include "pipeline.hpp"

#include "run_log.hpp"
#include "run_shared.hpp"

#include <string>

namespace sicoop::stream_steps {

namespace {

// A step's counters and milliseconds in the micro-batch's detail: "step": [read, inserted,
// updated, deleted, rejected, ms].
std::string step_detail(const std::string& step, const StepCounts& c, int64 ms) {
    return "\"" + step + "\": [" + std::to_string(c.rows_read) + ", " + std::to_string(c.rows_inserted) + ", " +
           std::to_string(c.rows_updated) + ", " + std::to_string(c.rows_deleted) + ", " +
           std::to_string(c.rows_rejected) + ", " + std::to_string(ms) + "]";
}

}  // namespace

void check_ready() { check_installation(); }

bool try_run_lock() { return try_lock(false); }

StepCounts run(const RunRequest& request, std::string& detail) {
    // The initial sync is a full run (a first load on an empty warehouse), logged as one.
    const bool logged = !request.stream();
    StepCounts total;
    total.rows_unchanged = 0;
    detail = "{";
    for (const Step& step : pipeline_steps()) {
        if (logged) run_log::started(request.run_id, step.name.c_str(), request.reference_time);
        const TimestampTz step_start = GetCurrentTimestamp();
        StepOutcome outcome = as_pg_error([&] { return execute_step(step, request); });
        const int64 ms = (GetCurrentTimestamp() - step_start) / 1000;
        if (logged) run_log::succeeded(request.run_id, step.name.c_str(), outcome.counts, outcome.detail.c_str());
        detail += (detail.size() > 1 ? ", " : "") + step_detail(step.name, outcome.counts, ms);
        add_counts(total, outcome.counts);
    }
    detail += "}";
    return total;
}

}  // namespace sicoop::stream_steps
