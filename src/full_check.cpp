// While a stream is wanted, a full check runs in the stream's worker, at the stream's own
// position (src/stream_sync.cpp; ARCHITECTURE.md, "A full check at the stream's position"): read here, the source
// would be ahead of the stream, and the member versions in between would be lost. This call
// asks for it and waits, up to sicoop.full_check_wait, for its outcome in the run log.
#include "full_check.hpp"

#include "settings.hpp"
#include "spi_session.hpp"

#include <string>
#include <vector>

namespace sicoop {

namespace {

// How often the call looks for the worker's answer.
constexpr long kPollMs = 200L;

// The worker's run, once it answered: run id, status, SQLSTATE, message (tab-separated; "": not yet).
std::string worker_outcome(spi::Param* since) {
    return spi::exec_text(R"sql(
SELECT concat_ws(E'\t', l.run_id, l.status, l.error_sqlstate, l.error_message)
FROM sicoop.stream_state s, sicoop.run_log l
WHERE s.full_check_requested_at IS NULL AND l.step = 'run_pipeline' AND l.started_at >= $1::timestamptz
  AND l.status IN ('succeeded', 'failed')
ORDER BY l.run_id DESC LIMIT 1)sql", since, 1);
}

// The worker's outcome, said to the caller: a notice, or its error raised again.
void report_outcome(const std::string& outcome) {
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
}

// No answer will come (the stream stopped: `gone`), or not in time: the request is withdrawn
// (unless another caller's is the same: it is answered once) and the call fails.
[[noreturn]] void withdraw(spi::Param* since, RunTransaction& tx, bool gone, const std::string& state) {
    spi::exec("UPDATE sicoop.stream_state SET full_check_requested_at = NULL WHERE full_check_requested_at = $1::timestamptz",
              since, 1);
    tx.commit();
    const int wait_ms = settings::full_check_wait_ms();
    pg_call([&] {
        if (gone)
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("sicoop: the stream stopped (%s) before its worker ran the full check", state.c_str()),
                            errhint("CALL sicoop.run_pipeline(full => true) again: with no stream wanted, the call runs it.")));
        ereport(ERROR, (errcode(ERRCODE_LOCK_NOT_AVAILABLE),
                        errmsg("sicoop: the stream's worker did not run the full check within sicoop.full_check_wait (%d ms)",
                               wait_ms),
                        errhint("sicoop.stream_status() says what the stream is doing (a worker not running, reconnecting, "
                                "stalled or applying a large batch); the request was withdrawn.")));
    });
    throw std::logic_error("unreachable");
}

// The request, committed for the worker to see; returns when it was first made.
std::string request_check(RunTransaction& tx, bool nonatomic) {
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
    return requested;
}

}  // namespace

bool full_check_in_stream(RunTransaction& tx, bool nonatomic) {
    if (spi::exec_text("SELECT (to_regclass('sicoop.stream_state') IS NOT NULL"
                       " AND EXISTS (SELECT 1 FROM sicoop.stream_state s WHERE s.wanted))::text") != "true")
        return false;
    const std::string requested = request_check(tx, nonatomic);
    spi::Param since = spi::text_param(requested.c_str());
    const TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), settings::full_check_wait_ms());
    for (;;) {
        pg_call([] {
            (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kPollMs, PG_WAIT_EXTENSION);
            ResetLatch(MyLatch);
            CHECK_FOR_INTERRUPTS();
        });
        const std::string outcome = worker_outcome(&since);
        const std::string stream = spi::exec_text(
            "SELECT concat_ws(' ', s.state, s.wanted) FROM sicoop.stream_state s");
        tx.commit();
        if (!outcome.empty()) {
            report_outcome(outcome);
            return true;
        }
        const bool gone = stream.empty() || stream.rfind("failed", 0) == 0 || stream.find(" false") != std::string::npos;
        if (gone || GetCurrentTimestamp() >= deadline) withdraw(&since, tx, gone, stream);
    }
}

}  // namespace sicoop
