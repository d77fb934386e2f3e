// The source database over libpq: checking it for connect_source(), and opening the
// connection the bulk path streams COPY through (options of server sicoop_source and the
// caller's user mapping, the same ones postgres_fdw uses).
#pragma once

#include "pg.hpp"

namespace sicoop::source {

constexpr const char* kServerName = "sicoop_source";

// Fails with a message that says what is wrong: unreachable, no password, missing tables.
void check(const char* host, int port, const char* dbname, const char* user, const char* password,
           const char* schema);

// SELECT sicoop.connect_source(...): checks the source, then points the warehouse at it
// (sicoop._connect_source() does the catalog work); returns its description.
Datum connect(FunctionCallInfo fcinfo);

// Opens a connection to the configured source. PostgreSQL-side: call it inside pg_call (it
// raises PostgreSQL errors); the caller owns the connection (libpqsrv_disconnect).
// `replication`: a logical replication connection (the stream's, src/stream_source.cpp).
PGconn* open_connection(bool replication = false);

}  // namespace sicoop::source
