// What every part of the stream worker shares (src/stream_*.cpp): its errors, its transactions
// (each as the warehouse's owner), its settings, and its calls into the pipeline -- the one
// place where the worker reaches the pipeline (src/pipeline.hpp).
#pragma once

#include "pg.hpp"
#include "steps/pgoutput.hpp"
#include "steps/step.hpp"
#include "steps/stream_policy.hpp"

#include <stdexcept>
#include <string>
#include <vector>

namespace sicoop::stream {

namespace pgo = sicoop::pgoutput;

// ------------------------------------------------------------------------------------------
// Errors: transient ones restart the worker (exit 1, the postmaster starts it again after 5 s,
// it resumes from the stored LSN), the rest stop the stream ('failed').
// ------------------------------------------------------------------------------------------

// The connection to the source broke, or a conflict that a retry resolves. The one definition of
// "transient": a C++ error of this type, or a PostgreSQL error that covers() says is one.
class Transient : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
    // A lost connection, a lock or serialization conflict, a server shutting down, a slot in use.
    static bool covers(const PgError& e);
};

// Nothing came from the source for longer than sicoop.stream_receive_timeout (a walsender that
// hangs, a network that drops packets silently): the worker ends the connection and starts
// again, as wal_receiver_timeout makes a standby do; the state says 'stalled' meanwhile.
class Stalled : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The warehouse changed owner (grant_operator, revoke_operator, REASSIGN OWNED...): this worker
// ends, and the postmaster starts it again acting for the new owner.
class OwnerChanged : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A transaction of the worker's own, SPI connected and a snapshot set, running as the
// warehouse's owner; rolled back unless committed (the destructor runs on every C++ exit:
// PostgreSQL errors arrive as PgError). The memory context current when it began is current
// again after it ends (a commit or an abort would leave TopMemoryContext current).
//
// Before anything else it locks sicoop.warehouse_info (ACCESS SHARE: an owner change, which
// takes ACCESS EXCLUSIVE, waits for the transaction) and reads its owner; then it becomes that
// owner with SECURITY_LOCAL_USERID_CHANGE (no SET ROLE back inside). The identity is given back
// after the commit (deferred triggers and constraint checks run inside the commit, as the
// owner); an abort gives it back by itself (AbortTransaction), and the destructor again.
// `follow_owner`: run as the current owner even if it is not the one this worker acts for (only
// to record that the worker ends because of it); otherwise such a change throws OwnerChanged
// before any table is touched.
class WorkerTransaction {
public:
    explicit WorkerTransaction(bool follow_owner = false);
    void commit();
    ~WorkerTransaction();
    WorkerTransaction(const WorkerTransaction&) = delete;
    WorkerTransaction& operator=(const WorkerTransaction&) = delete;

private:
    void abort_if_owner_changed(Oid owner, bool follow_owner);
    bool open_ = false;
    Oid saved_user_ = InvalidOid;
    int saved_context_ = 0;
    MemoryContext caller_memory_ = nullptr;
};

// ------------------------------------------------------------------------------------------
// Settings: the only place the worker reads them (src/settings.cpp defines them). Read again each
// cycle of the loop: a reload (SIGHUP) reaches the worker.
// ------------------------------------------------------------------------------------------
stream_policy::Limits load_stream_settings();

// ------------------------------------------------------------------------------------------
// The pipeline, as the stream calls it (src/stream_steps.cpp)
// ------------------------------------------------------------------------------------------

// The extension's SQL objects are this library's version and the warehouse is ready; else the
// stream fails, saying so (sicoop_etl dropped or updated under the worker).
void check_pipeline_ready();
// The pipeline lock for the transaction; false: a run holds it.
bool try_pipeline_lock();
// Waits, without holding anything, until the pipeline lock is free for this transaction.
void take_pipeline_lock();
// Every step over the micro-batch staged (RunContext::stream).
StepCounts run_stream_steps(int64 run_id, TimestampTz reference_time, std::string& detail,
                            const std::vector<std::string>& tables, const std::vector<std::string>& truncated,
                            int member_rounds);
// Every step as a full run, each source session importing `snapshot` (a slot's exported one).
StepCounts run_full_on_snapshot(const std::string& snapshot, int64 run_id, TimestampTz reference_time);

// ------------------------------------------------------------------------------------------
// Small shared pieces
// ------------------------------------------------------------------------------------------

// This warehouse among every one that may stream the same source (see stream_session.cpp).
std::string this_warehouse();

// Waits a second (or less, when the latch is set), then answers a pending cancel or shutdown.
void wait_a_second();

// Parts joined with `separator`.
std::string joined(const std::vector<std::string>& parts, const char* separator);

}  // namespace sicoop::stream
