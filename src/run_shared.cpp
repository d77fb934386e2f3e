#include "run_shared.hpp"

#include "bulk_copy.hpp"
#include "settings.hpp"
#include "source_session.hpp"
#include "spi_session.hpp"

#include <string>
#include <vector>

namespace sicoop {

namespace {

// The lock that keeps runs apart (per database): an advisory lock of a class SQL cannot
// reach (pg_advisory_lock() and friends use classes 1 and 2), so that no role -- with or
// without rights on the warehouse -- can take it and make every run skip. As Citus does.
constexpr uint32 kLockKey1 = 0x73696370;  // 'sicp'
constexpr uint32 kLockKey2 = 7338001;
constexpr uint16 kLockClass = 4;

void pipeline_locktag(LOCKTAG* tag) {
    SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, kLockKey1, kLockKey2, kLockClass);
}

// What the step needs to know before it plans: full or incremental, what it last processed,
// which tables are still empty, and the movements' window.
RunContext load_context(const Step& step, const RunRequest& request, spi::RunParams& params) {
    const bool rebuild = request.rebuild();
    RunContext ctx;
    ctx.full = request.full();
    ctx.rebuild = rebuild;
    ctx.stream = request.stream();
    if (ctx.stream) {
        ctx.stream_tables = request.batch.tables;
        ctx.stream_truncated = request.batch.truncated;
        ctx.stream_member_rounds = request.batch.member_rounds;
    }
    spi::Param name = spi::text_param(step.name.c_str());
    ctx.since_run_id = rebuild ? 0 : spi::exec("SELECT last_run_id FROM sicoop.step_state WHERE step = $1", &name, 1);
    if (ctx.full && !rebuild) {
        // How big raw is: a full comparison spreads its rows over buckets of some 2 rows. The
        // movements' size is the source's count at the last run (its day totals) where there is
        // one: raw's own estimate is 0 on a Citus coordinator, whose raw is distributed.
        for (const SourceTable& t : source_tables()) {
            const std::string raw = "raw_" + t.name;
            spi::Param table = spi::text_param(raw.c_str());
            const char* estimate = t.time_column.empty()
                                       ? "SELECT greatest(c.reltuples, 0)::bigint FROM pg_class c"
                                         " WHERE c.oid = pg_catalog.to_regclass('sicoop.' || $1)"
                                       : "SELECT coalesce((SELECT sum(d.source_rows) FROM sicoop.source_day_total d),"
                                         " greatest(c.reltuples, 0))::bigint FROM pg_class c"
                                         " WHERE c.oid = pg_catalog.to_regclass('sicoop.' || $1)";
            ctx.table_rows.emplace_back(raw, spi::exec(estimate, &table, 1));
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
    ctx.movements_distributed = spi::exec_text("SELECT sicoop._is_citus_table('sicoop.raw_movimentacao_cartao')") == "t";
    return ctx;
}

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

bool counts_as_read(const BulkCopy& copy) {
    return copy.rows != BulkCopy::Rows::ColumnTypes && copy.rows != BulkCopy::Rows::DayTotals &&
           copy.rows != BulkCopy::Rows::RowHashes;
}

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

// Runs one action of a step: its rows and seconds are added to the step's counts and to its
// label's timing; an error names the step, the table and the statement (error_context).
void run_action(const Step& step, const Action& action, const spi::RunParams& params, SourceSessions& sessions,
                StepCounts& counts, std::vector<Timing>& timings) {
    pg_call([] { CHECK_FOR_INTERRUPTS(); });
    publish_progress(params.run_id, step.name, action.label);
    TimestampTz start = GetCurrentTimestamp();
    int64 copied = 0;
    ActionContext context{step.name.c_str(), action.label.c_str(), describe(action)};
    {
        ErrorContextGuard guard(&context);
        if (action.kind == Action::Kind::Bulk) {
            copied = bulk_copy(action.bulk, params, sessions);
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

}  // namespace
ErrorContextGuard::ErrorContextGuard(ActionContext* ctx) : saved_(error_context_stack) {
    callback_.callback = action_error_context;
    callback_.arg = ctx;
    callback_.previous = error_context_stack;
    error_context_stack = &callback_;
}

StepTimeout::StepTimeout(int timeout_ms) {
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

StepTimeout::~StepTimeout() {
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

void explain_step_timeout(PgError& e, const std::string& what) {
    const std::string detail =
        what + " ran longer than sicoop.step_timeout (" + std::to_string(settings::step_timeout_ms()) + " ms).";
    pg_call([&] {
        e.edata->detail = MemoryContextStrdup(error_context(), detail.c_str());
        e.edata->hint = MemoryContextStrdup(error_context(),
                                            "Raise sicoop.step_timeout if the step needs longer, or find what "
                                            "held it in pg_stat_activity.");
    });
}

StepOutcome execute_step(const Step& step, const RunRequest& request) {
    StepOutcome outcome;
    spi::RunParams params{request.reference_time, request.run_id, settings::timezone(), 0, false, 0};
    // No lock wait in the warehouse lasts longer than sicoop.lock_timeout (or the session's own
    // lock_timeout, if shorter), and the step no longer than sicoop.step_timeout, from its first
    // statement: planning reads the step's tables (is it empty?), which a VACUUM FULL, ALTER or
    // REINDEX may hold. A step held behind a lock fails with 55P03 and says where, instead of
    // hanging for as long as the lock is held. (The stream's worker runs its steps here too.)
    const std::string lock_timeout_text = std::to_string(settings::run_lock_timeout_ms());
    spi::Param lock_timeout = spi::text_param(lock_timeout_text.c_str());
    spi::exec("SELECT set_config('lock_timeout', $1, true)", &lock_timeout, 1);
    std::vector<Timing> timings;
    StepTimeout step_timeout(settings::step_timeout_ms());
    try {
        // Closed when the actions are done; on an error, cancelled at the source and closed as
        // the try block is left (its destructor).
        SourceSessions sessions(request.snapshot);
        RunContext ctx;
        {
            ActionContext planning{step.name.c_str(), "",
                                   "planning (what the step last processed, which of its tables are empty)"};
            ErrorContextGuard guard(&planning);
            ctx = load_context(step, request, params);
        }
        // For this step's transaction: no JIT (compiling costs more than it buys for set-based
        // loads), and fixed memory budgets, so the backend's memory does not grow with the data:
        // hash joins and sorts bigger than these spill to disk instead. And every statement of
        // the extension's PL/pgSQL functions planned for this run's values: after five calls a
        // long-lived session (the stream's worker) would switch to a generic plan, which cannot
        // use an index for `since_run_id = 0 OR run_id > since_run_id` (check_vigencia) and so
        // read every member's versions in every micro-batch: 50 ms a batch at 10M movements.
        spi::exec(
            "SELECT set_config('jit', 'off', true), set_config('work_mem', '16MB', true),"
            " set_config('hash_mem_multiplier', '1', true), set_config('maintenance_work_mem', '32MB', true),"
            " set_config('plan_cache_mode', 'force_custom_plan', true)");
        for (const Action& action : step.plan(ctx)) run_action(step, action, params, sessions, outcome.counts, timings);
        sessions.finish();
    } catch (PgError& e) {
        if (step_timeout.fired(e)) explain_step_timeout(e, "The step " + step.name);
        throw;
    }
    // What this step has now processed: the next run takes it from here.
    spi::Param state[2] = {spi::text_param(step.name.c_str()), spi::int8_param(request.run_id)};
    spi::exec("INSERT INTO sicoop.step_state (step, last_run_id) VALUES ($1, $2)"
              " ON CONFLICT (step) DO UPDATE SET last_run_id = EXCLUDED.last_run_id, updated_at = now()",
              state, 2);
    outcome.counts.finish();
    outcome.detail = timings_json(timings);
    return outcome;
}

void add_counts(StepCounts& total, const StepCounts& counts) {
    total.rows_read += counts.rows_read;
    total.rows_inserted += counts.rows_inserted;
    total.rows_updated += counts.rows_updated;
    total.rows_deleted += counts.rows_deleted;
    total.rows_unchanged += counts.rows_unchanged;
    total.rows_rejected += counts.rows_rejected;
    total.rows_unknown = counts.rows_unknown;  // the fact's, after the last step
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

void spi_connect(bool nonatomic) {
    pg_call([&] {
        if (SPI_connect_ext(nonatomic ? SPI_OPT_NONATOMIC : 0) != SPI_OK_CONNECT)
            elog(ERROR, "sicoop: SPI_connect failed");
    });
}

void spi_finish() {
    pg_call([] { SPI_finish(); });
}

// Every statement a run makes resolves names in pg_catalog only (then pg_temp, for tables
// alone): an operator or function another role created elsewhere on the caller's search_path
// can never stand in for a built-in one. And no statement of it waits for a warehouse lock
// longer than settings::run_lock_timeout_ms(): before its first step a run already reads the
// run log, the warehouse's state and tables that a VACUUM FULL, ALTER or REINDEX may hold. Both in force
// from the first statement, as a function's SET clause is; restore_settings(level) puts the
// caller's settings back (a commit does too).
int pin_run_settings() {
    int level = 0;
    const std::string lock_timeout = std::to_string(settings::run_lock_timeout_ms());
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


void RunTransaction::commit() {
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

}  // namespace sicoop
