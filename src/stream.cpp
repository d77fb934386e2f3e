// The stream worker: one dynamic background worker per warehouse database, started by
// sicoop.start_stream() (and again by the watchdog after a server restart); no
// shared_preload_libraries. It logs in as no role: each of its transactions runs as the
// warehouse's owner (WorkerTransaction), read when the transaction begins; when the owner
// changes, the worker ends and the postmaster starts it again acting for the new owner.
//
//   1. It claims the stream (an advisory lock of a class SQL cannot take: one worker per
//      database, and how sicoop._stream_worker_pid() finds it), waits for the transaction that
//      launched it, and reads sicoop.stream_state.
//   2. It opens a logical replication connection to the source (server sicoop_source and the
//      owner's user mapping; the source role needs REPLICATION; a refused login fails the
//      stream with the fix, no retry) and checks the publication and the source tables'
//      replica identities (check_publication()).
//   3. First start (no applied LSN): it creates the replication slot (never one this warehouse
//      did not create: stream_state.created_slot) with an exported snapshot
//      and runs every step as a full run -- a first load on an empty warehouse, else a
//      comparison by checksums -- with every source session importing that snapshot, and
//      stores the slot's consistent point as the applied LSN in the same transaction: the copy
//      and the stream meet with no gap and no overlap.
//   4. START_REPLICATION from the applied LSN (pgoutput, protocol 1, the publication). Whole
//      source transactions are gathered (src/steps/pgoutput.cpp) into a micro-batch, applied
//      when sicoop.stream_interval has passed since its first change, or when it holds
//      sicoop.stream_batch_changes changes. A member changed several times in it keeps every
//      state in commit order (sicoop.stage_associado_state): each is its own SCD2 version,
//      from its commit time (src/steps/scd2.cpp); only a member's kMaxMemberStates-th change
//      applies the batch first.
//   5. A micro-batch is one warehouse transaction: its rows into the stage, its keys into
//      sicoop.stream_key, every step over them (src/pipeline.cpp, RunContext::stream), its run
//      log row, and the end LSN of its last source transaction in stream_state. Only then is
//      that LSN confirmed to the source. A crash anywhere replays from the stored LSN; the
//      assembler drops what is before it: exactly once.
//   6. A source transaction too big for memory (sicoop.stream_work_mem) is staged in parts as
//      it arrives, in the one warehouse transaction its commit then finishes (LargeApply);
//      nothing else opens a transaction meanwhile (idle_check(), a full check wait).
//   7. While steps run or a part is staged, the worker reads nothing from the source: a thread
//      of its own answers the source each second meanwhile (Busy), or its wal_sender_timeout
//      would end the connection under a large transaction's steps.
// Failures: a lost connection (a source restart, a killed walsender), a lock or serialization
// conflict: the worker records it and exits with code 1; the postmaster starts it again after
// 5 s, and it resumes from the stored LSN. Anything else (the slot invalidated or dropped, the
// source's table changed so that a column the pipeline reads is gone, a bug): the stream
// stops -- state 'failed', the error and its fix in stream_state, NOTIFY sicoop_alerts.
#include "stream.hpp"

#include "pipeline.hpp"
#include "run_log.hpp"
#include "settings.hpp"
#include "source.hpp"
#include "spi_session.hpp"
#include "stream_apply.hpp"
#include "stream_rows.hpp"
#include "steps/pgoutput.hpp"
#include "steps/step.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "utils/guc.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
}

#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace sicoop::stream {

namespace pgo = sicoop::pgoutput;

namespace {

// The stream worker's own lock, per database (one worker at a time), of the class the pipeline
// lock uses (src/pipeline.cpp): no SQL function can take it.
constexpr uint32 kStreamLockKey1 = 0x73696370;  // 'sicp'
constexpr uint32 kStreamLockKey2 = 7338002;
constexpr uint16 kLockClass = 4;

// What bgw_extra carries from the launching session. `unused`: 1.5's role, no longer read (the
// worker acts for whoever owns the warehouse, read at every transaction); kept so that a worker
// registered by 1.5 and restarted by the postmaster after an update reads its xid where it is.
struct LaunchArgs {
    Oid unused;
    TransactionId launcher_xid;
};

// ------------------------------------------------------------------------------------------
// Errors: transient ones restart the worker, the rest stop the stream.
// ------------------------------------------------------------------------------------------

// The connection to the source broke, or a conflict that a retry resolves.
class Transient : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

bool is_transient(const PgError& e) {
    const int code = e.edata->sqlerrcode;
    return ERRCODE_TO_CATEGORY(code) == ERRCODE_CONNECTION_EXCEPTION || code == ERRCODE_LOCK_NOT_AVAILABLE ||
           code == ERRCODE_T_R_SERIALIZATION_FAILURE || code == ERRCODE_T_R_DEADLOCK_DETECTED ||
           code == ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION || code == ERRCODE_ADMIN_SHUTDOWN ||
           code == ERRCODE_CANNOT_CONNECT_NOW || code == ERRCODE_OBJECT_IN_USE;
}

// Nothing came from the source for longer than sicoop.stream_receive_timeout (a walsender that
// hangs, a network that drops packets silently): the worker ends the connection and starts
// again, as wal_receiver_timeout makes a standby do; the state says 'stalled' meanwhile.
class Stalled : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The warehouse's owner this worker acts for: the owner when its first transaction began. The
// worker's session is the bootstrap superuser's (it logs in as no role); each transaction runs
// as this owner (WorkerTransaction), so that whatever runs inside -- every step, a trigger or
// rule on a warehouse table -- has the owner's rights and never a superuser's.
Oid acting_for = InvalidOid;

// The warehouse changed owner (grant_operator, revoke_operator, REASSIGN OWNED...): this worker
// ends, and the postmaster starts it again acting for the new owner.
class OwnerChanged : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

std::string role_name(Oid role) {
    std::string name;
    pg_call([&] {
        const char* n = GetUserNameFromId(role, true);
        name = n ? n : ("role " + std::to_string(role));
    });
    return name;
}

// A transaction of the worker's own, SPI connected and a snapshot set, running as the
// warehouse's owner; rolled back unless committed (the destructor runs on every C++ exit:
// PostgreSQL errors arrive as PgError).
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
    explicit WorkerTransaction(bool follow_owner = false) {
        Oid owner = InvalidOid;
        pg_call([&] {
            SetCurrentStatementStartTimestamp();
            StartTransactionCommand();
            GetUserIdAndSecContext(&saved_user_, &saved_context_);
        });
        open_ = true;
        pg_call([&] {
            Oid rel = RangeVarGetRelidExtended(makeRangeVar(pstrdup("sicoop"), pstrdup("warehouse_info"), -1),
                                               AccessShareLock, RVR_MISSING_OK, nullptr, nullptr);
            HeapTuple tuple = OidIsValid(rel) ? SearchSysCache1(RELOID, ObjectIdGetDatum(rel)) : nullptr;
            if (!HeapTupleIsValid(tuple))
                ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                                errmsg("sicoop: the stream has no warehouse to act for (sicoop.warehouse_info is gone)"),
                                errhint("sicoop.grant_operator(role) or sicoop.connect_source(...) creates it; then "
                                        "SELECT sicoop.start_stream();")));
            owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->relowner;
            ReleaseSysCache(tuple);
        });
        if (!OidIsValid(acting_for)) acting_for = owner;
        if (owner != acting_for && !follow_owner) {
            const std::string m = "the warehouse's owner is now " + role_name(owner) + ", no longer " + role_name(acting_for) +
                                  ": the worker starts again acting for " + role_name(owner);
            pg_call([] { AbortCurrentTransaction(); });
            open_ = false;
            throw OwnerChanged(m);
        }
        pg_call([&] {
            SetUserIdAndSecContext(owner, saved_context_ | SECURITY_LOCAL_USERID_CHANGE);
            if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "sicoop: SPI_connect failed");
            PushActiveSnapshot(GetTransactionSnapshot());
        });
    }
    void commit() {
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
    }
    ~WorkerTransaction() {
        if (!open_) return;
        try {
            pg_call([&] {
                AbortCurrentTransaction();
                SetUserIdAndSecContext(saved_user_, saved_context_);
            });
        } catch (...) {
        }
    }
    WorkerTransaction(const WorkerTransaction&) = delete;
    WorkerTransaction& operator=(const WorkerTransaction&) = delete;

private:
    bool open_ = false;
    Oid saved_user_ = InvalidOid;
    int saved_context_ = 0;
};

// ------------------------------------------------------------------------------------------
// The stream's state row
// ------------------------------------------------------------------------------------------

struct StreamConfig {
    std::string slot;
    std::string publication;
    std::string source_schema;
    bool has_applied = false;
    pgo::Lsn applied = 0;
    bool slot_is_ours = false;  // this warehouse created the slot (stream_state.created_slot)
};

// This warehouse among every one that may stream the same source: its cluster's system
// identifier (in letters, base 26: as 19 digits it would read as a card number and be masked
// in every message) and its database's OID. The default slot name is sicoop_<this>; the slot
// this warehouse created is recorded as <slot>@<this> (a restored copy elsewhere is another
// warehouse, and does not take the slot for its own).
std::string this_warehouse() {
    uint64 system = 0;
    Oid database = InvalidOid;
    pg_call([&] {
        system = GetSystemIdentifier();
        database = MyDatabaseId;
    });
    std::string letters;
    do {
        letters.insert(letters.begin(), static_cast<char>('a' + system % 26));
        system /= 26;
    } while (system > 0);
    return letters + "_" + std::to_string(database);
}

// A slot's and a publication's names are checked again here (the row is the operator's to
// write): they go into replication commands, which take no parameters.
bool is_slot_name(const std::string& s) {
    return !s.empty() && s.size() <= 63 &&
           std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}
bool is_plain_identifier(const std::string& s) {
    if (s.empty() || s.size() > 63 || (s[0] >= '0' && s[0] <= '9') || s[0] == '$') return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$';
    });
}

// The stream's state, with the error that led to it (none: cleared). Plain SQL on the stream's
// own row, nothing of the extension's: it is written even when sicoop_etl was dropped under
// the worker. An exit to start again ('reconnecting') keeps 'stalled' (the source still sends
// nothing); every exit state records when the worker ended (stopped_at).
void set_state(const char* state, const PgError* error = nullptr, const char* message = nullptr) {
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
    const std::string st = state;
    if (st == "failed" || st == "stalled")
        spi::exec(R"sql(
SELECT pg_catalog.pg_notify('sicoop_alerts', pg_catalog.json_build_object('database', pg_catalog.current_database(),
         'step', 'stream', 'status', 'stream ' || s.state, 'sqlstate', s.error_sqlstate)::text)
FROM sicoop.stream_state s)sql");
}

// Records the error in a transaction of its own (the failed one is gone).
void record_failure(const char* state, const PgError* error, const char* message) {
    try {
        WorkerTransaction tx(true);
        set_state(state, error, message);
        tx.commit();
    } catch (PgError& e) {
        // The server log has the first error; and says this one, without values.
        hide_values(e.edata);
        const char* m = e.edata->message;
        const char* s = state;
        try {
            pg_call([&] { ereport(LOG, (errmsg("sicoop stream: could not record the state %s: %s", s, m), errhidestmt(true), errhidecontext(true))); });
        } catch (...) {
        }
    } catch (...) {
    }
}

bool still_wanted() {
    return spi::exec_text("SELECT coalesce((SELECT wanted::text FROM sicoop.stream_state), 'false')") == "true";
}

// The stream's lock, for this worker's whole life: nullopt-free; false if another worker has it.
bool take_stream_lock() {
    bool locked = false;
    pg_call([&] {
        LOCKTAG tag;
        SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, kStreamLockKey1, kStreamLockKey2, kLockClass);
        locked = LockAcquire(&tag, ExclusiveLock, true /* session */, true /* don't wait */) != LOCKACQUIRE_NOT_AVAIL;
    });
    return locked;
}

// Reads the stream's configuration (the stream lock held); nullopt: nothing to do (not wanted).
std::optional<StreamConfig> claim() {
    WorkerTransaction tx;
    stream_steps::check_ready();
    if (spi::exec_text("SELECT (to_regclass('sicoop.stream_state') IS NOT NULL)::text") != "true" || !still_wanted()) {
        tx.commit();
        return std::nullopt;
    }
    StreamConfig c;
    c.slot = spi::exec_text("SELECT slot_name FROM sicoop.stream_state");
    c.publication = spi::exec_text("SELECT publication FROM sicoop.stream_state");
    c.source_schema = spi::exec_text(R"sql(
SELECT o.option_value FROM pg_catalog.pg_foreign_table f, pg_catalog.pg_options_to_table(f.ftoptions) o
WHERE f.ftrelid = 'sicoop.src_associado'::regclass AND o.option_name = 'schema_name')sql");
    const std::string applied = spi::exec_text("SELECT applied_lsn::text FROM sicoop.stream_state");
    c.slot_is_ours = spi::exec_text("SELECT coalesce(created_slot, '') FROM sicoop.stream_state") == c.slot + "@" + this_warehouse();
    if (!applied.empty()) {
        auto lsn = pgo::parse_lsn(applied);
        c.has_applied = lsn.has_value();
        c.applied = lsn.value_or(0);
    }
    if (!is_slot_name(c.slot) || !is_plain_identifier(c.publication)) {
        const char* m = "sicoop: sicoop.stream_state names a slot or a publication start_stream() would refuse";
        pg_call([&] { ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s", m))); });
    }
    // 'streaming' once the source took START_REPLICATION (mark_streaming()); until then a stream
    // that was reconnecting or stalled still says so.
    if (!c.has_applied) set_state("syncing");
    spi::exec(R"sql(
UPDATE sicoop.stream_state
SET started_by = current_user,  -- the owner it acts for
    worker_pid = pg_catalog.pg_backend_pid(),
    state = CASE WHEN state IN ('reconnecting', 'stalled', 'syncing') THEN state ELSE 'starting' END)sql");
    tx.commit();
    return c;
}

// ------------------------------------------------------------------------------------------
// The replication connection
// ------------------------------------------------------------------------------------------

class Replication {
public:
    explicit Replication(PGconn* conn) : conn_(conn) {}
    ~Replication() {
        if (conn_ != nullptr) libpqsrv_disconnect(conn_);
    }
    Replication(const Replication&) = delete;
    Replication& operator=(const Replication&) = delete;
    PGconn* conn() const { return conn_; }

    // A replication command or query; its result (the caller clears it).
    PGresult* exec(const std::string& command, ExecStatusType expected, const char* what) {
        PGresult* res = nullptr;
        const char* c = command.c_str();
        pg_call([&] { res = libpqsrv_exec(conn_, c, PG_WAIT_EXTENSION); });
        if (PQresultStatus(res) != expected) {
            std::string message = PQresultErrorMessage(res);
            const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            std::string sqlstate = state ? state : "";
            PQclear(res);
            if (PQstatus(conn_) != CONNECTION_OK) throw Transient(std::string("the source closed the stream: ") + message);
            fail(what, message, sqlstate);
        }
        return res;
    }

    // The source's error, raised as a PostgreSQL error: a slot that is lost or gone stops the
    // stream with the fix.
    [[noreturn]] void fail(const char* what, const std::string& message, const std::string& sqlstate) {
        const bool lost = message.find("can no longer get changes") != std::string::npos ||
                          message.find("invalidated") != std::string::npos;
        const bool missing = message.find("does not exist") != std::string::npos;
        const char* m = message.c_str();
        const char* s = sqlstate.c_str();
        pg_call([&] {
            ereport(ERROR,
                    (errcode(sqlstate.size() == 5 ? MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]) : ERRCODE_CONNECTION_EXCEPTION),
                     errmsg("sicoop: the source refused to %s: %s", what, m),
                     lost ? errhint("The slot lost the WAL the stream needs (max_slot_wal_keep_size): SELECT sicoop.stop_stream(); "
                                    "SELECT sicoop.resync_stream(); SELECT sicoop.start_stream(); -- a fresh snapshot, "
                                    "compared with the warehouse; the history is kept.")
                     : missing ? errhint("Check the publication and the slot at the source (the README's Streaming section); "
                                         "if the slot was dropped: SELECT sicoop.stop_stream(); SELECT sicoop.resync_stream(); "
                                         "SELECT sicoop.start_stream();")
                               : 0));
        });
        throw std::logic_error("unreachable");
    }

    void send(const std::string& bytes) {
        if (PQputCopyData(conn_, bytes.data(), static_cast<int>(bytes.size())) != 1 || PQflush(conn_) != 0)
            throw Transient(std::string("could not write to the source: ") + PQerrorMessage(conn_));
    }

private:
    PGconn* conn_;
};

// A connection the source refused for who the stream is (authentication, pg_hba.conf, no
// REPLICATION, no LOGIN, no such role or database): no retry helps, unlike a source that is down.
bool refused_login(const char* detail) {
    if (detail == nullptr) return false;
    static const char* const kRefusals[] = {"authentication failed", "no pg_hba.conf entry", "pg_hba.conf rejects",
                                            "must be superuser or replication role", "is not permitted to log in",
                                            "permission denied", "does not exist", "password is required",
                                            "no password supplied", "role \"", "SCRAM"};
    const std::string d = detail;
    return std::any_of(std::begin(kRefusals), std::end(kRefusals), [&](const char* r) { return d.find(r) != std::string::npos; });
}

PGconn* connect_replication() {
    PGconn* conn = nullptr;
    WorkerTransaction tx;  // (the server and the owner's user mapping are read from the catalog)
    // The owner's user mapping (the owner may have changed since the stream was started).
    if (spi::exec_text(R"sql(
SELECT (EXISTS (SELECT 1 FROM pg_catalog.pg_user_mappings m
                WHERE m.srvname = 'sicoop_source' AND (m.umuser = 0 OR m.usename = current_user)))::text)sql") != "true") {
        const std::string owner = spi::exec_text("SELECT current_user::text");
        pg_call([&] {
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("sicoop: %s, the warehouse's owner the stream acts for, has no user mapping for the source",
                                   owner.c_str()),
                            errhint("As %s: SELECT sicoop.connect_source(host, port, dbname, username, password); "
                                    "then SELECT sicoop.start_stream();",
                                    owner.c_str())));
        });
    }
    try {
        pg_call([&] { conn = source::open_connection(true); });
    } catch (PgError& e) {
        if (e.edata->sqlerrcode == ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION && refused_login(e.edata->detail)) {
            ErrorData* edata = e.edata;
            pg_call([&] {
                ereport(ERROR, (errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
                                errmsg("sicoop: the source refused the stream's connection: %s",
                                       edata->detail ? edata->detail : edata->message),
                                errhint("The source role needs LOGIN, REPLICATION, the right password and a pg_hba.conf "
                                        "entry for the database: fix it at the source, or call sicoop.connect_source(...) "
                                        "again as the warehouse's owner; then SELECT sicoop.start_stream();")));
            });
        }
        if (is_transient(e)) throw Transient(e.edata->message ? e.edata->message : "cannot connect to the source");
        throw;
    }
    tx.commit();
    return conn;
}

// Quotes for a replication connection's plain SQL (no parameters there).
std::string literal(PGconn* conn, const std::string& s) {
    char* q = PQescapeLiteral(conn, s.c_str(), s.size());
    if (q == nullptr) throw Transient(std::string("cannot quote for the source: ") + PQerrorMessage(conn));
    std::string out = q;
    PQfreemem(q);
    return out;
}
// An identifier as the source's quote_ident() writes it (quoted only when it must be).
std::string identifier(Replication& source, const std::string& s) {
    PGresult* r = source.exec("SELECT pg_catalog.quote_ident(" + literal(source.conn(), s) + ")", PGRES_TUPLES_OK,
                              "quote an identifier");
    std::string out = PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : s;
    PQclear(r);
    return out;
}

std::string joined(const std::vector<std::string>& parts, const char* separator) {
    std::string out;
    for (const std::string& p : parts) out += (out.empty() ? "" : separator) + p;
    return out;
}

// At every connection, before the slot is made or read: the publication gives the stream every
// change the pipeline reads -- it exists, publishes insert, update, delete and truncate, holds the
// four source tables with no row filter and no column list -- and each table's replica identity is
// the pipeline's key (its primary key, or a unique index on exactly that column). Otherwise the
// stream fails (no retry) saying what is wrong and the statements that fix it.
void check_publication(Replication& source, const StreamConfig& config) {
    PGconn* conn = source.conn();
    const std::string pub = literal(conn, config.publication), schema = literal(conn, config.source_schema);
    const std::string pub_id = identifier(source, config.publication), schema_id = identifier(source, config.source_schema);
    std::vector<std::string> problems, fixes;
    PGresult* r = source.exec("SELECT p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate FROM pg_catalog.pg_publication p "
                              "WHERE p.pubname = " + pub,
                              PGRES_TUPLES_OK, "read the publication");
    const bool exists = PQntuples(r) == 1;
    bool all_kinds = exists;
    for (int i = 0; exists && i < 4; ++i) all_kinds = all_kinds && std::string(PQgetvalue(r, 0, i)) == "t";
    PQclear(r);
    std::vector<std::string> qualified;
    std::string values;
    for (const SourceTable& t : source_tables()) {
        qualified.push_back(schema_id + "." + identifier(source, t.name));
        values += std::string(values.empty() ? "" : ", ") + "(" + literal(conn, t.name) + ", " + literal(conn, t.key) + ")";
    }
    if (!exists) {
        problems.push_back("publication " + config.publication + " does not exist");
        fixes.push_back("CREATE PUBLICATION " + pub_id + " FOR TABLE " + joined(qualified, ", "));
    } else if (!all_kinds) {
        problems.push_back("publication " + config.publication + " does not publish every insert, update, delete and truncate");
        fixes.push_back("ALTER PUBLICATION " + pub_id + " SET (publish = 'insert, update, delete, truncate')");
    }
    const bool v15 = PQserverVersion(conn) >= 150000;  // row filters and column lists came with 15
    r = source.exec(std::string(R"sql(
SELECT t.name, t.key, c.oid IS NOT NULL,
       EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables pt
               WHERE pt.pubname = )sql") + pub + R"sql( AND pt.schemaname = )sql" + schema + R"sql( AND pt.tablename = t.name),
       )sql" + (v15 ? std::string(R"sql(EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel pr JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid
               WHERE p.pubname = )sql") + pub + " AND pr.prrelid = c.oid AND (pr.prqual IS NOT NULL OR pr.prattrs IS NOT NULL))"
                       : std::string("false")) + R"sql(,
       coalesce(c.relreplident::text, ''),
       coalesce((SELECT string_agg(a.attname::text, ', ' ORDER BY a.attnum)
                 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                 WHERE i.indrelid = c.oid AND CASE c.relreplident WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident
                                                                  ELSE false END), ''),
       EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
               WHERE i.indrelid = c.oid AND i.indisprimary AND i.indnatts = 1 AND a.attname = t.key)
FROM (VALUES )sql" + values + R"sql() AS t(name, key)
LEFT JOIN pg_catalog.pg_class c ON c.relname = t.name AND c.relkind IN ('r', 'p')
      AND c.relnamespace = (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = )sql" + schema + ")",
                    PGRES_TUPLES_OK, "read the publication's tables");
    for (int i = 0; i < PQntuples(r); ++i) {
        const std::string name = PQgetvalue(r, i, 0), key = PQgetvalue(r, i, 1);
        const std::string table = schema_id + "." + identifier(source, name);
        const std::string shown = config.source_schema + "." + name;
        if (std::string(PQgetvalue(r, i, 2)) != "t") {
            problems.push_back("source table " + shown + " does not exist");
            continue;
        }
        if (exists && std::string(PQgetvalue(r, i, 3)) != "t") {
            problems.push_back("publication " + config.publication + " leaves out " + shown);
            fixes.push_back("ALTER PUBLICATION " + pub_id + " ADD TABLE " + table);
        } else if (std::string(PQgetvalue(r, i, 4)) == "t") {
            problems.push_back("publication " + config.publication + " publishes " + shown + " with a row filter or a column list");
            fixes.push_back("ALTER PUBLICATION " + pub_id + " DROP TABLE " + table);
            fixes.push_back("ALTER PUBLICATION " + pub_id + " ADD TABLE " + table);
        }
        const std::string ident = PQgetvalue(r, i, 5), ident_columns = PQgetvalue(r, i, 6);
        const bool pk_on_key = std::string(PQgetvalue(r, i, 7)) == "t";
        if ((ident == "d" || ident == "i") && ident_columns == key) continue;
        problems.push_back("the replica identity of " + shown + " is " +
                           (ident == "n"   ? std::string("NOTHING")
                            : ident == "f" ? std::string("FULL")
                            : ident_columns.empty() ? std::string("no key (no primary key)")
                                                    : "(" + ident_columns + ")") +
                           ", not its key " + key);
        if (!pk_on_key) fixes.push_back("ALTER TABLE " + table + " ADD PRIMARY KEY (" + identifier(source, key) + ")");
        if (ident != "d") fixes.push_back("ALTER TABLE " + table + " REPLICA IDENTITY DEFAULT");
    }
    PQclear(r);
    if (problems.empty()) return;
    const std::string m = joined(problems, "; "), h = joined(fixes, "; ");
    pg_call([&] {
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("sicoop: the stream would miss changes: %s", m.c_str()),
                        errhint("At the source: %s%sthen SELECT sicoop.start_stream();", h.c_str(), h.empty() ? "" : "; ")));
    });
}

// A Relation message (sent again whenever the source table changed) whose key is not the
// pipeline's: the changes it describes cannot be applied by key. The stream fails with the fix
// and a resync (the changes since then carry the wrong key), instead of replaying them forever.
void check_relation(const pgo::Message& m, const std::string& source_schema) {
    if (m.kind != pgo::Message::Kind::Relation || m.schema != source_schema) return;
    for (const SourceTable& t : source_tables()) {
        if (t.name != m.name) continue;
        std::vector<std::string> keys;
        for (const pgo::RelationColumn& c : m.columns)
            if (c.part_of_key) keys.push_back(c.name);
        if ((m.replica_identity == 'd' || m.replica_identity == 'i') && keys == std::vector<std::string>{t.key}) return;
        const std::string shown = m.schema + "." + m.name, got = keys.empty() ? std::string("no key") : "(" + joined(keys, ", ") + ")";
        const std::string key = t.key;
        pg_call([&] {
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("sicoop: the replica identity of source table %s changed while streaming: its changes "
                                   "now carry %s, not its key %s",
                                   shown.c_str(), got.c_str(), key.c_str()),
                            errhint("At the source: ALTER TABLE %s REPLICA IDENTITY DEFAULT (with its primary key on %s); "
                                    "then, the changes since carrying no usable key: SELECT sicoop.resync_stream(); "
                                    "SELECT sicoop.start_stream(); -- a fresh snapshot, compared with the warehouse; the "
                                    "history is kept.",
                                    shown.c_str(), key.c_str())));
        });
    }
}

// ------------------------------------------------------------------------------------------
// The stream's position against the source's
// ------------------------------------------------------------------------------------------

// No silent gap (at every start, so at every reconnection): the slot must not be confirmed past
// the warehouse's applied LSN. The worker confirms only what it has stored, so a slot ahead
// means the changes between were applied to a warehouse that is not this one as it is now: a
// restore from a dump, a point-in-time recovery, a copy. Streaming would skip them; the stream
// fails instead, with the fix (resync_stream() compares with a fresh snapshot and keeps the
// history). A slot another process streams from (a stalled walsender of this stream's last
// connection, until it notices) is tried again.
void check_position(Replication& source, const StreamConfig& config) {
    PGresult* r = source.exec("SELECT s.confirmed_flush_lsn::text, coalesce(s.active_pid, 0) FROM pg_catalog.pg_replication_slots s "
                              "WHERE s.slot_name = " + literal(source.conn(), config.slot),
                              PGRES_TUPLES_OK, "read the replication slot");
    const bool exists = PQntuples(r) == 1;
    pgo::Lsn confirmed = 0;  // (0: none yet)
    if (exists && !PQgetisnull(r, 0, 0)) confirmed = pgo::parse_lsn(PQgetvalue(r, 0, 0)).value_or(0);
    const int active_pid = exists ? atoi(PQgetvalue(r, 0, 1)) : 0;
    PQclear(r);
    if (!exists) return;  // (START_REPLICATION says so, with the fix)
    if (confirmed > config.applied) {
        const std::string slot_at = pgo::format_lsn(confirmed), ours = pgo::format_lsn(config.applied);
        pg_call([&] {
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("sicoop: replication slot %s is at %s, past this warehouse's position %s: the source's changes "
                                   "between were applied to a warehouse that is not this one as it is now (restored from a dump, "
                                   "recovered to a point in time, or copied); streaming from the slot would skip them",
                                   config.slot.c_str(), slot_at.c_str(), ours.c_str()),
                            errhint("SELECT sicoop.stop_stream(); SELECT sicoop.resync_stream(); SELECT sicoop.start_stream(); -- a "
                                    "fresh snapshot, compared with the warehouse: what it lacks is loaded, the history is kept. If "
                                    "another warehouse still streams from slot %s, give this one its own: "
                                    "SELECT sicoop.resync_stream(); SELECT sicoop.start_stream('sicoop_%s');",
                                    config.slot.c_str(), this_warehouse().c_str())));
        });
    }
    if (active_pid != 0) {
        pg_call([&] {
            ereport(ERROR, (errcode(ERRCODE_OBJECT_IN_USE),
                            errmsg("sicoop: replication slot %s is in use by process %d at the source", config.slot.c_str(), active_pid),
                            errhint("The stream tries again every 5 s. A walsender of this stream's last connection ends when it "
                                    "notices the connection is gone (wal_sender_timeout at the source); if another client streams "
                                    "from the slot, end it at the source (SELECT pg_terminate_backend(%d);).",
                                    active_pid)));
        });
    }
}

// The source took START_REPLICATION: the stream is streaming, no error pending.
void mark_streaming() {
    WorkerTransaction tx;
    spi::exec(R"sql(
UPDATE sicoop.stream_state
SET state = 'streaming', worker_pid = pg_catalog.pg_backend_pid(), stopped_at = NULL, error_sqlstate = NULL,
    error_message = NULL, error_hint = NULL, last_message_at = pg_catalog.clock_timestamp())sql");
    tx.commit();
}

// A plain connection to the source beside the replication one: its WAL position, sampled each
// second. The warehouse is current as of a sample's time once the stream holds that position;
// stream_state.current_at keeps that time, what stream_status()'s lag in seconds counts from
// (a stall, a stopped stream or a batch held behind a lock: the lag grows, as it truly does).
class Freshness {
public:
    ~Freshness() { close(); }
    // A sample of the source's position now (in the caller's worker transaction: the source's
    // server and user mapping are read from the catalog); nothing if it cannot be read.
    void sample(TimestampTz now) {
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
        if (samples_.size() > 3600) samples_.pop_front();  // (an hour of samples at most)
    }
    // The stream holds the source up to `position`: the latest sample it covers is its time.
    void held(pgo::Lsn position) {
        while (!samples_.empty() && samples_.front().first <= position) {
            current_at_ = samples_.front().second;
            samples_.pop_front();
        }
    }
    TimestampTz current_at() const { return current_at_; }

private:
    void close() {
        if (conn_ != nullptr) libpqsrv_disconnect(conn_);
        conn_ = nullptr;
    }
    PGconn* conn_ = nullptr;
    std::deque<std::pair<pgo::Lsn, TimestampTz>> samples_;
    TimestampTz current_at_ = 0;
};

// ------------------------------------------------------------------------------------------
// Applying: the initial sync, and a micro-batch
// ------------------------------------------------------------------------------------------

// Waits a second (or less, when the latch is set), then answers a pending cancel or shutdown.
void wait_a_second() {
    pg_call([] {
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000L, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    });
}

// Waits, without holding anything, until the pipeline lock is free for this transaction.
void take_run_lock() {
    while (!stream_steps::try_run_lock()) wait_a_second();
}

// The slot, created with an exported snapshot, and the warehouse brought to that snapshot by a
// full run; the applied LSN is the slot's consistent point, stored with the run's data.
// A slot this warehouse did not create is never used nor dropped: it may be another
// warehouse's position (two warehouses on one source each have their own), or anything else's.
[[noreturn]] void refuse_foreign_slot(const std::string& slot) {
    const std::string own = "sicoop_" + this_warehouse();
    pg_call([&] {
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("sicoop: replication slot %s exists at the source and this warehouse did not create it: "
                               "the stream neither uses nor drops it",
                               slot.c_str()),
                        errhint("Give the stream a slot of its own: SELECT sicoop.resync_stream(); SELECT sicoop.start_stream('%s'); "
                                "-- or, only if slot %s is known to be unused, drop it at the source "
                                "(SELECT pg_drop_replication_slot('%s');) and SELECT sicoop.start_stream();",
                                own.c_str(), slot.c_str(), slot.c_str())));
    });
    throw std::logic_error("unreachable");
}

// The slot, created with an exported snapshot, and the warehouse brought to that snapshot by a
// full run; the applied LSN is the slot's consistent point, stored with the run's data.
pgo::Lsn initial_sync(Replication& source, const StreamConfig& config) {
    PGresult* existing = source.exec("SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = '" + config.slot + "'",
                                     PGRES_TUPLES_OK, "look for the replication slot");
    const bool exists = PQntuples(existing) > 0;
    PQclear(existing);
    if (exists && !config.slot_is_ours) refuse_foreign_slot(config.slot);
    // A slot this warehouse created at an earlier start (or before resync_stream()): its
    // position is not the warehouse's; a new one comes with its snapshot.
    if (exists) PQclear(source.exec("DROP_REPLICATION_SLOT " + config.slot + " WAIT", PGRES_COMMAND_OK, "drop the old slot"));
    PGresult* created = source.exec("CREATE_REPLICATION_SLOT " + config.slot + " LOGICAL pgoutput (SNAPSHOT 'export')",
                                    PGRES_TUPLES_OK, "create the replication slot");
    {
        // Recorded at once (before the long sync): whatever happens next, the slot is known ours.
        const std::string created = config.slot + "@" + this_warehouse();
        WorkerTransaction tx;
        spi::Param p[1] = {spi::text_param(created.c_str())};
        spi::exec("UPDATE sicoop.stream_state SET created_slot = $1", p, 1);
        tx.commit();
    }
    const std::string consistent_point = PQgetvalue(created, 0, 1);
    const std::string snapshot = PQgetvalue(created, 0, 2);
    PQclear(created);
    const auto lsn = pgo::parse_lsn(consistent_point);
    if (!lsn) throw std::runtime_error("the source gave the slot an unreadable position: " + consistent_point);

    WorkerTransaction tx;
    take_run_lock();
    const TimestampTz reference_time = spi::reference_time();
    const int64 run_id = run_log::next_run_id();
    run_log::started(run_id, "run_pipeline", reference_time);
    std::string detail;
    const StepCounts total =
        stream_steps::run(RunRequest{RunRequest::Mode::Full, run_id, reference_time, {}, snapshot}, detail);
    run_log::succeeded(run_id, "run_pipeline", total);
    spi::Param p[1] = {spi::text_param(consistent_point.c_str())};
    spi::exec("UPDATE sicoop.stream_state SET applied_lsn = $1::pg_lsn, received_lsn = $1::pg_lsn, state = 'streaming'", p, 1);
    tx.commit();
    return *lsn;
}

// The most a batch, or a part of a large source transaction, holds in memory: a quarter of
// sicoop.stream_work_mem, since applying it copies it about three times over (folded states,
// COPY text, its masked copy) while the next one may gather.
size_t part_bytes() { return static_cast<size_t>(settings::stream_work_mem_kb()) * 1024 / 4; }

// The most states one member may have in a micro-batch: SCD2 replays a member's earlier states
// one round each (a few statements per round), so a member changed more often than this in one
// batch applies the batch first.
constexpr size_t kMaxMemberStates = 32;

struct Batch {
    std::vector<pgo::Transaction> transactions;
    size_t changes = 0;
    size_t bytes = 0;                       // about the memory its changes take (against sicoop.stream_work_mem)
    std::map<std::string, size_t> members;  // associado keys changed: how many times in the batch
    TimestampTz first_received = 0;

    bool empty() const { return transactions.empty(); }
    void clear() {
        const bool big = bytes >= part_bytes() / 4;
        *this = Batch{};
        if (big) give_memory_back();
    }
};

// The associado keys a transaction changes, each with the one state it gets from it (several
// changes in one transaction are one state: src/steps/pgoutput.cpp's earlier_states).
std::map<std::string, size_t> members_of(const pgo::Transaction& t) {
    std::map<std::string, size_t> keys;
    bool any = false;
    for (const auto& c : t.changes) any = any || c.table == "associado";
    if (!any) return keys;
    for (const pgo::TableBatch& b : pgo::fold({t}, key_columns(), {"associado"}))
        if (b.table == "associado")
            for (const auto& s : b.versions) keys[s.key] = 1;
    return keys;
}

// What the worker tells the source while it is busy (Busy): the replication connection (none:
// nothing to tell), what it received, what is stored.
struct StatusReply {
    PGconn* conn = nullptr;
    pgo::Lsn received = 0;
    pgo::Lsn flushed = 0;
};

// While the steps of an apply or a full check run, the worker reads nothing from the source, and
// one statement alone can outlast the source's wal_sender_timeout (60 s by default; load_fato
// over a million-row UPDATE took 68 s): the walsender would end the connection. Meanwhile a
// thread of the worker's own sends the source a standby status update each second (the source's
// keepalives ask for just that; what it sends waits in the socket and is read after). The thread
// touches nothing of PostgreSQL's -- only libpq, on the replication connection the worker does
// not use until it is joined -- and takes no signal (all blocked in it): as DuckDB's threads in
// pg_duckdb. No thread to be had: the worker goes without (the source may end the connection;
// the worker reconnects after its commit, nothing lost).
class Busy {
public:
    explicit Busy(const StatusReply& reply) : reply_(reply) {
        if (reply.conn == nullptr) return;
        sigset_t all, saved;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        try {
            thread_ = std::thread([this] { beat(); });
        } catch (const std::system_error&) {
        }
        pthread_sigmask(SIG_SETMASK, &saved, nullptr);
    }
    ~Busy() {
        if (!thread_.joinable()) return;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_ = true;
        }
        wake_.notify_one();
        thread_.join();
    }
    Busy(const Busy&) = delete;
    Busy& operator=(const Busy&) = delete;

private:
    void beat() noexcept {
        try {
            std::unique_lock<std::mutex> lock(mutex_);
            while (!wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; })) {
                struct timeval tv;
                gettimeofday(&tv, nullptr);  // (GetCurrentTimestamp() is PostgreSQL's: not in this thread)
                const pgo::Timestamp now =
                    (static_cast<int64>(tv.tv_sec) - (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY) *
                        USECS_PER_SEC +
                    tv.tv_usec;
                const std::string m =
                    pgo::standby_status_update(reply_.received, reply_.flushed, reply_.flushed, now, false);
                if (PQputCopyData(reply_.conn, m.data(), static_cast<int>(m.size())) != 1 || PQflush(reply_.conn) != 0)
                    return;  // (the loop finds the connection broken when it reads again)
            }
        } catch (...) {
        }
    }
    const StatusReply reply_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stop_ = false;
    std::thread thread_;
};

// Runs the steps over what is staged, records the batch (its run log row, the end LSN of its
// last source transaction: `last`) and commits: the end of a micro-batch and of a large
// source transaction alike.
void finish_apply(WorkerTransaction& tx, const Staged& staged, const pgo::Transaction& last, size_t transactions,
                  size_t changes, pgo::Lsn received, const StatusReply& busy) {
    const TimestampTz reference_time = spi::reference_time();
    const int64 run_id = run_log::next_run_id();
    run_log::started(run_id, "stream", reference_time);
    std::string detail;
    StepCounts total;
    {
        Busy source_answered(busy);
        const StreamBatch batch{staged.touched, staged.truncated, static_cast<int>(staged.member_rounds)};
        total = stream_steps::run(RunRequest{RunRequest::Mode::Stream, run_id, reference_time, batch, ""}, detail);
    }
    // The batch's keys leave with it, not even as dead rows (a key rejected as card-like is one).
    spi::exec("TRUNCATE sicoop.stream_key");
    forget_unfit_values();
    const std::string applied = pgo::format_lsn(last.end_lsn);
    const std::string received_text = pgo::format_lsn(std::max(received, last.end_lsn));
    const std::string commit_time = timestamp_text(last.commit_time);
    detail = "{\"transactions\": " + std::to_string(transactions) + ", \"changes\": " + std::to_string(changes) +
             ", \"applied_lsn\": \"" + applied + "\", \"steps\": " + detail + "}";
    run_log::succeeded(run_id, "stream", total, detail.c_str());
    spi::Param p[5] = {spi::text_param(applied.c_str()), spi::text_param(received_text.c_str()),
                       spi::int8_param(static_cast<int64>(changes)), spi::int8_param(static_cast<int64>(transactions)),
                       spi::text_param(commit_time.c_str())};
    spi::exec(R"sql(
UPDATE sicoop.stream_state
SET applied_lsn = $1::pg_lsn, received_lsn = $2::pg_lsn, changes_applied = changes_applied + $3,
    transactions_applied = transactions_applied + $4, batches_applied = batches_applied + 1,
    last_commit_time = $5::timestamptz, last_apply_at = clock_timestamp(), state = 'streaming',
    worker_pid = pg_backend_pid(), error_sqlstate = NULL, error_message = NULL, error_hint = NULL)sql",
              p, 5);
    tx.commit();
    pgstat_report_activity(STATE_IDLE, nullptr);
}

// Applies a micro-batch in one warehouse transaction; false if a run holds the pipeline lock
// (nothing applied: it is tried again).
bool apply(const Batch& batch, pgo::Lsn received, const StatusReply& busy) {
    WorkerTransaction tx;
    stream_steps::check_ready();  // (sicoop_etl dropped or updated since: the stream fails, saying so)
    if (!stream_steps::try_run_lock()) return false;
    pgstat_report_activity(STATE_RUNNING, "sicoop_etl stream: applying a micro-batch");
    const Staged staged = stage_transactions(batch.transactions);
    finish_apply(tx, staged, batch.transactions.back(), batch.transactions.size(), batch.changes, received, busy);
    return true;
}

// A source transaction past the memory bound (issue 25): pgoutput (protocol 1) sends it whole
// after its commit, and gathering it whole took the worker to gigabytes. Once it outgrows a
// part (part_bytes()), it gets a warehouse transaction of its own into which its parts are
// staged as they arrive (PartStager, src/stream_apply.cpp); its commit stages the rest, runs
// the steps and stores its end LSN there, as apply() does: still one warehouse transaction per
// source transaction (readers never see half of one), and a crash anywhere replays it whole
// from the stored LSN. Nothing is spilled to disk but what the stage holds anyway (masked).
class LargeApply {
public:
    bool open() const { return tx_ != nullptr; }
    // Opens its warehouse transaction; false (nothing open) if a run holds the pipeline lock.
    bool begin() {
        auto tx = std::make_unique<WorkerTransaction>();
        stream_steps::check_ready();
        if (!stream_steps::try_run_lock()) return false;
        pgstat_report_activity(STATE_RUNNING, "sicoop_etl stream: applying a large source transaction");
        stager_ = std::make_unique<PartStager>();
        tx_ = std::move(tx);
        return true;
    }
    void stage(pgo::Transaction part) { stager_->stage(std::move(part)); }
    // Its commit: what came after the last part, then the steps and its LSN; committed.
    void finish(pgo::Transaction rest, pgo::Lsn received, const StatusReply& busy) {
        const pgo::Transaction last{rest.xid, rest.commit_lsn, rest.end_lsn, rest.commit_time, {}, 0};
        stager_->stage(std::move(rest));
        finish_apply(*tx_, stager_->staged(), last, 1, stager_->changes(), received, busy);
        stager_.reset();
        tx_.reset();
        give_memory_back();
    }

private:
    std::unique_ptr<WorkerTransaction> tx_;  // (declared first: the stager goes before it)
    std::unique_ptr<PartStager> stager_;
};

// The run log's retention, now and then (as run_pipeline does after each run); a micro-batch's
// row (several a second) is kept for sicoop.stream_log_retention only.
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

// Between batches, each second: whether the stream is still wanted (and sicoop_etl still
// installed), and the stream's health recorded: the received position, the last message from
// the source, the time the warehouse was current as of. `caught_up`: nothing pending (no batch,
// no transaction open): the stream holds everything up to what was received, which is stored as
// applied too (the lag is nil, not the source's other WAL) -- stored before it is ever confirmed
// to the source, so the slot is never ahead of the warehouse (check_position()).
struct Health {
    TimestampTz last_message = 0;
    bool full_check_requested = false;
};
bool idle_check(pgo::Lsn received, bool paused, bool caught_up, Freshness& freshness, Health& health) {
    WorkerTransaction tx;
    stream_steps::check_ready();  // (dropped or updated under the worker: the stream fails, saying so)
    const bool wanted = still_wanted();
    const TimestampTz now = GetCurrentTimestamp();
    freshness.sample(now);
    const std::string r = pgo::format_lsn(received);
    const std::string last_message = timestamp_text(health.last_message);
    spi::Param p[3] = {spi::text_param(r.c_str()), spi::text_param(caught_up ? "true" : "false"),
                       spi::text_param(last_message.c_str())};
    // The position held: what was applied (stream_state), or all that was received when caught up.
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
    if (wanted) {
        spi::Param st[1] = {spi::text_param(paused ? "paused" : "streaming")};
        spi::exec("UPDATE sicoop.stream_state SET state = $1, worker_pid = pg_catalog.pg_backend_pid()", st, 1);
        health.full_check_requested =
            spi::exec_text("SELECT (full_check_requested_at IS NOT NULL)::text FROM sicoop.stream_state") == "true";
    } else {
        set_state("stopped");
    }
    tx.commit();
    pg_call([] { pgstat_report_stat(true); });  // (the batches' table statistics: autovacuum follows the stream)
    return wanted;
}

// ------------------------------------------------------------------------------------------
// A full check at the stream's own position
// ------------------------------------------------------------------------------------------

// run_pipeline(full => true) while a stream is wanted asks the worker (stream_state.
// full_check_requested_at) rather than reading the source itself: a check that read the source
// ahead of the stream would load member changes the stream has not applied yet as one version
// from the check's time, and the versions in between would be lost. The worker makes a
// temporary slot on a second replication connection: its consistent point C and a snapshot of
// the source exactly at C. It applies every source transaction that ended at or before C, then
// runs every step as a full run on that snapshot (as the initial sync does), and streams on
// from C: the check sees what the stream holds, no more, no less.
struct FullCheck {
    std::unique_ptr<Replication> connection;  // holds the temporary slot and its snapshot
    std::string snapshot;
    pgo::Lsn at = 0;
};

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

std::optional<FullCheck> begin_full_check() {
    FullCheck check;
    try {
        check.connection = std::make_unique<Replication>(connect_replication());
        const std::string slot = "sicoop_check_" + std::to_string(MyProcPid);
        PGresult* created = check.connection->exec("CREATE_REPLICATION_SLOT " + slot + " TEMPORARY LOGICAL pgoutput (SNAPSHOT 'export')",
                                                   PGRES_TUPLES_OK, "create the full check's temporary slot");
        const auto at = pgo::parse_lsn(PQgetvalue(created, 0, 1));
        check.snapshot = PQgetvalue(created, 0, 2);
        PQclear(created);
        if (!at) throw Transient("the source gave the full check's slot an unreadable position");
        check.at = *at;
    } catch (PgError& e) {
        full_check_failed(e);
        return std::nullopt;
    }
    return check;
}

// The check itself, the stream holding everything up to check.at (and nothing after).
void run_full_check(const FullCheck& check, const StatusReply& busy) {
    try {
        WorkerTransaction tx;
        take_run_lock();
        const TimestampTz reference_time = spi::reference_time();
        const int64 run_id = run_log::next_run_id();
        run_log::started(run_id, "run_pipeline", reference_time);
        std::string detail;
        StepCounts total;
        {
            Busy source_answered(busy);
            total = stream_steps::run(RunRequest{RunRequest::Mode::Full, run_id, reference_time, {}, check.snapshot},
                                      detail);
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

// A batch's transactions up to `at` (inclusive), and those after.
std::pair<Batch, Batch> split_at(Batch&& batch, pgo::Lsn at) {
    Batch before, after;
    for (pgo::Transaction& t : batch.transactions) {
        Batch& into = t.end_lsn <= at ? before : after;
        if (into.empty()) into.first_received = batch.first_received;
        into.changes += t.changes.size();
        into.bytes += t.bytes;
        for (const auto& [key, states] : members_of(t)) into.members[key] += states;
        into.transactions.push_back(std::move(t));
    }
    return {std::move(before), std::move(after)};
}

// ------------------------------------------------------------------------------------------
// The loop
// ------------------------------------------------------------------------------------------

pgo::Timestamp now_pg() { return GetCurrentTimestamp(); }

void stream_changes(Replication& source, const StreamConfig& config, pgo::Lsn applied) {
    std::vector<std::string> tables;
    for (const SourceTable& t : source_tables()) tables.push_back(t.name);
    pgo::TransactionAssembler assembler(config.source_schema, tables, applied);
    // (Names checked by claim(): the commands take no parameters.)
    PQclear(source.exec("START_REPLICATION SLOT " + config.slot + " LOGICAL " + pgo::format_lsn(applied) +
                            " (proto_version '1', publication_names '\"" + config.publication + "\"')",
                        PGRES_COPY_BOTH, "start streaming"));
    mark_streaming();
    Batch batch;
    LargeApply large;  // a source transaction past the memory bound, being applied in parts
    pgo::Lsn received = applied;
    TimestampTz last_status = 0, last_check = GetCurrentTimestamp(), retry_at = 0;
    // Silence is measured from the last message, or from the end of the last work that kept the
    // worker from reading (an apply): what waits in the socket meanwhile is not silence.
    TimestampTz listening_since = GetCurrentTimestamp();
    bool pinged = false;
    int64 batches = 0;
    bool paused = false;
    Freshness freshness;
    Health health;
    health.last_message = GetCurrentTimestamp();
    std::optional<FullCheck> check;
    // What the source is told while the worker runs steps (Busy).
    auto busy = [&] { return StatusReply{source.conn(), received, applied}; };
    // `end` is stored with the data up to it: it is confirmed to the source now.
    auto stored = [&](pgo::Lsn end) {
        applied = end;
        source.send(pgo::standby_status_update(received, applied, applied, now_pg(), false));
        last_status = GetCurrentTimestamp();
        if (++batches % 100 == 0) purge_logs();
    };
    // Applies `b` (false: a run holds the pipeline lock; nothing applied). The applied position
    // is confirmed to the source only once stored with the data.
    auto apply_now = [&](const Batch& b) {
        const bool done = apply(b, received, busy());
        listening_since = GetCurrentTimestamp();
        if (done) stored(b.transactions.back().end_lsn);
        return done;
    };
    // Applies `b`, again each second while a run holds the pipeline lock; false: the stream was
    // stopped meanwhile.
    auto apply_waiting = [&](const Batch& b) {
        while (!apply_now(b)) {
            wait_a_second();
            if (!idle_check(received, true, false, freshness, health)) return false;
        }
        return true;
    };
    // The full check asked for, once every source transaction up to its position is received:
    // those the batch holds are applied, then the check runs. False: stopped meanwhile.
    auto run_check = [&] {
        auto [before, after] = split_at(std::move(batch), check->at);
        if (!before.empty() && !apply_waiting(before)) return false;
        run_full_check(*check, busy());
        check.reset();  // (the temporary slot goes with its connection)
        batch = std::move(after);
        listening_since = GetCurrentTimestamp();
        return true;
    };
    // A source transaction past the memory bound (LargeApply). Once it outgrows a part, the batch
    // gathered before it is applied in a transaction of its own (and a full check whose position
    // it commits after runs first: everything up to that position is in by then), and its
    // warehouse transaction opens; it takes each part as it comes, and `t`, the transaction's
    // commit, runs the steps and stores it. Nothing else opens a worker transaction meanwhile
    // (idle_check(), a full check: the loop waits for its end). False: stopped meanwhile.
    auto apply_large = [&](std::optional<pgo::Transaction>& t) {
        if (!large.open()) {
            if (!batch.empty() && !apply_waiting(batch)) return false;
            batch.clear();
            if (check && assembler.open_commit_lsn() >= check->at && !run_check()) return false;
            while (!large.begin()) {
                wait_a_second();
                if (!idle_check(received, true, false, freshness, health)) return false;
            }
        }
        if (t) {
            const pgo::Lsn end = t->end_lsn;
            large.finish(std::move(*t), received, busy());
            stored(end);
        } else {
            Busy source_answered(busy());  // (a part of a large sicoop.stream_work_mem takes a while)
            large.stage(assembler.take_part());
        }
        listening_since = GetCurrentTimestamp();  // (what came meanwhile waits in the socket)
        return true;
    };
    for (;;) {
        pg_call([] {
            CHECK_FOR_INTERRUPTS();
            if (ConfigReloadPending) {
                ConfigReloadPending = false;
                ProcessConfigFile(PGC_SIGHUP);
            }
        });
        const TimestampTz now = GetCurrentTimestamp();
        // A full check asked for: once the stream has received the check's position and holds no
        // transaction half received, what ended up to it is applied, then the check runs. (Before
        // a batch falls due: it may hold a transaction that ended after the position.)
        if (check && received >= check->at && !assembler.in_transaction() && !run_check()) return;  // stopped meanwhile
        // Apply when due: the interval since the batch's first change, or its size. (Held back
        // by a run, it is tried again each second.)
        if (!batch.empty() && now >= retry_at &&
            (batch.changes >= static_cast<size_t>(settings::stream_batch_changes()) || batch.bytes >= part_bytes() ||
             now >= TimestampTzPlusMilliseconds(batch.first_received, settings::stream_interval_ms()))) {
            paused = !apply_now(batch);
            if (paused) retry_at = TimestampTzPlusMilliseconds(now, 1000);
            if (!paused) batch.clear();
        }
        // (Not while a large source transaction's warehouse transaction is open: this takes one of its own.)
        if (now >= TimestampTzPlusMilliseconds(last_check, 1000) && !large.open()) {
            const bool caught_up = batch.empty() && !assembler.in_transaction();
            if (!idle_check(received, paused, caught_up, freshness, health)) return;
            if (caught_up) applied = std::max(applied, received);
            last_check = now;
            if (health.full_check_requested && !check) {
                check = begin_full_check();
                listening_since = GetCurrentTimestamp();
                // (A reply asked for: the source says how far it has sent, so the check's position
                // is known reached even when nothing of ours changes.)
                if (check) source.send(pgo::standby_status_update(received, applied, applied, now_pg(), true));
            }
        }
        if (now >= TimestampTzPlusMilliseconds(last_status, 10000)) {
            // Only what is stored is confirmed: the slot is never ahead of the warehouse.
            source.send(pgo::standby_status_update(received, applied, applied, now_pg(), false));
            last_status = now;
        }
        // A batch held back by a run (the lock) stops reading past a bound: the source waits.
        if (paused &&
            (batch.changes >= 10 * static_cast<size_t>(settings::stream_batch_changes()) || batch.bytes >= part_bytes())) {
            wait_a_second();
            listening_since = GetCurrentTimestamp();
            continue;
        }
        char* buffer = nullptr;
        const int n = PQgetCopyData(source.conn(), &buffer, 1 /* async */);
        if (n == 0) {
            // Nothing from the source for half of sicoop.stream_receive_timeout: a reply is asked
            // for; for all of it: the stream is stalled (as wal_receiver_timeout).
            const TimestampTz silent_since = std::max(health.last_message, listening_since);
            const TimestampTz current = GetCurrentTimestamp();
            if (settings::stream_receive_timeout_ms() > 0) {
                if (!pinged && current >= TimestampTzPlusMilliseconds(silent_since, settings::stream_receive_timeout_ms() / 2)) {
                    source.send(pgo::standby_status_update(received, applied, applied, now_pg(), true));
                    pinged = true;
                }
                if (current >= TimestampTzPlusMilliseconds(silent_since, settings::stream_receive_timeout_ms()))
                    throw Stalled("nothing came from the source for " + std::to_string((current - silent_since) / 1000000) +
                                  " s (sicoop.stream_receive_timeout): the worker ends the connection and starts again");
            }
            long timeout = 1000;
            if (!batch.empty())
                timeout = std::max<long>(1, (TimestampTzPlusMilliseconds(batch.first_received, settings::stream_interval_ms()) -
                                             GetCurrentTimestamp()) / 1000 + 1);
            PGconn* conn = source.conn();
            pg_call([&] {
                (void) WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_SOCKET_READABLE | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                                         PQsocket(conn), timeout, PG_WAIT_EXTENSION);
                ResetLatch(MyLatch);
            });
            if (PQconsumeInput(source.conn()) == 0)
                throw Transient(std::string("the connection to the source broke: ") + PQerrorMessage(source.conn()));
            continue;
        }
        if (n < 0) {
            PGresult* res = PQgetResult(source.conn());
            std::string message = res ? PQresultErrorMessage(res) : PQerrorMessage(source.conn());
            PQclear(res);
            throw Transient("the source ended the stream: " + message);
        }
        health.last_message = GetCurrentTimestamp();
        pinged = false;
        pgo::StreamMessage m;
        try {
            m = pgo::decode_stream_message(buffer, static_cast<size_t>(n));
        } catch (...) {
            PQfreemem(buffer);
            throw;
        }
        PQfreemem(buffer);
        received = std::max(received, m.wal_end);
        if (m.kind == pgo::StreamMessage::Kind::Keepalive) {
            if (m.reply_requested) {
                source.send(pgo::standby_status_update(received, applied, applied, now_pg(), false));
                last_status = GetCurrentTimestamp();
            }
            continue;
        }
        if (!m.message) continue;
        check_relation(*m.message, config.source_schema);
        std::optional<pgo::Transaction> t = assembler.feed(*m.message);
        if ((t && large.open()) || (!t && assembler.open_bytes() >= part_bytes())) {
            if (!apply_large(t)) return;  // stopped meanwhile
            continue;
        }
        if (!t || t->changes.empty()) continue;  // (nothing of ours: held once caught up, idle_check())
        // A member's states in one batch are its SCD2 versions, replayed one round each: past
        // kMaxMemberStates the batch is applied first.
        const std::map<std::string, size_t> members = members_of(*t);
        const bool again = std::any_of(members.begin(), members.end(), [&](const auto& m) {
            auto known = batch.members.find(m.first);
            return (known == batch.members.end() ? 0 : known->second) + m.second > kMaxMemberStates;
        });
        if (again) {
            if (!apply_waiting(batch)) return;  // stopped meanwhile
            batch.clear();
        }
        if (batch.empty()) batch.first_received = GetCurrentTimestamp();
        batch.changes += t->changes.size();
        batch.bytes += t->bytes;
        for (const auto& [key, states] : members) batch.members[key] += states;
        batch.transactions.push_back(std::move(*t));
    }
}

void wait_for_launcher(TransactionId xid) {
    if (!TransactionIdIsValid(xid)) return;
    WorkerTransaction tx;
    pg_call([&] { XactLockTableWait(xid, nullptr, nullptr, XLTW_None); });
    tx.commit();
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
        std::optional<StreamConfig> config = claim();
        if (!config) return;  // not wanted: nothing to do
        Replication source(connect_replication());
        check_publication(source, *config);
        if (config->has_applied && !config->slot_is_ours) refuse_foreign_slot(config->slot);
        if (config->has_applied) check_position(source, *config);
        pgo::Lsn applied = config->has_applied ? config->applied : initial_sync(source, *config);
        stream_changes(source, *config, applied);
    } catch (const OwnerChanged& e) {
        const char* m = e.what();
        pg_call([&] { ereport(LOG, (errmsg("sicoop stream: %s", m))); });
        record_failure("reconnecting", nullptr, m);
        pg_call([] { proc_exit(1); });  // the postmaster starts the worker again, acting for the new owner
    } catch (const Stalled& e) {
        const char* m = e.what();
        pg_call([&] { ereport(LOG, (errmsg("sicoop stream stalled: %s; reconnecting in 5 s", m))); });
        record_failure("stalled", nullptr, m);
        pg_call([] { proc_exit(1); });  // the postmaster starts the worker again
    } catch (const Transient& e) {
        const char* m = e.what();
        pg_call([&] { ereport(LOG, (errmsg("sicoop stream: %s; reconnecting in 5 s", m))); });
        record_failure("reconnecting", nullptr, m);
        pg_call([] { proc_exit(1); });  // the postmaster starts the worker again
    } catch (PgError& e) {
        const bool transient = is_transient(e);
        redact_error(e.edata);
        hide_values(e.edata);  // no source value in stream_state or the log, whatever failed
        record_failure(transient ? "reconnecting" : "failed", &e, nullptr);
        ErrorData* edata = e.edata;
        pg_call([&] {
            ereport(LOG, (errmsg("sicoop stream %s: %s", transient ? "reconnecting in 5 s" : "stopped", edata->message),
                          edata->hint ? errhint("%s", edata->hint) : 0, errhidestmt(true), errhidecontext(true)));
        });
        if (transient) pg_call([] { proc_exit(1); });
    } catch (const std::exception& e) {
        const std::string message = redact_card_numbers(e.what());
        record_failure("failed", nullptr, message.c_str());
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
    for (int i = 0; ok && i < 6; ++i) {
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
        TupleDesc desc;
        if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE) elog(ERROR, "sicoop: _source_slot must return a row");
        char* cells[6];
        for (int i = 0; i < 6; ++i) cells[i] = nulls[i] ? nullptr : pstrdup(row[i].c_str());
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
        worker.bgw_restart_time = 5;
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
    // Every statement resolves names in pg_catalog only (as a run's, src/pipeline.cpp).
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
