// Orchestration: one step run alone (sicoop.load_raw() and friends), and the whole pipeline
// (CALL sicoop.run_pipeline()): the lock that keeps runs apart, one transaction per step,
// the run log, and the error that reaches the caller.
#pragma once

#include "pg.hpp"

namespace sicoop {

// SELECT sicoop.run_step(name): runs in the caller's transaction; returns a step_result.
Datum run_step(FunctionCallInfo fcinfo);

// CALL sicoop.run_pipeline(): each step commits on its own when called outside a transaction
// block; inside one, the steps share the caller's transaction.
Datum run_pipeline(FunctionCallInfo fcinfo);

}  // namespace sicoop
