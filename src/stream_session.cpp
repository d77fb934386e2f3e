// The stream worker's shared pieces (see stream_session.hpp).
#include "stream_session.hpp"

#include "pipeline.hpp"
#include "settings.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/xlog.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
}

#include <algorithm>

namespace sicoop::stream {

bool Transient::covers(const PgError& e) {
    const int code = e.edata->sqlerrcode;
    return ERRCODE_TO_CATEGORY(code) == ERRCODE_CONNECTION_EXCEPTION || code == ERRCODE_LOCK_NOT_AVAILABLE ||
           code == ERRCODE_T_R_SERIALIZATION_FAILURE || code == ERRCODE_T_R_DEADLOCK_DETECTED ||
           code == ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION || code == ERRCODE_ADMIN_SHUTDOWN ||
           code == ERRCODE_CANNOT_CONNECT_NOW || code == ERRCODE_OBJECT_IN_USE;
}

namespace {

// The warehouse's owner this worker acts for: the owner when its first transaction began. The
// worker's session is the bootstrap superuser's (it logs in as no role); each transaction runs
// as this owner (WorkerTransaction), so that whatever runs inside -- every step, a trigger or
// rule on a warehouse table -- has the owner's rights and never a superuser's.
Oid acting_for = InvalidOid;

std::string role_name(Oid role) {
    std::string name;
    pg_call([&] {
        const char* n = GetUserNameFromId(role, true);
        name = n ? n : ("role " + std::to_string(role));
    });
    return name;
}

// sicoop.warehouse_info's owner, the table locked ACCESS SHARE for the transaction.
Oid lock_warehouse_owner() {
    Oid owner = InvalidOid;
    pg_call([&] {
        Oid rel = RangeVarGetRelidExtended(makeRangeVar(pstrdup("sicoop"), pstrdup("warehouse_info"), -1), AccessShareLock,
                                           RVR_MISSING_OK, nullptr, nullptr);
        HeapTuple tuple = OidIsValid(rel) ? SearchSysCache1(RELOID, ObjectIdGetDatum(rel)) : nullptr;
        if (!HeapTupleIsValid(tuple))
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("sicoop: the stream has no warehouse to act for (sicoop.warehouse_info is gone)"),
                            errhint("sicoop.grant_operator(role) or sicoop.connect_source(...) creates it; then "
                                    "SELECT sicoop.start_stream();")));
        owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->relowner;
        ReleaseSysCache(tuple);
    });
    return owner;
}

}  // namespace

WorkerTransaction::WorkerTransaction(bool follow_owner) {
    caller_memory_ = CurrentMemoryContext;
    pg_call([&] {
        SetCurrentStatementStartTimestamp();
        StartTransactionCommand();
        GetUserIdAndSecContext(&saved_user_, &saved_context_);
        // On Citus one transaction runs every step of a micro-batch: shards a step modified over
        // parallel connections could not be read by the next ("placements that were modified
        // over multiple connections"). One connection per worker node, for the transaction.
        if (GetConfigOption("citus.multi_shard_modify_mode", true, false) != nullptr)
            (void) set_config_option("citus.multi_shard_modify_mode", "sequential", PGC_USERSET, PGC_S_SESSION,
                                     GUC_ACTION_LOCAL, true, 0, false);
    });
    open_ = true;
    const Oid owner = lock_warehouse_owner();
    if (!OidIsValid(acting_for)) acting_for = owner;
    abort_if_owner_changed(owner, follow_owner);
    pg_call([&] {
        SetUserIdAndSecContext(owner, saved_context_ | SECURITY_LOCAL_USERID_CHANGE);
        if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "sicoop: SPI_connect failed");
        PushActiveSnapshot(GetTransactionSnapshot());
    });
}

void WorkerTransaction::abort_if_owner_changed(Oid owner, bool follow_owner) {
    if (owner == acting_for || follow_owner) return;
    const std::string m = "the warehouse's owner is now " + role_name(owner) + ", no longer " + role_name(acting_for) +
                          ": the worker starts again acting for " + role_name(owner);
    pg_call([] { AbortCurrentTransaction(); });
    open_ = false;
    MemoryContextSwitchTo(caller_memory_);
    throw OwnerChanged(m);
}

void WorkerTransaction::commit() {
    pg_call([] {
        SPI_finish();
        PopActiveSnapshot();
        CommitTransactionCommand();
        // What the transaction wrote, counted for autovacuum and analyze (a background worker
        // reports its statistics itself; at most once a second, the rest on a later call).
        (void) pgstat_report_stat(false);
    });
    open_ = false;
    pg_call([&] { SetUserIdAndSecContext(saved_user_, saved_context_); });
    MemoryContextSwitchTo(caller_memory_);
}

WorkerTransaction::~WorkerTransaction() {
    if (!open_) return;
    try {
        pg_call([&] {
            AbortCurrentTransaction();
            SetUserIdAndSecContext(saved_user_, saved_context_);
        });
    } catch (...) {
    }
    MemoryContextSwitchTo(caller_memory_);
}

stream_policy::Limits load_stream_settings() {
    return stream_policy::limits(settings::stream_interval_ms(), settings::stream_batch_changes(),
                                 settings::stream_work_mem_kb(), settings::stream_receive_timeout_ms());
}

void check_pipeline_ready() { stream_steps::check_ready(); }

bool try_pipeline_lock() { return stream_steps::try_run_lock(); }

void take_pipeline_lock() {
    while (!try_pipeline_lock()) wait_a_second();
}

StepCounts run_stream_steps(int64 run_id, TimestampTz reference_time, std::string& detail,
                            const std::vector<std::string>& tables, const std::vector<std::string>& truncated,
                            int member_rounds) {
    const StreamBatch batch{tables, truncated, member_rounds};
    return stream_steps::run(RunRequest{RunRequest::Mode::Stream, run_id, reference_time, batch, ""}, detail);
}

StepCounts run_full_on_snapshot(const std::string& snapshot, int64 run_id, TimestampTz reference_time) {
    std::string detail;  // (a full run's steps are logged as the run's own)
    return stream_steps::run(RunRequest{RunRequest::Mode::Full, run_id, reference_time, {}, snapshot}, detail);
}

// This warehouse among every one that may stream the same source: its cluster's system
// identifier (in letters, base 26: as 19 digits it would read as a card number and be masked
// in every message) and its database's OID. The default slot name is sicoop_<this>; the slot
// this warehouse created is recorded as <slot>@<this> (a restored copy elsewhere is another
// warehouse, and does not take the slot for its own).
std::string this_warehouse() {
    constexpr uint64 kLetters = 26;
    uint64 system = 0;
    Oid database = InvalidOid;
    pg_call([&] {
        system = GetSystemIdentifier();
        database = MyDatabaseId;
    });
    std::string letters;
    do {
        letters.insert(letters.begin(), static_cast<char>('a' + system % kLetters));
        system /= kLetters;
    } while (system > 0);
    return letters + "_" + std::to_string(database);
}

void wait_a_second() {
    constexpr long kSecondMs = 1000;
    pg_call([] {
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kSecondMs, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    });
}

std::string joined(const std::vector<std::string>& parts, const char* separator) {
    std::string out;
    for (const std::string& p : parts) out += (out.empty() ? "" : separator) + p;
    return out;
}

}  // namespace sicoop::stream
