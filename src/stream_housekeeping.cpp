// The stream's housekeeping (see stream_housekeeping.hpp).
#include "stream_housekeeping.hpp"

#include "source.hpp"
#include "spi_session.hpp"
#include "stream_apply.hpp"
#include "stream_session.hpp"
#include "stream_state.hpp"

extern "C" {
#include "pgstat.h"
}

namespace sicoop::stream {

namespace {
// An hour of samples at most (one a second).
constexpr size_t kMaxSamples = 3600;
}  // namespace

void Freshness::sample(TimestampTz now) {
    if (conn_ == nullptr) {
        spi::SubTransaction sub;  // (an error here leaves the worker's transaction usable)
        try {
            pg_call([&] { conn_ = source::open_connection(false); });
            sub.release();
        } catch (PgError&) {
            sub.rollback();
            conn_ = nullptr;  // (the replication connection says what is wrong)
            return;
        }
    }
    PGresult* r = nullptr;
    PGconn* conn = conn_;
    pg_call([&] { r = libpqsrv_exec(conn, "SELECT pg_catalog.pg_current_wal_lsn()::text", PG_WAIT_EXTENSION); });
    std::optional<pgo::Lsn> lsn;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) lsn = pgo::parse_lsn(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (!lsn) {
        close();
        return;
    }
    samples_.emplace_back(*lsn, now);
    if (samples_.size() > kMaxSamples) samples_.pop_front();
}

void Freshness::held(pgo::Lsn position) {
    while (!samples_.empty() && samples_.front().first <= position) {
        current_at_ = samples_.front().second;
        samples_.pop_front();
    }
}

void Freshness::close() {
    if (conn_ != nullptr) libpqsrv_disconnect(conn_);
    conn_ = nullptr;
}

namespace {

// The received position and the last message recorded; the position held (what was applied,
// or all that was received when caught up) gives the time the warehouse is current as of.
void record_health(pgo::Lsn received, bool caught_up, Freshness& freshness, const Health& health) {
    const std::string r = pgo::format_lsn(received);
    const std::string last_message = timestamp_text(health.last_message);
    spi::Param p[3] = {spi::text_param(r.c_str()), spi::text_param(caught_up ? "true" : "false"),
                       spi::text_param(last_message.c_str())};
    const std::string held = spi::exec_text(R"sql(
UPDATE sicoop.stream_state
SET received_lsn = greatest(received_lsn, $1::pg_lsn), last_message_at = $3::timestamptz,
    applied_lsn = CASE WHEN $2::boolean THEN greatest(applied_lsn, $1::pg_lsn) ELSE applied_lsn END
RETURNING applied_lsn::text)sql",
                                            p, 3);
    if (const auto h = pgo::parse_lsn(held)) freshness.held(*h);
    if (freshness.current_at() != 0) {
        const std::string current_at = timestamp_text(freshness.current_at());
        spi::Param c[1] = {spi::text_param(current_at.c_str())};
        spi::exec("UPDATE sicoop.stream_state SET current_at = greatest(current_at, $1::timestamptz)", c, 1);
    }
}

}  // namespace

bool idle_check(pgo::Lsn received, StreamState running, bool caught_up, Freshness& freshness, Health& health) {
    WorkerTransaction tx;
    check_pipeline_ready();  // (dropped or updated under the worker: the stream fails, saying so)
    const bool wanted = still_wanted();
    freshness.sample(GetCurrentTimestamp());
    record_health(received, caught_up, freshness, health);
    if (wanted) {
        record_running(running);
        health.full_check_requested =
            spi::exec_text("SELECT (full_check_requested_at IS NOT NULL)::text FROM sicoop.stream_state") == "true";
    } else {
        set_state(StreamState::Stopped);
    }
    tx.commit();
    pg_call([] { pgstat_report_stat(true); });  // (the batches' table statistics: autovacuum follows the stream)
    return wanted;
}

namespace {
void purge_logs_now() {
    spi::exec(R"sql(
SELECT sicoop._purge_logs(nullif(pg_catalog.current_setting('sicoop.log_retention', true), '')::pg_catalog.interval, 500))sql");
    spi::exec(R"sql(
WITH old AS (
  DELETE FROM sicoop.run_log l
  WHERE l.step = 'stream' AND l.status = 'succeeded'
    AND l.finished_at < pg_catalog.clock_timestamp() - pg_catalog.current_setting('sicoop.stream_log_retention')::pg_catalog.interval
  RETURNING l.run_id)
DELETE FROM sicoop.dq_result d WHERE d.run_id IN (SELECT o.run_id FROM old o))sql");
}
}  // namespace

void purge_logs() {
    WorkerTransaction tx;
    spi::SubTransaction sub;  // (a retention that is no interval is said in the log, not fatal)
    try {
        purge_logs_now();
        sub.release();
    } catch (PgError& e) {
        sub.rollback();
        const char* m = e.edata->message;
        pg_call([&] { ereport(WARNING, (errmsg("sicoop stream: the run log's retention failed: %s", m))); });
    }
    tx.commit();
}

}  // namespace sicoop::stream
