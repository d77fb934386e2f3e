// A stream's micro-batch and its apply (see stream_batch.hpp).
#include "stream_batch.hpp"

#include "run_log.hpp"
#include "spi_session.hpp"
#include "stream_rows.hpp"
#include "stream_state.hpp"

extern "C" {
#include "pgstat.h"
}

#include <algorithm>

namespace sicoop::stream {

void Batch::clear(const stream_policy::Limits& limits) {
    const bool big = stream_policy::big_batch(bytes, limits);
    *this = Batch{};
    if (big) give_memory_back();
}

void Batch::add(pgo::Transaction&& t, const std::map<std::string, size_t>& t_members) {
    changes += t.changes.size();
    bytes += t.bytes;
    for (const auto& [key, states] : t_members) members[key] += states;
    transactions.push_back(std::move(t));
}

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

std::pair<Batch, Batch> split_at(Batch&& batch, pgo::Lsn at) {
    Batch before, after;
    for (pgo::Transaction& t : batch.transactions) {
        Batch& into = t.end_lsn <= at ? before : after;
        if (into.empty()) into.first_received = batch.first_received;
        const std::map<std::string, size_t> members = members_of(t);
        into.add(std::move(t), members);
    }
    return {std::move(before), std::move(after)};
}

namespace {

// The run log's detail of a stream batch.
std::string batch_detail(size_t transactions, size_t changes, const std::string& applied, const std::string& steps) {
    return "{\"transactions\": " + std::to_string(transactions) + ", \"changes\": " + std::to_string(changes) +
           ", \"applied_lsn\": \"" + applied + "\", \"steps\": " + steps + "}";
}

// Runs the steps over what is staged, records the batch (its run log row, the end LSN of its
// last source transaction: `last`) and commits: the end of a micro-batch and of a large
// source transaction alike.
void finish_apply(WorkerTransaction& tx, const Staged& staged, const pgo::Transaction& last, size_t transactions,
                  size_t changes, const BusyReply& busy) {
    const TimestampTz reference_time = spi::reference_time();
    const int64 run_id = run_log::next_run_id();
    run_log::started(run_id, "stream", reference_time);
    std::string detail;
    StepCounts total;
    {
        Busy source_answered(busy.conn, busy.position);
        total = run_stream_steps(run_id, reference_time, detail, staged.touched, staged.truncated,
                                 static_cast<int>(staged.member_rounds));
    }
    // The batch's keys leave with it, not even as dead rows (a key rejected as card-like is one).
    spi::exec("TRUNCATE sicoop.stream_key");
    forget_unfit_values();
    AppliedBatch applied;
    applied.applied_lsn = pgo::format_lsn(last.end_lsn);
    applied.received_lsn = pgo::format_lsn(std::max(busy.position.received(), last.end_lsn));
    applied.changes = static_cast<int64>(changes);
    applied.transactions = static_cast<int64>(transactions);
    applied.commit_time = timestamp_text(last.commit_time);
    detail = batch_detail(transactions, changes, applied.applied_lsn, detail);
    run_log::succeeded(run_id, "stream", total, detail.c_str());
    record_applied(applied);
    tx.commit();
    pgstat_report_activity(STATE_IDLE, nullptr);
}

}  // namespace

bool apply(const Batch& batch, const BusyReply& busy) {
    WorkerTransaction tx;
    check_pipeline_ready();  // (sicoop_etl dropped or updated since: the stream fails, saying so)
    if (!try_pipeline_lock()) return false;
    pgstat_report_activity(STATE_RUNNING, "sicoop_etl stream: applying a micro-batch");
    const Staged staged = stage_transactions(batch.transactions);
    finish_apply(tx, staged, batch.transactions.back(), batch.transactions.size(), batch.changes, busy);
    return true;
}

bool LargeApply::begin() {
    auto tx = std::make_unique<WorkerTransaction>();
    check_pipeline_ready();
    if (!try_pipeline_lock()) return false;
    pgstat_report_activity(STATE_RUNNING, "sicoop_etl stream: applying a large source transaction");
    stager_ = std::make_unique<PartStager>();
    tx_ = std::move(tx);
    return true;
}

void LargeApply::finish(pgo::Transaction rest, const BusyReply& busy) {
    const pgo::Transaction last{rest.xid, rest.commit_lsn, rest.end_lsn, rest.commit_time, {}, 0};
    stager_->stage(std::move(rest));
    finish_apply(*tx_, stager_->staged(), last, 1, stager_->changes(), busy);
    stager_.reset();
    tx_.reset();
    give_memory_back();
}

}  // namespace sicoop::stream
