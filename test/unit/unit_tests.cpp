// Unit tests of the pure C++ layer (src/steps/): no server, no PostgreSQL headers.
// Prints TAP, so `prove` runs it alongside the pgTAP suites.
#include "steps/sql_patterns.hpp"
#include "steps/step.hpp"
#include "steps/text_rules.hpp"

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

// Three kinds of run: a first load (everything empty), an incremental run, a full run.
sicoop::RunContext first_load() {
    sicoop::RunContext ctx;
    for (const auto& step : sicoop::pipeline_steps())
        for (const auto& t : step.first_load_tables) ctx.empty_tables.push_back(t);
    return ctx;
}
sicoop::RunContext incremental() {
    sicoop::RunContext ctx;
    ctx.since_run_id = 5;
    ctx.has_window = true;
    return ctx;
}
sicoop::RunContext full_run() {
    sicoop::RunContext ctx = incremental();
    ctx.full = true;
    ctx.table_rows = {{"raw_movimentacao_cartao", 1000000}};
    return ctx;
}
sicoop::RunContext rebuild() {
    sicoop::RunContext ctx = full_run();
    ctx.rebuild = true;
    ctx.since_run_id = 0;
    return ctx;
}

std::vector<sicoop::Action> plan(const char* step, const sicoop::RunContext& ctx) {
    return sicoop::find_step(step)->plan(ctx);
}

std::string all_sql(const std::vector<sicoop::Action>& actions) {
    std::string out;
    for (const auto& a : actions) out += a.sql + "\n" + a.bulk.keys_query + "\n";
    return out;
}

void test_statements_use_only_run_parameters() {
    const std::pair<const char*, sicoop::RunContext> runs[] = {
        {"first load", first_load()}, {"incremental", incremental()}, {"full", full_run()}};
    for (const auto& step : sicoop::pipeline_steps())
        for (const auto& [kind, ctx] : runs) {
            bool only_known = true;
            const std::string sql = all_sql(step.plan(ctx));
            for (size_t p = sql.find('$'); p != std::string::npos; p = sql.find('$', p + 1)) {
                char next = p + 1 < sql.size() ? sql[p + 1] : ' ';
                if (next >= '0' && next <= '9' && (next < '1' || next > '5')) only_known = false;
            }
            ok(only_known && !sql.empty(), step.name + " (" + kind + "): statements take only the run parameters $1 to $5");
        }
}

void test_raw_plans() {
    std::set<std::string> staged, direct, gated;
    bool watermark = false, wide = true, staged_unless_direct = true, direct_when_decided = true;
    for (const auto& a : plan("load_raw", first_load())) {
        if (a.kind == sicoop::Action::Kind::Sql && contains(a.sql, "sicoop._apply_row_rules('")) gated.insert(a.label);
        if (a.kind != sicoop::Action::Kind::Bulk) continue;
        if (a.bulk.rows == sicoop::BulkCopy::Rows::All && a.bulk.target_table.rfind("stage_", 0) == 0) {
            staged.insert(a.bulk.target_table);
            for (const auto& type : a.bulk.types)
                if (contains(type, "varchar") || contains(type, "numeric(")) wide = false;
            if (a.bulk.target_table != "stage_cartao" &&
                a.bulk.only_if != "SELECT NOT direct FROM pg_temp.sicoop_direct_load")
                staged_unless_direct = false;
        } else if (a.bulk.rows == sicoop::BulkCopy::Rows::All) {
            direct.insert(a.bulk.target_table);
            if (a.bulk.only_if != "SELECT direct FROM pg_temp.sicoop_direct_load" || !a.bulk.stamp_run_id) direct_when_decided = false;
        }
        if (a.bulk.watermark_column == "data_movimentacao" && a.bulk.capture_snapshot) watermark = true;
    }
    ok(staged == std::set<std::string>{"stage_associado", "stage_conta", "stage_cartao", "stage_movimentacao_cartao"},
       "a first load copies every source table into its stage...");
    ok(direct == std::set<std::string>{"raw_associado", "raw_conta", "raw_movimentacao_cartao"} && direct_when_decided &&
           staged_unless_direct,
       "...or, for the tables raw keeps as they are (not the cards), straight into raw, stamped with the run, "
       "when the run decides the source can hold nothing raw refuses; never both");
    const std::string first_sql = all_sql(plan("load_raw", first_load()));
    ok(contains(first_sql, "k.source_type = pg_catalog.format_type(r.atttypid, r.atttypmod)") &&
           contains(first_sql, "(k.not_null OR NOT r.attnotnull)") &&
           contains(first_sql, "(k.unique_key OR k.column_name <> 'id_movimentacao_cartao')") &&
           contains(first_sql, "NOT EXISTS (SELECT 1 FROM sicoop.raw_movimentacao_cartao)"),
       "the direct copy needs raw empty, raw's very types at the source, NOT NULL where raw needs a value and a unique key");
    ok(!contains(all_sql(plan("load_raw", incremental())), "sicoop_direct_load") &&
           !contains(all_sql(plan("load_raw", full_run())), "sicoop_direct_load"),
       "only first loads copy straight into raw");
    ok(wide, "the stage reads source columns as text and unbounded numeric: no value is cut or rounded on the way");
    ok(gated == std::set<std::string>{"associado", "conta", "cartao", "movimentacao_cartao"},
       "every table's rows pass the data-quality rules before they enter raw");
    const std::string first_raw = all_sql(plan("load_raw", first_load()));
    ok(contains(first_raw, "INSERT INTO sicoop.raw_cartao") && contains(first_raw, "sicoop.mask_card(s.numero_cartao)"),
       "raw keeps card numbers masked, never in clear");
    ok(contains(all_sql(plan("load_raw", incremental())), "sicoop.mask_card(s.numero_cartao)"),
       "an incremental run compares cards by their masked numbers");
    ok(contains(first_raw, "TRUNCATE sicoop.stage_associado, sicoop.stage_conta, sicoop.stage_cartao"),
       "the stage is emptied in the step's own transaction");
    ok(watermark, "a first load records the movements' watermark");
    bool drops_indexes = false;
    for (const auto& step : sicoop::pipeline_steps())
        for (const auto& ctx : {first_load(), incremental(), full_run(), rebuild()})
            drops_indexes = drops_indexes || contains(all_sql(step.plan(ctx)), "_defer_indexes");
    ok(!drops_indexes && contains(all_sql(plan("load_trusted", first_load())), "sicoop._restore_indexes('sicoop.trusted_movimentacao_cartao')") &&
           contains(all_sql(plan("load_fato", first_load())), "sicoop._restore_indexes('sicoop.fato_movimentacao_cartao')"),
       "no step drops an index in its own transaction (the lock would hold BI readers for the step); first loads build the deferred ones after the insert");

    int windowed = 0, keys = 0, by_xmin = 0, checksums = 0, keys_in_buckets = 0, whole = 0, catalogs = 0, totals = 0;
    int rejected_rechecks = 0;
    for (const auto& a : plan("load_raw", incremental())) {
        if (a.kind != sicoop::Action::Kind::Bulk) continue;
        switch (a.bulk.rows) {
            case sicoop::BulkCopy::Rows::Window:
                windowed += a.bulk.window_column == "data_movimentacao" && contains(a.bulk.keys_query, "stage_day");
                break;
            case sicoop::BulkCopy::Rows::Keys:
                ++keys;
                rejected_rechecks += a.bulk.replace_keys && contains(a.bulk.keys_query, "sicoop.reject");
                break;
            case sicoop::BulkCopy::Rows::ChangedSinceSnapshot: ++by_xmin; break;
            case sicoop::BulkCopy::Rows::KeyChecksums: ++checksums; break;
            case sicoop::BulkCopy::Rows::KeysInBuckets: ++keys_in_buckets; break;
            case sicoop::BulkCopy::Rows::RowChecksums:
            case sicoop::BulkCopy::Rows::RowChecksumsAndDayTotals:
            case sicoop::BulkCopy::Rows::RowsInBuckets: ++whole; break;  // a full run's only
            case sicoop::BulkCopy::Rows::All: ++whole; break;
            case sicoop::BulkCopy::Rows::ColumnTypes: catalogs += a.bulk.capture_snapshot; break;
            case sicoop::BulkCopy::Rows::DayTotals: ++totals; break;
        }
    }
    ok(windowed == 1, "an incremental run reads movements by window, and the older days whose totals differ");
    ok(by_xmin == 3 && checksums == 3 && keys_in_buckets == 3 && whole == 0,
       "an incremental run reads the other tables by xmin, and finds their deletions by key checksums");
    ok(keys == 9 && rejected_rechecks == 4,
       "it reads again by key: the window's missing movements, every copy of a changed key, and every rejected key");
    ok(catalogs == 4 && totals == 1,
       "each table's session opens with the source's catalog (drift, unique keys) and records its snapshot; the movements' day totals");
    int partial_in_rebuild = 0;
    for (const auto& a : plan("load_raw", rebuild()))
        if (a.kind == sicoop::Action::Kind::Bulk && a.bulk.rows != sicoop::BulkCopy::Rows::All &&
            a.bulk.rows != sicoop::BulkCopy::Rows::ColumnTypes && a.bulk.rows != sicoop::BulkCopy::Rows::DayTotals)
            ++partial_in_rebuild;
    ok(partial_in_rebuild == 0, "a rebuild reads every table whole");
    int row_checksums = 0, rows_in_buckets = 0, copied_whole = 0, movement_bits = 0;
    for (const auto& a : plan("load_raw", full_run())) {
        if (a.kind != sicoop::Action::Kind::Bulk) continue;
        row_checksums += a.bulk.rows == sicoop::BulkCopy::Rows::RowChecksums ||
                         a.bulk.rows == sicoop::BulkCopy::Rows::RowChecksumsAndDayTotals;
        rows_in_buckets += a.bulk.rows == sicoop::BulkCopy::Rows::RowsInBuckets;
        copied_whole += a.bulk.rows == sicoop::BulkCopy::Rows::All;
        if (a.bulk.rows == sicoop::BulkCopy::Rows::RowChecksumsAndDayTotals && a.bulk.source_table == "src_movimentacao_cartao")
            movement_bits = a.bulk.bucket_bits;
    }
    ok(row_checksums == 4 && rows_in_buckets == 4 && copied_whole == 0,
       "a full run compares every table by row checksums (the movements' day totals from the same scan) and copies only the buckets that differ");
    ok(movement_bits == 16 && sicoop::row_bucket_bits(0) == 12 && sicoop::row_bucket_bits(int64_t{1} << 40) == 22,
       "row buckets hold some 16 rows (2^16 buckets for a million movements), from 2^12 to 2^22 buckets");
    const std::string hash_source = sicoop::row_hash_sql(sicoop::source_tables()[2], "", true);
    const std::string hash_raw = sicoop::row_hash_sql(sicoop::source_tables()[2], "r", false);
    ok(contains(hash_source, "pg_catalog.right(") && !contains(hash_raw, "pg_catalog.right(") &&
           contains(hash_raw, "hashtextextended(r.numero_cartao::text, 3)") &&
           contains(hash_raw, "timestamp_hash_extended(r.data_emissao::timestamp, 7)"),
       "the row hash masks card numbers on the source side, as raw holds them, and hashes each column by value");
    ok(contains(all_sql(plan("load_trusted", full_run())), "r.run_id > $4") &&
           !contains(all_sql(plan("load_trusted", rebuild())), "r.run_id > $4"),
       "after a full comparison the later layers follow what changed; a rebuild recomputes them");
    ok(contains(all_sql(plan("load_raw", incremental())), "INSERT INTO sicoop.raw_tombstone"),
       "deletions from raw leave tombstones");
    ok(contains(all_sql(plan("load_raw", incremental())), "SELECT j.record_id FROM sicoop.reject j"),
       "a row now rejected leaves raw (and so every later layer)");
}

void test_downstream_plans() {
    const std::string trusted_first = all_sql(plan("load_trusted", first_load()));
    const std::string trusted_incremental = all_sql(plan("load_trusted", incremental()));
    ok(!contains(trusted_first, "ON CONFLICT (id_movimentacao_cartao)"), "a first load inserts into trusted plainly");
    ok(contains(trusted_incremental, "r.run_id > $4") && contains(trusted_incremental, "ON CONFLICT (id_movimentacao_cartao)"),
       "an incremental run merges only raw rows changed since the step's last run");
    ok(contains(trusted_incremental, "sicoop.raw_tombstone"), "an incremental run follows deletions by tombstones");
    const std::string fato_incremental = all_sql(plan("load_fato", incremental()));
    ok(contains(fato_incremental, "sicoop_fato_candidates") && contains(fato_incremental, "sk_associado = -1"),
       "load_fato re-keys changed movements and facts on an unknown member");
    ok(!contains(all_sql(plan("load_fato", first_load())), "ON CONFLICT"), "a first load inserts the facts plainly");
    ok(!contains(all_sql(plan("load_fato", rebuild())), "sicoop_fato_candidates"), "a rebuild recomputes every fact");
    ok(contains(all_sql(plan("scd2_associado", incremental())), "s.run_id > $4"),
       "SCD2 compares only members changed since its last run");
}

void test_card_number_never_passes_raw() {
    for (const auto& ctx : {first_load(), incremental()}) {
        const std::string trusted = all_sql(plan("load_trusted", ctx));
        ok(contains(trusted, "sicoop.mask_card(s.numero_cartao)"), "load_trusted masks numero_cartao on its way out of raw");
    }
    bool later_steps_read_raw = false;
    for (const char* name : {"load_dims", "scd2_associado", "load_fato"})
        if (contains(all_sql(plan(name, incremental())), "raw_cartao")) later_steps_read_raw = true;
    ok(!later_steps_read_raw, "no step after load_trusted reads raw_cartao");
}

void test_redact_card_numbers() {
    using sicoop::redact_card_numbers;
    ok(redact_card_numbers("Failing row contains (null, CONTA-1, 4111111111111111, Visa).") ==
           "Failing row contains (null, CONTA-1, ************1111, Visa).",
       "a 16-digit card number keeps its last four digits only");
    ok(redact_card_numbers("4111 1111 1111 1111 and 5500-0000-0000-0004") == "**** **** **** 1111 and ****-****-****-0004",
       "numbers written in groups are redacted, separators kept");
    ok(redact_card_numbers("6011000990139") == "*********0139", "13 digits are a card number");
    ok(redact_card_numbers("4111.1111.1111.1111; 4111  1111  1111  1111; 4111_1111_1111_1111") ==
           "****.****.****.1111; ****  ****  ****  1111; ****_****_****_1111",
       "dots, double spaces and underscores between groups are card numbers too");
    ok(redact_card_numbers("ids 1234, 5678, 9012, 3456") == "ids 1234, 5678, 9012, 3456",
       "a list of numbers is not a card number");
    ok(redact_card_numbers("4111 - 1111 - 1111 - 1111; 4111\t1111\t1111\t1111; 4111\u00a01111\u00a01111\u00a01111") ==
           "**** - **** - **** - 1111; ****\t****\t****\t1111; ****\u00a0****\u00a0****\u00a01111",
       "spaced dashes, tabs and non-breaking spaces between groups too");
    ok(redact_card_numbers("as of 2025-08-15 10:30:00-03, run 42") == "as of 2025-08-15 10:30:00-03, run 42",
       "times are left alone");
    ok(redact_card_numbers("run 123456789012 at 2025-08-15 10:30:00, 1234.56") ==
           "run 123456789012 at 2025-08-15 10:30:00, 1234.56",
       "12 digits or fewer (ids, dates, amounts) are left alone");
    ok(redact_card_numbers("") == "" && redact_card_numbers("no digits") == "no digits", "text without digits is unchanged");
    ok(redact_card_numbers("x4111111111111111") == "x************1111", "digits glued to letters are still redacted");
}

void test_is_plain_file_name() {
    using sicoop::is_plain_file_name;
    ok(is_plain_file_name("movimentacao_flat.csv") && is_plain_file_name("flat-2025-08-15.csv"), "plain file names pass");
    ok(!is_plain_file_name("../etc/passwd") && !is_plain_file_name("a/b.csv") && !is_plain_file_name("/tmp/x.csv"),
       "no directory part, relative or absolute");
    ok(!is_plain_file_name(".hidden") && !is_plain_file_name("..") && !is_plain_file_name(""), "no leading dot, not empty");
    ok(!is_plain_file_name("a b.csv") && !is_plain_file_name("x;rm.csv") && !is_plain_file_name(std::string(201, 'a')),
       "no spaces, no shell characters, not too long");
}

void test_collapse_whitespace() {
    using sicoop::collapse_whitespace;
    ok(collapse_whitespace(" Ensino superior Completo") == "Ensino superior Completo", "leading space trimmed");
    ok(collapse_whitespace("Casado ") == "Casado", "trailing space trimmed");
    ok(collapse_whitespace("maria \t da\n\n silva") == "maria da silva", "inner runs of white space collapse to one space");
    ok(collapse_whitespace(" \t\r\n ").empty(), "blank becomes empty");
    ok(collapse_whitespace("joão  poupança") == "joão poupança", "UTF-8 bytes pass through untouched");
}

void test_timings_json() {
    ok(sicoop::timings_json({{"conta", 10, 0.5, 0.25}, {"cartao", 0, 1.25, 0}}) ==
           "{\"conta\": {\"rows\": 10, \"seconds\": 0.500, \"copy_seconds\": 0.250}, "
           "\"cartao\": {\"rows\": 0, \"seconds\": 1.250, \"copy_seconds\": 0.000}}",
       "timings are reported as JSON per label, with the seconds spent copying rows from the source");
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
    test_raw_plans();
    test_downstream_plans();
    test_card_number_never_passes_raw();
    test_timings_json();
    test_collapse_whitespace();
    test_redact_card_numbers();
    test_is_plain_file_name();
    test_merge_sql_shape();
    test_counts();
    test_source_check();
    std::printf("1..%d\n", tests_run);
    return tests_failed == 0 ? 0 : 1;
}
