// The stream worker's loop, as PostgreSQL's logical apply worker (worker.c) is written: one
// cycle reads a message, applies what is due, keeps house, tells the source its position and
// waits, each a function of StreamLoop. Its state is Streaming, or Paused while a run holds the
// pipeline lock (recorded in stream_state by housekeeping); leaving it is an exception or
// "no longer wanted" (Stopped, recorded by idle_check()).
//
// Whole source transactions are gathered (src/steps/pgoutput.cpp) into a micro-batch, applied
// when stream_policy::due() says (sicoop.stream_interval since its first change, or
// sicoop.stream_batch_changes changes, or a part's bytes). A member changed several times in it
// keeps every state in commit order (sicoop.stage_associado_state): each is its own SCD2
// version, from its commit time (src/steps/scd2.cpp); only a member's kMaxMemberStates-th change
// applies the batch first. A source transaction too big for memory (sicoop.stream_work_mem) is
// staged in parts as it arrives, in the one warehouse transaction its commit then finishes
// (LargeApply); nothing else opens a transaction meanwhile (housekeeping, a full check wait).
#include "stream_loop.hpp"

#include "source.hpp"
#include "stream_batch.hpp"
#include "stream_housekeeping.hpp"
#include "stream_session.hpp"
#include "stream_sync.hpp"

extern "C" {
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "utils/guc.h"
#include "utils/memutils.h"
}

#include <optional>

namespace sicoop::stream {

namespace {

namespace policy = sicoop::stream_policy;

// What read() did: took a message, found none waiting, did not read (a held-back batch is past
// its bound: the source waits), or found the stream stopped while it applied.
enum class Read { Message, Nothing, Held, Stopped };

// A memory context for what a cycle allocates outside a transaction, reset every cycle (as
// worker.c's ApplyMessageContext). Declared first in StreamLoop: it goes last, after a
// transaction that was open gave the context back.
class CycleMemory {
public:
    CycleMemory() {
        pg_call([&] { memory_ = AllocSetContextCreate(TopMemoryContext, "sicoop stream cycle", ALLOCSET_DEFAULT_SIZES); });
    }
    ~CycleMemory() {
        if (CurrentMemoryContext == memory_) MemoryContextSwitchTo(TopMemoryContext);
        MemoryContextDelete(memory_);
    }
    CycleMemory(const CycleMemory&) = delete;
    CycleMemory& operator=(const CycleMemory&) = delete;
    // Current, and emptied.
    void reset() {
        MemoryContextSwitchTo(memory_);
        MemoryContextReset(memory_);
    }

private:
    MemoryContext memory_ = nullptr;
};

class StreamLoop {
public:
    StreamLoop(Replication& source, const StreamConfig& config, pgo::Lsn applied);
    StreamLoop(const StreamLoop&) = delete;
    StreamLoop& operator=(const StreamLoop&) = delete;
    // Until the stream is no longer wanted.
    void run();

private:
    void begin_cycle();
    Read read();
    bool apply_due();
    bool housekeeping();
    void feedback();
    void wait(Read what);

    bool take(const pgo::StreamMessage& m);
    bool gather(pgo::Transaction&& t);
    bool apply_now(const Batch& b);
    bool apply_waiting(const Batch& b);
    bool run_check();
    bool apply_large(std::optional<pgo::Transaction>& t);
    void stored(pgo::Lsn end);
    void wait_for_source();
    BusyReply busy() const { return BusyReply{source_.conn(), position_}; }
    bool held_back() const {
        return state_ == StreamState::Paused && policy::reading_paused(batch_.changes, batch_.bytes, limits_);
    }

    CycleMemory cycle_memory_;
    Replication& source_;
    const StreamConfig& config_;
    pgo::TransactionAssembler assembler_;
    Position position_;
    policy::Limits limits_;
    StreamState state_ = StreamState::Streaming;  // Paused: the batch is held back by a run
    Batch batch_;
    LargeApply large_;  // a source transaction past the memory bound, being applied in parts
    std::optional<FullCheck> check_;
    Freshness freshness_;
    Health health_;
    TimestampTz now_ = 0;  // when the cycle's apply phase began
    TimestampTz last_status_ = 0, last_check_ = 0, retry_at_ = 0;
    // Silence is measured from the last message, or from the end of the last work that kept the
    // worker from reading (an apply): what waits in the socket meanwhile is not silence.
    TimestampTz listening_since_ = 0;
    bool pinged_ = false;
    int64 batches_ = 0;
};

std::vector<std::string> source_table_names() {
    std::vector<std::string> tables;
    for (const SourceTable& t : source_tables()) tables.push_back(t.name);
    return tables;
}

StreamLoop::StreamLoop(Replication& source, const StreamConfig& config, pgo::Lsn applied)
    : source_(source), config_(config), assembler_(config.source_schema, source_table_names(), applied),
      position_(applied), limits_(load_stream_settings()) {
    last_check_ = listening_since_ = health_.last_message = GetCurrentTimestamp();
}

void StreamLoop::run() {
    for (;;) {
        begin_cycle();
        const Read what = read();
        if (what == Read::Stopped || !apply_due() || !housekeeping()) return;  // stopped meanwhile
        feedback();
        if (what != Read::Message) wait(what);
    }
}

// A fresh memory context and error context for the cycle (not while a large source
// transaction's warehouse transaction is open: it lives in it), interrupts answered, and a
// reload (SIGHUP) taken: postgresql.conf's settings read again.
void StreamLoop::begin_cycle() {
    if (!large_.open()) {
        cycle_memory_.reset();
        if (error_context() != nullptr) MemoryContextReset(error_context());
    }
    pg_call([] {
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
    });
    limits_ = load_stream_settings();
}

// One message from the source, if one is waiting: a keepalive answered, a change gathered.
Read StreamLoop::read() {
    if (held_back()) return Read::Held;
    char* buffer = nullptr;
    const int n = PQgetCopyData(source_.conn(), &buffer, 1 /* async */);
    if (n == 0) return Read::Nothing;
    if (n < 0) {
        PGresult* res = PQgetResult(source_.conn());
        std::string message = res ? PQresultErrorMessage(res) : PQerrorMessage(source_.conn());
        PQclear(res);
        throw Transient("the source ended the stream: " + message);
    }
    health_.last_message = GetCurrentTimestamp();
    pinged_ = false;
    pgo::StreamMessage m;
    try {
        m = pgo::decode_stream_message(buffer, static_cast<size_t>(n));
    } catch (...) {
        PQfreemem(buffer);
        throw;
    }
    PQfreemem(buffer);
    return take(m) ? Read::Message : Read::Stopped;
}

// A decoded message; false: the stream was stopped while a batch waited to apply.
bool StreamLoop::take(const pgo::StreamMessage& m) {
    position_.receive(m.wal_end);
    if (m.kind == pgo::StreamMessage::Kind::Keepalive) {
        if (m.reply_requested) {
            source_.feedback(position_, false);
            last_status_ = GetCurrentTimestamp();
        }
        return true;
    }
    if (!m.message) return true;
    check_relation(*m.message, config_.source_schema);
    std::optional<pgo::Transaction> t = assembler_.feed(*m.message);
    if ((t && large_.open()) || (!t && assembler_.open_bytes() >= limits_.part_bytes)) return apply_large(t);
    if (!t || t->changes.empty()) return true;  // (nothing of ours: held once caught up, idle_check())
    return gather(std::move(*t));
}

// A whole source transaction into the batch. A member's states in one batch are its SCD2
// versions, replayed one round each: past kMaxMemberStates the batch is applied first.
bool StreamLoop::gather(pgo::Transaction&& t) {
    const std::map<std::string, size_t> members = members_of(t);
    if (policy::too_many_states(batch_.members, members)) {
        if (!apply_waiting(batch_)) return false;
        batch_.clear(limits_);
    }
    if (batch_.empty()) batch_.first_received = GetCurrentTimestamp();
    batch_.add(std::move(t), members);
    return true;
}

// A full check asked for: once the stream has received the check's position and holds no
// transaction half received, what ended up to it is applied, then the check runs. (Before a
// batch falls due: it may hold a transaction that ended after the position.) Then the batch, when
// due; held back by a run, it is tried again each second (Paused meanwhile).
bool StreamLoop::apply_due() {
    now_ = GetCurrentTimestamp();
    if (check_ && position_.received() >= check_->at && !assembler_.in_transaction() && !run_check()) return false;
    if (batch_.empty() || now_ < retry_at_ || !policy::due(now_, batch_.changes, batch_.bytes, batch_.first_received, limits_))
        return true;
    const bool applied = apply_now(batch_);
    state_ = applied ? StreamState::Streaming : StreamState::Paused;
    if (applied)
        batch_.clear(limits_);
    else
        retry_at_ = policy::after(now_, policy::kRetryMs);
    return true;
}

// Each second (not while a large source transaction's warehouse transaction is open: this takes
// one of its own): idle_check(); caught up, what was received is held as applied; a full check
// asked for begins. False: no longer wanted.
bool StreamLoop::housekeeping() {
    if (now_ < policy::after(last_check_, policy::kHousekeepingMs) || large_.open()) return true;
    const bool caught_up = batch_.empty() && !assembler_.in_transaction();
    if (!idle_check(position_.received(), state_, caught_up, freshness_, health_)) return false;
    if (caught_up) position_.store(position_.received());
    last_check_ = now_;
    if (health_.full_check_requested && !check_) {
        check_ = begin_full_check();
        listening_since_ = GetCurrentTimestamp();
        // (A reply asked for: the source says how far it has sent, so the check's position is
        // known reached even when nothing of ours changes.)
        if (check_) source_.feedback(position_, true);
    }
    return true;
}

// At least every kFeedbackMs. Only what is stored is confirmed: the slot is never ahead of the
// warehouse.
void StreamLoop::feedback() {
    if (now_ < policy::after(last_status_, policy::kFeedbackMs)) return;
    source_.feedback(position_, false);
    last_status_ = now_;
}

void StreamLoop::wait(Read what) {
    if (what == Read::Nothing) return wait_for_source();
    if (!held_back()) return;  // (applied since: read on)
    wait_a_second();
    listening_since_ = GetCurrentTimestamp();
}

// Until the source sends, the batch falls due or the latch is set. Nothing from the source for
// half of sicoop.stream_receive_timeout: a reply is asked for; for all of it: the stream is
// stalled (as wal_receiver_timeout).
void StreamLoop::wait_for_source() {
    const TimestampTz silent_since = std::max(health_.last_message, listening_since_);
    const TimestampTz current = GetCurrentTimestamp();
    const policy::Silence silence = policy::silence(current, silent_since, pinged_, limits_);
    if (silence.ask_reply) {
        source_.feedback(position_, true);
        pinged_ = true;
    }
    if (silence.stalled)
        throw Stalled("nothing came from the source for " + std::to_string((current - silent_since) / policy::kMicrosPerSecond) +
                      " s (sicoop.stream_receive_timeout): the worker ends the connection and starts again");
    const long timeout = policy::wait_ms(GetCurrentTimestamp(), !batch_.empty(), batch_.first_received, limits_);
    PGconn* conn = source_.conn();
    pg_call([&] {
        (void) WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_SOCKET_READABLE | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, PQsocket(conn),
                                 timeout, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    });
    if (PQconsumeInput(conn) == 0) throw Transient(std::string("the connection to the source broke: ") + PQerrorMessage(conn));
}

// `end` is stored with the data up to it: it is confirmed to the source now.
void StreamLoop::stored(pgo::Lsn end) {
    position_.store(end);
    source_.feedback(position_, false);
    last_status_ = GetCurrentTimestamp();
    if (++batches_ % policy::kPurgeEveryBatches == 0) purge_logs();
}

// Applies `b` (false: a run holds the pipeline lock; nothing applied). The applied position is
// confirmed to the source only once stored with the data.
bool StreamLoop::apply_now(const Batch& b) {
    const bool done = apply(b, busy());
    listening_since_ = GetCurrentTimestamp();
    if (done) stored(b.transactions.back().end_lsn);
    return done;
}

// Applies `b`, again each second while a run holds the pipeline lock; false: the stream was
// stopped meanwhile.
bool StreamLoop::apply_waiting(const Batch& b) {
    while (!apply_now(b)) {
        wait_a_second();
        if (!idle_check(position_.received(), StreamState::Paused, false, freshness_, health_)) return false;
    }
    return true;
}

// The full check asked for, once every source transaction up to its position is received: those
// the batch holds are applied, then the check runs. False: stopped meanwhile.
bool StreamLoop::run_check() {
    auto [before, after] = split_at(std::move(batch_), check_->at);
    if (!before.empty() && !apply_waiting(before)) return false;
    run_full_check(*check_, busy());
    check_.reset();  // (the temporary slot goes with its connection)
    batch_ = std::move(after);
    listening_since_ = GetCurrentTimestamp();
    return true;
}

// A source transaction past the memory bound (LargeApply). Once it outgrows a part, the batch
// gathered before it is applied in a transaction of its own (and a full check whose position it
// commits after runs first: everything up to that position is in by then), and its warehouse
// transaction opens; it takes each part as it comes, and `t`, the transaction's commit, runs the
// steps and stores it. Nothing else opens a worker transaction meanwhile (housekeeping, a full
// check: the loop waits for its end). False: stopped meanwhile.
bool StreamLoop::apply_large(std::optional<pgo::Transaction>& t) {
    if (!large_.open()) {
        if (!batch_.empty() && !apply_waiting(batch_)) return false;
        batch_.clear(limits_);
        if (check_ && assembler_.open_commit_lsn() >= check_->at && !run_check()) return false;
        while (!large_.begin()) {
            wait_a_second();
            if (!idle_check(position_.received(), StreamState::Paused, false, freshness_, health_)) return false;
        }
    }
    if (t) {
        const pgo::Lsn end = t->end_lsn;
        large_.finish(std::move(*t), busy());
        stored(end);
    } else {
        Busy source_answered(source_.conn(), position_);  // (a part of a large sicoop.stream_work_mem takes a while)
        large_.stage(assembler_.take_part());
    }
    listening_since_ = GetCurrentTimestamp();  // (what came meanwhile waits in the socket)
    return true;
}

}  // namespace

void stream_changes(Replication& source, const StreamConfig& config, pgo::Lsn applied) {
    // (Names checked by claim(): the commands take no parameters.)
    PQclear(source.exec("START_REPLICATION SLOT " + config.slot + " LOGICAL " + pgo::format_lsn(applied) +
                            " (proto_version '1', publication_names '\"" + config.publication + "\"')",
                        PGRES_COPY_BOTH, "start streaming"));
    mark_streaming();
    StreamLoop loop(source, config, applied);
    loop.run();
}

}  // namespace sicoop::stream
