// The stream (issue 19): a background worker per warehouse database that follows the source's
// changes on logical replication (pgoutput over a libpq replication connection) and applies
// them in micro-batches through the pipeline's own steps. ARCHITECTURE.md has the design.
#pragma once

#include "pg.hpp"

namespace sicoop::stream {

// SELECT sicoop._launch_stream_worker(): starts this database's worker (it acts for the
// warehouse's owner) unless one runs; returns its pid.
Datum launch_worker(FunctionCallInfo fcinfo);

// SELECT sicoop._warehouse_id(): the cluster's system identifier and the database's OID.
Datum warehouse_id(FunctionCallInfo fcinfo);

// SELECT sicoop._signal_stream_worker(pid): SIGTERM to this database's stream worker.
Datum signal_worker(FunctionCallInfo fcinfo);

// SELECT * FROM sicoop._source_slot(slot): the source's WAL position and the slot's, read now
// over a connection of the caller's (its user mapping).
Datum source_slot(FunctionCallInfo fcinfo);

// The worker's body (sicoop_stream_main, below in src/stream.cpp), once connected to its database.
void worker_main(TransactionId launcher_xid);

}  // namespace sicoop::stream
