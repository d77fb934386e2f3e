// The stream's state row (see stream_state.hpp). Every statement here that sets `state` writes
// one StreamState; no other C++ file writes the column.
#include "stream_state.hpp"

#include "spi_session.hpp"
#include "stream_session.hpp"

extern "C" {
#include "miscadmin.h"
#include "storage/lmgr.h"
}

#include <algorithm>

namespace sicoop::stream {

namespace {

// The stream worker's own lock, per database (one worker at a time), of the class the pipeline
// lock uses (src/run_shared.cpp): no SQL function can take it.
constexpr uint32 kStreamLockKey1 = 0x73696370;  // 'sicp'
constexpr uint32 kStreamLockKey2 = 7338002;
constexpr uint16 kLockClass = 4;
// The longest slot, publication or identifier name PostgreSQL keeps (NAMEDATALEN - 1).
constexpr size_t kMaxNameLength = 63;

// A slot's and a publication's names are checked again here (the row is the operator's to
// write): they go into replication commands, which take no parameters.
bool is_slot_name(const std::string& s) {
    return !s.empty() && s.size() <= kMaxNameLength &&
           std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}
bool is_plain_identifier(const std::string& s) {
    if (s.empty() || s.size() > kMaxNameLength || (s[0] >= '0' && s[0] <= '9') || s[0] == '$') return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$';
    });
}

// The row's configuration, read in the caller's transaction.
StreamConfig read_config() {
    StreamConfig c;
    c.slot = spi::exec_text("SELECT slot_name FROM sicoop.stream_state");
    c.publication = spi::exec_text("SELECT publication FROM sicoop.stream_state");
    c.source_schema = spi::exec_text(R"sql(
SELECT o.option_value FROM pg_catalog.pg_foreign_table f, pg_catalog.pg_options_to_table(f.ftoptions) o
WHERE f.ftrelid = 'sicoop.src_associado'::regclass AND o.option_name = 'schema_name')sql");
    const std::string applied = spi::exec_text("SELECT applied_lsn::text FROM sicoop.stream_state");
    c.slot_is_ours = spi::exec_text("SELECT coalesce(created_slot, '') FROM sicoop.stream_state") == c.slot + "@" + this_warehouse();
    if (!applied.empty()) {
        auto lsn = pgoutput::parse_lsn(applied);
        c.has_applied = lsn.has_value();
        c.applied = lsn.value_or(0);
    }
    if (!is_slot_name(c.slot) || !is_plain_identifier(c.publication)) {
        const char* m = "sicoop: sicoop.stream_state names a slot or a publication start_stream() would refuse";
        pg_call([&] { ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s", m))); });
    }
    return c;
}

}  // namespace

const char* state_text(StreamState s) {
    switch (s) {
        case StreamState::Starting: return "starting";
        case StreamState::Syncing: return "syncing";
        case StreamState::Streaming: return "streaming";
        case StreamState::Paused: return "paused";
        case StreamState::Stopped: return "stopped";
        case StreamState::Failed: return "failed";
        case StreamState::Stalled: return "stalled";
        case StreamState::Reconnecting: return "reconnecting";
    }
    return "failed";
}

void set_state(StreamState s, const PgError* error, const char* message) {
    const char* state = state_text(s);
    std::string sqlstate, text = message ? redact_card_numbers(message) : std::string(), hint;
    const bool has_text = error != nullptr || message != nullptr;
    if (error != nullptr) {
        pg_call([&] { sqlstate = unpack_sql_state(error->edata->sqlerrcode); });
        text = redact_card_numbers(error->edata->message ? error->edata->message : "");
        if (error->edata->hint) hint = error->edata->hint;
    }
    spi::Param p[4] = {spi::text_param(state), spi::text_param(sqlstate.empty() ? nullptr : sqlstate.c_str()),
                       spi::text_param(has_text ? text.c_str() : nullptr), spi::text_param(hint.empty() ? nullptr : hint.c_str())};
    spi::exec(R"sql(
UPDATE sicoop.stream_state
SET state = CASE WHEN $1 = 'reconnecting' AND state = 'stalled' THEN state ELSE $1 END,
    error_sqlstate = $2, error_message = $3, error_hint = $4,
    wanted = wanted AND $1 <> 'failed',
    worker_pid = CASE WHEN $1 IN ('failed', 'stopped', 'stalled', 'reconnecting') THEN NULL ELSE pg_catalog.pg_backend_pid() END,
    stopped_at = CASE WHEN $1 IN ('failed', 'stopped', 'stalled', 'reconnecting') THEN pg_catalog.clock_timestamp() ELSE stopped_at END)sql",
              p, 4);
    if (s == StreamState::Failed || s == StreamState::Stalled)
        spi::exec(R"sql(
SELECT pg_catalog.pg_notify('sicoop_alerts', pg_catalog.json_build_object('database', pg_catalog.current_database(),
         'step', 'stream', 'status', 'stream ' || s.state, 'sqlstate', s.error_sqlstate)::text)
FROM sicoop.stream_state s)sql");
}

void record_failure(StreamState s, const PgError* error, const char* message) {
    try {
        WorkerTransaction tx(true);
        set_state(s, error, message);
        tx.commit();
    } catch (PgError& e) {
        // The server log has the first error; and says this one, without values.
        hide_values(e.edata);
        const char* m = e.edata->message;
        const char* state = state_text(s);
        try {
            pg_call([&] {
                ereport(LOG, (errmsg("sicoop stream: could not record the state %s: %s", state, m), errhidestmt(true),
                              errhidecontext(true)));
            });
        } catch (...) {
        }
    } catch (...) {
    }
}

bool still_wanted() {
    return spi::exec_text("SELECT coalesce((SELECT wanted::text FROM sicoop.stream_state), 'false')") == "true";
}

bool take_stream_lock() {
    bool locked = false;
    pg_call([&] {
        LOCKTAG tag;
        SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, kStreamLockKey1, kStreamLockKey2, kLockClass);
        locked = LockAcquire(&tag, ExclusiveLock, true /* session */, true /* don't wait */) != LOCKACQUIRE_NOT_AVAIL;
    });
    return locked;
}

std::optional<StreamConfig> claim() {
    WorkerTransaction tx;
    check_pipeline_ready();
    if (spi::exec_text("SELECT (to_regclass('sicoop.stream_state') IS NOT NULL)::text") != "true" || !still_wanted()) {
        tx.commit();
        return std::nullopt;
    }
    const StreamConfig c = read_config();
    // Streaming once the source took START_REPLICATION (mark_streaming()); until then a stream
    // that was reconnecting or stalled still says so.
    if (!c.has_applied) set_state(StreamState::Syncing);
    spi::exec(R"sql(
UPDATE sicoop.stream_state
SET started_by = current_user,  -- the owner it acts for
    worker_pid = pg_catalog.pg_backend_pid(),
    state = CASE WHEN state IN ('reconnecting', 'stalled', 'syncing') THEN state ELSE 'starting' END)sql");
    tx.commit();
    return c;
}

void record_created_slot(const std::string& created) {
    WorkerTransaction tx;
    spi::Param p[1] = {spi::text_param(created.c_str())};
    spi::exec("UPDATE sicoop.stream_state SET created_slot = $1", p, 1);
    tx.commit();
}

void mark_streaming() {
    WorkerTransaction tx;
    spi::exec(R"sql(
UPDATE sicoop.stream_state
SET state = 'streaming', worker_pid = pg_catalog.pg_backend_pid(), stopped_at = NULL, error_sqlstate = NULL,
    error_message = NULL, error_hint = NULL, last_message_at = pg_catalog.clock_timestamp())sql");
    tx.commit();
}

void record_synced(const std::string& consistent_point) {
    spi::Param p[1] = {spi::text_param(consistent_point.c_str())};
    spi::exec("UPDATE sicoop.stream_state SET applied_lsn = $1::pg_lsn, received_lsn = $1::pg_lsn, state = 'streaming'", p, 1);
}

void record_applied(const AppliedBatch& b) {
    spi::Param p[5] = {spi::text_param(b.applied_lsn.c_str()), spi::text_param(b.received_lsn.c_str()),
                       spi::int8_param(b.changes), spi::int8_param(b.transactions), spi::text_param(b.commit_time.c_str())};
    spi::exec(R"sql(
UPDATE sicoop.stream_state
SET applied_lsn = $1::pg_lsn, received_lsn = $2::pg_lsn, changes_applied = changes_applied + $3,
    transactions_applied = transactions_applied + $4, batches_applied = batches_applied + 1,
    last_commit_time = $5::timestamptz, last_apply_at = clock_timestamp(), state = 'streaming',
    worker_pid = pg_backend_pid(), error_sqlstate = NULL, error_message = NULL, error_hint = NULL)sql",
              p, 5);
}

void record_running(StreamState s) {
    spi::Param st[1] = {spi::text_param(state_text(s))};
    spi::exec("UPDATE sicoop.stream_state SET state = $1, worker_pid = pg_catalog.pg_backend_pid()", st, 1);
}

}  // namespace sicoop::stream
