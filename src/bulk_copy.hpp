// The bulk path: one source table streamed into its staging table at COPY speed.
// libpq runs `COPY (SELECT ...) TO STDOUT (FORMAT binary)` on the source, and the bytes feed
// this backend's own COPY FROM through a data-source callback, as logical replication's
// initial table sync does; in between, the COPY filter masks card numbers (steps/copy_filter.hpp). Memory stays bounded: rows stream, nothing is buffered whole.
#pragma once

#include "pg.hpp"
#include "spi_session.hpp"
#include "steps/step.hpp"

#include <string>
#include <vector>

namespace sicoop {

// Streams the source table (or its window, or the rows with the keys asked for, or what
// BulkCopy::Rows says) into the target table, emptied first if asked; returns the rows copied.
// The copies of one source table share one source session: one REPEATABLE READ transaction,
// so one snapshot, opened by the table's first copy and ended by the next table's first copy
// or end_source_session().
int64 bulk_copy(const BulkCopy& copy, const spi::RunParams& params);

// Commits the source session and records the snapshot it read (sicoop.source_sync), if a copy
// asked for it. The step calls it once its actions are done.
void end_source_session();

// On an error: cancels whatever the source session is running there (a COPY, a statement
// waiting on a lock) and closes it. Never raises.
void abort_source_session();

// Rows in COPY's text format (a stream's micro-batch, src/stream.cpp) into table sicoop.<table>'s
// `columns`, card numbers masked in memory first (steps/copy_filter.hpp); returns the rows copied.
int64 copy_text_into(const char* table, const std::vector<std::string>& columns, const std::string& text);

// Every source session from now on imports snapshot `name` (SET TRANSACTION SNAPSHOT), as a
// replication slot exported it; nullptr: each takes its own again.
void import_source_snapshot(const char* name);

}  // namespace sicoop
