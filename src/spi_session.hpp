// Running SQL through SPI from C++: statements with the run's parameters
// ($1 = reference time, $2 = run id, $3 = time zone, $4 = last run processed, $5 = window
// start), their counters, and transaction control.
#pragma once

#include "pg.hpp"
#include "steps/step.hpp"

#include <string>

namespace sicoop::spi {

// Runs a step statement and adds the counters of its result row (if any) to `counts`.
struct RunParams {
    TimestampTz reference_time;  // $1
    int64 run_id;                // $2
    const char* timezone;        // $3
    int64 since_run_id;          // $4
    bool has_window;             // $5: the movements' window start, NULL without one
    Timestamp window_start;
};
// Runs a statement with the run's parameters ($1..$5). PostgreSQL side: call inside pg_call.
void execute_with_run_params(const char* sql, const RunParams& params);

// `processed_counter`, if set, takes the statement's affected rows (for plain DML).
void run_counting(const std::string& sql, const RunParams& params, StepCounts& counts,
                  const std::string& processed_counter = "");

// Runs a statement with up to kMaxParams parameters; returns the first column of the first row
// as int64 (0 if there is none). For the run log and other bookkeeping.
constexpr int kMaxParams = 10;
struct Param {
    Oid type;
    Datum value;
    bool is_null;
};
int64 exec(const char* sql, const Param* params = nullptr, int nparams = 0);
// Parameters of the usual types. text_param(nullptr) is a NULL; otherwise the text is copied
// into a text datum (in the current memory context).
Param int8_param(int64 value);
Param timestamptz_param(TimestampTz value);
Param text_param(const char* value);

// The first column of the first row as text ("" if none or NULL).
std::string exec_text(const char* sql, const Param* params = nullptr, int nparams = 0);
// The first column of the first row as a timestamp; false if none or NULL.
bool exec_timestamp(const char* sql, Timestamp* out, const Param* params = nullptr, int nparams = 0);

// The run's reference time, once every setting a run reads is checked (sicoop._run_settings()).
TimestampTz reference_time();

// Commits (non-atomic calls only) and starts a new transaction.
void commit();

// A subtransaction whose writes can be rolled back alone, as a PL/pgSQL exception block does.
class SubTransaction {
public:
    SubTransaction();
    void release();
    void rollback();
    ~SubTransaction();

private:
    void end(bool keep);  // released (its writes kept) or rolled back
    MemoryContext cxt_;
    ResourceOwner owner_;
    bool open_ = false;
};

}  // namespace sicoop::spi
