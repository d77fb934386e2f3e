// Every statement the pure layer (src/steps/) plans, for every kind of run, printed in a stable
// order: the step plans with their bulk copies, and each copy's remote query as sent to the
// source. `make statements-dump` writes it; test/tools/planned_statements.sha256 pins its hash, so a
// refactoring of a builder that changes one byte of a statement fails `make statements-check`.
#include "steps/copy_filter.hpp"
#include "steps/remote_query.hpp"
#include "steps/step.hpp"

#include <iostream>
#include <string>
#include <vector>

using sicoop::BulkCopy;
using sicoop::RunContext;

namespace {

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
    return out;
}

// The source's types as the warehouse declares them: the remote query the pipeline sends then.
sicoop::remote::ColumnTypes declared_types(const BulkCopy& copy) {
    sicoop::remote::ColumnTypes types;
    for (const auto& t : sicoop::source_tables())
        if (copy.source_table == "src_" + t.name)
            for (const auto& c : t.columns) types.push_back(c);
    return types;
}

void dump_bulk(const BulkCopy& b) {
    std::cout << "  bulk " << b.source_table << " -> " << b.target_schema << "." << b.target_table
              << " rows=" << static_cast<int>(b.rows) << " truncate=" << b.truncate_first
              << " replace_keys=" << b.replace_keys << " columns=" << join(b.columns) << " types=" << join(b.types)
              << " label=" << b.table_label << " window=" << b.window_column << " key=" << b.key_column
              << " capture=" << b.capture_snapshot << " watermark=" << b.watermark_column << " bits=" << b.bucket_bits
              << " stamp=" << b.stamp_run_id << " timing=" << static_cast<int>(b.timing) << "\n";
    std::cout << "  keys_query: " << b.keys_query << "\n  only_if: " << b.only_if
              << "\n  local_row_hashes: " << b.local_row_hashes << "\n  row_hash: " << b.row_hash << "\n";
    const auto masks = sicoop::copy_masks(b.target_table, b.columns);
    std::cout << "  masks:";
    for (auto m : masks) std::cout << " " << static_cast<int>(m);
    std::cout << "\n";
    if (b.source_table.rfind("src_", 0) != 0) return;
    const auto read = sicoop::remote::plan_read(b, 42, declared_types(b));
    std::cout << "  remote: " << sicoop::remote::copy_sql(read, "public." + b.source_table.substr(4), "<rows>")
              << "\n  suffix: " << read.suffix << " as_text=" << read.as_text << " refused=" << read.refused.column << "\n";
}

void dump_run(const std::string& name, const RunContext& ctx) {
    for (const auto& step : sicoop::pipeline_steps()) {
        std::cout << "=== " << name << " / " << step.name << "\n";
        for (const auto& a : step.plan(ctx)) {
            std::cout << "-- action label=" << a.label << " counter=" << a.processed_counter << "\n";
            if (a.kind == sicoop::Action::Kind::Sql)
                std::cout << a.sql << "\n";
            else
                dump_bulk(a.bulk);
        }
    }
}

RunContext first_load() {
    RunContext ctx;
    for (const auto& step : sicoop::pipeline_steps())
        for (const auto& t : step.first_load_tables) ctx.empty_tables.push_back(t);
    return ctx;
}

}  // namespace

int main() {
    dump_run("first_load", first_load());
    RunContext inc;
    inc.since_run_id = 5;
    inc.has_window = true;
    dump_run("incremental", inc);
    RunContext no_window = inc;
    no_window.has_window = false;
    dump_run("incremental_no_window", no_window);
    RunContext full = inc;
    full.full = true;
    full.table_rows = {{"raw_movimentacao_cartao", 1000000}, {"raw_associado", 1000}};
    dump_run("full", full);
    RunContext rebuild = full;
    rebuild.rebuild = true;
    rebuild.since_run_id = 0;
    dump_run("rebuild", rebuild);
    for (const auto& t : sicoop::source_tables()) {
        RunContext s = inc;
        s.stream = true;
        s.stream_tables = {t.name};
        dump_run("stream_" + t.name, s);
        s.stream_truncated = {t.name};
        s.stream_member_rounds = 2;
        dump_run("stream_truncated_rounds_" + t.name, s);
    }
    RunContext all = inc;
    all.stream = true;
    all.stream_tables = {"associado", "conta", "cartao", "movimentacao_cartao"};
    all.stream_member_rounds = 1;
    dump_run("stream_all", all);
    // On Citus (movements distributed): the statements that differ there.
    for (RunContext ctx : {inc, full, rebuild, all}) {
        ctx.movements_distributed = true;
        dump_run(std::string("citus_") + (ctx.stream ? "stream_all" : ctx.rebuild ? "rebuild" : ctx.full ? "full" : "incremental"), ctx);
    }
    for (const auto& t : sicoop::source_tables()) {
        std::cout << "=== row_hash " << t.name << "\n" << sicoop::row_hash_sql(t, "", true) << "\n"
                  << sicoop::row_hash_sql(t, "r", false) << "\n";
        for (const auto& [c, e] : sicoop::trusted_expressions(t.name)) std::cout << c << " := " << e << "\n";
    }
    std::cout << "=== missing\n" << join(sicoop::missing_source_columns({{"associado", "nome"}})) << "\n";
    return 0;
}
