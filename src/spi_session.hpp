// Running SQL through SPI from C++: statements with the run's parameters
// ($1 = reference time, $2 = run id, $3 = time zone), their counters, and transaction control.
#pragma once

#include "pg.hpp"
#include "steps/step.hpp"

#include <string>

namespace sicoop::spi {

// Runs a step statement and adds the counters of its result row (if any) to `counts`.
struct RunParams {
    TimestampTz reference_time;
    int64 run_id;
    const char* timezone;
};
void run_counting(const std::string& sql, const RunParams& params, StepCounts& counts);

// Runs a statement with up to kMaxParams parameters; returns the first column of the first row
// as int64 (0 if there is none). For the run log and other bookkeeping.
constexpr int kMaxParams = 10;
struct Param {
    Oid type;
    Datum value;
    bool is_null;
};
int64 exec(const char* sql, const Param* params = nullptr, int nparams = 0);

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
    MemoryContext cxt_;
    ResourceOwner owner_;
    bool open_ = false;
};

}  // namespace sicoop::spi
