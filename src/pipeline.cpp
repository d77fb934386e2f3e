#include "pipeline.hpp"

#include "bulk_copy.hpp"
#include "run_log.hpp"
#include "spi_session.hpp"
#include "steps/step.hpp"

#include <optional>
#include <string>
#include <vector>

namespace sicoop {

namespace {

// Runs whose logs one purge statement deletes at most (sicoop._purge_logs).
constexpr int64 kPurgeBatch = 500;

// The lock that keeps runs apart (per database): an advisory lock of a class SQL cannot
// reach (pg_advisory_lock() and friends use classes 1 and 2), so that no role -- with or
// without rights on the warehouse -- can take it and make every run skip. As Citus does.
constexpr uint32 kLockKey1 = 0x73696370;  // 'sicp'
constexpr uint32 kLockKey2 = 7338001;
constexpr uint16 kLockClass = 4;

void pipeline_locktag(LOCKTAG* tag) {
    SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, kLockKey1, kLockKey2, kLockClass);
}

// The lock wait bound of a run: sicoop.lock_timeout, or the session's own lock_timeout if
// shorter (0: none).
int run_lock_timeout_ms() {
    return LockTimeout == 0            ? lock_timeout_setting
           : lock_timeout_setting == 0 ? LockTimeout
                                       : Min(LockTimeout, lock_timeout_setting);
}

// Every statement a run makes resolves names in pg_catalog only (then pg_temp, for tables
// alone): an operator or function another role created elsewhere on the caller's search_path
// can never stand in for a built-in one. And no statement of it waits for a warehouse lock
// longer than run_lock_timeout_ms(): before its first step a run already reads the run log,
// the warehouse's state and tables that a VACUUM FULL, ALTER or REINDEX may hold. Both in force
// from the first statement, as a function's SET clause is; restore_settings(level) puts the
// caller's settings back (a commit does too).
int pin_run_settings() {
    int level = 0;
    const std::string lock_timeout = std::to_string(run_lock_timeout_ms());
    pg_call([&] {
        level = NewGUCNestLevel();
        (void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
                                 GUC_ACTION_SAVE, true, 0, false);
        (void) set_config_option("lock_timeout", lock_timeout.c_str(), PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
                                 true, 0, false);
    });
    return level;
}

void restore_settings(int level) {
    pg_call([&] { AtEOXact_GUC(true, level); });
}

// Before anything is read or logged: the SQL objects are the version this library was built
// for (new files installed but ALTER EXTENSION ... UPDATE not run yet is refused, not
// half-run), and there is a warehouse connected to a source (sicoop._check_ready()).
void check_installation() {
    std::string installed = spi::exec_text("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'sicoop_etl'");
    if (installed.empty())  // (the stream's worker, after DROP EXTENSION)
        pg_call([] {
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("sicoop: sicoop_etl is no longer installed in this database"),
                            errhint("CREATE EXTENSION sicoop_etl adopts the warehouse as it is; then SELECT sicoop.start_stream(); "
                                    "resumes the stream where it stopped.")));
        });
    if (installed != SICOOP_EXTENSION_VERSION) {
        const char* v = installed.c_str();
        pg_call([&] {
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("sicoop: the extension's SQL objects are version %s, its library is version %s", v,
                                   SICOOP_EXTENSION_VERSION),
                            errhint("Run ALTER EXTENSION sicoop_etl UPDATE; it keeps the warehouse's data.")));
        });
    }
    spi::exec("SELECT sicoop._check_ready()");
}

// What the step needs to know before it plans: full or incremental, what it last processed,
// which tables are still empty, and the movements' window.
// A stream's micro-batch: the source tables it touched (set by stream_steps::run).
std::vector<std::string> stream_batch_tables;
std::vector<std::string> stream_batch_truncated;

RunContext load_context(const Step& step, bool full, bool rebuild, bool stream, spi::RunParams& params) {
    RunContext ctx;
    ctx.full = full || rebuild;
    ctx.rebuild = rebuild;
    ctx.stream = stream;
    if (stream) {
        ctx.stream_tables = stream_batch_tables;
        ctx.stream_truncated = stream_batch_truncated;
    }
    spi::Param name = spi::text_param(step.name.c_str());
    ctx.since_run_id = rebuild ? 0 : spi::exec("SELECT last_run_id FROM sicoop.step_state WHERE step = $1", &name, 1);
    if (ctx.full && !rebuild) {
        // How big raw is: a full comparison spreads its rows over buckets of some 16 rows.
        for (const SourceTable& t : source_tables()) {
            const std::string raw = "raw_" + t.name;
            spi::Param table = spi::text_param(raw.c_str());
            ctx.table_rows.emplace_back(
                raw, spi::exec("SELECT greatest(c.reltuples, 0)::bigint FROM pg_class c"
                               " WHERE c.oid = pg_catalog.to_regclass('sicoop.' || $1)", &table, 1));
        }
    }

    std::string list = "{";
    for (const auto& t : step.first_load_tables) list += (list.size() > 1 ? "," : "") + t;
    list += "}";
    spi::Param tables = spi::text_param(list.c_str());
    std::string empty = spi::exec_text("SELECT array_to_string(sicoop._empty_tables($1::text[]), ',')", &tables, 1);
    for (size_t start = 0; start < empty.size();) {
        size_t comma = empty.find(',', start);
        if (comma == std::string::npos) comma = empty.size();
        ctx.empty_tables.push_back(empty.substr(start, comma - start));
        start = comma + 1;
    }

    params.since_run_id = ctx.since_run_id;
    spi::Param local[2] = {spi::timestamptz_param(params.reference_time), spi::text_param(params.timezone)};
    params.has_window =
        spi::exec_timestamp("SELECT sicoop.movement_window_start($1 AT TIME ZONE $2)", &params.window_start, local, 2);
    ctx.has_window = params.has_window;
    return ctx;
}

struct StepOutcome {
    StepCounts counts;
    std::string detail;  // rows and seconds per label, as JSON
};

// What an error inside a step says it was doing (run_log.error_context, the client's CONTEXT):
// the step, the table, and the statement or copy, shortened.
struct ActionContext {
    const char* step;
    const char* label;
    std::string what;
};

extern "C" void action_error_context(void* arg) {
    auto* ctx = static_cast<ActionContext*>(arg);
    errcontext("sicoop step %s%s%s: %s", ctx->step, ctx->label[0] ? ", table " : "", ctx->label, ctx->what.c_str());
}

std::string describe(const Action& action) {
    if (action.kind == Action::Kind::Bulk)
        return "copying " + action.bulk.source_table + " from the source into " + action.bulk.target_table;
    std::string sql = action.sql;
    for (char& c : sql)
        if (c == '\n' || c == '\t') c = ' ';
    size_t start = sql.find_first_not_of(' ');
    sql = start == std::string::npos ? "" : sql.substr(start);
    std::string squeezed;
    for (char c : sql)
        if (!(c == ' ' && !squeezed.empty() && squeezed.back() == ' ')) squeezed += c;
    return squeezed.size() > 160 ? squeezed.substr(0, 157) + "..." : squeezed;
}

// Pushes an error context callback for the life of the guard; restores the stack on every
// exit, a C++ exception included.
class ErrorContextGuard {
public:
    explicit ErrorContextGuard(ActionContext* ctx) : saved_(error_context_stack) {
        callback_.callback = action_error_context;
        callback_.arg = ctx;
        callback_.previous = error_context_stack;
        error_context_stack = &callback_;
    }
    ~ErrorContextGuard() { error_context_stack = saved_; }
    ErrorContextGuard(const ErrorContextGuard&) = delete;
    ErrorContextGuard& operator=(const ErrorContextGuard&) = delete;

private:
    ErrorContextCallback callback_;
    ErrorContextCallback* saved_;
};

bool counts_as_read(const BulkCopy& copy) {
    return copy.rows != BulkCopy::Rows::ColumnTypes && copy.rows != BulkCopy::Rows::DayTotals &&
           copy.rows != BulkCopy::Rows::RowChecksums && copy.rows != BulkCopy::Rows::RowChecksumsAndDayTotals;
}

// Runs one action of a step: its rows and seconds are added to the step's counts and to its
// label's timing; an error names the step, the table and the statement (error_context).
// Where a run is, for any session to see (the view sicoop.progress reads it from
// pg_stat_activity): the session's application_name says "sicoop_etl run <id> <step> <table>"
// for the length of the step (set at the run's settings level, so it ends with the step, as a
// function's SET clause would). 63 bytes at most, which these fit.
void publish_progress(int64 run_id, const std::string& step, const std::string& label) {
    static std::string published;
    const std::string now = "sicoop_etl run " + std::to_string(run_id) + " " + step + (label.empty() ? "" : " " + label);
    if (now == published && std::string(GetConfigOption("application_name", false, false)) == now) return;
    published = now;
    const char* value = published.c_str();
    pg_call([&] {
        (void) set_config_option("application_name", value, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    });
}

void run_action(const Step& step, const Action& action, const spi::RunParams& params, StepCounts& counts,
                std::vector<Timing>& timings) {
    pg_call([] { CHECK_FOR_INTERRUPTS(); });
    publish_progress(params.run_id, step.name, action.label);
    TimestampTz start = GetCurrentTimestamp();
    int64 copied = 0;
    ActionContext context{step.name.c_str(), action.label.c_str(), describe(action)};
    {
        ErrorContextGuard guard(&context);
        if (action.kind == Action::Kind::Bulk) {
            copied = bulk_copy(action.bulk, params);
            if (!counts_as_read(action.bulk)) copied = 0;
            counts.rows_read += copied;
        } else {
            spi::run_counting(action.sql, params, counts, action.processed_counter);
        }
    }
    if (action.label.empty()) return;
    double seconds = static_cast<double>(GetCurrentTimestamp() - start) / USECS_PER_SEC;
    Timing* timing = nullptr;
    for (auto& t : timings)
        if (t.label == action.label) timing = &t;
    if (timing == nullptr) timing = &timings.emplace_back(Timing{action.label, 0, 0, 0});
    timing->rows += copied;
    timing->seconds += seconds;
    if (action.kind == Action::Kind::Bulk && counts_as_read(action.bulk)) timing->copy_seconds += seconds;
}

// A step's time bound (sicoop.step_timeout), armed on the backend's own statement timer: the
// cancel then says "statement timeout" and every wait (locks, I/O, the source) honours it. The
// session's statement_timeout, armed for the whole CALL, wins if it ends sooner, and is put back
// when the step ends.
class StepTimeout {
public:
    explicit StepTimeout(int timeout_ms) {
        if (timeout_ms <= 0) return;
        pg_call([&] {
            session_armed_ = get_timeout_active(STATEMENT_TIMEOUT);
            session_finish_ = session_armed_ ? get_timeout_finish_time(STATEMENT_TIMEOUT) : 0;
            deadline_ = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
            if (session_armed_ && session_finish_ <= deadline_) return;
            enable_timeout_at(STATEMENT_TIMEOUT, deadline_);
            armed_ = true;
        });
    }
    ~StepTimeout() {
        if (!armed_) return;
        // (A timer that fired just before this keeps its indicator, so the pending cancel says
        // "statement timeout", not "user request". Neither call raises an ERROR; pg_call all
        // the same, and nothing may leave a destructor.)
        try {
            pg_call([&] {
                if (session_armed_)
                    enable_timeout_at(STATEMENT_TIMEOUT, session_finish_);
                else
                    disable_timeout(STATEMENT_TIMEOUT, true);
            });
        } catch (...) {
        }
    }
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
void explain_step_timeout(PgError& e, const std::string& what) {
    const std::string detail =
        what + " ran longer than sicoop.step_timeout (" + std::to_string(step_timeout_setting) + " ms).";
    pg_call([&] {
        e.edata->detail = MemoryContextStrdup(error_context(), detail.c_str());
        e.edata->hint = MemoryContextStrdup(error_context(),
                                            "Raise sicoop.step_timeout if the step needs longer, or find what "
                                            "held it in pg_stat_activity.");
    });
}

StepOutcome execute_step(const Step& step, TimestampTz reference_time, int64 run_id, bool full, bool rebuild,
                         bool stream = false) {
    StepOutcome outcome;
    spi::RunParams params{reference_time, run_id, GetConfigOption("sicoop.timezone", false, false), 0, false, 0};
    // No lock wait in the warehouse lasts longer than sicoop.lock_timeout (or the session's own
    // lock_timeout, if shorter), and the step no longer than sicoop.step_timeout, from its first
    // statement: planning reads the step's tables (is it empty?), which a VACUUM FULL, ALTER or
    // REINDEX may hold. A step held behind a lock fails with 55P03 and says where, instead of
    // hanging for as long as the lock is held. (The stream's worker runs its steps here too.)
    const std::string lock_timeout_text = std::to_string(run_lock_timeout_ms());
    spi::Param lock_timeout = spi::text_param(lock_timeout_text.c_str());
    spi::exec("SELECT set_config('lock_timeout', $1, true)", &lock_timeout, 1);
    std::vector<Timing> timings;
    StepTimeout step_timeout(step_timeout_setting);
    try {
        RunContext ctx;
        {
            ActionContext planning{step.name.c_str(), "",
                                   "planning (what the step last processed, which of its tables are empty)"};
            ErrorContextGuard guard(&planning);
            ctx = load_context(step, full, rebuild, stream, params);
        }
        // For this step's transaction: no JIT (compiling costs more than it buys for set-based
        // loads), and fixed memory budgets, so the backend's memory does not grow with the data:
        // hash joins and sorts bigger than these spill to disk instead.
        spi::exec(
            "SELECT set_config('jit', 'off', true), set_config('work_mem', '16MB', true),"
            " set_config('hash_mem_multiplier', '1', true), set_config('maintenance_work_mem', '32MB', true)");
        for (const Action& action : step.plan(ctx)) run_action(step, action, params, outcome.counts, timings);
        end_source_session();
    } catch (PgError& e) {
        abort_source_session();
        if (step_timeout.fired(e)) explain_step_timeout(e, "The step " + step.name);
        throw;
    } catch (...) {
        abort_source_session();  // and cancel what it runs on the source
        throw;
    }
    // What this step has now processed: the next run takes it from here.
    spi::Param state[2] = {spi::text_param(step.name.c_str()), spi::int8_param(run_id)};
    spi::exec("INSERT INTO sicoop.step_state (step, last_run_id) VALUES ($1, $2)"
              " ON CONFLICT (step) DO UPDATE SET last_run_id = EXCLUDED.last_run_id, updated_at = now()",
              state, 2);
    outcome.counts.finish();
    outcome.detail = timings_json(timings);
    return outcome;
}

bool try_lock(bool session_level) {
    bool locked = false;
    pg_call([&] {
        LOCKTAG tag;
        pipeline_locktag(&tag);
        locked = LockAcquire(&tag, ExclusiveLock, session_level, true) != LOCKACQUIRE_NOT_AVAIL;
    });
    return locked;
}

void unlock_session() {
    pg_call([] {
        LOCKTAG tag;
        pipeline_locktag(&tag);
        LockRelease(&tag, ExclusiveLock, true);
    });
}

int lock_holder_pid() {
    spi::Param keys[3] = {{INT8OID, Int64GetDatum(kLockKey1), false}, {INT8OID, Int64GetDatum(kLockKey2), false},
                          {INT4OID, Int32GetDatum(kLockClass), false}};
    return static_cast<int>(spi::exec(R"sql(
SELECT pid::bigint FROM pg_catalog.pg_locks
WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
  AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid::int = $3
LIMIT 1)sql", keys, 3));
}

Datum step_result_datum(FunctionCallInfo fcinfo, int64 run_id, const char* step, const StepCounts& c,
                        double seconds) {
    Datum result = (Datum) 0;
    pg_call([&] {
        TupleDesc desc;
        if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
            elog(ERROR, "sicoop: run_step must return sicoop.step_result");
        desc = BlessTupleDesc(desc);
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

double seconds_since(TimestampTz start) {
    return static_cast<double>(GetCurrentTimestamp() - start) / USECS_PER_SEC;
}

// Names the run and step in the error the caller sees (psql, pg_cron's job_run_details).
void add_error_context(ErrorData* e, int64 run_id, const char* step) {
    MemoryContext old = MemoryContextSwitchTo(error_context());
    char* line = psprintf("sicoop run %lld, step %s", static_cast<long long>(run_id), step);
    e->context = e->context ? psprintf("%s\n%s", e->context, line) : line;
    MemoryContextSwitchTo(old);
}

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

void spi_connect(bool nonatomic) {
    pg_call([&] {
        if (SPI_connect_ext(nonatomic ? SPI_OPT_NONATOMIC : 0) != SPI_OK_CONNECT)
            elog(ERROR, "sicoop: SPI_connect failed");
    });
}

void spi_finish() {
    pg_call([] { SPI_finish(); });
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
        outcome = execute_step(*step, reference_time, run_id, full, full);
    } catch (PgError& e) {
        add_error_context(e.edata, run_id, step->name.c_str());
        throw;
    }
    run_log::succeeded(run_id, step->name.c_str(), outcome.counts, outcome.detail.c_str());
    restore_settings(settings_level);  // the step's settings end with it, as a function's SET clause
    spi_finish();
    return step_result_datum(fcinfo, run_id, step->name.c_str(), outcome.counts, seconds_since(start));
}

namespace {

// The run's transactions: in a non-atomic CALL every step commits on its own (not inside
// BEGIN ... COMMIT). A commit ends the pinned settings with the transaction: they are pinned
// again for the next.
class RunTransaction {
public:
    explicit RunTransaction(bool nonatomic) : nonatomic_(nonatomic), settings_level_(pin_run_settings()) {}
    bool nonatomic() const { return nonatomic_; }
    void commit() {
        if (!nonatomic_) return;
        restore_settings(settings_level_);
        try {
            spi::commit();
        } catch (PgError&) {
            // A failed commit leaves a new transaction (SPI_commit starts one): pinned again,
            // for the failure's own bookkeeping.
            settings_level_ = pin_run_settings();
            throw;
        }
        settings_level_ = pin_run_settings();
    }
    // The caller's settings back, at the end of the call.
    void restore() { restore_settings(settings_level_); }

private:
    bool nonatomic_;
    int settings_level_;
};

// What every step of a run shares.
struct Run {
    int64 id;
    TimestampTz reference_time;
    bool full;
    bool rebuild;
    std::string rules_signature;  // the rules this run checks rows against
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
    const bool rebuild = !owed.empty() || (full && full_run_setting == FULL_RUN_REBUILD);
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
    return Run{run_id, reference_time, full, rebuild, rules_signature};
}

// The step in a subtransaction: a failure rolls its writes back (SubTransaction's destructor),
// leaving the run's transaction usable for the failure's log.
StepCounts execute_step_alone(const Run& run, const Step& step) {
    spi::SubTransaction sub;
    StepOutcome outcome = as_pg_error([&] { return execute_step(step, run.reference_time, run.id, run.full, run.rebuild); });
    run_log::succeeded(run.id, step.name.c_str(), outcome.counts, outcome.detail.c_str());
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
    run_log::started(run.id, name, run.reference_time);
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
        run_log::failed(run.id, name, run.reference_time, e.edata);
        run_log::failed(run.id, "run_pipeline", run.reference_time, e.edata);
        run_log::alert(run.id, name);
        tx.commit();
        throw;
    }
    notice_step_done(run.id, name, seconds_since(step_start), counts);
    return counts;
}

// Every step in order; `current` names the step running (for the error's context).
StepCounts run_pipeline_steps(const Run& run, RunTransaction& tx, const char*& current) {
    StepCounts total;
    total.rows_unchanged = 0;
    for (const Step& step : pipeline_steps()) {
        current = step.name.c_str();
        const StepCounts counts = run_pipeline_step(run, step, tx);
        total.rows_read += counts.rows_read;
        total.rows_inserted += counts.rows_inserted;
        total.rows_updated += counts.rows_updated;
        total.rows_deleted += counts.rows_deleted;
        total.rows_unchanged += counts.rows_unchanged;
        total.rows_rejected += counts.rows_rejected;
        total.rows_unknown = counts.rows_unknown;  // the fact's, after the last step
    }
    return total;
}

// What the steps committed but a 'fail' rule forbids (an unbalanced reconciliation) fails the
// run; otherwise a full run has paid what was owed. In a subtransaction: a failure rolls it back.
void record_run_success(const Run& run, const StepCounts& total) {
    spi::SubTransaction sub;
    spi::Param id = spi::int8_param(run.id);
    spi::exec("SELECT sicoop._check_run_quality($1)", &id, 1);
    if (run.full) {
        spi::Param signature = spi::text_param(run.rules_signature.c_str());
        spi::exec("UPDATE ONLY sicoop.warehouse_info SET full_run_owed_by = NULL, rules_signature = $1", &signature, 1);
    }
    run_log::succeeded(run.id, "run_pipeline", total);
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
        run_log::failed(run.id, "run_pipeline", run.reference_time, e.edata);
        run_log::alert(run.id, "run_pipeline");
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

}  // namespace

// The stream worker's side (src/stream.cpp): the same steps, in the worker's transaction.
namespace stream_steps {

void check_ready() { check_installation(); }

bool try_run_lock() { return try_lock(false); }

StepCounts run(int64 run_id, TimestampTz reference_time, bool stream, std::string& detail,
               const std::vector<std::string>& tables, const std::vector<std::string>& truncated) {
    stream_batch_tables = tables;
    stream_batch_truncated = truncated;
    StepCounts total;
    total.rows_unchanged = 0;
    detail = "{";
    for (const Step& step : pipeline_steps()) {
        // The initial sync is a full run (a first load on an empty warehouse), logged as one.
        if (!stream) run_log::started(run_id, step.name.c_str(), reference_time);
        const TimestampTz step_start = GetCurrentTimestamp();
        StepOutcome outcome = as_pg_error([&] { return execute_step(step, reference_time, run_id, !stream, false, stream); });
        const int64 ms = (GetCurrentTimestamp() - step_start) / 1000;
        if (!stream) run_log::succeeded(run_id, step.name.c_str(), outcome.counts, outcome.detail.c_str());
        const StepCounts& c = outcome.counts;
        detail += (detail.size() > 1 ? ", \"" : "\"") + step.name + "\": [" + std::to_string(c.rows_read) + ", " +
                  std::to_string(c.rows_inserted) + ", " + std::to_string(c.rows_updated) + ", " +
                  std::to_string(c.rows_deleted) + ", " + std::to_string(c.rows_rejected) + ", " + std::to_string(ms) + "]";
        total.rows_read += c.rows_read;
        total.rows_inserted += c.rows_inserted;
        total.rows_updated += c.rows_updated;
        total.rows_deleted += c.rows_deleted;
        total.rows_unchanged += c.rows_unchanged;
        total.rows_rejected += c.rows_rejected;
        total.rows_unknown = c.rows_unknown;
    }
    detail += "}";
    return total;
}

}  // namespace stream_steps

// While a stream is wanted, a full check runs in the stream's worker, at the stream's own
// position (src/stream.cpp, "A full check at the stream's own position"): read here, the source
// would be ahead of the stream, and the member versions in between would be lost. This call
// asks for it and waits, up to sicoop.full_check_wait, for its outcome in the run log. False:
// no stream is wanted, the call runs the check itself.
bool full_check_in_stream(RunTransaction& tx, bool nonatomic) {
    if (spi::exec_text("SELECT (to_regclass('sicoop.stream_state') IS NOT NULL"
                       " AND EXISTS (SELECT 1 FROM sicoop.stream_state s WHERE s.wanted))::text") != "true")
        return false;
    if (!nonatomic)
        pg_call([] {
            ereport(ERROR, (errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
                            errmsg("sicoop: a stream follows the source: its worker runs the full check at the stream's position, "
                                   "and this call waits for it, which it cannot do inside a transaction block"),
                            errhint("CALL sicoop.run_pipeline(full => true) on its own, not inside BEGIN ... COMMIT.")));
        });
    const std::string requested = spi::exec_text(R"sql(
UPDATE sicoop.stream_state SET full_check_requested_at = coalesce(full_check_requested_at, pg_catalog.clock_timestamp())
RETURNING full_check_requested_at::text)sql");
    tx.commit();
    spi::Param since = spi::text_param(requested.c_str());
    const TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), full_check_wait_setting);
    for (;;) {
        pg_call([] {
            (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 200L, PG_WAIT_EXTENSION);
            ResetLatch(MyLatch);
            CHECK_FOR_INTERRUPTS();
        });
        // The worker's run, once it answered: its outcome.
        const std::string outcome = spi::exec_text(R"sql(
SELECT concat_ws(E'\t', l.run_id, l.status, l.error_sqlstate, l.error_message)
FROM sicoop.stream_state s, sicoop.run_log l
WHERE s.full_check_requested_at IS NULL AND l.step = 'run_pipeline' AND l.started_at >= $1::timestamptz
  AND l.status IN ('succeeded', 'failed')
ORDER BY l.run_id DESC LIMIT 1)sql", &since, 1);
        const std::string stream = spi::exec_text(
            "SELECT concat_ws(' ', s.state, s.wanted) FROM sicoop.stream_state s");
        tx.commit();
        if (!outcome.empty()) {
            std::vector<std::string> f;
            size_t from = 0;
            for (size_t tab; (tab = outcome.find('\t', from)) != std::string::npos; from = tab + 1) f.push_back(outcome.substr(from, tab - from));
            f.push_back(outcome.substr(from));
            f.resize(4);
            pg_call([&] {
                if (f[1] == "succeeded")
                    ereport(NOTICE, (errmsg("sicoop: run %s: the stream's worker ran the full check at the stream's position",
                                            f[0].c_str())));
                else
                    ereport(ERROR, (errcode(f[2].size() == 5 ? MAKE_SQLSTATE(f[2][0], f[2][1], f[2][2], f[2][3], f[2][4])
                                                            : ERRCODE_INTERNAL_ERROR),
                                    errmsg("sicoop: run %s: the full check the stream's worker ran failed: %s", f[0].c_str(),
                                           f[3].c_str()),
                                    errhint("sicoop.run_status() and the server log say more.")));
            });
            return true;
        }
        const bool gone = stream.empty() || stream.rfind("failed", 0) == 0 || stream.find(" false") != std::string::npos;
        if (gone || GetCurrentTimestamp() >= deadline) {
            // The request is withdrawn (unless another caller's is the same: it is answered once).
            spi::exec("UPDATE sicoop.stream_state SET full_check_requested_at = NULL WHERE full_check_requested_at = $1::timestamptz",
                      &since, 1);
            tx.commit();
            const std::string state = stream;
            pg_call([&] {
                if (gone)
                    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                                    errmsg("sicoop: the stream stopped (%s) before its worker ran the full check", state.c_str()),
                                    errhint("CALL sicoop.run_pipeline(full => true) again: with no stream wanted, the call runs it.")));
                ereport(ERROR, (errcode(ERRCODE_LOCK_NOT_AVAILABLE),
                                errmsg("sicoop: the stream's worker did not run the full check within sicoop.full_check_wait (%d ms)",
                                       full_check_wait_setting),
                                errhint("sicoop.stream_status() says what the stream is doing (a worker not running, reconnecting, "
                                        "stalled or applying a large batch); the request was withdrawn.")));
            });
        }
    }
}

Datum run_pipeline(FunctionCallInfo fcinfo) {
    // Steps commit on their own only in a non-atomic CALL (not inside BEGIN ... COMMIT).
    const bool nonatomic = fcinfo->context && IsA(fcinfo->context, CallContext) &&
                           !castNode(CallContext, fcinfo->context)->atomic;
    bool full = false;
    pg_call([&] { full = PG_NARGS() > 0 && !PG_ARGISNULL(0) && PG_GETARG_BOOL(0); });
    const int64 max_run_time_seconds = max_run_time_setting;

    spi_connect(nonatomic);
    RunTransaction tx(nonatomic);  // (lock_timeout bounded from here on)
    // What the run does before its first step is bounded as a step is (sicoop.step_timeout):
    // it reads the run log and the warehouse's state, and may build indexes a failed first load
    // left dropped.
    std::optional<StepTimeout> preparing;
    preparing.emplace(step_timeout_setting);
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
    const char* current = "run_pipeline";
    try {
        // (Inside the try: a failure while preparing must release the session's lock too, or a
        // pooled session would keep every other run skipped.)
        if (!full && stream_keeps_current(run_id, reference_time, tx)) {
            unlock_session();
            tx.restore();
            spi_finish();
            PG_RETURN_VOID();
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
    tx.restore();
    spi_finish();
    PG_RETURN_VOID();
}

}  // namespace sicoop
