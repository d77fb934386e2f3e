#include "steps/pure_cpp.hpp"

#include "steps/step.hpp"

#include "steps/sql_patterns.hpp"

#include <cstdio>
#include <utility>

namespace sicoop {

const std::vector<StepCounts::Field>& StepCounts::fields() {
    static const std::vector<Field> list = {
        {"rows_read", &StepCounts::rows_read},         {"rows_inserted", &StepCounts::rows_inserted},
        {"rows_updated", &StepCounts::rows_updated},   {"rows_deleted", &StepCounts::rows_deleted},
        {"rows_unchanged", &StepCounts::rows_unchanged}, {"rows_unknown", &StepCounts::rows_unknown},
        {"rows_rejected", &StepCounts::rows_rejected},
    };
    return list;
}

bool StepCounts::add(const std::string& column, int64_t value) {
    for (const Field& f : fields())
        if (column == f.column) {
            int64_t& counter = this->*f.value;
            // (rows_unchanged starts at -1: not reported, derived by finish())
            counter = (f.value == &StepCounts::rows_unchanged && counter < 0 ? 0 : counter) + value;
            return true;
        }
    return false;
}

void StepCounts::finish() {
    if (rows_unchanged < 0) {
        int64_t derived = rows_read - rows_inserted - rows_updated;
        rows_unchanged = derived > 0 ? derived : 0;
    }
}

Action sql_action(std::string sql, std::string label) {
    Action a{Action::Kind::Sql, std::move(sql), {}, std::move(label), {}};
    return a;
}

Action dml_action(std::string sql, std::string counter, std::string label) {
    Action a{Action::Kind::Sql, std::move(sql), {}, std::move(label), std::move(counter)};
    return a;
}

Action bulk_action(BulkCopy copy, std::string label) {
    Action a{Action::Kind::Bulk, {}, std::move(copy), std::move(label), {}};
    return a;
}

std::string key_bucket_sql(const std::string& key_column) {
    return fill(R"sql((hashtext(${key}::text) & 4095))sql", {{"key", key_column}});
}

std::string key_hash_sql(const std::string& key_column) {
    return fill(R"sql(hashtext(${key}::text)::bigint)sql", {{"key", key_column}});
}

// A NULL key (a row the rules reject) falls in bucket -1, which raw never has: a full run
// always reads such rows, so that they reach the rejects.
std::string row_bucket_sql(const std::string& key_column, int bits) {
    return fill(R"sql(coalesce(hashtext(${key}::text) & ${mask}, -1))sql",
                {{"key", key_column}, {"mask", std::to_string((1L << bits) - 1)}});
}

// Two rows or so per bucket: a changed row brings back few unchanged ones. Buckets are counters
// in the warehouse's memory (row_hash_delta.hpp), 8 bytes each: 32 MB at the most, 2^22.
int row_bucket_bits(int64_t rows) {
    int bits = 12;
    while (bits < 22 && (int64_t{1} << bits) * 2 < rows) ++bits;
    return bits;
}

int64_t RunContext::rows_of(const std::string& table) const {
    for (const auto& [t, n] : table_rows)
        if (t == table) return n;
    return 0;
}

bool RunContext::is_empty(const std::string& table) const {
    for (const auto& t : empty_tables)
        if (t == table) return true;
    return false;
}

std::string timings_json(const std::vector<Timing>& timings) {
    std::string out = "{";
    char buf[128];
    for (size_t i = 0; i < timings.size(); ++i) {
        snprintf(buf, sizeof buf, "{\"rows\": %lld, \"seconds\": %.3f, \"copy_seconds\": %.3f}",
                 static_cast<long long>(timings[i].rows), timings[i].seconds, timings[i].copy_seconds);
        // Labels are the extension's own table names: no quoting needed beyond the quotes.
        out += (i ? ", \"" : "\"") + timings[i].label + "\": " + buf;
    }
    return out + "}";
}

const std::vector<Step>& pipeline_steps() {
    static const std::vector<Step> steps = {
        {"load_raw", "copy the source tables into raw_* (bulk COPY, then merge)", plan_raw,
         {"raw_associado", "raw_conta", "raw_cartao", "raw_movimentacao_cartao"}},
        {"load_trusted", "clean raw_* into trusted_*", plan_trusted,
         {"trusted_associado", "trusted_conta", "trusted_cartao", "trusted_movimentacao_cartao"}},
        {"load_dims", "load dim_data, dim_conta and dim_cartao (type 1)", plan_dims, {}},
        {"scd2_associado", "historize dim_associado (SCD type 2)", plan_scd2, {}},
        {"load_fato", "load fato_movimentacao_cartao incrementally", plan_fato, {"fato_movimentacao_cartao"}},
    };
    return steps;
}

const Step* find_step(const std::string& name) {
    for (const Step& s : pipeline_steps())
        if (s.name == name) return &s;
    return nullptr;
}

bool RunContext::stream_truncated_table(const std::string& table) const {
    for (const auto& t : stream_truncated)
        if (t == table) return true;
    return false;
}

}  // namespace sicoop
