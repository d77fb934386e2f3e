// Unit tests of the pure C++ layer (src/steps/): no server, no PostgreSQL headers.
// Prints TAP, so `prove` runs it alongside the pgTAP suites.
#include "steps/sql_patterns.hpp"
#include "steps/step.hpp"

#include <cstdio>
#include <set>
#include <string>

namespace {

int tests_run = 0;
int tests_failed = 0;

void ok(bool condition, const std::string& name) {
    ++tests_run;
    if (!condition) ++tests_failed;
    std::printf("%s %d - %s\n", condition ? "ok" : "not ok", tests_run, name.c_str());
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

void test_pipeline_order() {
    const auto& steps = sicoop::pipeline_steps();
    const char* expected[] = {"load_raw", "load_trusted", "load_dims", "scd2_associado", "load_fato"};
    ok(steps.size() == 5, "the pipeline has five steps");
    for (size_t i = 0; i < steps.size() && i < 5; ++i)
        ok(steps[i].name == expected[i], "step " + std::to_string(i + 1) + " is " + expected[i]);
    ok(sicoop::find_step("scd2_associado") == &steps[3], "find_step finds a step by name");
    ok(sicoop::find_step("drop_everything") == nullptr, "find_step refuses an unknown name");
}

void test_statements_use_only_run_parameters() {
    for (const auto& step : sicoop::pipeline_steps()) {
        bool only_known = true;
        for (const auto& a : step.actions) {
            if (a.kind != sicoop::Action::Kind::Sql) continue;
            for (size_t p = a.sql.find('$'); p != std::string::npos; p = a.sql.find('$', p + 1)) {
                char next = p + 1 < a.sql.size() ? a.sql[p + 1] : ' ';
                if (next >= '0' && next <= '9' && next != '1' && next != '2' && next != '3') only_known = false;
            }
        }
        ok(only_known, step.name + ": statements take only $1 (reference time), $2 (run id), $3 (time zone)");
        ok(!step.actions.empty(), step.name + ": has actions");
    }
}

void test_raw_streams_every_source_table() {
    const auto* raw = sicoop::find_step("load_raw");
    std::set<std::string> copied;
    for (const auto& a : raw->actions)
        if (a.kind == sicoop::Action::Kind::Bulk) {
            copied.insert(a.bulk.source_table);
            ok(a.bulk.columns.size() == a.bulk.types.size(), a.bulk.source_table + ": one type per column");
        }
    ok(copied == std::set<std::string>{"src_associado", "src_conta", "src_cartao", "src_movimentacao_cartao"},
       "load_raw bulk-copies the four source tables");
}

void test_card_number_never_passes_raw() {
    const auto* trusted = sicoop::find_step("load_trusted");
    bool masked = false;
    for (const auto& a : trusted->actions)
        if (contains(a.sql, "sicoop.mask_card(s.numero_cartao)")) masked = true;
    ok(masked, "load_trusted masks numero_cartao on its way out of raw");
    bool later_steps_read_raw = false;
    for (const char* name : {"load_dims", "scd2_associado", "load_fato"})
        for (const auto& a : sicoop::find_step(name)->actions)
            if (contains(a.sql, "raw_cartao")) later_steps_read_raw = true;
    ok(!later_steps_read_raw, "no step after load_trusted reads raw_cartao");
}

void test_merge_sql_shape() {
    std::string sql = sicoop::merge_changed_sql("t_target", "id", {{"a", "s.a"}, {"b", "upper(s.b)"}},
                                                {{"stamp", "$1"}}, "src s");
    ok(contains(sql, "ON CONFLICT (id) DO UPDATE SET a = EXCLUDED.a, b = EXCLUDED.b, stamp = EXCLUDED.stamp"),
       "merge updates the compared columns and the stamps");
    ok(contains(sql, "WHERE (t.a, t.b) IS DISTINCT FROM (EXCLUDED.a, EXCLUDED.b)"),
       "merge touches only changed rows, and does not compare stamps");
    ok(contains(sql, "AS rows_inserted") && contains(sql, "AS rows_updated"), "merge reports inserted and updated");
    std::string del = sicoop::delete_missing_sql("t_target", "id", "src");
    ok(contains(del, "NOT EXISTS (SELECT 1 FROM src s WHERE s.id = t.id)") && contains(del, "AS rows_deleted"),
       "delete removes what left the source and reports it");
}

void test_counts() {
    sicoop::StepCounts c;
    ok(c.add("rows_read", 10) && c.add("rows_inserted", 3) && c.add("rows_updated", 2), "counters add by name");
    ok(!c.add("rows_bogus", 1), "an unknown counter is refused");
    c.finish();
    ok(c.rows_unchanged == 5, "unchanged is derived as read - inserted - updated");
    sicoop::StepCounts explicit_unchanged;
    explicit_unchanged.add("rows_read", 10);
    explicit_unchanged.add("rows_unchanged", 7);
    explicit_unchanged.add("rows_inserted", 9);
    explicit_unchanged.finish();
    ok(explicit_unchanged.rows_unchanged == 7, "an unchanged count reported by a step wins");
    sicoop::StepCounts over;
    over.add("rows_inserted", 4);
    over.finish();
    ok(over.rows_unchanged == 0, "derived unchanged is never negative");
}

void test_source_check() {
    std::vector<std::pair<std::string, std::string>> present;
    for (const auto& t : sicoop::source_tables())
        for (const auto& c : t.columns) present.emplace_back(t.name, c.first);
    ok(sicoop::missing_source_columns(present).empty(), "a complete source misses nothing");
    std::vector<std::pair<std::string, std::string>> partial;
    for (const auto& p : present)
        if (p.first != "cartao" && p.second != "escolaridade") partial.push_back(p);
    auto missing = sicoop::missing_source_columns(partial);
    ok(missing.size() == 2, "a missing table and a missing column are both reported");
    ok(missing.size() == 2 && missing[0] == "column associado.escolaridade is missing" &&
           missing[1] == "table cartao is missing",
       "the messages name the table and the column");
}

}  // namespace

int main() {
    test_pipeline_order();
    test_statements_use_only_run_parameters();
    test_raw_streams_every_source_table();
    test_card_number_never_passes_raw();
    test_merge_sql_shape();
    test_counts();
    test_source_check();
    std::printf("1..%d\n", tests_run);
    return tests_failed == 0 ? 0 : 1;
}
