// The bulk path: one source table streamed into its staging table at COPY speed.
// libpq runs `COPY (SELECT ...) TO STDOUT (FORMAT binary)` on the source, and the bytes feed
// this backend's own COPY FROM through a data-source callback, as logical replication's
// initial table sync does; in between, the COPY filter masks card numbers (steps/copy_filter.hpp).
// Memory stays bounded: rows stream, nothing is buffered whole.
#pragma once

#include "pg.hpp"
#include "source_session.hpp"
#include "spi_session.hpp"
#include "steps/step.hpp"

namespace sicoop {

// Streams the source table (or its window, or the rows with the keys asked for, or what
// BulkCopy::Rows says) into the target table, emptied first if asked; returns the rows copied.
// The copies of one source table share one transaction, its session among the step's
// `sessions`, so one snapshot: opened by the table's first copy, ended by another table's first
// copy (unless a copy of it sent early is still to read) or by sessions.finish().
int64 bulk_copy(const BulkCopy& copy, const spi::RunParams& params, SourceSessions& sessions);

}  // namespace sicoop
