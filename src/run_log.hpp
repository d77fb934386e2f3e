// The run log, sicoop.run_log: one row per run and step, with start, end, status, counts
// and the error. Written through SPI; callers decide when it is committed.
#pragma once

#include "pg.hpp"
#include "steps/step.hpp"

namespace sicoop::run_log {

int64 next_run_id();
void started(int64 run_id, const char* step, TimestampTz as_of);
void succeeded(int64 run_id, const char* step, const StepCounts& counts, const char* detail_json = nullptr);
void failed(int64 run_id, const char* step, TimestampTz as_of, const ErrorData* error);
// `sqlstate`: the error the skip raises (an overdue run in the way), or nullptr for a quiet one.
void skipped(int64 run_id, TimestampTz as_of, const char* message, const char* sqlstate);
// NOTIFY sicoop_alerts with the step's run_log row as JSON (sent when the transaction commits).
void alert(int64 run_id, const char* step);

}  // namespace sicoop::run_log
