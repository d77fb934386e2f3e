// What a batch run (run_pipeline, run_step) and the stream worker's runs share: a step executed
// in the caller's transaction (execute_step), the pipeline lock, the installation check, the
// settings a run pins, the run's transactions and the error context its failures carry.
// The entry points: src/run_pipeline.cpp, src/run_step.cpp, src/stream_steps.cpp.
#pragma once

#include "pg.hpp"
#include "run_request.hpp"
#include "steps/step.hpp"

#include <stdexcept>
#include <string>

namespace sicoop {

struct StepOutcome {
    StepCounts counts;
    std::string detail;  // rows and seconds per label, as JSON
};

// Runs every action of `step` for `request` in the caller's transaction, bounded by
// sicoop.lock_timeout and sicoop.step_timeout, and records what it processed (step_state).
StepOutcome execute_step(const Step& step, const RunRequest& request);

// Adds a step's counters to a run's total (rows_unknown: the last step's, the fact's).
void add_counts(StepCounts& total, const StepCounts& counts);

// Before anything is read or logged: the SQL objects are the version this library was built
// for, and there is a warehouse connected to a source (sicoop._check_ready()).
void check_installation();

// The pipeline lock (per database): for the session, or for the transaction. False: a run holds it.
bool try_lock(bool session_level);
void unlock_session();
int lock_holder_pid();  // the backend holding it (0: none)

// The settings every statement of a run is made under (search_path, lock_timeout), from its
// first, as a function's SET clause; restore_settings(level) puts the caller's back.
int pin_run_settings();
void restore_settings(int level);

// SPI for the length of an entry point's call (non-atomic: its steps commit on their own).
void spi_connect(bool nonatomic);
void spi_finish();

// The run's transactions: in a non-atomic CALL every step commits on its own (not inside
// BEGIN ... COMMIT). A commit ends the pinned settings with the transaction: they are pinned
// again for the next.
class RunTransaction {
public:
    explicit RunTransaction(bool nonatomic) : nonatomic_(nonatomic), settings_level_(pin_run_settings()) {}
    bool nonatomic() const { return nonatomic_; }
    void commit();
    // The caller's settings back, at the end of the call.
    void restore() { restore_settings(settings_level_); }

private:
    bool nonatomic_;
    int settings_level_;
};

// What an error inside a step says it was doing (run_log.error_context, the client's CONTEXT):
// the step, the table, and the statement or copy, shortened.
struct ActionContext {
    const char* step;
    const char* label;
    std::string what;
};

// Pushes an error context callback for the life of the guard; restores the stack on every
// exit, a C++ exception included.
class ErrorContextGuard {
public:
    explicit ErrorContextGuard(ActionContext* ctx);
    ~ErrorContextGuard() { error_context_stack = saved_; }
    ErrorContextGuard(const ErrorContextGuard&) = delete;
    ErrorContextGuard& operator=(const ErrorContextGuard&) = delete;

private:
    ErrorContextCallback callback_;
    ErrorContextCallback* saved_;
};

// A step's time bound (sicoop.step_timeout), armed on the backend's own statement timer: the
// cancel then says "statement timeout" and every wait (locks, I/O, the source) honours it. The
// session's statement_timeout, armed for the whole CALL, wins if it ends sooner, and is put back
// when the step ends.
class StepTimeout {
public:
    explicit StepTimeout(int timeout_ms);
    ~StepTimeout();
    // Whether `e` is this bound's cancel (so its message can name the setting).
    bool fired(const PgError& e) const {
        return armed_ && e.edata->sqlerrcode == ERRCODE_QUERY_CANCELED && GetCurrentTimestamp() >= deadline_;
    }
    StepTimeout(const StepTimeout&) = delete;
    StepTimeout& operator=(const StepTimeout&) = delete;

private:
    bool armed_ = false;
    bool session_armed_ = false;
    TimestampTz session_finish_ = 0;
    TimestampTz deadline_ = 0;
};

// A cancel by sicoop.step_timeout says so: `what` ran longer than the setting.
void explain_step_timeout(PgError& e, const std::string& what);

// Names the run and step in the error the caller sees (psql, pg_cron's job_run_details).
void add_error_context(ErrorData* e, int64 run_id, const char* step);

double seconds_since(TimestampTz start);

// Runs `f`; a C++ exception from it becomes a PostgreSQL error (PgError), so that it is
// logged and reported like any other failure of a step.
template <typename F>
auto as_pg_error(F&& f) -> decltype(f()) {
    std::string message;
    try {
        return f();
    } catch (const PgError&) {
        throw;
    } catch (const std::exception& e) {
        message = e.what();
    }
    const char* m = message.c_str();
    pg_call([&] { ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("sicoop: %s", m))); });
    throw std::logic_error("unreachable");
}

}  // namespace sicoop
