// The boundary layer's door to PostgreSQL: its headers, always inside extern "C", and the
// two guards between PostgreSQL errors (longjmp) and C++ exceptions (unwinding).
// Only src/*.cpp include this; src/steps/ is pure C++ and refuses it.
#pragma once

// PostgreSQL's headers are C: their inline functions trip C++ warnings we cannot fix there.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
extern "C" {
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/copy.h"
#include "commands/defrem.h"
#include "common/string.h"
#include "mb/pg_wchar.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "libpq-fe.h"
#include "libpq/libpq-be-fe-helpers.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_relation.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}
#pragma GCC diagnostic pop

#include <exception>
#include <initializer_list>
#include <stdexcept>

namespace sicoop {

// A PostgreSQL error carried through C++ code as an exception. `edata` lives in
// error_context(), which outlives the call's commits and subtransaction rollbacks.
class PgError : public std::exception {
public:
    explicit PgError(ErrorData* e) : edata(e) {}
    const char* what() const noexcept override { return edata && edata->message ? edata->message : "PostgreSQL error"; }
    ErrorData* edata;
};

// Where caught PostgreSQL errors are copied to: set by sql_entry() for the length of a call.
MemoryContext error_context();
void set_error_context(MemoryContext cxt);

// Reverse guard: runs `f`, which makes PostgreSQL calls, and turns a PostgreSQL error into a
// PgError. `f` must hold no C++ object with a destructor while it calls PostgreSQL: a longjmp
// would skip it. (No return from inside PG_TRY: that would leave PG_exception_stack dangling.)
template <typename F>
void pg_call(F&& f) {
    MemoryContext caller_cxt = CurrentMemoryContext;
    ErrorData* volatile edata = nullptr;
    PG_TRY();
    {
        f();
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(error_context() ? error_context() : caller_cxt);
        edata = CopyErrorData();
        FlushErrorState();
        MemoryContextSwitchTo(caller_cxt);
    }
    PG_END_TRY();
    if (edata) throw PgError(edata);
}

// Entry guard: every SQL-callable function runs its C++ body through this. No C++ exception
// reaches PostgreSQL; the error is raised only after the catch block has been left.
template <typename F>
Datum sql_entry(F&& body) {
    MemoryContext outer = error_context();
    set_error_context(CurrentMemoryContext);
    ErrorData* pg_error = nullptr;
    const char* cpp_error = nullptr;
    Datum result = (Datum) 0;
    try {
        result = body();
    } catch (const PgError& e) {
        pg_error = e.edata;
    } catch (const std::exception& e) {
        cpp_error = pstrdup(e.what());
    } catch (...) {
        cpp_error = "unexpected C++ exception";
    }
    set_error_context(outer);
    if (pg_error) ReThrowError(pg_error);
    if (cpp_error)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("sicoop: %s", cpp_error)));
    return result;
}

}  // namespace sicoop
