// A stream's micro-batch, and how it is applied (src/stream_batch.cpp): whole source
// transactions gathered, then applied in one warehouse transaction with the steps, the run log
// row and the stored LSN; a source transaction past the memory bound applied part by part.
#pragma once

#include "pg.hpp"
#include "stream_apply.hpp"
#include "stream_busy.hpp"
#include "stream_session.hpp"
#include "steps/pgoutput.hpp"
#include "steps/stream_policy.hpp"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sicoop::stream {

struct Batch {
    std::vector<pgo::Transaction> transactions;
    size_t changes = 0;
    size_t bytes = 0;                       // about the memory its changes take (against sicoop.stream_work_mem)
    std::map<std::string, size_t> members;  // associado keys changed: how many times in the batch
    TimestampTz first_received = 0;

    bool empty() const { return transactions.empty(); }
    // Emptied (a big one gives its memory back to the system).
    void clear(const stream_policy::Limits& limits);
    // `t` added, with `t_members` (members_of(t)).
    void add(pgo::Transaction&& t, const std::map<std::string, size_t>& t_members);
};

// The associado keys a transaction changes, each with the one state it gets from it (several
// changes in one transaction are one state: src/steps/pgoutput.cpp's earlier_states).
std::map<std::string, size_t> members_of(const pgo::Transaction& t);

// A batch's transactions up to `at` (inclusive), and those after.
std::pair<Batch, Batch> split_at(Batch&& batch, pgo::Lsn at);

// Applies a micro-batch in one warehouse transaction; false if a run holds the pipeline lock
// (nothing applied: it is tried again).
bool apply(const Batch& batch, const BusyReply& busy);

// A source transaction past the memory bound (issue 25): pgoutput (protocol 1) sends it whole
// after its commit, and gathering it whole took the worker to gigabytes. Once it outgrows a
// part (Limits::part_bytes), it gets a warehouse transaction of its own into which its parts are
// staged as they arrive (PartStager, src/stream_apply.cpp); its commit stages the rest, runs
// the steps and stores its end LSN there, as apply() does: still one warehouse transaction per
// source transaction (readers never see half of one), and a crash anywhere replays it whole
// from the stored LSN. Nothing is spilled to disk but what the stage holds anyway (masked).
class LargeApply {
public:
    bool open() const { return tx_ != nullptr; }
    // Opens its warehouse transaction; false (nothing open) if a run holds the pipeline lock.
    bool begin();
    void stage(pgo::Transaction part) { stager_->stage(std::move(part)); }
    // Its commit: what came after the last part, then the steps and its LSN; committed.
    void finish(pgo::Transaction rest, const BusyReply& busy);

private:
    std::unique_ptr<WorkerTransaction> tx_;  // (declared first: the stager goes before it)
    std::unique_ptr<PartStager> stager_;
};

}  // namespace sicoop::stream
