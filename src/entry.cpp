// The SQL-callable entry points and module setup: the top floor, which nothing includes. Each
// entry runs its C++ body under sql_entry(), so no C++ exception ever reaches PostgreSQL.
#include "export.hpp"
#include "pg.hpp"
#include "pipeline.hpp"
#include "schedule.hpp"
#include "settings.hpp"
#include "source.hpp"
#include "stream.hpp"

extern "C" {
PG_MODULE_MAGIC;

void _PG_init(void);
PGDLLEXPORT Datum sicoop_run_step(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_run_pipeline(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_check_source(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_connect_source(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_export_flat(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_cron_connection_error(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_launch_stream_worker(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(sicoop_launch_stream_worker);
PGDLLEXPORT Datum sicoop_warehouse_id(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(sicoop_warehouse_id);
PGDLLEXPORT Datum sicoop_signal_stream_worker(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(sicoop_signal_stream_worker);
PGDLLEXPORT Datum sicoop_source_slot(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(sicoop_source_slot);
PG_FUNCTION_INFO_V1(sicoop_run_step);
PG_FUNCTION_INFO_V1(sicoop_run_pipeline);
PG_FUNCTION_INFO_V1(sicoop_check_source);
PG_FUNCTION_INFO_V1(sicoop_connect_source);
PG_FUNCTION_INFO_V1(sicoop_export_flat);
PG_FUNCTION_INFO_V1(sicoop_cron_connection_error);
}

namespace sicoop {
namespace {
// The password argument of a call, for scrubbing from its errors (NULL if none).
const char* password_arg(FunctionCallInfo fcinfo, int argno) {
    return PG_NARGS() > argno && !PG_ARGISNULL(argno) ? text_to_cstring(PG_GETARG_TEXT_PP(argno)) : nullptr;
}
}  // namespace
}  // namespace sicoop

void _PG_init(void) { sicoop::settings::define(); }

Datum sicoop_run_step(PG_FUNCTION_ARGS) {
    return sicoop::sql_entry([&] { return sicoop::run_step(fcinfo); });
}

Datum sicoop_run_pipeline(PG_FUNCTION_ARGS) {
    return sicoop::sql_entry([&] { return sicoop::run_pipeline(fcinfo); });
}

// Errors of the source functions never show the password they were given, nor (in the
// server log) the statement that carried it.
Datum sicoop_check_source(PG_FUNCTION_ARGS) {
    const char* password = sicoop::password_arg(fcinfo, 4);
    return sicoop::sql_entry(
        [&] {
            char* args[6] = {nullptr};
            int port = 0;
            sicoop::pg_call([&] {
                for (int i : {0, 2, 3, 4, 5})
                    if (!PG_ARGISNULL(i)) args[i] = text_to_cstring(PG_GETARG_TEXT_PP(i));
                if (!PG_ARGISNULL(1)) port = PG_GETARG_INT32(1);
            });
            sicoop::source::check(args[0], port, args[2], args[3], args[4], args[5]);
            return (Datum) 0;
        },
        {password, true});
}

Datum sicoop_connect_source(PG_FUNCTION_ARGS) {
    const char* password = sicoop::password_arg(fcinfo, 4);
    return sicoop::sql_entry([&] { return sicoop::source::connect(fcinfo); }, {password, true});
}

Datum sicoop_export_flat(PG_FUNCTION_ARGS) {
    return sicoop::sql_entry([&] { return sicoop::export_flat(fcinfo); });
}

Datum sicoop_cron_connection_error(PG_FUNCTION_ARGS) {
    return sicoop::sql_entry([&] { return sicoop::cron_connection_error(fcinfo); });
}

Datum sicoop_launch_stream_worker(PG_FUNCTION_ARGS) {
    return sicoop::sql_entry([&] { return sicoop::stream::launch_worker(fcinfo); });
}

Datum sicoop_warehouse_id(PG_FUNCTION_ARGS) {
    return sicoop::sql_entry([&] { return sicoop::stream::warehouse_id(fcinfo); });
}

Datum sicoop_source_slot(PG_FUNCTION_ARGS) {
    return sicoop::sql_entry([&] { return sicoop::stream::source_slot(fcinfo); });
}

Datum sicoop_signal_stream_worker(PG_FUNCTION_ARGS) {
    return sicoop::sql_entry([&] { return sicoop::stream::signal_worker(fcinfo); });
}
