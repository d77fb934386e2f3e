// The pipeline's entry points: one step run alone (sicoop.load_raw() and friends,
// src/run_step.cpp), the whole pipeline (CALL sicoop.run_pipeline(), src/run_pipeline.cpp), and
// the stream worker's runs (src/stream_steps.cpp). What they share: src/run_shared.hpp.
#pragma once

#include "pg.hpp"
#include "run_request.hpp"
#include "steps/step.hpp"

#include <string>

namespace sicoop {

// SELECT sicoop.run_step(name): runs in the caller's transaction; returns a step_result.
Datum run_step(FunctionCallInfo fcinfo);

// CALL sicoop.run_pipeline(): each step commits on its own when called outside a transaction
// block; inside one, the steps share the caller's transaction.
Datum run_pipeline(FunctionCallInfo fcinfo);

// For the stream worker (src/stream_session.cpp), inside a transaction of its own with SPI connected.
namespace stream_steps {
// The extension's SQL objects are this library's version, and the warehouse is ready.
void check_ready();
// The pipeline lock, for the transaction (false: a run holds it).
bool try_run_lock();
// Every step, in order, in the caller's transaction: over a micro-batch (Mode::Stream: the stage
// and sicoop.stream_key filled by the caller, request.batch says what they hold), or as a full
// run (Mode::Full: the initial sync or a full check, logged as the run's steps, its source
// sessions importing request.snapshot). `detail`: per step, [read, inserted, updated, deleted,
// rejected, milliseconds] as JSON.
StepCounts run(const RunRequest& request, std::string& detail);
}  // namespace stream_steps

}  // namespace sicoop
