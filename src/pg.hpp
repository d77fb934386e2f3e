// The boundary layer's door to PostgreSQL: its headers, always inside extern "C", and the
// two guards between PostgreSQL errors (longjmp) and C++ exceptions (unwinding).
// Only src/*.cpp include this; src/steps/ is pure C++ and refuses it.
#pragma once

#ifdef SICOOP_PURE_CPP_FILE
#error "pg.hpp in a pure C++ file (src/steps/): PostgreSQL headers stay in the boundary layer"
#endif

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
#include "utils/date.h"
#include "utils/elog.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
#include "access/htup_details.h"
#include "catalog/pg_authid_d.h"
#include "catalog/pg_class.h"
#include "commands/copyfrom_internal.h"  // cur_attname, cur_lineno: where a conversion failed
#include "commands/dbcommands.h"
#include "common/file_perm.h"
#include "parser/parser.h"
#include "postmaster/postmaster.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/proc.h"  // LockTimeout
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/rls.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/formatting.h"
}
#pragma GCC diagnostic pop

#include "steps/text_rules.hpp"
#include "steps/values.hpp"

#include <exception>
#include <initializer_list>
#include <stdexcept>
#include <string>

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
inline MemoryContext current_error_context = nullptr;
inline MemoryContext error_context() { return current_error_context; }
inline void set_error_context(MemoryContext cxt) { current_error_context = cxt; }

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

// The row type of a SQL function declared to return one, ready for heap_form_tuple (call inside
// pg_call: it reports `error` if the function's declaration is not a row).
inline TupleDesc result_row_type(FunctionCallInfo fcinfo, const char* error) {
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE) elog(ERROR, "%s", error);
    return BlessTupleDesc(desc);
}

// Rewrites an error's texts so that no full card number, and not `secret` (a password the
// call was given), is ever shown or logged. PostgreSQL errors caught by pg_call() were not
// reported yet: this runs before the server log or a client sees them.
inline void redact_error(ErrorData* e, const char* secret = nullptr) {
    auto redact = [&](char*& field) {
        if (field == nullptr) return;
        // Nothing may escape from here, neither a C++ exception nor a PostgreSQL error over
        // `text`: should memory run out, the original is blanked rather than shown.
        try {
            std::string text = redact_card_numbers(field);
            if (secret != nullptr && secret[0] != '\0') {
                // As it is, and as SQL literals show it: quotes doubled, and backslashes doubled
                // too (format('%L') writes E'...' then).
                std::string quoted, escaped;
                for (const char* c = secret; *c; ++c) {
                    quoted += (*c == '\'' ? "''" : std::string(1, *c));
                    escaped += (*c == '\'' ? "''" : *c == '\\' ? "\\\\" : std::string(1, *c));
                }
                for (const std::string& s : {std::string(secret), quoted, escaped})
                    for (size_t at = text.find(s); at != std::string::npos; at = text.find(s, at + 8))
                        text.replace(at, s.size(), "********");
            }
            char* copy = static_cast<char*>(palloc_extended(text.size() + 1, MCXT_ALLOC_NO_OOM));
            if (copy == nullptr) throw std::bad_alloc();
            memcpy(copy, text.c_str(), text.size() + 1);
            field = copy;
        } catch (...) {
            field[0] = '\0';
        }
    };
    redact(e->message);
    redact(e->detail);
    redact(e->detail_log);
    redact(e->hint);
    redact(e->context);
    redact(e->internalquery);
}

// What the stream worker records and logs of an error it caught: no source value. PostgreSQL's
// own messages quote the value they could not take ("invalid input syntax for type numeric:
// "..."", "date/time field value out of range: "...""): those parts go (without_values, as the
// bulk copy's conversion errors); sicoop's own messages name no value (the project's rule) and
// stay. The detail, the context and the query may hold a whole row ("Failing row contains
// (...)", a COPY line with its column's value): they go too. The SQLSTATE and hint stay.
inline void hide_values(ErrorData* e) {
    if (e->message != nullptr && strncmp(e->message, "sicoop", 6) != 0) {
        char* message = nullptr;
        try {
            const std::string text = without_values(e->message);
            message = static_cast<char*>(palloc_extended(text.size() + 1, MCXT_ALLOC_NO_OOM));
            if (message != nullptr) memcpy(message, text.c_str(), text.size() + 1);
        } catch (...) {
            message = nullptr;
        }
        if (message == nullptr) e->message[0] = '\0';  // blanked rather than shown
        else e->message = message;
    }
    e->detail = nullptr;
    e->detail_log = nullptr;
    e->context = nullptr;
    e->internalquery = nullptr;
    e->cursorpos = e->internalpos = 0;
}

// How an entry reports its errors: `secret` is scrubbed from them, and `hide_statement`
// keeps the caller's statement (which may hold that secret) out of the server log.
struct EntryOptions {
    const char* secret = nullptr;
    bool hide_statement = false;
};

// Entry guard: every SQL-callable function runs its C++ body through this. No C++ exception
// reaches PostgreSQL; the error is raised only after the catch block has been left, redacted.
template <typename F>
Datum sql_entry(F&& body, EntryOptions options = {}) {
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
    if (pg_error) {
        redact_error(pg_error, options.secret);
        if (options.hide_statement) pg_error->hide_stmt = true;
        ReThrowError(pg_error);
    }
    if (cpp_error) {
        const char* message = pstrdup(redact_card_numbers(cpp_error).c_str());  // no C++ object over ereport
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("sicoop: %s", message), errhidestmt(options.hide_statement)));
    }
    return result;
}

}  // namespace sicoop
