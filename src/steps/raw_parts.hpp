// The parts of step load_raw (raw.cpp) that its other files share: the batch paths (raw.cpp),
// a full run's comparison by row checksums (raw_compare.cpp) and a stream's micro-batch
// (raw_stream.cpp). Internal to the step; pure C++.
#pragma once

#include "steps/sql_patterns.hpp"
#include "steps/step.hpp"

#include <string>
#include <vector>

namespace sicoop::raw {

std::string raw_of(const SourceTable& t);    // sicoop.raw_<t>
std::string stage_of(const SourceTable& t);  // sicoop.stage_<t>
// What raw keeps of each non-key source column, from the stage row s.
std::vector<Column> raw_columns(const SourceTable& t);
// A copy from table t's source into sicoop.<target> of what `rows` says (its columns named).
BulkCopy source_copy(const SourceTable& t, const char* target, std::vector<std::string> columns, BulkCopy::Rows rows);
// A table's copy into its stage: every column read in the stage's wide type.
BulkCopy copy_of(const SourceTable& t);
// The stage merged into raw: new rows inserted, changed rows updated (rows raw holds as they
// are left out first, if `skip_identical`).
void add_merge(std::vector<Action>& actions, const SourceTable& t, bool skip_identical);
// Raw's row `r` has no copy in the stage.
std::string not_in_stage(const SourceTable& t, const RunContext& ctx);

// The movements' count and sum per day at the source, into sicoop.source_day_total.
void add_day_totals(std::vector<Action>& actions, const SourceTable& t, BulkCopy::Timing timing);

// A full run's comparison of `t` by row checksums per bucket (`bits` of the key's hash);
// `rows` becomes the copy of the rows of the buckets that differ.
void add_full_comparison(std::vector<Action>& actions, const SourceTable& t, int bits, BulkCopy& rows);
// Then, after the merge: what raw holds in a bucket that differs and the source no longer has.
void add_bucket_deletions(std::vector<Action>& actions, const SourceTable& t, int bits, const RunContext& ctx);
// An incremental run's deletions from `t` (read by xmin): key checksums per bucket on both
// sides, then the keys of the buckets that differ. The source's checksums are sent first, once
// the table's last copy before them is read (send_key_checksums), so that the source computes
// them while the warehouse applies the rules and merges; add_keyed_deletions lands them.
void send_key_checksums(std::vector<Action>& actions, const SourceTable& t);
void add_keyed_deletions(std::vector<Action>& actions, const SourceTable& t);
// A stream's micro-batch of `t`: its keys' rows from the stage into raw.
void plan_streamed(std::vector<Action>& actions, const SourceTable& t, const RunContext& ctx, bool truncated, bool earlier_states);

}  // namespace sicoop::raw
