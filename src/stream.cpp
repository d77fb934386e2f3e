// The stream worker: one dynamic background worker per warehouse database, started by
// sicoop.start_stream() (and again by the watchdog after a server restart); no
// shared_preload_libraries. It logs in as no role: each of its transactions runs as the
// warehouse's owner (WorkerTransaction, src/stream_session.cpp), read when the transaction
// begins; when the owner changes, the worker ends and the postmaster starts it again acting for
// the new owner. This file: the worker's life (worker_main) and the SQL-callable functions.
//
//   1. It claims the stream (an advisory lock of a class SQL cannot take: one worker per
//      database, and how sicoop._stream_worker_pid() finds it), waits for the transaction that
//      launched it, and reads sicoop.stream_state (src/stream_state.cpp).
//   2. It opens a logical replication connection to the source (server sicoop_source and the
//      owner's user mapping; the source role needs REPLICATION; a refused login fails the
//      stream with the fix, no retry) and checks the publication and the source tables'
//      replica identities (src/stream_checks.cpp).
//   3. First start (no applied LSN): it creates the replication slot (never one this warehouse
//      did not create: stream_state.created_slot) with an exported snapshot and runs every step
//      as a full run -- a first load on an empty warehouse, else a comparison by checksums --
//      with every source session importing that snapshot, and stores the slot's consistent
//      point as the applied LSN in the same transaction: the copy and the stream meet with no
//      gap and no overlap (src/stream_sync.cpp).
//   4. START_REPLICATION from the applied LSN (pgoutput, protocol 1, the publication), and the
//      loop (src/stream_loop.cpp): micro-batches of whole source transactions.
//   5. A micro-batch is one warehouse transaction: its rows into the stage, its keys into
//      sicoop.stream_key, every step over them (src/run_shared.cpp, RunContext::stream), its run
//      log row, and the end LSN of its last source transaction in stream_state. Only then is
//      that LSN confirmed to the source. A crash anywhere replays from the stored LSN; the
//      assembler drops what is before it: exactly once (src/stream_batch.cpp).
//   6. While steps run or a part is staged, the worker reads nothing from the source: a thread
//      of its own answers the source each second meanwhile (Busy, src/stream_busy.cpp), or its
//      wal_sender_timeout would end the connection under a large transaction's steps.
// Failures: a lost connection (a source restart, a killed walsender), a lock or serialization
// conflict (Transient): the worker records it and exits with code 1; the postmaster starts it
// again after 5 s, and it resumes from the stored LSN. Anything else (the slot invalidated or
// dropped, the source's table changed so that a column the pipeline reads is gone, a bug): the
// stream stops -- state 'failed', the error and its fix in stream_state, NOTIFY sicoop_alerts.
#include "stream.hpp"

#include "settings.hpp"
#include "source.hpp"
#include "stream_loop.hpp"
#include "stream_session.hpp"
#include "stream_source.hpp"
#include "stream_state.hpp"
#include "stream_sync.hpp"

extern "C" {
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
}

#include <signal.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sicoop::stream {

namespace {

// What bgw_extra carries from the launching session. `unused`: 1.5's role, no longer read (the
// worker acts for whoever owns the warehouse, read at every transaction); kept so that a worker
// registered by 1.5 and restarted by the postmaster after an update reads its xid where it is.
struct LaunchArgs {
    Oid unused;
    TransactionId launcher_xid;
};

// _source_slot()'s columns.
constexpr int kSlotColumns = 6;

// How long the postmaster waits before it starts an ended worker again (bgw_restart_time, s).
constexpr int kRestartSeconds = 5;

void wait_for_launcher(TransactionId xid) {
    if (!TransactionIdIsValid(xid)) return;
    WorkerTransaction tx;
    pg_call([&] { XactLockTableWait(xid, nullptr, nullptr, XLTW_None); });
    tx.commit();
}

// The worker's life once it holds the stream's lock: claim, connect, check, sync if first, stream.
void run_stream() {
    std::optional<StreamConfig> config = claim();
    if (!config) return;  // not wanted: nothing to do
    Replication source(connect_replication());
    check_publication(source, *config);
    if (config->has_applied && !config->slot_is_ours) refuse_foreign_slot(config->slot);
    if (config->has_applied) check_position(source, *config);
    const pgo::Lsn applied = config->has_applied ? config->applied : initial_sync(source, *config);
    stream_changes(source, *config, applied);
}

// The worker ends to start again (exit code 1: the postmaster starts it in kRestartSeconds).
[[noreturn]] void restart(StreamState s, const std::string& log_line, const char* message) {
    pg_call([&] { ereport(LOG, (errmsg("%s", log_line.c_str()))); });
    record_failure(s, nullptr, message);
    pg_call([] { proc_exit(1); });
    throw std::logic_error("unreachable");
}

// A PostgreSQL error: Transient::covers() it -- the worker starts again -- or the stream fails.
void ended_by(PgError& e) {
    const bool transient = Transient::covers(e);
    redact_error(e.edata);
    hide_values(e.edata);  // no source value in stream_state or the log, whatever failed
    record_failure(transient ? StreamState::Reconnecting : StreamState::Failed, &e, nullptr);
    ErrorData* edata = e.edata;
    pg_call([&] {
        ereport(LOG, (errmsg("sicoop stream %s: %s", transient ? "reconnecting in 5 s" : "stopped", edata->message),
                      edata->hint ? errhint("%s", edata->hint) : 0, errhidestmt(true), errhidecontext(true)));
    });
    if (transient) pg_call([] { proc_exit(1); });
}

}  // namespace

void worker_main(TransactionId launcher_xid) {
    MemoryContext errors = nullptr;
    pg_call([&] { errors = AllocSetContextCreate(TopMemoryContext, "sicoop stream errors", ALLOCSET_DEFAULT_SIZES); });
    set_error_context(errors);
    try {
        // The stream's lock first, for the worker's whole life (sicoop._stream_worker_pid() finds
        // the worker by it); another worker has it: nothing to do.
        if (!take_stream_lock()) return;
        wait_for_launcher(launcher_xid);
        run_stream();
    } catch (const OwnerChanged& e) {
        // (The postmaster starts the worker again, acting for the new owner.)
        restart(StreamState::Reconnecting, std::string("sicoop stream: ") + e.what(), e.what());
    } catch (const Stalled& e) {
        restart(StreamState::Stalled, std::string("sicoop stream stalled: ") + e.what() + "; reconnecting in 5 s", e.what());
    } catch (const Transient& e) {
        restart(StreamState::Reconnecting, std::string("sicoop stream: ") + e.what() + "; reconnecting in 5 s", e.what());
    } catch (PgError& e) {
        ended_by(e);
    } catch (const std::exception& e) {
        const std::string message = redact_card_numbers(e.what());
        record_failure(StreamState::Failed, nullptr, message.c_str());
        const char* m = message.c_str();
        pg_call([&] { ereport(LOG, (errmsg("sicoop stream stopped: %s", m))); });
    }
}

// SELECT sicoop._warehouse_id(): this warehouse among all (see this_warehouse()).
Datum warehouse_id(FunctionCallInfo fcinfo) {
    (void) fcinfo;
    const std::string id = this_warehouse();
    text* out = nullptr;
    pg_call([&] { out = cstring_to_text(id.c_str()); });
    PG_RETURN_TEXT_P(out);
}

// SELECT * FROM sicoop._source_slot(slot): the source's current WAL position, and slot `slot`
// as the source has it (no row's values: no such slot), read now over a connection of the
// caller's (its user mapping): stream_status() sees the source's side even when no worker runs.
Datum source_slot(FunctionCallInfo fcinfo) {
    std::string slot;
    pg_call([&] { slot = text_to_cstring(PG_GETARG_TEXT_PP(0)); });
    PGconn* conn = nullptr;
    pg_call([&] { conn = source::open_connection(false); });
    std::unique_ptr<PGconn, void (*)(PGconn*)> owned(conn, [](PGconn* c) { libpqsrv_disconnect(c); });
    const char* values[1] = {slot.c_str()};
    PGresult* r = PQexecParams(conn, R"sql(
SELECT pg_catalog.pg_current_wal_lsn()::text, s.confirmed_flush_lsn::text, s.restart_lsn::text, s.wal_status::text,
       s.safe_wal_size::text, s.active_pid::text
FROM (SELECT 1) one LEFT JOIN pg_catalog.pg_replication_slots s ON s.slot_name = $1)sql",
                               1, nullptr, values, nullptr, nullptr, 0);
    std::vector<std::string> row;
    std::vector<bool> nulls;
    const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    const std::string error = ok ? "" : PQresultErrorMessage(r);
    for (int i = 0; ok && i < kSlotColumns; ++i) {
        nulls.push_back(PQgetisnull(r, 0, i));
        row.emplace_back(PQgetvalue(r, 0, i));
    }
    PQclear(r);
    if (!ok) {
        const std::string m = redact_card_numbers(error);
        pg_call([&] {
            ereport(ERROR, (errcode(ERRCODE_CONNECTION_EXCEPTION), errmsg("sicoop: cannot read the source's WAL position: %s", m.c_str())));
        });
    }
    Datum result = 0;
    pg_call([&] {
        TupleDesc desc = result_row_type(fcinfo, "sicoop: _source_slot must return a row");
        char* cells[kSlotColumns];
        for (int i = 0; i < kSlotColumns; ++i) cells[i] = nulls[i] ? nullptr : pstrdup(row[i].c_str());
        HeapTuple tuple = BuildTupleFromCStrings(TupleDescGetAttInMetadata(desc), cells);
        result = HeapTupleGetDatum(tuple);
    });
    return result;
}

// SELECT sicoop._signal_stream_worker(pid): ends this database's stream worker `pid` (SIGTERM),
// whoever's session it is (the worker's is the bootstrap superuser's, which pg_terminate_backend
// does not let the operator end). Only a worker of sicoop's stream in this database.
Datum signal_worker(FunctionCallInfo fcinfo) {
    const int pid = PG_GETARG_INT32(0);
    bool sent = false;
    pg_call([&] {
        const char* type = GetBackgroundWorkerTypeByPid(pid);
        PGPROC* proc = BackendPidGetProc(pid);
        if (type != nullptr && strcmp(type, "sicoop_etl stream") == 0 && proc != nullptr && proc->databaseId == MyDatabaseId)
            sent = kill(pid, SIGTERM) == 0;
    });
    PG_RETURN_BOOL(sent);
}

Datum launch_worker(FunctionCallInfo fcinfo) {
    (void) fcinfo;
    int pid = 0;
    pg_call([&] {
        BackgroundWorker worker;
        memset(&worker, 0, sizeof worker);
        snprintf(worker.bgw_name, BGW_MAXLEN, "sicoop_etl stream for database %u", MyDatabaseId);
        snprintf(worker.bgw_type, BGW_MAXLEN, "sicoop_etl stream");
        worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
        worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
        worker.bgw_restart_time = kRestartSeconds;
        snprintf(worker.bgw_library_name, BGW_MAXLEN, "sicoop_etl");
        snprintf(worker.bgw_function_name, BGW_MAXLEN, "sicoop_stream_main");
        worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
        LaunchArgs args{InvalidOid, GetTopTransactionIdIfAny()};
        memcpy(worker.bgw_extra, &args, sizeof args);
        worker.bgw_notify_pid = MyProcPid;
        BackgroundWorkerHandle* handle = nullptr;
        if (!RegisterDynamicBackgroundWorker(&worker, &handle))
            ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                            errmsg("sicoop: no background worker slot is free for the stream"),
                            errhint("Raise max_worker_processes (a restart), or end another background worker.")));
        pid_t started = 0;
        if (WaitForBackgroundWorkerStartup(handle, &started) != BGWH_STARTED)
            ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_RESOURCES), errmsg("sicoop: the stream worker did not start"),
                            errhint("The server log says why.")));
        pid = started;
    });
    PG_RETURN_INT32(pid);
}

}  // namespace sicoop::stream

// The worker's entry point (bgw_function_name): connects to its database as no role of its own
// (the bootstrap superuser's session, as pg_cron's launcher does), then runs the stream, each of
// its transactions as the warehouse's owner (WorkerTransaction). A role that cannot log in (a
// NOLOGIN group role as operator) therefore streams too.
extern "C" PGDLLEXPORT void sicoop_stream_main(Datum main_arg);

namespace {
bool stream_worker_connected = false;

// A worker that cannot connect to its database (dropped, say, by DROP DATABASE ... WITH (FORCE),
// which ends the worker: the postmaster then starts it again, and again) ends for good: its
// exit code becomes 0, which the postmaster takes as "done". (Registered before the connection,
// this runs last, after every other exit callback; the watchdog starts a wanted stream again.)
void end_for_good_unless_connected(int code, Datum) {
    if (code != 0 && !stream_worker_connected) _exit(0);
}
}  // namespace

void sicoop_stream_main(Datum main_arg) {
    sicoop::stream::LaunchArgs args;
    memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof args);
    pqsignal(SIGTERM, die);
    pqsignal(SIGHUP, SignalHandlerForConfigReload);  // (a reload reaches the worker: postgresql.conf's settings)
    BackgroundWorkerUnblockSignals();
    on_proc_exit(end_for_good_unless_connected, 0);
    BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(main_arg), InvalidOid, 0);
    stream_worker_connected = true;
    pgstat_report_appname("sicoop_etl stream");
    // Every statement resolves names in pg_catalog only (as a run's, src/run_shared.cpp).
    SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION);
    // No lock wait of the worker's own (its state row, warehouse_info, the run log) lasts longer
    // than sicoop.lock_timeout: a VACUUM FULL or an ALTER in the way makes a retry, not a hang.
    // (Each step sets its own bound too.)
    // (As the steps do: the database's own lock_timeout, if shorter, stays.)
    const int lock_timeout_ms = sicoop::settings::run_lock_timeout_ms();
    SetConfigOption("lock_timeout", std::to_string(lock_timeout_ms).c_str(), PGC_USERSET, PGC_S_SESSION);
    sicoop::stream::worker_main(args.launcher_xid);
    proc_exit(0);
}
