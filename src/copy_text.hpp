// The warehouse's side of a COPY FROM: rows handed by a data-source callback into a sicoop table,
// its conversion errors explained without the values. The bulk copy's bridge (src/bulk_copy.cpp)
// feeds it from the source; a stream's micro-batch feeds it from memory (copy_text_into).
#pragma once

#include "pg.hpp"
#include "steps/remote_query.hpp"

#include <string>
#include <vector>

namespace sicoop {

// Rows in COPY's text format (a stream's micro-batch, src/stream_rows.cpp) into table sicoop.<table>'s
// `columns`, card numbers masked in memory first (steps/copy_filter.hpp); returns the rows copied.
int64 copy_text_into(const char* table, const std::vector<std::string>& columns, const std::string& text);

// Where the warehouse converts columns a copy carries as text (RemoteRead::converted).
struct ConversionSite {
    const char* table;  // the source's schema.table
    const remote::Conversion* columns;
    size_t count;
    const bool* source_failed = nullptr;  // set: the error being raised is the source's, not a conversion's
};

// PostgreSQL side (call inside pg_call) from here on.

// What COPY FROM checks before it writes (DoCopy): the caller may insert into the table, and no
// row-level security applies to it (COPY FROM refuses RLS too).
void check_may_copy_into(Oid target_oid, const char* target_table);

// The rows `source` hands, streamed into `rel` by COPY FROM (binary unless `as_text`);
// conversion errors explained.
int64 copy_from(Relation rel, List* attnames, bool as_text, const ConversionSite& site, copy_data_source_cb source);

// Called in PG_CATCH: if the error is the warehouse's failure to convert a value of a column it
// converts, raises it again saying which source column and why, without the value. Returns
// otherwise (the caller re-throws the error as it is).
void explain_conversion_error(const ConversionSite& site, const char* attname, uint64 line, MemoryContext cxt);

// Runs a utility, DELETE or INSERT statement through SPI.
void run_local(const char* sql);

}  // namespace sicoop
