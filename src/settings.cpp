#include "settings.hpp"

#include "pg.hpp"

namespace sicoop::settings {

namespace {

// Each setting's C variable: PostgreSQL writes it, the accessors below read it.
char* as_of = nullptr;
char* timezone_value = nullptr;
char* lookback = nullptr;
char* log_retention = nullptr;
char* export_directory_value = nullptr;
char* stream_log_retention = nullptr;
int source_timeout = 10 * 60 * 1000;
int lock_timeout = 5 * 60 * 1000;
int step_timeout = 60 * 60 * 1000;
int max_run_time = 2 * 60 * 60;
int full_run_value = static_cast<int>(FullRun::Compare);
int stream_interval = 250;
int stream_batch_changes_value = 20000;
int stream_work_mem = 64 * 1024;  // kB
int stream_lag_alert = 60;
int stream_receive_timeout = 60 * 1000;
int stream_retained_alert = 1024;
int full_check_wait = 10 * 60 * 1000;

const struct config_enum_entry full_run_options[] = {{"compare", static_cast<int>(FullRun::Compare), false},
                                                     {"rebuild", static_cast<int>(FullRun::Rebuild), false},
                                                     {nullptr, 0, false}};

// One setting as DefineCustom*Variable takes it. Kept in the order they were always defined.
struct Definition {
    enum class Kind { String, Int, Enum } kind;
    const char* name;
    const char* short_desc;
    const char* long_desc;
    void* variable;
    const char* text_boot;  // String
    int boot, min, max;     // Int (Enum: boot only)
    GucContext context;
    int flags;
};

using K = Definition::Kind;

const Definition kDefinitions[] = {
    {K::String, "sicoop.as_of", "Reference time of sicoop_etl runs (timestamptz); empty means now().",
     "Ages, SCD2 vigência boundaries and update stamps use it, so a run can be replayed.", &as_of, "", 0, 0, 0,
     PGC_USERSET, 0},
    {K::String, "sicoop.timezone", "The cooperative's time zone, in which the source's naive timestamps are local.",
     "Movements are matched to member versions, and ages taken, in this time zone, whatever the "
     "session's TimeZone.",
     &timezone_value, "America/Sao_Paulo", 0, 0, 0, PGC_USERSET, 0},
    {K::String, "sicoop.lookback", "How far before the latest loaded movement an incremental run reads the source again.",
     "Movements edited or inserted within this interval of the latest one are picked up; older changes "
     "need CALL sicoop.run_pipeline(full => true).",
     &lookback, "3 days", 0, 0, 0, PGC_USERSET, 0},
    {K::String, "sicoop.log_retention", "How long the run log and the data-quality results of a run are kept.",
     "At the end of every successful run, the runs that ended longer ago than this are deleted from "
     "sicoop.run_log and sicoop.dq_result, in small batches (the latest successful run is always kept). Empty: "
     "kept forever.",
     &log_retention, "90 days", 0, 0, 0, PGC_USERSET, 0},
    {K::String, "sicoop.export_directory", "The server directory sicoop.export_flat(file_name) writes into.",
     "Set by a superuser (ALTER SYSTEM or ALTER DATABASE ... SET): a non-superuser operator exports there, by "
     "file name only. Empty: no such directory.",
     &export_directory_value, "", 0, 0, 0, PGC_SUSET, 0},
    {K::Int, "sicoop.source_timeout", "The longest a statement of a run may take on the source, lock waits included.",
     "Applied as statement_timeout and lock_timeout to every session sicoop opens on the source; a run that "
     "times out fails with the source's error. 0: no limit.",
     &source_timeout, nullptr, 10 * 60 * 1000, 0, INT_MAX, PGC_USERSET, GUC_UNIT_MS},
    {K::Int, "sicoop.lock_timeout", "The longest a run may wait for a lock in the warehouse.",
     "Applied as lock_timeout to every statement of a run, from its first, and of each step (the session's own "
     "lock_timeout, if shorter, wins): a run held behind a lock fails with SQLSTATE 55P03 instead of waiting for "
     "as long as the lock is held. 0: no limit.",
     &lock_timeout, nullptr, 5 * 60 * 1000, 0, INT_MAX, PGC_USERSET, GUC_UNIT_MS},
    {K::Int, "sicoop.step_timeout", "The longest one step of a run may take in the warehouse.",
     "A step still going after this is cancelled with SQLSTATE 57014 and the run fails, logged with the step (the "
     "session's own statement_timeout, if it ends sooner, wins); what a run does before its first step is bounded "
     "alike. 0: no limit.",
     &step_timeout, nullptr, 60 * 60 * 1000, 0, INT_MAX, PGC_USERSET, GUC_UNIT_MS},
    {K::Int, "sicoop.max_run_time", "How long a run may go on before a run it makes skip reports an error.",
     "A run_pipeline() call that finds another run in progress for longer than this fails (pg_cron shows the job "
     "failed) instead of skipping quietly. 0: never.",
     &max_run_time, nullptr, 2 * 60 * 60, 0, INT_MAX, PGC_USERSET, GUC_UNIT_S},
    {K::Enum, "sicoop.full_run", "What run_pipeline(full => true) does: compare or rebuild.",
     "compare: the whole source is compared with raw by row checksums per bucket of keys, only the rows of the "
     "buckets that differ are copied, and the later layers follow what changed. rebuild: every source row is "
     "copied and re-checked, and every layer recomputed (what a full run owed after a rule change does).",
     &full_run_value, nullptr, static_cast<int>(FullRun::Compare), 0, 0, PGC_USERSET, 0},
    {K::Int, "sicoop.stream_interval", "How long the stream gathers changes before it applies them as a micro-batch.",
     "A micro-batch is applied this long after its first change arrived (or sooner, once it holds "
     "sicoop.stream_batch_changes changes): the freshness a stream gives is about this plus the apply's time.",
     &stream_interval, nullptr, 250, 10, 60 * 60 * 1000, PGC_USERSET, GUC_UNIT_MS},
    {K::Int, "sicoop.stream_batch_changes", "The most source changes the stream applies in one micro-batch.",
     "A micro-batch holds whole source transactions: one larger than this is applied alone.",
     &stream_batch_changes_value, nullptr, 20000, 1, INT_MAX, PGC_USERSET, 0},
    {K::Int, "sicoop.stream_work_mem", "The memory the stream worker may hold for the changes it applies.",
     "A micro-batch is applied before its changes take a quarter of this; a source transaction larger than that is "
     "staged in parts of that size as it arrives, in the one warehouse transaction that applies it (the steps' own "
     "memory is PostgreSQL's, bounded by work_mem).",
     &stream_work_mem, nullptr, 64 * 1024, 1024, MAX_KILOBYTES, PGC_USERSET, GUC_UNIT_KB},
    {K::String, "sicoop.stream_log_retention", "How long the run log keeps a stream's micro-batches.",
     "Each micro-batch the stream applies is a run_log row (step 'stream'), several a second: they are kept for this "
     "long (failures and every batch run, for sicoop.log_retention).",
     &stream_log_retention, "1 day", 0, 0, 0, PGC_USERSET, 0},
    {K::Int, "sicoop.stream_lag_alert", "How far behind the source the stream may be before the watchdog alerts.",
     "sicoop.watchdog() (every minute, with sicoop.schedule()) sends NOTIFY sicoop_alerts once when the stream's lag "
     "passes this, or when it failed.",
     &stream_lag_alert, nullptr, 60, 1, INT_MAX, PGC_USERSET, GUC_UNIT_S},
    {K::Int, "sicoop.stream_receive_timeout",
     "How long the stream waits for a message from the source before it calls the stream stalled.",
     "After half of it with nothing received the worker asks the source for a reply; after all of it the state says "
     "'stalled', the watchdog alerts, and the worker ends the connection and connects again (as wal_receiver_timeout). "
     "0: never.",
     &stream_receive_timeout, nullptr, 60 * 1000, 0, INT_MAX, PGC_USERSET, GUC_UNIT_MS},
    {K::Int, "sicoop.stream_retained_alert",
     "How much WAL the stream's slot may hold at the source before the watchdog alerts.",
     "The slot keeps every WAL segment the stream has not confirmed; past max_slot_wal_keep_size the slot is lost "
     "and the stream must resync. The watchdog alerts once when the retained WAL passes this.",
     &stream_retained_alert, nullptr, 1024, 1, INT_MAX, PGC_USERSET, GUC_UNIT_MB},
    {K::Int, "sicoop.full_check_wait",
     "How long run_pipeline(full => true) waits for the stream worker to run the full check.",
     "While a stream is wanted, the full check runs in its worker, at the stream's own position; the call waits for it "
     "this long, then fails (55P03) and withdraws its request.",
     &full_check_wait, nullptr, 10 * 60 * 1000, 1000, INT_MAX, PGC_USERSET, GUC_UNIT_MS},
};

void define_one(const Definition& d) {
    switch (d.kind) {
        case K::String:
            DefineCustomStringVariable(d.name, d.short_desc, d.long_desc, static_cast<char**>(d.variable), d.text_boot,
                                       d.context, d.flags, nullptr, nullptr, nullptr);
            break;
        case K::Int:
            DefineCustomIntVariable(d.name, d.short_desc, d.long_desc, static_cast<int*>(d.variable), d.boot, d.min,
                                    d.max, d.context, d.flags, nullptr, nullptr, nullptr);
            break;
        case K::Enum:
            DefineCustomEnumVariable(d.name, d.short_desc, d.long_desc, static_cast<int*>(d.variable), d.boot,
                                     full_run_options, d.context, d.flags, nullptr, nullptr, nullptr);
            break;
    }
}

}  // namespace

void define() {
    for (const Definition& d : kDefinitions) define_one(d);
    MarkGUCPrefixReserved("sicoop");
}

const char* timezone() { return timezone_value; }
const char* export_directory() { return export_directory_value; }
int source_timeout_ms() { return source_timeout; }
int lock_timeout_ms() { return lock_timeout; }
int step_timeout_ms() { return step_timeout; }
int max_run_time_s() { return max_run_time; }
FullRun full_run() { return static_cast<FullRun>(full_run_value); }
int full_check_wait_ms() { return full_check_wait; }
int stream_interval_ms() { return stream_interval; }
int stream_batch_changes() { return stream_batch_changes_value; }
int stream_work_mem_kb() { return stream_work_mem; }
int stream_receive_timeout_ms() { return stream_receive_timeout; }

int run_lock_timeout_ms() {
    return LockTimeout == 0   ? lock_timeout
           : lock_timeout == 0 ? LockTimeout
                               : Min(LockTimeout, lock_timeout);
}

}  // namespace sicoop::settings
