// The SQL-callable entry points and module setup. Each entry runs its C++ body under
// sql_entry(), so no C++ exception ever reaches PostgreSQL.
#include "export.hpp"
#include "pg.hpp"
#include "pipeline.hpp"
#include "schedule.hpp"
#include "source.hpp"
#include "stream.hpp"

extern "C" {
PG_MODULE_MAGIC;

void _PG_init(void);
PGDLLEXPORT Datum sicoop_run_step(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_run_pipeline(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_check_source(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_connect_source(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_export_flat(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_cron_connection_error(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_launch_stream_worker(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(sicoop_launch_stream_worker);
PGDLLEXPORT Datum sicoop_warehouse_id(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(sicoop_warehouse_id);
PGDLLEXPORT Datum sicoop_signal_stream_worker(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(sicoop_signal_stream_worker);
PGDLLEXPORT Datum sicoop_source_slot(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(sicoop_source_slot);
PG_FUNCTION_INFO_V1(sicoop_run_step);
PG_FUNCTION_INFO_V1(sicoop_run_pipeline);
PG_FUNCTION_INFO_V1(sicoop_check_source);
PG_FUNCTION_INFO_V1(sicoop_connect_source);
PG_FUNCTION_INFO_V1(sicoop_export_flat);
PG_FUNCTION_INFO_V1(sicoop_cron_connection_error);
}

namespace sicoop {
namespace {
MemoryContext current_error_context = nullptr;
char* as_of_setting = nullptr;
char* timezone_setting = nullptr;
char* lookback_setting = nullptr;
char* export_directory_setting = nullptr;
char* log_retention_setting = nullptr;
char* stream_log_retention_setting = nullptr;

// The password argument of a call, for scrubbing from its errors (NULL if none).
const char* password_arg(FunctionCallInfo fcinfo, int argno) {
    return PG_NARGS() > argno && !PG_ARGISNULL(argno) ? text_to_cstring(PG_GETARG_TEXT_PP(argno)) : nullptr;
}
}  // namespace

int source_timeout_setting = 10 * 60 * 1000;
int max_run_time_setting = 2 * 60 * 60;
int lock_timeout_setting = 5 * 60 * 1000;
int step_timeout_setting = 60 * 60 * 1000;
int full_run_setting = FULL_RUN_COMPARE;
int stream_interval_setting = 250;
int stream_batch_changes_setting = 20000;
int stream_lag_alert_setting = 60;
int stream_work_mem_setting = 64 * 1024;  // kB
int stream_receive_timeout_setting = 60 * 1000;
int full_check_wait_setting = 10 * 60 * 1000;
int stream_retained_alert_setting = 1024;

MemoryContext error_context() { return current_error_context; }
void set_error_context(MemoryContext cxt) { current_error_context = cxt; }
}  // namespace sicoop

void _PG_init(void) {
    DefineCustomStringVariable(
        "sicoop.as_of", "Reference time of sicoop_etl runs (timestamptz); empty means now().",
        "Ages, SCD2 vigência boundaries and update stamps use it, so a run can be replayed.",
        &sicoop::as_of_setting, "", PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable(
        "sicoop.timezone", "The cooperative's time zone, in which the source's naive timestamps are local.",
        "Movements are matched to member versions, and ages taken, in this time zone, whatever the "
        "session's TimeZone.",
        &sicoop::timezone_setting, "America/Sao_Paulo", PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable(
        "sicoop.lookback", "How far before the latest loaded movement an incremental run reads the source again.",
        "Movements edited or inserted within this interval of the latest one are picked up; older changes "
        "need CALL sicoop.run_pipeline(full => true).",
        &sicoop::lookback_setting, "3 days", PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable(
        "sicoop.log_retention", "How long the run log and the data-quality results of a run are kept.",
        "At the end of every successful run, the runs that ended longer ago than this are deleted from "
        "sicoop.run_log and sicoop.dq_result, in small batches (the latest successful run is always kept). Empty: "
        "kept forever.",
        &sicoop::log_retention_setting, "90 days", PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable(
        "sicoop.export_directory", "The server directory sicoop.export_flat(file_name) writes into.",
        "Set by a superuser (ALTER SYSTEM or ALTER DATABASE ... SET): a non-superuser operator exports there, by "
        "file name only. Empty: no such directory.",
        &sicoop::export_directory_setting, "", PGC_SUSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "sicoop.source_timeout", "The longest a statement of a run may take on the source, lock waits included.",
        "Applied as statement_timeout and lock_timeout to every session sicoop opens on the source; a run that "
        "times out fails with the source's error. 0: no limit.",
        &sicoop::source_timeout_setting, 10 * 60 * 1000, 0, INT_MAX, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr,
        nullptr);
    DefineCustomIntVariable(
        "sicoop.lock_timeout", "The longest a run may wait for a lock in the warehouse.",
        "Applied as lock_timeout to every statement of a run, from its first, and of each step (the session's own "
        "lock_timeout, if shorter, wins): a run held behind a lock fails with SQLSTATE 55P03 instead of waiting for "
        "as long as the lock is held. 0: no limit.",
        &sicoop::lock_timeout_setting, 5 * 60 * 1000, 0, INT_MAX, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "sicoop.step_timeout", "The longest one step of a run may take in the warehouse.",
        "A step still going after this is cancelled with SQLSTATE 57014 and the run fails, logged with the step (the "
        "session's own statement_timeout, if it ends sooner, wins); what a run does before its first step is bounded "
        "alike. 0: no limit.",
        &sicoop::step_timeout_setting, 60 * 60 * 1000, 0, INT_MAX, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "sicoop.max_run_time", "How long a run may go on before a run it makes skip reports an error.",
        "A run_pipeline() call that finds another run in progress for longer than this fails (pg_cron shows the job "
        "failed) instead of skipping quietly. 0: never.",
        &sicoop::max_run_time_setting, 2 * 60 * 60, 0, INT_MAX, PGC_USERSET, GUC_UNIT_S, nullptr, nullptr, nullptr);
    static const struct config_enum_entry full_run_options[] = {
        {"compare", sicoop::FULL_RUN_COMPARE, false}, {"rebuild", sicoop::FULL_RUN_REBUILD, false}, {nullptr, 0, false}};
    DefineCustomEnumVariable(
        "sicoop.full_run", "What run_pipeline(full => true) does: compare or rebuild.",
        "compare: the whole source is compared with raw by row checksums per bucket of keys, only the rows of the "
        "buckets that differ are copied, and the later layers follow what changed. rebuild: every source row is "
        "copied and re-checked, and every layer recomputed (what a full run owed after a rule change does).",
        &sicoop::full_run_setting, sicoop::FULL_RUN_COMPARE, full_run_options, PGC_USERSET, 0, nullptr, nullptr,
        nullptr);
    DefineCustomIntVariable(
        "sicoop.stream_interval", "How long the stream gathers changes before it applies them as a micro-batch.",
        "A micro-batch is applied this long after its first change arrived (or sooner, once it holds "
        "sicoop.stream_batch_changes changes): the freshness a stream gives is about this plus the apply's time.",
        &sicoop::stream_interval_setting, 250, 10, 60 * 60 * 1000, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "sicoop.stream_batch_changes", "The most source changes the stream applies in one micro-batch.",
        "A micro-batch holds whole source transactions: one larger than this is applied alone.",
        &sicoop::stream_batch_changes_setting, 20000, 1, INT_MAX, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "sicoop.stream_work_mem", "The memory the stream worker may hold for the changes it applies.",
        "A micro-batch is applied before its changes take a quarter of this; a source transaction larger than that is "
        "staged in parts of that size as it arrives, in the one warehouse transaction that applies it (the steps' own "
        "memory is PostgreSQL's, bounded by work_mem).",
        &sicoop::stream_work_mem_setting, 64 * 1024, 1024, MAX_KILOBYTES, PGC_USERSET, GUC_UNIT_KB, nullptr, nullptr,
        nullptr);
    DefineCustomStringVariable(
        "sicoop.stream_log_retention", "How long the run log keeps a stream's micro-batches.",
        "Each micro-batch the stream applies is a run_log row (step 'stream'), several a second: they are kept for this "
        "long (failures and every batch run, for sicoop.log_retention).",
        &sicoop::stream_log_retention_setting, "1 day", PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "sicoop.stream_lag_alert", "How far behind the source the stream may be before the watchdog alerts.",
        "sicoop.watchdog() (every minute, with sicoop.schedule()) sends NOTIFY sicoop_alerts once when the stream's lag "
        "passes this, or when it failed.",
        &sicoop::stream_lag_alert_setting, 60, 1, INT_MAX, PGC_USERSET, GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "sicoop.stream_receive_timeout", "How long the stream waits for a message from the source before it calls the stream stalled.",
        "After half of it with nothing received the worker asks the source for a reply; after all of it the state says "
        "'stalled', the watchdog alerts, and the worker ends the connection and connects again (as wal_receiver_timeout). "
        "0: never.",
        &sicoop::stream_receive_timeout_setting, 60 * 1000, 0, INT_MAX, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "sicoop.stream_retained_alert", "How much WAL the stream's slot may hold at the source before the watchdog alerts.",
        "The slot keeps every WAL segment the stream has not confirmed; past max_slot_wal_keep_size the slot is lost "
        "and the stream must resync. The watchdog alerts once when the retained WAL passes this.",
        &sicoop::stream_retained_alert_setting, 1024, 1, INT_MAX, PGC_USERSET, GUC_UNIT_MB, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "sicoop.full_check_wait", "How long run_pipeline(full => true) waits for the stream worker to run the full check.",
        "While a stream is wanted, the full check runs in its worker, at the stream's own position; the call waits for it "
        "this long, then fails (55P03) and withdraws its request.",
        &sicoop::full_check_wait_setting, 10 * 60 * 1000, 1000, INT_MAX, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);
    MarkGUCPrefixReserved("sicoop");
}

Datum sicoop_run_step(PG_FUNCTION_ARGS) {
    return sicoop::sql_entry([&] { return sicoop::run_step(fcinfo); });
}

Datum sicoop_run_pipeline(PG_FUNCTION_ARGS) {
    return sicoop::sql_entry([&] { return sicoop::run_pipeline(fcinfo); });
}

// Errors of the source functions never show the password they were given, nor (in the
// server log) the statement that carried it.
Datum sicoop_check_source(PG_FUNCTION_ARGS) {
    const char* password = sicoop::password_arg(fcinfo, 4);
    return sicoop::sql_entry(
        [&] {
            char* args[6] = {nullptr};
            int port = 0;
            sicoop::pg_call([&] {
                for (int i : {0, 2, 3, 4, 5})
                    if (!PG_ARGISNULL(i)) args[i] = text_to_cstring(PG_GETARG_TEXT_PP(i));
                if (!PG_ARGISNULL(1)) port = PG_GETARG_INT32(1);
            });
            sicoop::source::check(args[0], port, args[2], args[3], args[4], args[5]);
            return (Datum) 0;
        },
        {password, true});
}

Datum sicoop_connect_source(PG_FUNCTION_ARGS) {
    const char* password = sicoop::password_arg(fcinfo, 4);
    return sicoop::sql_entry([&] { return sicoop::source::connect(fcinfo); }, {password, true});
}

Datum sicoop_export_flat(PG_FUNCTION_ARGS) {
    return sicoop::sql_entry([&] { return sicoop::export_flat(fcinfo); });
}

Datum sicoop_cron_connection_error(PG_FUNCTION_ARGS) {
    return sicoop::sql_entry([&] { return sicoop::cron_connection_error(fcinfo); });
}

Datum sicoop_launch_stream_worker(PG_FUNCTION_ARGS) {
    return sicoop::sql_entry([&] { return sicoop::stream::launch_worker(fcinfo); });
}

Datum sicoop_warehouse_id(PG_FUNCTION_ARGS) {
    return sicoop::sql_entry([&] { return sicoop::stream::warehouse_id(fcinfo); });
}

Datum sicoop_source_slot(PG_FUNCTION_ARGS) {
    return sicoop::sql_entry([&] { return sicoop::stream::source_slot(fcinfo); });
}

Datum sicoop_signal_stream_worker(PG_FUNCTION_ARGS) {
    return sicoop::sql_entry([&] { return sicoop::stream::signal_worker(fcinfo); });
}
