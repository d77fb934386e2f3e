// CALL sicoop.run_pipeline(): every step in order under the pipeline lock, each committed on its
// own in a non-atomic CALL, logged, its failure alerted; a run skipped while another holds the
// lock or while a stream keeps the warehouse current.
#include "pipeline.hpp"

#include "full_check.hpp"
#include "run_log.hpp"
#include "run_shared.hpp"
#include "settings.hpp"
#include "spi_session.hpp"

#include <optional>
#include <string>

namespace sicoop {

namespace {

// Runs whose logs one purge statement deletes at most (sicoop._purge_logs).
constexpr int64 kPurgeBatch = 500;

// A first load inserts into trusted and the fact without their secondary indexes and builds
// them after the insert (10 million facts: about 80 s so, 250 s maintaining them row by row).
// The indexes are dropped here, while the table is still empty, in a short transaction that
// the caller commits before the step starts -- a DROP INDEX inside the step would hold its
// ACCESS EXCLUSIVE lock, and every BI reader of the table, for the whole step -- and the step
// builds them again after its insert (CREATE INDEX takes SHARE: readers pass). A drop that
// cannot have its lock within 200 ms (a long query, a backup reading the table) is skipped:
// the step then keeps the indexes, slower. What a failed step leaves dropped is built again at
// the start of the next run (sicoop.deferred_index).
void defer_first_load_indexes(const Step& step) {
    // Its own subtransaction: an error here (a cancel while it waits for the table) leaves the
    // run's transaction usable, for the step's failure to be logged (rolled back by its
    // destructor when an error leaves the loop).
    spi::SubTransaction all;
    ActionContext context{step.name.c_str(), "", "deferring the indexes of a first load (is the table empty?)"};
    ErrorContextGuard guard(&context);
    for (const std::string& table : step.first_load_tables) {
        if (table.rfind("trusted_", 0) != 0 && table.rfind("fato_", 0) != 0) continue;
        const std::string qualified = "sicoop." + table;
        spi::Param name = spi::text_param(qualified.c_str());
        if (spi::exec_text("SELECT (NOT EXISTS (SELECT 1 FROM sicoop.deferred_index d WHERE d.table_name = $1)"
                           " AND cardinality(sicoop._empty_tables(ARRAY[split_part($1, '.', 2)])) = 1)::text",
                           &name, 1) != "true")
            continue;
        spi::SubTransaction sub;
        try {
            spi::exec("SELECT set_config('lock_timeout', '200ms', true)");
            spi::exec("SELECT sicoop._defer_indexes($1::regclass)", &name, 1);
            sub.release();
        } catch (PgError&) {
            sub.rollback();  // kept: the step maintains them as it inserts
        }
    }
    all.release();
}

// What every step of a run shares: the request, and the rules the run checks rows against.
struct Run : RunRequest {
    std::string rules_signature;  // recorded as checked once a full run succeeds
};

// A second run while one is going is skipped, not queued: pg_cron jobs must not pile up. But
// not in silence when the run in the way has gone on for longer than sicoop.max_run_time: then
// the skip is an error (pg_cron shows the job failed), so a hung run gets noticed.
void skip_run(int64 run_id, TimestampTz reference_time, int64 max_run_time_seconds, RunTransaction& tx) {
    int pid = lock_holder_pid();
    spi::Param holder{INT4OID, Int32GetDatum(pid), false};
    const int64 running_for = spi::exec(R"sql(
SELECT coalesce(extract(epoch FROM clock_timestamp() - min(started_at))::bigint, 0) FROM sicoop.run_log
WHERE status = 'running' AND step = 'run_pipeline' AND backend_pid = $1)sql", &holder, 1);
    const bool overdue = max_run_time_seconds > 0 && running_for > max_run_time_seconds;
    std::string message = "skipped: another run holds the pipeline lock (backend pid " + std::to_string(pid) + ")";
    if (overdue)
        message += ", running for " + std::to_string(running_for) + " s, longer than sicoop.max_run_time (" +
                   std::to_string(max_run_time_seconds) + " s)";
    run_log::skipped(run_id, reference_time, message.c_str(), overdue ? "55P03" : nullptr);
    if (overdue) run_log::alert(run_id, "run_pipeline");
    tx.commit();
    const char* m = message.c_str();
    pg_call([&] {
        if (overdue)
            ereport(ERROR, (errcode(ERRCODE_LOCK_NOT_AVAILABLE),
                            errmsg("sicoop: run %lld %s", static_cast<long long>(run_id), m),
                            errhint("The run in the way may hang: see pg_stat_activity for pid %d, and end it with "
                                    "pg_cancel_backend(%d) if it does.", pid, pid)));
        ereport(NOTICE, (errmsg("sicoop: run %lld %s", static_cast<long long>(run_id), m)));
    });
}

// Before the steps: what earlier runs left behind, and whether this run is a full run (asked
// for, or owed) and a rebuild.
Run prepare_run(int64 run_id, TimestampTz reference_time, bool full) {
    // Runs whose backend died (crash, shutdown, terminated) are recorded as such.
    spi::exec("SELECT sicoop._mark_aborted_runs()");
    // Indexes a failed first load left dropped are built again (on tables still empty).
    spi::exec("SELECT count(*) FROM (SELECT sicoop._restore_indexes(t.table_name::regclass)"
              " FROM (SELECT DISTINCT d.table_name FROM sicoop.deferred_index d) t) r");
    // A full run that did not finish, that a failed reconciliation asked for, or that changed
    // rules call for, is owed: this run is that full run.
    const std::string owed = spi::exec_text("SELECT coalesce(sicoop._full_run_owed(), '')");
    // The rules this run checks rows against (recorded as checked once a full run succeeds).
    const std::string rules_signature = spi::exec_text("SELECT sicoop._rules_signature()");
    // A full run compares, unless it is owed (the rules must see every row again) or
    // sicoop.full_run = 'rebuild'.
    const bool rebuild = !owed.empty() || (full && settings::full_run() == settings::FullRun::Rebuild);
    if (!owed.empty() && !full) {
        full = true;
        const char* why = owed.c_str();
        pg_call([&] {
            ereport(NOTICE, (errmsg("sicoop: run %lld is a full run (full => true): %s", static_cast<long long>(run_id), why)));
        });
    }
    if (full) {
        spi::Param id = spi::int8_param(run_id);
        spi::exec("UPDATE ONLY sicoop.warehouse_info SET full_run_owed_by = coalesce(full_run_owed_by, $1)", &id, 1);
    }
    Run run;
    run.mode = batch_mode(full, rebuild);
    run.run_id = run_id;
    run.reference_time = reference_time;
    run.rules_signature = rules_signature;
    return run;
}

// The step in a subtransaction: a failure rolls its writes back (SubTransaction's destructor),
// leaving the run's transaction usable for the failure's log.
StepCounts execute_step_alone(const Run& run, const Step& step) {
    spi::SubTransaction sub;
    StepOutcome outcome = as_pg_error([&] { return execute_step(step, run); });
    run_log::succeeded(run.run_id, step.name.c_str(), outcome.counts, outcome.detail.c_str());
    sub.release();
    return outcome.counts;
}

// psql shows each step as it finishes (pg_cron keeps the last message).
void notice_step_done(int64 run_id, const char* step, double seconds, const StepCounts& counts) {
    pg_call([&] {
        ereport(NOTICE, (errmsg("sicoop run %lld: %s done in %.2f s: read %lld, inserted %lld, updated %lld, "
                                "deleted %lld, rejected %lld",
                                static_cast<long long>(run_id), step, seconds, static_cast<long long>(counts.rows_read),
                                static_cast<long long>(counts.rows_inserted), static_cast<long long>(counts.rows_updated),
                                static_cast<long long>(counts.rows_deleted),
                                static_cast<long long>(counts.rows_rejected))));
    });
}

// One step of the run, logged as it starts and committed with its log row; a failure stays in
// the log, committed in a transaction of its own, and ends the run.
StepCounts run_pipeline_step(const Run& run, const Step& step, RunTransaction& tx) {
    const char* name = step.name.c_str();
    const TimestampTz step_start = GetCurrentTimestamp();
    run_log::started(run.run_id, name, run.reference_time);
    tx.commit();
    StepCounts counts;
    try {
        if (tx.nonatomic()) {
            defer_first_load_indexes(step);
            tx.commit();
        }
        counts = execute_step_alone(run, step);
        tx.commit();  // a commit-time error (deferred constraint, serialization) lands below too
    } catch (PgError& e) {
        run_log::failed(run.run_id, name, run.reference_time, e.edata);
        run_log::failed(run.run_id, "run_pipeline", run.reference_time, e.edata);
        run_log::alert(run.run_id, name);
        tx.commit();
        throw;
    }
    notice_step_done(run.run_id, name, seconds_since(step_start), counts);
    return counts;
}

// Every step in order; `current` names the step running (for the error's context).
StepCounts run_pipeline_steps(const Run& run, RunTransaction& tx, const char*& current) {
    StepCounts total;
    total.rows_unchanged = 0;
    for (const Step& step : pipeline_steps()) {
        current = step.name.c_str();
        const StepCounts counts = run_pipeline_step(run, step, tx);
        add_counts(total, counts);
    }
    return total;
}

// What the steps committed but a 'fail' rule forbids (an unbalanced reconciliation) fails the
// run; otherwise a full run has paid what was owed. In a subtransaction: a failure rolls it back.
void record_run_success(const Run& run, const StepCounts& total) {
    spi::SubTransaction sub;
    spi::Param id = spi::int8_param(run.run_id);
    spi::exec("SELECT sicoop._check_run_quality($1)", &id, 1);
    if (run.full()) {
        spi::Param signature = spi::text_param(run.rules_signature.c_str());
        spi::exec("UPDATE ONLY sicoop.warehouse_info SET full_run_owed_by = NULL, rules_signature = $1", &signature, 1);
    }
    run_log::succeeded(run.run_id, "run_pipeline", total);
    sub.release();
}

// The run's end: its quality checked and its success logged, then the retention
// (sicoop.log_retention, checked by sicoop._run_settings()): the run log and the data-quality
// results of old runs go, a batch of runs per transaction. A failure is logged and alerted.
void end_run(const Run& run, const StepCounts& total, RunTransaction& tx) {
    try {
        record_run_success(run, total);
        tx.commit();
        for (int64 purged = kPurgeBatch; purged == kPurgeBatch; tx.commit())
            purged = spi::exec(R"sql(
SELECT sicoop._purge_logs(nullif(pg_catalog.current_setting('sicoop.log_retention', true), '')::pg_catalog.interval, 500))sql");
    } catch (PgError& e) {
        run_log::failed(run.run_id, "run_pipeline", run.reference_time, e.edata);
        run_log::alert(run.run_id, "run_pipeline");
        tx.commit();
        throw;
    }
}

// While a stream is wanted (sicoop.stream_state.wanted: started and not stopped), it owns the
// warehouse, and an incremental run is skipped, with a notice (pg_cron's schedule may stay as
// it is) -- whether its worker runs or not: a worker down for a restart, reconnecting or stalled
// resumes from its position and replays every change after it, in commit order, with its
// member history; a batch run in between would read the source's current state and collapse
// that history (the intermediate member versions), and the stream would then replay changes
// already applied. A full run still runs -- the check -- and the stream waits for it (the
// pipeline lock), then goes on. stop_stream() (wanted = false) hands the warehouse back.
bool stream_keeps_current(int64 run_id, TimestampTz reference_time, RunTransaction& tx) {
    const std::string state = spi::exec_text(R"sql(
SELECT s.state || CASE WHEN sicoop._stream_worker_pid() IS NULL THEN ', its worker not running' ELSE '' END
FROM sicoop.stream_state s WHERE s.wanted)sql");
    if (state.empty()) return false;
    const std::string message = "skipped: the stream keeps the warehouse current (it is wanted, now " + state +
                                "; see sicoop.stream_status()); a full run still runs, and sicoop.stop_stream() "
                                "lets batch runs load again";
    run_log::skipped(run_id, reference_time, message.c_str(), nullptr);
    tx.commit();
    const char* m = message.c_str();
    pg_call([&] { ereport(NOTICE, (errmsg("sicoop: run %lld %s", static_cast<long long>(run_id), m))); });
    return true;
}

// The run, the pipeline lock held for the session: released however it ends.
void run_locked(int64 run_id, TimestampTz reference_time, bool full, RunTransaction& tx,
                std::optional<StepTimeout>& preparing) {
    const char* current = "run_pipeline";
    try {
        // (Inside the try: a failure while preparing must release the session's lock too, or a
        // pooled session would keep every other run skipped.)
        if (!full && stream_keeps_current(run_id, reference_time, tx)) {
            unlock_session();
            return;
        }
        const Run run = prepare_run(run_id, reference_time, full);
        preparing.reset();
        run_log::started(run_id, "run_pipeline", reference_time);
        tx.commit();
        const StepCounts total = run_pipeline_steps(run, tx, current);
        current = "run_pipeline";
        end_run(run, total, tx);
    } catch (PgError& e) {
        if (preparing && preparing->fired(e)) explain_step_timeout(e, "The run's preparation (before its first step)");
        add_error_context(e.edata, run_id, current);
        unlock_session();
        throw;
    } catch (...) {
        unlock_session();
        throw;
    }
    unlock_session();
}

}  // namespace

Datum run_pipeline(FunctionCallInfo fcinfo) {
    // Steps commit on their own only in a non-atomic CALL (not inside BEGIN ... COMMIT).
    const bool nonatomic = fcinfo->context && IsA(fcinfo->context, CallContext) &&
                           !castNode(CallContext, fcinfo->context)->atomic;
    bool full = false;
    pg_call([&] { full = PG_NARGS() > 0 && !PG_ARGISNULL(0) && PG_GETARG_BOOL(0); });
    const int64 max_run_time_seconds = settings::max_run_time_s();

    spi_connect(nonatomic);
    RunTransaction tx(nonatomic);  // (lock_timeout bounded from here on)
    // What the run does before its first step is bounded as a step is (sicoop.step_timeout):
    // it reads the run log and the warehouse's state, and may build indexes a failed first load
    // left dropped.
    std::optional<StepTimeout> preparing;
    preparing.emplace(settings::step_timeout_ms());
    check_installation();
    if (full && full_check_in_stream(tx, nonatomic)) {
        tx.restore();
        spi_finish();
        PG_RETURN_VOID();
    }
    TimestampTz reference_time = spi::reference_time();
    int64 run_id = run_log::next_run_id();
    if (!try_lock(true)) {
        skip_run(run_id, reference_time, max_run_time_seconds, tx);
        tx.restore();
        spi_finish();
        PG_RETURN_VOID();
    }
    run_locked(run_id, reference_time, full, tx, preparing);
    tx.restore();
    spi_finish();
    PG_RETURN_VOID();
}

}  // namespace sicoop
