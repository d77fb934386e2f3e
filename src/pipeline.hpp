// Orchestration: one step run alone (sicoop.load_raw() and friends), and the whole pipeline
// (CALL sicoop.run_pipeline()): the lock that keeps runs apart, one transaction per step,
// the run log, and the error that reaches the caller.
#pragma once

#include "pg.hpp"
#include "steps/step.hpp"

#include <string>
#include <vector>

namespace sicoop {

// SELECT sicoop.run_step(name): runs in the caller's transaction; returns a step_result.
Datum run_step(FunctionCallInfo fcinfo);

// CALL sicoop.run_pipeline(): each step commits on its own when called outside a transaction
// block; inside one, the steps share the caller's transaction.
Datum run_pipeline(FunctionCallInfo fcinfo);

// For the stream worker (src/stream.cpp), inside a transaction of its own with SPI connected.
namespace stream_steps {
// The extension's SQL objects are this library's version, and the warehouse is ready.
void check_ready();
// The pipeline lock, for the transaction (false: a run holds it).
bool try_run_lock();
// Every step, in order, in the caller's transaction: over a micro-batch (`stream`: the stage and
// sicoop.stream_key filled by the caller), or as a full run (the initial sync, logged as the
// run's steps). `detail`: per step, [read, inserted, updated, deleted, rejected, milliseconds] as JSON.
// `tables`: the source tables the micro-batch touched (the others have nothing to merge);
// `truncated`: those of them truncated at the source in it.
StepCounts run(int64 run_id, TimestampTz reference_time, bool stream, std::string& detail,
               const std::vector<std::string>& tables = {}, const std::vector<std::string>& truncated = {});
}  // namespace stream_steps

}  // namespace sicoop
