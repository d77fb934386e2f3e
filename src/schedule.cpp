// pg_cron's side of sicoop.schedule(): whether the jobs it creates will be able to start.
//
// Without cron.use_background_workers, pg_cron starts each job over a libpq connection from
// its launcher: host cron.host, this server's port, this database, the job's role, and no
// password -- only what the server's environment supplies (its password file, a trust or peer
// rule). Under password authentication that fails at every run, and pg_cron records only
// "connection failed". So sicoop.schedule() tries the very same connection first, from this
// backend (the same server process environment, so the same password file), and refuses to
// schedule jobs that could never start. pg_cron's settings are superuser-only to read in SQL:
// they are read here, for the caller, and only these two.
#include "schedule.hpp"

namespace sicoop {

Datum cron_connection_error(FunctionCallInfo fcinfo) {
    Datum result = (Datum) 0;
    pg_call([&] {
        TupleDesc tupdesc = result_row_type(fcinfo, "sicoop._cron_connection_error: return type must be a row type");
        // What pg_cron's cron.schedule() records for a job of this role in this database.
        const char* configured_host = GetConfigOption("cron.host", true, false);
        const char* host = configured_host != nullptr && configured_host[0] ? configured_host : "localhost";
        const char* workers = GetConfigOption("cron.use_background_workers", true, false);
        const bool background_workers = workers != nullptr && strcmp(workers, "on") == 0;
        char* error = nullptr;
        if (!background_workers) {
            char port[16];
            snprintf(port, sizeof port, "%d", PostPortNumber);
            const char* keywords[] = {"host", "port", "dbname", "user", "fallback_application_name", "connect_timeout", nullptr};
            const char* values[] = {host, port, get_database_name(MyDatabaseId), GetUserNameFromId(GetUserId(), false),
                                    "sicoop_etl schedule check", "10", nullptr};
            PGconn* conn = libpqsrv_connect_params(keywords, values, false, PG_WAIT_EXTENSION);
            if (conn == nullptr)
                error = pstrdup("out of memory");
            else if (PQstatus(conn) != CONNECTION_OK)
                error = pchomp(PQerrorMessage(conn));
            libpqsrv_disconnect(conn);
        }
        Datum values[4] = {BoolGetDatum(background_workers), CStringGetTextDatum(host), Int32GetDatum(PostPortNumber),
                           error ? CStringGetTextDatum(error) : (Datum) 0};
        bool nulls[4] = {false, false, false, error == nullptr};
        result = HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
    });
    return result;
}

}  // namespace sicoop
