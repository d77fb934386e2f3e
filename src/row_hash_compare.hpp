// A full run's comparison of one table (BulkCopy::Rows::RowHashes): the source streams each
// row's bucket and hash by binary COPY while raw's are read here, and both are summed per bucket
// in memory (steps/row_hash_delta.hpp), the two sides at once on two cores.
#pragma once

#include "source_session.hpp"

#include <string>

namespace sicoop {

// Sends `command` (the source's COPY of row hashes) and reads raw's (copy.local_row_hashes)
// meanwhile; the buckets that differ replace what sicoop.<copy.target_table> held. Returns the
// source rows compared.
int64 compare_row_hashes(const BulkCopy& copy, const std::string& command, const RemoteTable& table,
                         SourceSession& session);

}  // namespace sicoop
