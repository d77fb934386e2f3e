// The initial sync and the full check at the stream's position (see stream_sync.hpp).
#include "stream_sync.hpp"

#include "run_log.hpp"
#include "spi_session.hpp"
#include "stream_session.hpp"

extern "C" {
#include "miscadmin.h"
}

namespace sicoop::stream {

namespace {

// A slot made with an exported snapshot: its consistent point and its snapshot's name.
struct NewSlot {
    std::string consistent_point;
    std::string snapshot;
};

NewSlot create_slot(Replication& source, const std::string& command, const char* what) {
    PGresult* created = source.exec(command, PGRES_TUPLES_OK, what);
    NewSlot slot{PQgetvalue(created, 0, 1), PQgetvalue(created, 0, 2)};
    PQclear(created);
    return slot;
}

// A slot this warehouse created at an earlier start (or before resync_stream()): its position
// is not the warehouse's, it is dropped; a slot it did not create is refused.
void drop_own_old_slot(Replication& source, const StreamConfig& config) {
    PGresult* existing = source.exec("SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = '" + config.slot + "'",
                                     PGRES_TUPLES_OK, "look for the replication slot");
    const bool exists = PQntuples(existing) > 0;
    PQclear(existing);
    if (exists && !config.slot_is_ours) refuse_foreign_slot(config.slot);
    if (exists) PQclear(source.exec("DROP_REPLICATION_SLOT " + config.slot + " WAIT", PGRES_COMMAND_OK, "drop the old slot"));
}

}  // namespace

pgo::Lsn initial_sync(Replication& source, const StreamConfig& config) {
    drop_own_old_slot(source, config);
    const NewSlot slot = create_slot(source, "CREATE_REPLICATION_SLOT " + config.slot + " LOGICAL pgoutput (SNAPSHOT 'export')",
                                     "create the replication slot");
    // Recorded at once (before the long sync): whatever happens next, the slot is known ours.
    record_created_slot(config.slot + "@" + this_warehouse());
    const auto lsn = pgo::parse_lsn(slot.consistent_point);
    if (!lsn) throw std::runtime_error("the source gave the slot an unreadable position: " + slot.consistent_point);

    WorkerTransaction tx;
    take_pipeline_lock();
    const TimestampTz reference_time = spi::reference_time();
    const int64 run_id = run_log::next_run_id();
    run_log::started(run_id, "run_pipeline", reference_time);
    const StepCounts total = run_full_on_snapshot(slot.snapshot, run_id, reference_time);
    run_log::succeeded(run_id, "run_pipeline", total);
    record_synced(slot.consistent_point);
    tx.commit();
    return *lsn;
}

namespace {

// The request is answered: the run's outcome is in the run log (the caller reads it there).
void full_check_failed(const PgError& e) {
    PgError error = e;
    redact_error(error.edata);
    hide_values(error.edata);
    try {
        WorkerTransaction tx;
        const TimestampTz reference_time = spi::reference_time();
        const int64 run_id = run_log::next_run_id();
        run_log::failed(run_id, "run_pipeline", reference_time, error.edata);
        run_log::alert(run_id, "run_pipeline");
        spi::exec("UPDATE sicoop.stream_state SET full_check_requested_at = NULL");
        tx.commit();
    } catch (PgError&) {
    }
    const char* m = error.edata->message;
    pg_call([&] { ereport(LOG, (errmsg("sicoop stream: the full check failed: %s", m), errhidestmt(true))); });
}

}  // namespace

std::optional<FullCheck> begin_full_check() {
    FullCheck check;
    try {
        check.connection = std::make_unique<Replication>(connect_replication());
        const std::string slot = "sicoop_check_" + std::to_string(MyProcPid);
        const NewSlot made = create_slot(*check.connection,
                                         "CREATE_REPLICATION_SLOT " + slot + " TEMPORARY LOGICAL pgoutput (SNAPSHOT 'export')",
                                         "create the full check's temporary slot");
        const auto at = pgo::parse_lsn(made.consistent_point);
        check.snapshot = made.snapshot;
        if (!at) throw Transient("the source gave the full check's slot an unreadable position");
        check.at = *at;
    } catch (PgError& e) {
        full_check_failed(e);
        return std::nullopt;
    }
    return check;
}

void run_full_check(const FullCheck& check, const BusyReply& busy) {
    try {
        WorkerTransaction tx;
        take_pipeline_lock();
        const TimestampTz reference_time = spi::reference_time();
        const int64 run_id = run_log::next_run_id();
        run_log::started(run_id, "run_pipeline", reference_time);
        StepCounts total;
        {
            Busy source_answered(busy.conn, busy.position);
            total = run_full_on_snapshot(check.snapshot, run_id, reference_time);
        }
        const std::string at = pgo::format_lsn(check.at);
        const std::string run_detail = "{\"full_check\": \"at the stream's position\", \"at_lsn\": \"" + at + "\"}";
        run_log::succeeded(run_id, "run_pipeline", total, run_detail.c_str());
        spi::exec("UPDATE sicoop.stream_state SET full_check_requested_at = NULL");
        tx.commit();
    } catch (PgError& e) {
        full_check_failed(e);
    }
}

}  // namespace sicoop::stream
