// SELECT sicoop.run_step(name): one step alone (sicoop.load_raw() and friends), in the caller's
// transaction, under the pipeline lock; returns a step_result.
#include "pipeline.hpp"

#include "run_log.hpp"
#include "run_shared.hpp"
#include "spi_session.hpp"

#include <string>

namespace sicoop {

namespace {

Datum step_result_datum(FunctionCallInfo fcinfo, int64 run_id, const char* step, const StepCounts& c,
                        double seconds) {
    Datum result = (Datum) 0;
    pg_call([&] {
        TupleDesc desc = result_row_type(fcinfo, "sicoop: run_step must return sicoop.step_result");
        Datum values[10] = {Int64GetDatum(run_id),          CStringGetTextDatum(step),
                            Int64GetDatum(c.rows_read),      Int64GetDatum(c.rows_inserted),
                            Int64GetDatum(c.rows_updated),   Int64GetDatum(c.rows_deleted),
                            Int64GetDatum(c.rows_unchanged), Int64GetDatum(c.rows_unknown),
                            Int64GetDatum(c.rows_rejected),
                            DirectFunctionCall1(float8_numeric, Float8GetDatum(seconds))};
        bool nulls[10] = {false};
        result = HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
    });
    return result;
}

}  // namespace

Datum run_step(FunctionCallInfo fcinfo) {
    std::string name;
    pg_call([&] {
        if (PG_ARGISNULL(0)) elog(ERROR, "sicoop: step name is required");
    });
    bool full = false;
    {
        char* arg = nullptr;
        pg_call([&] {
            arg = text_to_cstring(PG_GETARG_TEXT_PP(0));
            full = PG_NARGS() > 1 && !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
        });
        name = arg;
    }
    const Step* step = find_step(name);
    if (step == nullptr) {
        const char* n = name.c_str();
        pg_call([&] {
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("sicoop: there is no step \"%s\"", n),
                            errhint("The steps are load_raw, load_trusted, load_dims, scd2_associado and load_fato.")));
        });
    }

    spi_connect(false);
    const int settings_level = pin_run_settings();
    check_installation();
    if (!try_lock(false)) {
        int pid = lock_holder_pid();
        pg_call([&] {
            ereport(ERROR, (errcode(ERRCODE_LOCK_NOT_AVAILABLE),
                            errmsg("sicoop: another pipeline run is in progress (backend pid %d)", pid),
                            errhint("Run the step again when it has finished.")));
        });
    }
    spi::exec("SELECT sicoop._mark_aborted_runs()");
    TimestampTz start = GetCurrentTimestamp();
    TimestampTz reference_time = spi::reference_time();
    int64 run_id = run_log::next_run_id();
    run_log::started(run_id, step->name.c_str(), reference_time);
    StepOutcome outcome;
    try {
        // A single step's full run recomputes it whole.
        RunRequest request;
        request.mode = batch_mode(full, full);
        request.run_id = run_id;
        request.reference_time = reference_time;
        outcome = execute_step(*step, request);
    } catch (PgError& e) {
        add_error_context(e.edata, run_id, step->name.c_str());
        throw;
    }
    run_log::succeeded(run_id, step->name.c_str(), outcome.counts, outcome.detail.c_str());
    restore_settings(settings_level);  // the step's settings end with it, as a function's SET clause
    spi_finish();
    return step_result_datum(fcinfo, run_id, step->name.c_str(), outcome.counts, seconds_since(start));
}

}  // namespace sicoop
