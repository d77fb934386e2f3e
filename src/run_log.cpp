#include "run_log.hpp"

#include "spi_session.hpp"

namespace sicoop::run_log {

using spi::int8_param;
using spi::text_param;
using spi::timestamptz_param;

int64 next_run_id() {
    return spi::exec("SELECT nextval('sicoop.run_id_seq')");
}

void started(int64 run_id, const char* step, TimestampTz as_of) {
    spi::Param p[] = {int8_param(run_id), text_param(step), timestamptz_param(as_of)};
    spi::exec("INSERT INTO sicoop.run_log (run_id, step, status, as_of) VALUES ($1, $2, 'running', $3)", p, 3);
}

void succeeded(int64 run_id, const char* step, const StepCounts& c, const char* detail_json) {
    spi::Param p[] = {int8_param(run_id),        text_param(step),           int8_param(c.rows_read),
                      int8_param(c.rows_inserted), int8_param(c.rows_updated), int8_param(c.rows_deleted),
                      int8_param(c.rows_unchanged), int8_param(c.rows_unknown), int8_param(c.rows_rejected),
                      text_param(detail_json)};
    spi::exec("UPDATE sicoop.run_log SET status = 'succeeded', finished_at = clock_timestamp(),"
              " rows_read = $3, rows_inserted = $4, rows_updated = $5, rows_deleted = $6,"
              " rows_unchanged = $7, rows_unknown = $8, rows_rejected = $9, detail = $10::jsonb"
              " WHERE run_id = $1 AND step = $2",
              p, 10);
}

void failed(int64 run_id, const char* step, TimestampTz as_of, const ErrorData* e) {
    const char* sqlstate = nullptr;
    pg_call([&] { sqlstate = unpack_sql_state(e->sqlerrcode); });
    // No full card number reaches the log (the error itself is redacted when it is raised).
    auto redacted = [](const char* text) { return text ? redact_card_numbers(text) : std::string(); };
    const std::string message = redacted(e->message), detail = redacted(e->detail), context = redacted(e->context);
    spi::Param p[] = {int8_param(run_id),     text_param(step),      timestamptz_param(as_of),
                      text_param(e->message ? message.c_str() : nullptr), text_param(sqlstate),
                      text_param(e->detail ? detail.c_str() : nullptr), text_param(e->context ? context.c_str() : nullptr)};
    // An upsert: in a transaction block the 'running' row may have been rolled back with the step.
    spi::exec("INSERT INTO sicoop.run_log (run_id, step, status, as_of, finished_at, error_message,"
              " error_sqlstate, error_detail, error_context)"
              " VALUES ($1, $2, 'failed', $3, clock_timestamp(), $4, $5, $6, $7)"
              " ON CONFLICT (run_id, step) DO UPDATE SET status = 'failed', finished_at = clock_timestamp(),"
              " error_message = $4, error_sqlstate = $5, error_detail = $6, error_context = $7",
              p, 7);
}

void alert(int64 run_id, const char* step) {
    spi::Param p[] = {int8_param(run_id), text_param(step)};
    spi::exec("SELECT sicoop._alert($1, $2)", p, 2);
}

void skipped(int64 run_id, TimestampTz as_of, const char* message, const char* sqlstate) {
    spi::Param p[] = {int8_param(run_id), timestamptz_param(as_of), text_param(message),
                      sqlstate ? text_param(sqlstate) : spi::Param{TEXTOID, (Datum) 0, true}};
    spi::exec(R"sql(
INSERT INTO sicoop.run_log (run_id, step, status, as_of, finished_at, error_message, error_sqlstate)
VALUES ($1, 'run_pipeline', 'skipped', $2, clock_timestamp(), $3, $4))sql",
              p, 4);
}

}  // namespace sicoop::run_log
