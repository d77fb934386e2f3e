// pg_cron's side of sicoop.schedule(): the connection check of its jobs.
#pragma once

#include "pg.hpp"

namespace sicoop {

// SELECT * FROM sicoop._cron_connection_error(): whether pg_cron runs jobs in background
// workers, the host and port its connections go to otherwise, and why such a connection for
// the calling role to this database fails (NULL: it works, or background workers need none).
Datum cron_connection_error(FunctionCallInfo fcinfo);

}  // namespace sicoop
