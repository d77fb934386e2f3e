#include "spi_session.hpp"

#include <string>
#include <vector>

namespace sicoop::spi {

namespace {

// Runs `sql` with bound parameters; PostgreSQL side (call inside pg_call).
void execute(const char* sql, int nparams, Oid* types, Datum* values, const char* nulls) {
    int rc = SPI_execute_with_args(sql, nparams, types, values, nulls, false, 0);
    if (rc < 0) elog(ERROR, "sicoop: SPI_execute failed (%s) for: %s", SPI_result_code_string(rc), sql);
}

void execute(const char* sql, const Param* params, int nparams) {
    Oid types[kMaxParams];
    Datum values[kMaxParams];
    char nulls[kMaxParams];
    for (int i = 0; i < nparams && i < kMaxParams; ++i) {
        types[i] = params[i].type;
        values[i] = params[i].value;
        nulls[i] = params[i].is_null ? 'n' : ' ';
    }
    execute(sql, nparams, types, values, nulls);
}

// The first column of the first row, if there is one and it is not NULL.
bool first_value(Datum* out) {
    if (SPI_tuptable == nullptr || SPI_processed == 0 || SPI_tuptable->tupdesc->natts == 0) return false;
    bool isnull;
    *out = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    return !isnull;
}

}  // namespace

void execute_with_run_params(const char* sql, const RunParams& params) {
    Oid types[5] = {TIMESTAMPTZOID, INT8OID, TEXTOID, INT8OID, TIMESTAMPOID};
    Datum args[5] = {TimestampTzGetDatum(params.reference_time), Int64GetDatum(params.run_id),
                     CStringGetTextDatum(params.timezone), Int64GetDatum(params.since_run_id),
                     TimestampGetDatum(params.window_start)};
    const char nulls[5] = {' ', ' ', ' ', ' ', params.has_window ? ' ' : 'n'};
    execute(sql, 5, types, args, nulls);
}

void run_counting(const std::string& sql, const RunParams& params, StepCounts& counts,
                  const std::string& processed_counter) {
    uint64 processed = 0;
    constexpr int kMaxColumns = 8;
    const char* names[kMaxColumns];
    int64 values[kMaxColumns];
    int ncolumns = 0;
    const char* query = sql.c_str();
    pg_call([&] {
        execute_with_run_params(query, params);
        processed = SPI_processed;
        if (SPI_tuptable == nullptr || SPI_processed == 0) return;
        if (SPI_processed != 1 || SPI_tuptable->tupdesc->natts > kMaxColumns)
            elog(ERROR, "sicoop: a step statement must return one row of counters: %s", query);
        TupleDesc desc = SPI_tuptable->tupdesc;
        for (int i = 1; i <= desc->natts; ++i) {
            if (SPI_gettypeid(desc, i) == VOIDOID) continue;  // checks such as check_vigencia()
            if (SPI_gettypeid(desc, i) != INT8OID)
                elog(ERROR, "sicoop: counter %s is not bigint in: %s", SPI_fname(desc, i), query);
            bool isnull;
            Datum d = SPI_getbinval(SPI_tuptable->vals[0], desc, i, &isnull);
            names[ncolumns] = SPI_fname(desc, i);
            values[ncolumns] = isnull ? 0 : DatumGetInt64(d);
            ++ncolumns;
        }
    });
    if (!processed_counter.empty() && !counts.add(processed_counter, static_cast<int64_t>(processed)))
        throw std::runtime_error("unknown counter: " + processed_counter);
    for (int i = 0; i < ncolumns; ++i)
        if (!counts.add(names[i], values[i]))
            throw std::runtime_error(std::string("step statement returned an unknown counter: ") + names[i]);
}

Param int8_param(int64 value) { return {INT8OID, Int64GetDatum(value), false}; }
Param timestamptz_param(TimestampTz value) { return {TIMESTAMPTZOID, TimestampTzGetDatum(value), false}; }
Param text_param(const char* value) {
    Param p{TEXTOID, (Datum) 0, value == nullptr};
    if (value) pg_call([&] { p.value = CStringGetTextDatum(value); });
    return p;
}

int64 exec(const char* sql, const Param* params, int nparams) {
    int64 result = 0;
    pg_call([&] {
        execute(sql, params, nparams);
        Datum d;
        if (!first_value(&d)) return;
        Oid t = SPI_gettypeid(SPI_tuptable->tupdesc, 1);
        if (t == INT8OID || t == TIMESTAMPTZOID) result = DatumGetInt64(d);
        else if (t == INT4OID) result = DatumGetInt32(d);
        else if (t == BOOLOID) result = DatumGetBool(d) ? 1 : 0;
    });
    return result;
}

std::string exec_text(const char* sql, const Param* params, int nparams) {
    char* value = nullptr;
    pg_call([&] {
        execute(sql, params, nparams);
        if (SPI_tuptable != nullptr && SPI_processed > 0)
            value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
    });
    return value ? std::string(value) : std::string();
}

bool exec_timestamp(const char* sql, Timestamp* out, const Param* params, int nparams) {
    bool found = false;
    pg_call([&] {
        execute(sql, params, nparams);
        Datum d;
        if ((found = first_value(&d))) *out = DatumGetTimestamp(d);
    });
    return found;
}

TimestampTz reference_time() {
    return static_cast<TimestampTz>(exec("SELECT sicoop._run_settings()"));
}

void commit() {
    pg_call([] { SPI_commit(); });
}

SubTransaction::SubTransaction() : cxt_(CurrentMemoryContext), owner_(CurrentResourceOwner) {
    pg_call([] { BeginInternalSubTransaction(nullptr); });
    MemoryContextSwitchTo(cxt_);
    open_ = true;
}

void SubTransaction::release() { end(true); }

void SubTransaction::rollback() { end(false); }

void SubTransaction::end(bool keep) {
    if (!open_) return;
    open_ = false;
    pg_call([keep] {
        if (keep)
            ReleaseCurrentSubTransaction();
        else
            RollbackAndReleaseCurrentSubTransaction();
    });
    MemoryContextSwitchTo(cxt_);
    CurrentResourceOwner = owner_;
}

SubTransaction::~SubTransaction() {
    // Reached open when an exception (a PgError too) leaves the scope before release(): the
    // subtransaction's writes are rolled back, as rollback() does. An error of the rollback
    // itself is not thrown from a destructor: the exception in flight stands.
    if (open_) {
        try {
            rollback();
        } catch (...) {
        }
    }
}

}  // namespace sicoop::spi
