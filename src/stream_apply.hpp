// A stream's changes into the stage and sicoop.stream_key, inside the warehouse transaction that
// applies them (src/stream_batch.cpp): a micro-batch of whole source transactions, or one source
// transaction too big to hold in memory, staged part by part as it arrives (issue 25).
#pragma once

#include "pg.hpp"
#include "steps/pgoutput.hpp"

#include <set>
#include <string>
#include <utility>
#include <vector>

namespace sicoop::stream {

// The pipeline's tables and their keys (pgoutput::fold's `key_column`).
std::vector<std::pair<std::string, std::string>> key_columns();

// A source commit time (microseconds since 2000) as this session writes a timestamptz.
std::string timestamp_text(pgoutput::Timestamp t);

// What is staged: the tables touched, and those truncated at the source (RunContext::stream).
struct Staged {
    std::vector<std::string> touched;
    std::vector<std::string> truncated;
    size_t member_rounds = 0;  // a member's earlier states, replayed one round each (src/steps/scd2.cpp)
    void add(const std::string& table, bool was_truncated);
};

// A micro-batch of whole transactions: folded to each key's last state, its rows into the
// stage, every key it touched into sicoop.stream_key (emptied first).
Staged stage_transactions(const std::vector<pgoutput::Transaction>& transactions);

// One source transaction, staged part by part (TransactionAssembler::take_part()) in the open
// warehouse transaction that applies it, so that the worker never holds more than a part. Each
// part is folded alone; a key an earlier part staged is replaced (its stage row, its
// stream_key row, its unfit values), its unchanged TOAST values carried over
// (pgoutput::carry_staged); a truncate discards what earlier parts staged for the table. The
// stage and stream_key end as stage_transactions() of the whole transaction leaves them.
// Used for one warehouse transaction only (its memory context is that transaction's).
class PartStager {
public:
    PartStager();
    void stage(pgoutput::Transaction part);
    const Staged& staged() const { return staged_; }
    size_t changes() const { return changes_; }

private:
    Staged staged_;
    std::set<std::string> has_keys_;  // tables whose keys an earlier part put in stream_key
    size_t changes_ = 0;
    MemoryContext memory_ = nullptr;  // what PostgreSQL allocates for a part, reset after it
};

// Gives the memory the worker freed back to the system (glibc keeps freed heap otherwise: 321 MB
// stayed with the worker after a 300k-row transaction).
void give_memory_back();

}  // namespace sicoop::stream
