// Unit tests of the pure C++ layer (src/steps/): no server, no PostgreSQL headers.
// Prints TAP, so `prove` runs it alongside the pgTAP suites.
#include "steps/copy_filter.hpp"
#include "steps/pgoutput.hpp"
#include "steps/remote_query.hpp"
#include "steps/row_hash_delta.hpp"
#include "steps/sql_patterns.hpp"
#include "steps/step.hpp"
#include "steps/stream_policy.hpp"
#include "steps/text_rules.hpp"
#include "steps/values.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
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
sicoop::RunContext streamed() {
    sicoop::RunContext ctx = incremental();
    ctx.stream = true;
    ctx.stream_tables = {"associado", "conta", "cartao", "movimentacao_cartao"};
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
        {"first load", first_load()}, {"incremental", incremental()}, {"full", full_run()}, {"stream", streamed()}};
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
            case sicoop::BulkCopy::Rows::RowHashes:
            case sicoop::BulkCopy::Rows::RowsInBuckets: ++whole; break;  // a full run's only
            case sicoop::BulkCopy::Rows::All: ++whole; break;
            case sicoop::BulkCopy::Rows::ColumnTypes: catalogs += a.bulk.capture_snapshot; break;
            case sicoop::BulkCopy::Rows::DayTotals: ++totals; break;
        }
    }
    ok(windowed == 1, "an incremental run reads movements by window, and the older days whose totals differ");
    ok(by_xmin == 3 && checksums == 6 && keys_in_buckets == 3 && whole == 0,
       "an incremental run reads the other tables by xmin, and finds their deletions by key checksums");
    ok(keys == 9 && rejected_rechecks == 4,
       "it reads again by key: the window's missing movements, every copy of a changed key, and every rejected key");
    ok(catalogs == 4 && totals == 2,
       "each table's session opens with the source's catalog (drift, unique keys) and records its snapshot; the movements' day totals");
    int partial_in_rebuild = 0;
    for (const auto& a : plan("load_raw", rebuild()))
        if (a.kind == sicoop::Action::Kind::Bulk && a.bulk.rows != sicoop::BulkCopy::Rows::All &&
            a.bulk.rows != sicoop::BulkCopy::Rows::ColumnTypes && a.bulk.rows != sicoop::BulkCopy::Rows::DayTotals)
            ++partial_in_rebuild;
    ok(partial_in_rebuild == 0, "a rebuild reads every table whole");
    int row_hashes = 0, rows_in_buckets = 0, copied_whole = 0, movement_bits = 0;
    for (const auto& a : plan("load_raw", full_run())) {
        if (a.kind != sicoop::Action::Kind::Bulk) continue;
        row_hashes += a.bulk.rows == sicoop::BulkCopy::Rows::RowHashes && a.bulk.target_table == "stage_bucket" &&
                      contains(a.bulk.local_row_hashes, "FROM sicoop.raw_");
        rows_in_buckets += a.bulk.rows == sicoop::BulkCopy::Rows::RowsInBuckets;
        copied_whole += a.bulk.rows == sicoop::BulkCopy::Rows::All;
        if (a.bulk.rows == sicoop::BulkCopy::Rows::RowHashes && a.bulk.source_table == "src_movimentacao_cartao")
            movement_bits = a.bulk.bucket_bits;
    }
    ok(row_hashes == 4 && rows_in_buckets == 4 && copied_whole == 0,
       "a full run compares every table by row hashes and copies only the buckets that differ");
    // The movements' day totals on a first load, a full run and a rebuild: sent once the
    // movements' last copy is read, landed as their last action (the warehouse's statements run
    // in between, the source computing meanwhile); nothing else is read from the source between.
    // An incremental run, whose window needs them first, sends them before any other table's
    // action and lands them before the window's copy: the other tables load meanwhile.
    auto day_totals_overlap = [](const std::vector<sicoop::Action>& actions) {
        using Timing = sicoop::BulkCopy::Timing;
        int sent = 0, landed = 0, read_between = 0, statements_between = 0;
        size_t last_movement_action = 0, landed_at = 0;
        for (size_t i = 0; i < actions.size(); ++i) {
            const auto& a = actions[i];
            if (a.label != "movimentacao_cartao") continue;
            last_movement_action = i;
            const bool bulk = a.kind == sicoop::Action::Kind::Bulk;
            if (bulk && a.bulk.rows == sicoop::BulkCopy::Rows::DayTotals) {
                sent += a.bulk.timing == Timing::SendOnly;
                if (a.bulk.timing == Timing::LandSent) ++landed, landed_at = i;
                if (a.bulk.timing == Timing::Now) return false;
            } else if (sent == 1 && landed == 0) {
                read_between += bulk;
                statements_between += !bulk;
            }
        }
        return sent == 1 && landed == 1 && read_between == 0 && statements_between >= 2 && landed_at == last_movement_action;
    };
    auto day_totals_ahead = [](const std::vector<sicoop::Action>& actions) {
        using Timing = sicoop::BulkCopy::Timing;
        size_t sent_at = 0, landed_at = 0, window_at = 0, first_other = 0, last_other = 0;
        int sent = 0, landed = 0, others = 0;
        for (size_t i = 0; i < actions.size(); ++i) {
            const auto& a = actions[i];
            const bool bulk = a.kind == sicoop::Action::Kind::Bulk;
            if (bulk && a.bulk.rows == sicoop::BulkCopy::Rows::DayTotals) {
                if (a.bulk.timing == Timing::SendOnly) ++sent, sent_at = i;
                if (a.bulk.timing == Timing::LandSent) ++landed, landed_at = i;
                if (a.bulk.timing == Timing::Now) return false;
            }
            if (bulk && a.bulk.rows == sicoop::BulkCopy::Rows::Window) window_at = i;
            if (!a.label.empty() && a.label != "movimentacao_cartao") {
                if (others++ == 0) first_other = i;
                last_other = i;
            }
        }
        return sent == 1 && landed == 1 && others > 0 && sent_at < first_other && last_other < landed_at &&
               landed_at < window_at;
    };
    // An incremental run's key checksums of the tables read by xmin: sent once the table's last
    // copy before them is read, landed after its rules and merge (the source computes meanwhile).
    auto key_checksums_overlap = [](const std::vector<sicoop::Action>& actions, const std::string& table) {
        using Timing = sicoop::BulkCopy::Timing;
        int sent = 0, landed = 0, read_between = 0, statements_between = 0;
        for (const auto& a : actions) {
            if (a.label != table) continue;
            const bool bulk = a.kind == sicoop::Action::Kind::Bulk;
            if (bulk && a.bulk.rows == sicoop::BulkCopy::Rows::KeyChecksums) {
                sent += a.bulk.timing == Timing::SendOnly;
                landed += a.bulk.timing == Timing::LandSent && sent == 1;
                if (a.bulk.timing == Timing::Now) return false;
            } else if (sent == 1 && landed == 0) {
                read_between += bulk;
                statements_between += !bulk && (contains(a.sql, "_apply_row_rules") || contains(a.sql, "INSERT INTO sicoop.raw_"));
            }
        }
        return sent == 1 && landed == 1 && read_between == 0 && statements_between == 2;
    };
    ok(key_checksums_overlap(plan("load_raw", incremental()), "associado") &&
           key_checksums_overlap(plan("load_raw", incremental()), "conta") &&
           key_checksums_overlap(plan("load_raw", incremental()), "cartao"),
       "an incremental run's key checksums at the source (for deletions): sent once the table's rows are read, landed "
       "after its rules and merge");
    ok(day_totals_overlap(plan("load_raw", first_load())) && day_totals_overlap(plan("load_raw", full_run())) &&
           day_totals_overlap(plan("load_raw", rebuild())) && day_totals_ahead(plan("load_raw", incremental())),
       "the movements' day totals: sent after their last copy and landed after the warehouse's statements (first load, "
       "full run, rebuild); an incremental run sends them before the other tables load, lands them before its window");
    ok(movement_bits == 19 && sicoop::row_bucket_bits(0) == 12 && sicoop::row_bucket_bits(int64_t{1} << 40) == 22,
       "row buckets hold some 2 rows (2^19 buckets for a million movements), from 2^12 to 2^22 buckets");
    const std::string full_sql = all_sql(plan("load_raw", full_run()));
    ok(contains(full_sql, "IN (SELECT b.bucket FROM sicoop.stage_bucket b) OFFSET 0) r") &&
           contains(full_sql, "r.id_movimentacao_cartao IN (SELECT g.id_movimentacao_cartao FROM pg_temp.sicoop_gone_keys g)"),
       "a full run's deletions: raw's keys of the buckets that differ are filtered first, then deleted by key");
    ok(contains(full_sql, "FROM sicoop.stage_movimentacao_cartao s OFFSET 0) n") &&
           contains(all_sql(plan("load_raw", incremental())), "FROM sicoop.stage_movimentacao_cartao s OFFSET 0) n") &&
           !contains(all_sql(plan("load_raw", streamed())), "OFFSET 0) n"),
       "a batch run's merge into raw leaves out the stage's rows raw holds as they are; a stream's rows are changes");
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

// On Citus (RunContext::movements_distributed): the distributed movements meet the coordinator's
// tables only through uncorrelated subqueries and copies; the dimensions are written from
// MATERIALIZED results in every layout.
void test_citus_plans() {
    sicoop::RunContext citus = incremental();
    citus.movements_distributed = true;
    const std::string raw_single = all_sql(plan("load_raw", incremental()));
    const std::string raw_citus = all_sql(plan("load_raw", citus));
    ok(contains(raw_single, "NOT EXISTS (SELECT 1 FROM sicoop.stage_movimentacao_cartao s WHERE s.id_movimentacao_cartao = r.id_movimentacao_cartao)") &&
           !contains(raw_single, "NOT IN (SELECT s.id_movimentacao_cartao"),
       "single node: raw's rows missing from the stage by an anti-join");
    ok(contains(raw_citus, "r.id_movimentacao_cartao NOT IN (SELECT s.id_movimentacao_cartao FROM sicoop.stage_movimentacao_cartao s") &&
           !contains(raw_citus, "NOT EXISTS (SELECT 1 FROM sicoop.stage_movimentacao_cartao s WHERE"),
       "Citus: by an uncorrelated NOT IN (no correlated subquery on a coordinator's table)");
    sicoop::RunContext full_citus = full_run();
    full_citus.movements_distributed = true;
    ok(contains(all_sql(plan("load_raw", full_citus)), "NOT EXISTS (SELECT 1 FROM sicoop.stage_conta s WHERE s.id_conta = r.id_conta)"),
       "Citus: the coordinator's own tables keep the anti-join");
    sicoop::RunContext stream_citus = streamed();
    stream_citus.movements_distributed = true;
    ok(contains(all_sql(plan("load_raw", stream_citus)), "CREATE TEMP TABLE sicoop_kept_raw") &&
           !contains(all_sql(plan("load_raw", streamed())), "sicoop_kept_raw"),
       "Citus stream: raw's rows of the batch's unsent columns copied first; single node: joined");
    ok(contains(all_sql(plan("load_fato", streamed())), "LEFT JOIN LATERAL") &&
           !contains(all_sql(plan("load_fato", stream_citus)), "LEFT JOIN LATERAL"),
       "Citus stream: member versions joined, not looked up by LATERAL ... LIMIT 1");
    for (const sicoop::RunContext& ctx : {incremental(), citus}) {
        const std::string dims = all_sql(plan("load_dims", ctx)) + all_sql(plan("scd2_associado", ctx));
        ok(!contains(dims, "FROM sicoop.trusted_conta s\n  WHERE d.") && contains(dims, "WITH v AS MATERIALIZED") &&
               contains(dims, "WITH target AS MATERIALIZED") && !contains(dims, "ANALYZE sicoop.dim"),
           "the dimensions are written from MATERIALIZED results, and analyzed only through sicoop._analyze");
    }
}

// A stream's micro-batch (RunContext::stream): nothing read from the source, only the batch's keys.
void test_stream_plans() {
    const auto raw = plan("load_raw", streamed());
    bool copies = false;
    for (const auto& a : raw) copies = copies || a.kind == sicoop::Action::Kind::Bulk;
    const std::string raw_sql = all_sql(raw);
    ok(!copies, "stream: load_raw reads nothing from the source (the worker filled the stage)");
    ok(contains(raw_sql, "NULL, true) r") && !contains(raw_sql, "SELECT j.record_id FROM sicoop.reject j WHERE j.table_name"),
       "stream: the row rules check the batch only (partial), and no pass over every reject");
    sicoop::RunContext truncated = streamed();
    truncated.stream_truncated = {"conta"};
    const std::string truncated_sql = all_sql(plan("load_raw", truncated));
    ok(contains(raw_sql, "r.id_conta = ANY (ARRAY(SELECT k.record_id FROM sicoop.stream_key k") &&
           contains(raw_sql, "k.deleted AND k.record_id IS NOT NULL") &&
           !contains(raw_sql, "NOT EXISTS (SELECT 1 FROM sicoop.stage_conta s WHERE s.id_conta = r.id_conta)") &&
           contains(truncated_sql, "NOT EXISTS (SELECT 1 FROM sicoop.stage_conta s WHERE s.id_conta = r.id_conta)") &&
           !contains(truncated_sql, "NOT EXISTS (SELECT 1 FROM sicoop.stage_cartao s WHERE s.id_cartao = r.id_cartao)"),
       "stream: the keys deleted at the source leave raw with a tombstone (by index), and every key a truncate left out");
    ok(contains(all_sql(plan("load_trusted", streamed())), "r.id_movimentacao_cartao = ANY (ARRAY(SELECT k.record_id") &&
           contains(all_sql(plan("load_fato", streamed())), "LEFT JOIN LATERAL") &&
           !contains(all_sql(plan("load_fato", incremental())), "LEFT JOIN LATERAL"),
       "stream: trusted follows the batch's keys by index, and the fact finds member versions by index");
    // The batch's trusted movements: kept by load_trusted as it merges them, read by load_dims and
    // load_fato; on Citus (no such merge), read by key again.
    const std::string kept = "INSERT INTO pg_temp.sicoop_batch_movements (id_movimentacao_cartao, id_cartao, "
                             "descricao_movimentacao, valor_movimentacao, data_movimentacao)";
    const std::string trusted_stream = all_sql(plan("load_trusted", streamed()));
    ok(contains(trusted_stream, "CREATE TEMP TABLE sicoop_batch_movements (LIKE sicoop.trusted_movimentacao_cartao) ON COMMIT DELETE ROWS") &&
           contains(trusted_stream, "kept AS (\n  " + kept +
                                        " SELECT id_movimentacao_cartao, id_cartao, descricao_movimentacao, valor_movimentacao, "
                                        "data_movimentacao FROM taken)") &&
           !contains(trusted_stream, "FROM sicoop.trusted_movimentacao_cartao r WHERE") &&
           !contains(all_sql(plan("load_trusted", incremental())), "sicoop_batch_movements"),
       "stream: load_trusted keeps the batch's movements as it merges them (one read of raw), a batch run does not");
    sicoop::RunContext first_movements = streamed();
    first_movements.empty_tables = {"trusted_movimentacao_cartao"};
    ok(contains(all_sql(plan("load_trusted", first_movements)),
                kept + "\nSELECT id_movimentacao_cartao, id_cartao, descricao_movimentacao, valor_movimentacao, data_movimentacao "
                       "FROM sicoop.trusted_movimentacao_cartao r WHERE r.id_movimentacao_cartao = ANY"),
       "stream into an empty trusted: the inserted movements read back by the batch's keys");
    for (const char* step : {"load_dims", "load_fato"}) {
        sicoop::RunContext on_citus = streamed();
        on_citus.movements_distributed = true;
        const std::string single = all_sql(plan(step, streamed())), citus = all_sql(plan(step, on_citus));
        ok(contains(single, "FROM pg_temp.sicoop_batch_movements") &&
               !contains(single, "trusted_movimentacao_cartao WHERE id_movimentacao_cartao = ANY") &&
               contains(citus, "FROM sicoop.trusted_movimentacao_cartao WHERE id_movimentacao_cartao = ANY (ARRAY(SELECT k.record_id") &&
               !contains(citus, "sicoop_batch_movements") && !contains(all_sql(plan(step, incremental())), "sicoop_batch_movements"),
           std::string("stream: ") + step + " reads the batch's movements load_trusted kept (on Citus, trusted by key)");
    }
    ok(contains(raw_sql, "= ANY (k.keep_from_raw) THEN r.descricao_movimentacao") &&
           contains(raw_sql, "(j.record ->> 'descricao_movimentacao')::text"),
       "stream: an unchanged TOAST value comes from raw, or from the reject of a rejected row");
    sicoop::RunContext movements_only = streamed();
    movements_only.stream_tables = {"movimentacao_cartao"};
    const std::string movements_sql = all_sql(plan("load_raw", movements_only));
    ok(contains(movements_sql, "sicoop.raw_movimentacao_cartao") && !contains(movements_sql, "sicoop.raw_cartao") &&
           contains(movements_sql, "TRUNCATE sicoop.stage_movimentacao_cartao") &&
           !contains(movements_sql, "TRUNCATE sicoop.stage_cartao"),
       "stream: only the tables the batch touched are checked, merged and emptied (truncated: no dead source rows)");
    ok(!contains(all_sql(plan("load_fato", streamed())), "_reconcile"),
       "stream: no reconciliation per micro-batch (it reads all of history)");
    const std::string scd2 = all_sql(plan("scd2_associado", streamed()));
    ok(contains(scd2, "k.commit_time FROM sicoop.stream_key k") &&
           contains(scd2, "greatest(coalesce((SELECT k.commit_time") &&
           contains(scd2, "d.inicio_vigencia_registro_associado)"),
       "stream: a version opens and closes at the commit time of its change, never before the current version");
    sicoop::RunContext members_truncated = streamed();
    members_truncated.stream_truncated = {"associado"};
    ok(contains(scd2, "d.id_associado = ANY (ARRAY(SELECT k.record_id FROM sicoop.stream_key k") &&
           !contains(all_sql(plan("scd2_associado", members_truncated)), "d.id_associado = ANY (ARRAY("),
       "stream: only the members the batch touched can have gone (every one after a truncate)");
    ok(!contains(all_sql(plan("scd2_associado", incremental())), "stream_key"), "batch runs keep the run's time");
}

// Issue 25: a member changed several times in a micro-batch; SCD2 replays its earlier states
// round by round (each at its own commit time, cleaned as trusted is), then the last states.
void test_scd2_replays_earlier_states() {
    sicoop::RunContext ctx = streamed();
    ctx.stream_member_rounds = 2;
    const std::vector<sicoop::Action> actions = plan("scd2_associado", ctx);
    const std::string sql = all_sql(actions);
    const size_t check = sql.find("sicoop._check_member_states($2");
    const size_t round1 = sql.find("s.round = 1 AND NOT s.deleted AND NOT s.rejected");
    const size_t round2 = sql.find("s.round = 2 AND NOT s.deleted AND NOT s.rejected");
    const size_t last = sql.find("AS rows_read");
    ok(check != std::string::npos && round1 != std::string::npos && round2 != std::string::npos && last != std::string::npos &&
           check < round1 && round1 < round2 && round2 < last && sql.find("s.round = 3") == std::string::npos,
       "scd2: the earlier states' rules, then round 1, round 2, then the last states");
    size_t per_round = 0;
    for (const auto& a : actions) per_round += a.sql.find("s.round = 1 AND") != std::string::npos;
    ok(per_round == 5, "scd2: a round is the last states' five statements (in place, close, drop, close gone, open)");
    ok(contains(sql, "greatest(s.commit_time, d.inicio_vigencia_registro_associado)") &&
           contains(sql, "WHERE e.round = 2 AND e.id_associado = d.id_associado"),
       "scd2: a round's versions open and close at its states' commit times, never before the current version");
    ok(contains(sql, "WHERE c.domain = 'estado_civil') ->> sicoop.clean_text(s.estado_civil),\n         sicoop.clean_text(s.estado_civil)) AS estado_civil") &&
           contains(sql, "sicoop.first_name(s.nome) AS nome"),
       "scd2: earlier states are cleaned as load_trusted cleans");
    ok(contains(sql, "s.run_id > $4 OR s.id_associado IN (SELECT e.id_associado FROM sicoop.stage_associado_state e)"),
       "scd2: a member's last state is compared even when trusted did not change (back to its state before the batch)");
    ok(contains(sql, "DELETE FROM sicoop.stage_associado_state") && contains(sql, "ORDER BY s.id_associado, s.round DESC"),
       "scd2: type 1 as the last accepted earlier state left it; the states go with the batch");
    ok(!contains(all_sql(plan("scd2_associado", streamed())), "stage_associado_state") &&
           !contains(all_sql(plan("load_raw", streamed())), "stage_associado_state") &&
           contains(all_sql(plan("load_raw", ctx)), "UPDATE sicoop.stage_associado_state k"),
       "a batch without repeated members reads no earlier state; with them load_raw fills their unchanged TOAST values");
}

// An edit of the canonical values relabels every version in place, before SCD2 compares, in
// every kind of run (a stream's micro-batch too), and the labels applied are recorded after.
void test_scd2_relabels_before_comparing() {
    for (const auto& ctx : {first_load(), incremental(), full_run(), rebuild(), streamed()}) {
        const std::string sql = all_sql(plan("scd2_associado", ctx));
        const size_t relabel = sql.find("sicoop._canonical_relabels()");
        const size_t compare = sql.find("AS rows_read");
        const size_t record = sql.find("SET canonical_labels = sicoop._canonical_labels()");
        ok(relabel != std::string::npos && compare != std::string::npos && record != std::string::npos &&
               relabel < compare && record > relabel && record < compare,
           "scd2: the relabel (then the record of the labels applied) comes before the comparison with trusted");
    }
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

// The UTF-8 of one code point, to write test text in other scripts.
std::string utf8(char32_t c) {
    std::string out;
    if (c < 0x80) {
        out += static_cast<char>(c);
    } else if (c < 0x800) {
        out += static_cast<char>(0xC0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        out += static_cast<char>(0xE0 | (c >> 12));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (c >> 18));
        out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    }
    return out;
}

// `ascii` with each ASCII digit written in the script whose zero is `zero`.
std::string in_script(const std::string& ascii, char32_t zero) {
    std::string out;
    for (char c : ascii) out += (c >= '0' && c <= '9') ? utf8(zero + static_cast<char32_t>(c - '0')) : std::string(1, c);
    return out;
}

bool is_valid_utf8(const std::string& text) {
    for (size_t i = 0; i < text.size();) {
        const unsigned char lead = static_cast<unsigned char>(text[i]);
        const size_t size = lead < 0x80 ? 1 : lead >= 0xC2 && lead <= 0xDF ? 2 : lead >= 0xE0 && lead <= 0xEF ? 3
                          : lead >= 0xF0 && lead <= 0xF4 ? 4 : 0;
        if (size == 0 || i + size > text.size()) return false;
        for (size_t k = 1; k < size; ++k)
            if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return false;
        i += size;
    }
    return true;
}

void test_redact_separators() {
    using sicoop::redact_card_numbers;
    ok(redact_card_numbers("PAGTO CARTAO 4111,1111,1111,1111") == "PAGTO CARTAO ****,****,****,1111",
       "a Luhn-valid card number with commas between its groups is redacted");
    ok(redact_card_numbers("4111 : 1111 : 1111 : 1111 or 5500:0000:0000:0004") ==
           "**** : **** : **** : 1111 or ****:****:****:0004",
       "colons between the groups, spaced or not, too");
    ok(redact_card_numbers("3782, 822463, 10005") == "****, ******, *0005", "an Amex listed 4-6-5 too");
    ok(redact_card_numbers("ids 4111, 1111, 1111, 1112") == "ids 4111, 1111, 1111, 1112",
       "a list that fails the Luhn check is a list of numbers, not a card number");
    ok(redact_card_numbers("(12345, 678, 90123) (12345, 678, 90128)") == "(12345, 678, 90123) (12345, 678, 90128)",
       "a row of short numbers stays readable, Luhn-valid or not: a 3-digit item is no card group");
    ok(redact_card_numbers("(12345, 6789, 0128)") == "(*****, ****, 0128)",
       "a Luhn-valid list of 13 digits in groups of four or more is masked (the documented cost of the rule)");
    ok(redact_card_numbers("ids 12, 4111, 1111, 1111, 1111, 7") == "ids 12, ****, ****, ****, 1111, 7",
       "a listed card number among other numbers is found and only it is masked");
    ok(redact_card_numbers("Failing row contains (1, 2025-08-15 10:30:00-03, 4111111111111111, 12).") ==
           "Failing row contains (1, 2025-08-15 10:30:00-03, ************1111, 12).",
       "in a row of numbers and times only the card number is masked");
    ok(redact_card_numbers("4111 1111 1111 1112 and 4111-1111-1111-1") == "**** **** **** 1112 and ****-****-*111-1",
       "groups joined by spaces or dashes are masked at 13 digits, Luhn-valid or not (a mistyped PAN)");
    ok(redact_card_numbers("4111/1111/1111/1111; 4111 \u2013 1111 \u2014 1111 \u2212 1111") ==
           "****/****/****/1111; **** \u2013 **** \u2014 **** \u2212 1111",
       "slashes, en and em dashes and the minus sign join groups too");
    ok(redact_card_numbers("4111\u20071111\u202f1111\u30001111; 4111\u2009\u00a01111\u20031111\u205f1111") ==
           "****\u2007****\u202f****\u30001111; ****\u2009\u00a0****\u2003****\u205f1111",
       "any Unicode space joins groups: figure, narrow no-break, ideographic, thin, em");
    ok(redact_card_numbers("4111     1111 1111 1111") == "4111     1111 1111 1111",
       "more than four separators between groups break the number");
    ok(redact_card_numbers("4111 -- 1111 -- 1111 -- 1111") == "**** -- **** -- **** -- 1111", "four join");
    ok(redact_card_numbers("4111;1111;1111;1111 e (4111)(1111)(1111)(1111) e 4111#1111#1111#1111") ==
           "****;****;****;1111 e (****)(****)(****)(1111) e ****#****#****#1111",
       "';', parentheses and '#' between groups: a Luhn-valid card number is masked (1.6)");
    ok(redact_card_numbers("4111|1111|1111|1111 e 4111+1111+1111+1111 e 4111~1111~1111~1111") ==
           "****|****|****|1111 e ****+****+****+1111 e ****~****~****~1111",
       "'|', '+' and '~' between groups too");
    ok(redact_card_numbers("(4111) (1111) (1111) (1111) e [4111]*[1111]*[1111]*[1111] e 4111 ; 1111 ; 1111 ; 1111") ==
           "(****) (****) (****) (1111) e [****]*[****]*[****]*[1111] e **** ; **** ; **** ; 1111",
       "any run of up to four symbols and spaces between groups");
    ok(redact_card_numbers("4111\u00b71111\u00b71111\u00b71111 e 4111\uff1b1111\uff1b1111\uff1b1111") ==
           "****\u00b7****\u00b7****\u00b71111 e ****\uff1b****\uff1b****\uff1b1111",
       "symbols beyond ASCII (middle dot, full-width ';') too");
    ok(redact_card_numbers("4111;1111;1111;1112 e (4111)(1111)(1111)(1112) e 4111#1111#1111#1112") ==
           "4111;1111;1111;1112 e (4111)(1111)(1111)(1112) e 4111#1111#1111#1112",
       "across symbols the Luhn check decides: a list of numbers that fails it stays readable");
    ok(redact_card_numbers("4111;;;;;1111;;;;;1111;;;;;1111 4111a1111a1111a1111") ==
           "4111;;;;;1111;;;;;1111;;;;;1111 4111a1111a1111a1111",
       "more than four symbols, or a letter, between groups break the number");
}

void test_redact_times_dates_amounts() {
    using sicoop::redact_card_numbers;
    ok(redact_card_numbers("as of 2025-08-15 10:30:01-03, run 42") == "as of 2025-08-15 10:30:01-03, run 42",
       "a time whose 16 digits happen to pass the Luhn check is left alone (its 2-digit runs are no card groups)");
    ok(redact_card_numbers("at 2025-08-15 10:30:00.123456-03:00 and 15/08/2025 10:30") ==
           "at 2025-08-15 10:30:00.123456-03:00 and 15/08/2025 10:30",
       "timestamps with fractions and offsets, and day-first dates, are left alone");
    ok(redact_card_numbers("R$ 1.234.567,89 e 1234.56, 99, 1234,56") == "R$ 1.234.567,89 e 1234.56, 99, 1234,56",
       "amounts are left alone");
    ok(redact_card_numbers("id 123456789012 e 1234 5678 9012") == "id 123456789012 e 1234 5678 9012",
       "12 digits are left alone, in one run or in groups");
}

void test_redact_unicode_digits() {
    using sicoop::redact_card_numbers;
    const std::string stars(12, '*');
    const std::pair<const char*, char32_t> scripts[] = {
        {"full-width", 0xFF10},        {"Arabic-Indic", 0x0660}, {"extended Arabic-Indic", 0x06F0},
        {"Devanagari", 0x0966},        {"Bengali", 0x09E6},      {"Thai", 0x0E50},
        {"Myanmar", 0x1040},           {"Mongolian", 0x1810},    {"mathematical bold", 0x1D7CE},
        {"mathematical monospace", 0x1D7F6}, {"Kawi (Unicode 15)", 0x11F50}, {"Nag Mundari (Unicode 15)", 0x1E4F0}};
    for (const auto& [name, zero] : scripts) {
        const std::string pan = in_script("4111111111111111", zero);
        ok(redact_card_numbers("PAGTO " + pan + ".") == "PAGTO " + stars + in_script("1111", zero) + ".",
           std::string(name) + " digits: each masked digit becomes one '*', the last four are kept");
    }
    ok(redact_card_numbers(in_script("4111", 0xFF10) + "1111" + in_script("1111", 0x0660) + "1111") ==
           stars + "1111",
       "a run mixing full-width, Arabic-Indic and ASCII digits is one run");
    ok(redact_card_numbers(in_script("4111", 0xFF10) + "\uff0d" + in_script("1111", 0xFF10) + "\uff0e" +
                           in_script("1111", 0xFF10) + "\uff0f" + in_script("1111", 0xFF10)) ==
           "****\uff0d****\uff0e****\uff0f" + in_script("1111", 0xFF10),
       "full-width dash, dot and slash join full-width groups");
    ok(redact_card_numbers(in_script("4111\uff0c1111\uff0c1111\uff1a1111", 0xFF10)) ==
           "****\uff0c****\uff0c****\uff1a" + in_script("1111", 0xFF10),
       "full-width comma and colon list them");
    ok(redact_card_numbers(in_script("123456789012", 0x0660)) == in_script("123456789012", 0x0660),
       "12 Arabic-Indic digits are left alone");
    ok(redact_card_numbers("\u00b2\u00b3\u00b9\u2460\u2461\u2462\u2463\u2464\u2465\u2466\u2467\u2468\u2469") ==
           "\u00b2\u00b3\u00b9\u2460\u2461\u2462\u2463\u2464\u2465\u2466\u2467\u2468\u2469",
       "superscripts and circled numbers are not decimal digits");
    const std::string masked = redact_card_numbers("x" + in_script("4111 1111 1111 1111", 0x1D7CE) + "y");
    ok(masked == "x**** **** **** " + in_script("1111", 0x1D7CE) + "y" && is_valid_utf8(masked),
       "masking 4-byte digits leaves valid UTF-8");
}

void test_redact_invisible_characters() {
    using sicoop::redact_card_numbers;
    ok(redact_card_numbers("4111\u200b1111\u200b1111\u200b1111") == "****\u200b****\u200b****\u200b1111",
       "zero-width spaces between digits do not split a card number");
    ok(redact_card_numbers("41\u200b\u200b\u200b\u200b\u200b\u200b11111111\u00ad1111\ufeff11\u206011") ==
           "**\u200b\u200b\u200b\u200b\u200b\u200b********\u00ad****\ufeff11\u206011",
       "invisible characters are transparent, however many: soft hyphen, BOM, word joiner");
    ok(redact_card_numbers("4111, \u200e1111, \u202e1111, \u20661111") == "****, \u200e****, \u202e****, \u20661111",
       "bidirectional marks do not count towards the four separators");
    ok(redact_card_numbers("4\ufe0f\u20e31\ufe0f\u20e31\ufe0f\u20e31\ufe0f\u20e31111111111111") ==
           "*\ufe0f\u20e3*\ufe0f\u20e3*\ufe0f\u20e3*\ufe0f\u20e3*********1111",
       "keycap digits (variation selector, combining keycap) are digits");
}

void test_redact_invalid_utf8() {
    using sicoop::redact_card_numbers;
    ok(redact_card_numbers("\xff\xfe" "4111111111111111\x80") == "\xff\xfe************1111\x80",
       "invalid bytes around a card number are kept as they are");
    ok(redact_card_numbers("4111\xa0" "1111\xa0" "1111\xa0" "1111") == "****\xa0****\xa0****\xa0" "1111",
       "an invalid byte between groups (LATIN1's non-breaking space) joins them: when in doubt, mask");
    ok(redact_card_numbers("4111111111111111\xe2\x80") == "************1111\xe2\x80" &&
           redact_card_numbers("4111111111111111\xf0\x9d\x9f") == "************1111\xf0\x9d\x9f" &&
           redact_card_numbers("\xef\xbc") == "\xef\xbc" && redact_card_numbers("\xf0") == "\xf0",
       "a multi-byte sequence cut short at the end is read byte by byte, never past the end");
    ok(redact_card_numbers("411111111111\xc0\xb4") == "411111111111\xc0\xb4" &&
           redact_card_numbers("411111111111\xe0\x80\xb4") == "411111111111\xe0\x80\xb4",
       "an overlong '4' is no digit");
    ok(redact_card_numbers("411111111111\xef\xbc") == "411111111111\xef\xbc" &&
           redact_card_numbers("411111111111\xef\xbc\x31") == "*********111\xef\xbc\x31",
       "a full-width digit missing its last byte is no digit, and the byte after it is read again (here a "
       "13th digit, joined by the two invalid bytes)");
    ok(redact_card_numbers("\xed\xa0\x80\xf4\x90\x80\x80\xf8\x88\x80\x80\x80") ==
           "\xed\xa0\x80\xf4\x90\x80\x80\xf8\x88\x80\x80\x80",
       "surrogates, code points past U+10FFFF and 5-byte forms pass through");
    // Every text of up to three bytes from a set of awkward ones, after and before digits.
    const std::string bytes[] = {"1", "4", " ", ",", ":", "\x80", "\xbf", "\xc2", "\xe2", "\xef", "\xf0", "\xff",
                                 "\xa0", "\x8b", "\xbc", "\x91", "\x9d"};
    bool sane = true;
    for (const auto& a : bytes)
        for (const auto& b : bytes)
            for (const auto& c : bytes) {
                const std::string text = "411111111111" + a + b + c;
                const std::string out = redact_card_numbers(text);
                const bool changed = out != text;
                sane = sane && out.size() <= text.size() && changed == sicoop::contains_card_number(text) &&
                       (!is_valid_utf8(text) || is_valid_utf8(out));
            }
    ok(sane, "no crash on arbitrary bytes; valid UTF-8 stays valid; contains_card_number agrees with redact");
}

// ---- The COPY filter (1.6): card numbers masked in the COPY stream, before the first write ----

std::string be32s(uint32_t v) {
    std::string out;
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
    return out;
}
std::string be16s(int16_t v) {
    std::string out;
    out.push_back(static_cast<char>((static_cast<uint16_t>(v) >> 8) & 0xff));
    out.push_back(static_cast<char>(static_cast<uint16_t>(v) & 0xff));
    return out;
}
std::string binary_header() { return std::string("PGCOPY\n\377\r\n\0", 11) + be32s(0) + be32s(0); }
std::string binary_row(const std::vector<std::optional<std::string>>& fields) {
    std::string row = be16s(static_cast<int16_t>(fields.size()));
    for (const auto& f : fields) row += f ? be32s(static_cast<uint32_t>(f->size())) + *f : be32s(0xFFFFFFFF);
    return row;
}
// Everything `filter` hands on when fed `data` in pieces of `piece` bytes.
std::string feed_in_pieces(sicoop::CopyFilter& filter, const std::string& data, size_t piece) {
    std::string out;
    for (size_t at = 0; at < data.size(); at += piece)
        out += std::string(filter.feed(std::string_view(data).substr(at, piece)));
    out += std::string(filter.finish());
    return out;
}

void test_rule_prefilters() {
    using sicoop::has_control_characters;
    using sicoop::may_need_trimming;
    ok(has_control_characters("a\x01b") && has_control_characters("\x7f") && has_control_characters("a\xc2\x85") &&
           has_control_characters("\x0b") && !has_control_characters("a\tb\r\n") &&
           !has_control_characters("JO\xc3\x83O") && !has_control_characters("\xc2\xa0") && !has_control_characters(""),
       "has_control_characters: C0 but tab/newline/CR, DEL and C1 (C2 80..9F); NBSP and accents are not");
    ok(!may_need_trimming("MOV-0000001") && !may_need_trimming("a b") && !may_need_trimming("") &&
           may_need_trimming(" a") && may_need_trimming("a ") && may_need_trimming("a\tb") &&
           may_need_trimming("a\xc2\xa0") && may_need_trimming("\xe2\x80\x8bx"),
       "may_need_trimming: false only for printable ASCII without a space at either end");
}

void test_mask_card_and_masked_numbers() {
    std::string out;
    ok(sicoop::mask_card_into(" 4111111111111111\t", out) && out == "************1111",
       "mask_card_into: trimmed, last four kept");
    out.clear();
    ok(sicoop::mask_card_into(
           "\uff14\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11", out) &&
           out == "************\uff11\uff11\uff11\uff11",
       "mask_card_into counts characters, as length() does");
    out.clear();
    ok(!sicoop::mask_card_into("1234", out) && !sicoop::mask_card_into("   ", out) &&
           !sicoop::mask_card_into("************1111", out) && out.empty(),
       "mask_card_into leaves short, blank and masked values alone");
    ok(sicoop::contains_card_number("************1111") && sicoop::contains_card_number("CARD-****-****-****-1111") &&
           sicoop::contains_card_number("(****)(****)(****)(1111)"),
       "contains_card_number reads a masked number as a card number (the key rule rejects a masked key)");
    ok(!sicoop::contains_card_number("****") && !sicoop::contains_card_number("MOV-*-1") &&
           !sicoop::contains_card_number("ids 1234, 5678"),
       "...and not a few stars");
}

void test_copy_masks() {
    using sicoop::CopyMask;
    const auto cartao =
        sicoop::copy_masks("stage_cartao", {"id_cartao", "id_conta", "numero_cartao", "nome_impresso_cartao",
                                            "bandeira_cartao", "tipo_cartao", "data_emissao"});
    ok(cartao == std::vector<CopyMask>{CopyMask::Key, CopyMask::Key, CopyMask::CardNumber, CopyMask::FreeText,
                                       CopyMask::FreeText, CopyMask::FreeText, CopyMask::None},
       "copy_masks: keys, the card number, free text, and dates as they are");
    const auto mov =
        sicoop::copy_masks("raw_movimentacao_cartao", {"id_movimentacao_cartao", "id_cartao", "descricao_movimentacao",
                                                       "valor_movimentacao", "data_movimentacao", "run_id"});
    ok(mov == std::vector<CopyMask>{CopyMask::Key, CopyMask::Key, CopyMask::FreeText, CopyMask::None, CopyMask::None,
                                    CopyMask::None},
       "copy_masks of a direct copy into raw: the run id as it is");
    ok(sicoop::copy_masks("stream_key", {"table_name", "record_id", "deleted"}) ==
               std::vector<CopyMask>{CopyMask::None, CopyMask::Key, CopyMask::None} &&
           sicoop::copy_masks("stage_key_checksum", {"bucket", "keys", "key_hash_sum"}) ==
               std::vector<CopyMask>{CopyMask::None, CopyMask::None, CopyMask::None},
       "copy_masks: the keys of the tables of keys; nothing of the checksums");
}

void test_copy_filter_text() {
    using sicoop::CopyMask;
    const std::vector<CopyMask> masks = {CopyMask::Key, CopyMask::CardNumber, CopyMask::FreeText, CopyMask::None};
    {
        sicoop::CopyFilter f(false, masks);
        const std::string plain = "C1\t1234\tnada\t4111111111111111\nC2\t\\N\t\\N\t5\n";
        const std::string_view out = f.feed(plain);
        ok(out.data() == plain.data() && out.size() == plain.size(),
           "text: a chunk with nothing to mask is handed on as it is (no copy); a column not masked is left alone");
    }
    {
        sicoop::CopyFilter f(false, masks);
        const std::string in =
            "C1\t4111 1111 1111 1111\tPAGTO 4111;1111;1111;1111 OK\t1\n"
            "4111111111111111\t\\N\tx\\t4111\\x311111111111111\\\\\t2\n";
        ok(feed_in_pieces(f, in, in.size()) ==
               "C1\t***************1111\tPAGTO ****;****;****;1111 OK\t1\n"
               "************1111\t\\N\tx\\t**************1111\\\\\t2\n",
           "text: the card number masked as mask_card, free text as _redact_card_numbers, a card-like key masked; "
           "escapes decoded before the check and written again");
        ok(f.fields_masked() == 4, "text: four fields masked");
    }
    {
        const std::string in = "K-1\t5500000000000004\tdesc 6011000990139424 fim\t3\nK-2\t\\N\t\\N\t4\n";
        sicoop::CopyFilter whole(false, masks);
        const std::string expected = feed_in_pieces(whole, in, in.size());
        bool same = true;
        for (size_t piece = 1; piece < in.size(); ++piece) {
            sicoop::CopyFilter f(false, masks);
            same = same && feed_in_pieces(f, in, piece) == expected;
        }
        ok(same && expected == "K-1\t************0004\tdesc ************9424 fim\t3\nK-2\t\\N\t\\N\t4\n",
           "text: rows cut anywhere across chunks (even in an escape) are masked the same");
    }
    {
        sicoop::CopyFilter f(false, masks);
        ok(feed_in_pieces(f, "K\t4111111111111111\t\\N\t1", 5) == "K\t************1111\t\\N\t1",
           "text: a last row without its newline is masked at the end");
    }
    {
        sicoop::CopyFilter f(false, masks);
        ok(feed_in_pieces(f, "K\t1\ta\t1\r4111111111111111\t1\ta\t1\n", 1000) ==
               "K\t1\ta\t1\r************1111\t1\ta\t1\n",
           "text: a carriage return ends a row as COPY FROM reads it (the key after it is masked)");
    }
    {
        sicoop::CopyFilter f(false, masks);
        ok(feed_in_pieces(f, "K\t1\ta\t1\textra 4111111111111111\n", 1000) == "K\t1\ta\t1\textra ************1111\n",
           "text: a field beyond the columns is masked as free text");
    }
    {
        sicoop::CopyFilter f(false, masks);
        ok(feed_in_pieces(f, "K\t1\t\\064\\061\\061\\061111111111111\t1\n", 1000) == "K\t1\t************1111\t1\n",
           "text: digits written as octal escapes are digits");
    }
    {
        sicoop::CopyFilter none(false, {CopyMask::None, CopyMask::None});
        ok(!none.active() && none.feed("4111111111111111\t1\n") == "4111111111111111\t1\n",
           "an inactive filter passes");
    }
}

void test_copy_filter_binary() {
    using sicoop::CopyMask;
    const std::vector<CopyMask> masks = {CopyMask::Key, CopyMask::CardNumber, CopyMask::FreeText, CopyMask::None};
    const std::string date = std::string("\0\0\x20\x01", 4);
    const std::string in = binary_header() +
                           binary_row({std::string("C-1"), std::string("4111-1111-1111-1111"),
                                       std::string("compra 4111#1111#1111#1111"), date}) +
                           binary_row({std::string("4111111111111111"), std::nullopt, std::nullopt, std::nullopt}) +
                           binary_row({std::string("C-3"), std::string("9"), std::string("nada"), date}) + be16s(-1);
    const std::string expected =
        binary_header() +
        binary_row(
            {std::string("C-1"), std::string("***************1111"), std::string("compra ****#****#****#1111"), date}) +
        binary_row({std::string("************1111"), std::nullopt, std::nullopt, std::nullopt}) +
        binary_row({std::string("C-3"), std::string("9"), std::string("nada"), date}) + be16s(-1);
    bool same = true;
    for (size_t piece : {in.size(), size_t{1}, size_t{2}, size_t{7}, size_t{19}, size_t{23}}) {
        sicoop::CopyFilter f(true, masks);
        same = same && feed_in_pieces(f, in, piece) == expected;
    }
    ok(same, "binary: lengths rewritten with the masked values, whole or in pieces; NULLs and other types as they are");
    sicoop::CopyFilter cut(true, masks);
    const std::string cut_in =
        binary_header() +
        binary_row({std::string("4111111111111111"), std::nullopt, std::nullopt, std::nullopt}).substr(0, 12);
    ok(feed_in_pieces(cut, cut_in, 5) == binary_header(), "binary: a row cut short is dropped, never passed in clear");
    sicoop::CopyFilter plain(true, masks);
    const std::string untouched =
        binary_header() + binary_row({std::string("C-3"), std::string("9"), std::string("x"), date});
    const std::string_view out = plain.feed(untouched);
    ok(out.data() == untouched.data() && out.size() == untouched.size(), "binary: nothing to mask, no copy");
}

void test_contains_card_number() {
    using sicoop::contains_card_number;
    ok(contains_card_number("4111111111111111") && contains_card_number("CARD-4111 1111 1111 1111") &&
           contains_card_number("4111,1111,1111,1111") && contains_card_number(in_script("4111111111111111", 0xFF10)),
       "a key holding a card-like run is found, in any writing");
    ok(!contains_card_number("CONTA-1") && !contains_card_number("123456789012") && !contains_card_number("") &&
           !contains_card_number("4111,1111,1111,1112") && !contains_card_number("2025-08-15 10:30:01-03"),
       "ordinary keys, 12 digits, Luhn-invalid lists and times are not");
}

void test_strip_format_characters() {
    using sicoop::strip_format_characters;
    ok(strip_format_characters("") == "" && strip_format_characters("plain ASCII, 1234") == "plain ASCII, 1234",
       "ASCII passes untouched");
    ok(strip_format_characters("\ufeffJO\u200bAO\u200c\u200d\u200e\u200f") == "JOAO",
       "BOM, zero-width space, ZWNJ, ZWJ, LRM and RLM are removed");
    ok(strip_format_characters("\u202a\u202b\u202c\u202d\u202eevil\u2060\u2061\u2062\u2063\u2064") == "evil",
       "bidirectional embeddings and overrides, word joiner and invisible operators are removed");
    ok(strip_format_characters("\u2066a\u2067b\u2068c\u2069d\u206a\u206b\u206c\u206d\u206e\u206f") == "abcd",
       "bidirectional isolates and the deprecated format characters are removed");
    ok(strip_format_characters("pou\u00adpan\u00e7a \u180e\u061c") == "poupan\u00e7a ",
       "soft hyphen, Mongolian vowel separator and Arabic letter mark are removed");
    ok(strip_format_characters("jo\u00e3o\u00a0\u2065\u2764\ufe0f \u4e2d") == "jo\u00e3o\u00a0\u2065\u2764\ufe0f \u4e2d",
       "accents, NBSP, emoji variation selectors and other text are kept");
    ok(strip_format_characters("a\xe2\x80\x8b\xe2\x80" "b\xff") == "a\xe2\x80" "b\xff",
       "invalid bytes and a cut zero-width space are kept");
    ok(sicoop::redact_card_numbers(sicoop::collapse_whitespace(strip_format_characters(
           "\ufeff PAGTO\u00a0\u00a0 4111\u200b1111\u200b1111\u200b1111 "))) == "PAGTO ************1111",
       "as clean_text: format characters stripped, spaces collapsed, the card number masked");
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
    ok(collapse_whitespace("\u3000maria\u00a0\u00a0da\u2007silva\u202f\u2003souza\u2028\u0085") ==
           "maria da silva souza",
       "Unicode white space (NBSP, figure, narrow, em, ideographic, line separator, NEL) collapses too");
    ok(collapse_whitespace("a\xa0 b\xc2") == "a\xa0 b\xc2", "invalid bytes are no white space and are kept");
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
    const std::string skipping = sicoop::merge_changed_sql("t_target", "id", {{"a", "s.a"}, {"b", "upper(s.b)"}},
                                                           {{"stamp", "$1"}}, "src s", true);
    ok(contains(skipping, "SELECT n.id, n.a, n.b, n.stamp\n  FROM (SELECT s.id AS id, s.a AS a, upper(s.b) AS b, $1 AS stamp FROM src s OFFSET 0) n") &&
           contains(skipping, "WHERE NOT EXISTS (SELECT 1 FROM t_target o WHERE o.id = n.id") &&
           contains(skipping, "AND (o.a, o.b) IS NOT DISTINCT FROM (n.a, n.b))") &&
           contains(skipping, "WHERE (t.a, t.b) IS DISTINCT FROM (EXCLUDED.a, EXCLUDED.b)"),
       "a merge that skips identical rows leaves out those the target holds as they are (stamps not compared), before ON CONFLICT locks them");
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

// ------------------------------------------------------------------------------------------
// What the bulk copy asks the source (remote_query.cpp): the exact text sent, as the
// boundary layer built it with psprintf, quote_identifier and quote_literal_cstr before.
// ------------------------------------------------------------------------------------------

namespace remote = sicoop::remote;

void is(const std::string& got, const std::string& expected, const std::string& name) {
    ok(got == expected, name);
    if (got != expected) std::printf("#   got:      %s\n#   expected: %s\n", got.c_str(), expected.c_str());
}

void test_remote_quoting() {
    is(remote::quote_identifier("data_movimentacao"), "data_movimentacao", "a plain identifier is not quoted");
    is(remote::quote_identifier("_x9"), "_x9", "underscores and digits are plain");
    is(remote::quote_identifier("Movimentacao"), "\"Movimentacao\"", "upper case is quoted");
    is(remote::quote_identifier("9lives"), "\"9lives\"", "a leading digit is quoted");
    is(remote::quote_identifier("a\"b c"), "\"a\"\"b c\"", "double quotes are doubled");
    is(remote::quote_identifier(""), "\"\"", "the empty name is quoted");
    is(remote::quote_identifier("order"), "\"order\"", "a reserved keyword is quoted");
    is(remote::quote_identifier("user"), "\"user\"", "a reserved keyword is quoted (user)");
    is(remote::quote_identifier("numeric"), "\"numeric\"", "a column-name keyword is quoted");
    is(remote::quote_identifier("left"), "\"left\"", "a type-function-name keyword is quoted");
    is(remote::quote_identifier("name"), "name", "an unreserved keyword is not quoted");
    is(remote::quote_identifier("xmltable"), "\"xmltable\"", "the last keyword of the list is quoted");
    is(remote::quote_identifier("all"), "\"all\"", "the first keyword of the list is quoted");
    is(remote::quote_identifier("caf\xc3\xa9"), "\"caf\xc3\xa9\"", "non-ASCII letters are quoted");
    is(remote::quote_identifier("conta", true), "\"conta\"", "quote_all_identifiers quotes everything");
    is(remote::quote_qualified_identifier("public", "movimentacao_cartao"), "public.movimentacao_cartao",
       "a qualified name, plain");
    is(remote::quote_qualified_identifier("My Schema", "table"), "\"My Schema\".\"table\"", "a qualified name, quoted");
    is(remote::quote_literal("2025-08-12 00:00:00"), "'2025-08-12 00:00:00'", "a literal");
    is(remote::quote_literal("{O'Brien,x}"), "'{O''Brien,x}'", "single quotes are doubled");
    is(remote::quote_literal("a\\b'c"), "E'a\\\\b''c'", "a backslash doubles and makes an E'' literal");
    is(remote::quote_literal(""), "''", "the empty literal");
}

void test_remote_rows_asked() {
    is(remote::window_rows("data_movimentacao", "2025-08-12 00:00:00.000000", std::nullopt, false),
       " WHERE data_movimentacao >= '2025-08-12 00:00:00.000000'::timestamp", "the window alone");
    is(remote::window_rows("data_movimentacao", "2025-08-12 00:00:00.000000", std::string("{2024-01-02,2024-03-04}"), false),
       " WHERE data_movimentacao >= '2025-08-12 00:00:00.000000'::timestamp"
       " OR data_movimentacao::date = ANY ('{2024-01-02,2024-03-04}'::date[])",
       "the window and the days that changed");
    is(remote::window_rows("data_movimentacao", "2025-08-12 00:00:00.000000", std::string("{2024-01-02,NULL}"), true),
       " WHERE data_movimentacao >= '2025-08-12 00:00:00.000000'::timestamp"
       " OR data_movimentacao::date = ANY ('{2024-01-02,NULL}'::date[]) OR data_movimentacao IS NULL",
       "the window, the days that changed and the NULL day");
    is(remote::keys_condition("id_conta", "{c1,\"c'2\"}", false), "id_conta::text = ANY ('{c1,\"c''2\"}'::text[])",
       "keys, quoted as a literal");
    is(remote::keys_condition("id_conta", "{c1,NULL}", true), "id_conta::text = ANY ('{c1,NULL}'::text[]) OR id_conta IS NULL",
       "keys with a NULL key");
    is(remote::where("x = 1"), " WHERE x = 1", "where()");
    sicoop::BulkCopy keys;
    keys.rows = sicoop::BulkCopy::Rows::KeysInBuckets;
    keys.key_column = "id_conta";
    is(remote::buckets_rows(keys, "{1,17}"), " WHERE (hashtext(id_conta::text) & 4095) = ANY ('{1,17}'::int[])",
       "the keys of key buckets");
    sicoop::BulkCopy rows = keys;
    rows.rows = sicoop::BulkCopy::Rows::RowsInBuckets;
    rows.bucket_bits = 16;
    is(remote::buckets_rows(rows, "{-1,3}"), " WHERE coalesce(hashtext(id_conta::text) & 65535, -1) = ANY ('{-1,3}'::int[])",
       "the rows of row buckets");
    is(remote::changed_since_rows("123456"),
       " WHERE '123456'::bigint >= txid_snapshot_xmax(txid_current_snapshot())"
       " OR age(xmin) <= age(('123456'::bigint % 4294967296)::text::xid)",
       "the rows changed since a snapshot");
}

// conta as the source has it, every column in the warehouse's type.
remote::ColumnTypes conta_types(const std::string& data_criacao_type = "date") {
    return {{"id_conta", "character varying"}, {"id_associado", "character varying"}, {"tipo_conta", "character varying"},
            {"agencia", "character varying"}, {"situacao_conta", "character varying"},
            {"data_criacao_conta", data_criacao_type}};
}
remote::ColumnTypes movement_types(const std::string& time_type = "timestamp without time zone",
                                   const std::string& amount_type = "numeric") {
    return {{"id_movimentacao_cartao", "character varying"}, {"id_cartao", "character varying"},
            {"descricao_movimentacao", "character varying"}, {"valor_movimentacao", amount_type},
            {"data_movimentacao", time_type}};
}

sicoop::BulkCopy stage_copy(const std::string& table) {
    for (const auto& a : plan("load_raw", incremental()))
        if (a.kind == sicoop::Action::Kind::Bulk && a.bulk.source_table == "src_" + table &&
            a.bulk.target_table == "stage_" + table)
            return a.bulk;
    return {};
}

void test_remote_copies() {
    using Rows = sicoop::BulkCopy::Rows;
    const std::string conta_rows = "id_conta::text, id_associado::text, tipo_conta::text, agencia::text, "
                                   "situacao_conta::text";
    sicoop::BulkCopy conta = stage_copy("conta");
    conta.rows = Rows::All;
    remote::RemoteRead read = remote::plan_read(conta, 42, conta_types());
    is(remote::copy_sql(read, "public.conta", ""),
       "COPY (SELECT " + conta_rows + ", data_criacao_conta::date FROM public.conta) TO STDOUT (FORMAT binary)",
       "a whole table, every cast total: binary");
    ok(read.refused.empty() && read.converted.empty() && !read.as_text, "...nothing refused or converted");

    read = remote::plan_read(conta, 42, conta_types("text"));
    is(remote::copy_sql(read, "public.conta", remote::where("id_conta::text = ANY ('{a}'::text[])")),
       "COPY (SELECT " + conta_rows + ", data_criacao_conta::text FROM public.conta WHERE id_conta::text = ANY "
       "('{a}'::text[])) TO STDOUT",
       "a column whose cast may fail travels as text, in text format");
    ok(read.as_text && read.converted.size() == 1 && read.converted[0].column == "data_criacao_conta" &&
           read.converted[0].from == "text" && read.converted[0].to == "date",
       "...and the warehouse converts it");

    sicoop::BulkCopy direct;
    for (const auto& a : plan("load_raw", first_load()))
        if (a.kind == sicoop::Action::Kind::Bulk && a.bulk.target_table == "raw_conta") direct = a.bulk;
    read = remote::plan_read(direct, 42, conta_types());
    is(read.select, "id_conta::varchar, id_associado::varchar, tipo_conta::varchar, agencia::varchar, "
                    "situacao_conta::varchar, data_criacao_conta::date, 42::bigint",
       "a direct copy into raw: raw's types, without typmods, stamped with the run");

    sicoop::BulkCopy checksums;
    checksums.rows = Rows::KeyChecksums;
    checksums.key_column = "id_conta";
    is(remote::copy_sql(remote::plan_read(checksums, 42, conta_types()), "public.conta", ""),
       "COPY (SELECT b, count(*)::bigint, sum(h)::numeric FROM (SELECT (hashtext(id_conta::text) & 4095)::int AS b, "
       "hashtext(id_conta::text)::bigint AS h FROM public.conta OFFSET 0) s GROUP BY b) TO STDOUT (FORMAT binary)",
       "key checksums per bucket");

    sicoop::BulkCopy keys = checksums;
    keys.rows = Rows::KeysInBuckets;
    is(remote::copy_sql(remote::plan_read(keys, 42, conta_types()), "public.conta", remote::buckets_rows(keys, "{7}")),
       "COPY (SELECT id_conta::text FROM public.conta WHERE (hashtext(id_conta::text) & 4095) = ANY ('{7}'::int[])) TO "
       "STDOUT (FORMAT binary)",
       "the keys of the buckets that differ");

    sicoop::BulkCopy row_hashes = checksums;
    row_hashes.rows = Rows::RowHashes;
    row_hashes.source_table = "src_conta";
    row_hashes.bucket_bits = 13;
    row_hashes.row_hash = "(h)";
    read = remote::plan_read(row_hashes, 42, conta_types());
    is(remote::copy_sql(read, "public.conta", ""),
       "COPY (SELECT coalesce(hashtext(id_conta::text) & 8191, -1)::int, (h)::bigint FROM public.conta) TO STDOUT "
       "(FORMAT binary)",
       "row hashes: each row's bucket and hash, summed in the warehouse");
    read = remote::plan_read(row_hashes, 42, conta_types("text"));
    ok(read.refused.column == "data_criacao_conta" && read.refused.type == "text" && read.refused.need == "date" &&
           read.refused.purpose == "compare the table by row checksums (a full run)",
       "row checksums are refused when a column's cast to its stage type may fail");

    const std::string finite_sum =
        "coalesce(sum(v) FILTER (WHERE v < 'Infinity'::numeric AND v > '-Infinity'::numeric), 0)::numeric";
    sicoop::BulkCopy totals;
    totals.source_table = "src_movimentacao_cartao";
    totals.rows = Rows::DayTotals;
    totals.window_column = "data_movimentacao";
    read = remote::plan_read(totals, 42, movement_types());
    is(remote::copy_sql(read, "public.movimentacao_cartao", ""),
       "COPY (SELECT d, count(*)::bigint, " + finite_sum +
           " FROM (SELECT data_movimentacao::date AS d, valor_movimentacao::numeric AS v FROM public.movimentacao_cartao "
           "OFFSET 0) s GROUP BY d) TO STDOUT (FORMAT binary)",
       "day totals, summed at the source");
    read = remote::plan_read(totals, 42, movement_types("timestamp without time zone", "text"));
    is(remote::copy_sql(read, "public.movimentacao_cartao", ""),
       "COPY (SELECT data_movimentacao::date, valor_movimentacao::text, count(*)::bigint FROM public.movimentacao_cartao "
       "GROUP BY 1, 2) TO STDOUT",
       "day totals of amounts that are no numbers: counted per amount, summed in the warehouse");
    ok(read.day_amounts && read.as_text && read.converted.size() == 1 && read.converted[0].to == "numeric",
       "...as day amounts");
    read = remote::plan_read(totals, 42, movement_types("text"));
    ok(read.refused.column == "data_movimentacao" && read.refused.need == "a date or time" &&
           read.refused.purpose == "sum the movements per day" &&
           read.refused.hint == "Give the column type timestamp at the source.",
       "day totals are refused when the day is no time");

    sicoop::BulkCopy window = stage_copy("movimentacao_cartao");
    read = remote::plan_read(window, 42, movement_types());
    ok(window.rows == Rows::Window && read.refused.empty() &&
           read.select == "id_movimentacao_cartao::text, id_cartao::text, descricao_movimentacao::text, "
                          "valor_movimentacao::numeric, data_movimentacao::timestamp",
       "the window's rows");
    read = remote::plan_read(window, 42, movement_types("date"));
    ok(read.refused.empty() && read.as_text && read.converted.size() == 1 &&
           read.converted[0].column == "data_movimentacao",
       "a window on a date: allowed, converted in the warehouse");
    read = remote::plan_read(window, 42, movement_types("text"));
    ok(read.refused.column == "data_movimentacao" && read.refused.purpose == "read the movements' window",
       "a window on a column that is no time is refused");

    sicoop::BulkCopy broken = conta;
    broken.types.pop_back();
    bool threw = false;
    try {
        remote::plan_read(broken, 42, conta_types());
    } catch (const std::logic_error& e) {
        threw = std::string(e.what()) == "bulk copy of src_conta: one type per column";
    }
    ok(threw, "a copy without one type per column is a bug, said so");

    sicoop::BulkCopy catalog;
    catalog.rows = Rows::ColumnTypes;
    ok(remote::plan_read(catalog, 42, conta_types()).select.empty(), "the catalog's copy has no select list of its own");
    is(remote::column_types_copy_sql("conta", "public.conta"),
       "COPY (SELECT 'conta'::text, a.attname::text, format_type(a.atttypid, a.atttypmod),\n"
       " EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique AND i.indisvalid\n"
       " AND i.indnatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL), a.attnotnull\n"
       " FROM pg_attribute a WHERE a.attrelid = 'public.conta'::regclass AND a.attnum > 0 AND NOT a.attisdropped) TO "
       "STDOUT (FORMAT binary)",
       "the source's catalog of the table");
    is(remote::column_types_copy_sql("conta", "\"My\".\"T'x\""),
       "COPY (SELECT 'conta'::text, a.attname::text, format_type(a.atttypid, a.atttypmod),\n"
       " EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique AND i.indisvalid\n"
       " AND i.indnatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL), a.attnotnull\n"
       " FROM pg_attribute a WHERE a.attrelid = '\"My\".\"T''x\"'::regclass AND a.attnum > 0 AND NOT a.attisdropped) TO "
       "STDOUT (FORMAT binary)",
       "...a quoted table name quoted again as a literal");
    is(remote::lock_table_sql("public.conta"), "LOCK TABLE public.conta IN ACCESS SHARE MODE", "the table's lock");
    is(remote::latest_value_sql("data_movimentacao", "public.movimentacao_cartao"),
       "SELECT max(data_movimentacao)::text FROM public.movimentacao_cartao", "the watermark's query");
}

// --- issue 26 (points 4 and 5): one style of SQL in C++, the source model declared once ---

bool fill_throws(const std::string& sql, const sicoop::SqlValues& values) {
    try {
        sicoop::fill(sql, values);
    } catch (const std::logic_error&) {
        return true;
    }
    return false;
}

void test_fill() {
    is(sicoop::fill("SELECT ${a} FROM t WHERE x ~ '[0-9]{2,}' AND y = '{}' AND z = '${b}${a}'", {{"a", "${b}"}, {"b", "2"}}),
       "SELECT ${b} FROM t WHERE x ~ '[0-9]{2,}' AND y = '{}' AND z = '2${b}'",
       "fill() substitutes named placeholders once, and leaves SQL's braces alone");
    ok(fill_throws("SELECT ${a}, ${b}", {{"a", "1"}}), "fill() refuses a placeholder without a value");
    ok(fill_throws("SELECT ${colum}", {{"column", "1"}}), "fill() refuses a misspelled placeholder");
    ok(fill_throws("SELECT ${a", {{"a", "1"}}), "fill() refuses an unclosed placeholder");
    is(sicoop::fill("DO $$ BEGIN END $$; SELECT $1", {}), "DO $$ BEGIN END $$; SELECT $1",
       "fill() leaves dollar quotes and parameters alone");
}

// Every statement of every plan is filled: no placeholder is left in any (fill() would throw).
void test_no_placeholder_left() {
    bool clean = true;
    for (const sicoop::RunContext& ctx : {first_load(), incremental(), streamed(), full_run(), rebuild()})
        for (const auto& step : sicoop::pipeline_steps())
            for (const auto& a : step.plan(ctx))
                if ((a.sql + a.bulk.keys_query + a.bulk.local_row_hashes + a.bulk.row_hash).find("${") !=
                    std::string::npos)
                    clean = false;
    ok(clean, "no planned statement keeps a ${placeholder}");
}

// The source model: each table's key first, card numbers only where declared, the movements
// dated by their time column, and the stage's wide types derived from it.
void test_source_model() {
    bool keys_first = true;
    for (const auto& t : sicoop::source_tables()) keys_first = keys_first && t.columns.front().first == t.key;
    ok(keys_first, "every source table lists its key first");
    const sicoop::SourceTable* cartao = sicoop::find_source_table("cartao");
    ok(cartao != nullptr && cartao->is_card_number("numero_cartao") && cartao->has_card_numbers(),
       "cartao.numero_cartao is declared a card number");
    ok(!cartao->is_free_text("numero_cartao", "varchar(50)") && !cartao->is_free_text("id_conta", "varchar(50)") &&
           cartao->is_free_text("nome_impresso_cartao", "varchar(150)"),
       "card numbers and references are no free text; a printed name is");
    ok(sicoop::find_source_table("movimentacao_cartao")->time_column == "data_movimentacao",
       "movements are dated by data_movimentacao");
    ok(sicoop::find_source_table("nope") == nullptr, "find_source_table refuses an unknown table");
    is(sicoop::stage_type("varchar(50)") + " " + sicoop::stage_type("numeric(10,2)") + " " + sicoop::stage_type("date"),
       "text numeric date", "the stage reads text and numbers wide, dates as they are");
}

// The raw step's fifth path: movements without a watermark (incremental, no window) are read
// whole and compared whole; the other tables stay keyed.
void test_raw_whole_without_window() {
    sicoop::RunContext ctx = incremental();
    ctx.has_window = false;
    bool movements_whole = false, others_keyed = true, deleted_whole = false;
    for (const auto& a : plan("load_raw", ctx)) {
        const auto& b = a.bulk;
        if (a.kind == sicoop::Action::Kind::Bulk && b.target_table.rfind("stage_", 0) == 0 &&
            b.target_table != "stage_source_column" && b.target_table != "stage_key_checksum" &&
            b.target_table != "stage_key") {
            if (a.label == "movimentacao_cartao" && b.rows == sicoop::BulkCopy::Rows::All) movements_whole = true;
            if (a.label == "movimentacao_cartao" && b.rows == sicoop::BulkCopy::Rows::Window) movements_whole = false;
            if (a.label != "movimentacao_cartao" && b.rows == sicoop::BulkCopy::Rows::All) others_keyed = false;
        }
        if (a.label == "movimentacao_cartao" && contains(a.sql, "DELETE FROM sicoop.raw_movimentacao_cartao r WHERE NOT EXISTS"))
            deleted_whole = true;
    }
    ok(movements_whole, "without a window, the movements are read whole");
    ok(deleted_whole, "...and what the stage lacks is deleted");
    ok(others_keyed, "...while the other tables are still read by xmin");
}

}  // namespace


// ------------------------------------------------------------------------------------------
// pgoutput: the logical replication stream (src/steps/pgoutput.cpp)
// ------------------------------------------------------------------------------------------
struct Bytes {
    std::string b;
    Bytes& c(char v) { b.push_back(v); return *this; }
    Bytes& i16(uint16_t v) { b.push_back(char(v >> 8)); b.push_back(char(v & 0xff)); return *this; }
    Bytes& i32(uint32_t v) { for (int s = 24; s >= 0; s -= 8) b.push_back(char((v >> s) & 0xff)); return *this; }
    Bytes& i64(uint64_t v) { for (int s = 56; s >= 0; s -= 8) b.push_back(char((v >> s) & 0xff)); return *this; }
    Bytes& str(const std::string& v) { b += v; b.push_back('\0'); return *this; }
    Bytes& text(const std::string& v) { c('t'); i32(uint32_t(v.size())); b += v; return *this; }
};

bool throws(const std::string& bytes, bool stream = false) {
    try {
        if (stream)
            sicoop::pgoutput::decode_stream_message(bytes.data(), bytes.size());
        else
            sicoop::pgoutput::decode_message(bytes.data(), bytes.size());
    } catch (const std::runtime_error&) {
        return true;
    }
    return false;
}

void test_pgoutput() {
    using namespace sicoop::pgoutput;
    ok(format_lsn(0x16B374D848ull) == "16/B374D848", "an LSN prints as pg_lsn does");
    ok(parse_lsn("16/B374D848") == std::optional<Lsn>(0x16B374D848ull), "and parses back");
    ok(parse_lsn("0/0") == std::optional<Lsn>(0), "0/0 is an LSN");
    ok(!parse_lsn("16B374D848") && !parse_lsn("/1") && !parse_lsn("1/") && !parse_lsn("1/G") && !parse_lsn("123456789/0"),
       "what is not an LSN is refused");

    Message b = decode_message(Bytes().c('B').i64(0x1000).i64(777).i32(42).b.data(), 21);
    ok(b.kind == Message::Kind::Begin && b.lsn == 0x1000 && b.commit_time == 777 && b.xid == 42, "begin");
    const std::string commit = Bytes().c('C').c(0).i64(0x1000).i64(0x1040).i64(777).b;
    Message c = decode_message(commit.data(), commit.size());
    ok(c.kind == Message::Kind::Commit && c.lsn == 0x1000 && c.end_lsn == 0x1040 && c.commit_time == 777, "commit");

    const std::string rel = Bytes().c('R').i32(16384).str("public").str("movimentacao_cartao").c('d').i16(2)
                                .c(1).str("id_movimentacao_cartao").i32(1043).i32(54)
                                .c(0).str("valor_movimentacao").i32(1700).i32(-1).b;
    Message r = decode_message(rel.data(), rel.size());
    ok(r.kind == Message::Kind::Relation && r.relation_id == 16384 && r.schema == "public" &&
       r.name == "movimentacao_cartao" && r.replica_identity == 'd' && r.columns.size() == 2,
       "relation: the table, its replica identity and columns");
    ok(r.columns[0].part_of_key && r.columns[0].name == "id_movimentacao_cartao" && r.columns[0].type_oid == 1043 &&
       r.columns[0].type_modifier == 54 && !r.columns[1].part_of_key && r.columns[1].type_modifier == -1,
       "relation: each column's key flag, name, type and modifier");

    const std::string ins = Bytes().c('I').i32(16384).c('N').i16(3).text("MOV-1").c('n').c('u').b;
    Message i = decode_message(ins.data(), ins.size());
    ok(i.kind == Message::Kind::Insert && i.relation_id == 16384 && i.new_tuple.size() == 3 &&
       i.new_tuple[0].kind == Column::Kind::Text && i.new_tuple[0].value == "MOV-1" &&
       i.new_tuple[1].kind == Column::Kind::Null && i.new_tuple[2].kind == Column::Kind::UnchangedToast,
       "insert: text, null and unchanged-TOAST columns");
    std::string with_nul = Bytes().c('I').i32(1).c('N').i16(1).text(std::string("a\0b", 3)).b;
    ok(decode_message(with_nul.data(), with_nul.size()).new_tuple[0].value == std::string("a\0b", 3),
       "a value is taken by its length, not up to a NUL");

    const std::string upd = Bytes().c('U').i32(7).c('K').i16(1).text("MOV-1").c('N').i16(1).text("MOV-2").b;
    Message u = decode_message(upd.data(), upd.size());
    ok(u.kind == Message::Kind::Update && u.old_kind == 'K' && u.old_tuple[0].value == "MOV-1" &&
       u.new_tuple[0].value == "MOV-2", "update with the old key (a key changed)");
    const std::string upd2 = Bytes().c('U').i32(7).c('N').i16(1).text("x").b;
    Message u2 = decode_message(upd2.data(), upd2.size());
    ok(u2.old_kind == 0 && u2.old_tuple.empty() && u2.new_tuple[0].value == "x", "update without an old row");
    const std::string del = Bytes().c('D').i32(7).c('K').i16(1).text("MOV-1").b;
    Message d = decode_message(del.data(), del.size());
    ok(d.kind == Message::Kind::Delete && d.old_kind == 'K' && d.old_tuple[0].value == "MOV-1", "delete by key");
    const std::string tru = Bytes().c('T').i32(2).c(1).i32(7).i32(8).b;
    Message t = decode_message(tru.data(), tru.size());
    ok(t.kind == Message::Kind::Truncate && t.truncated == std::vector<uint32_t>{7, 8} && t.truncate_cascade &&
       !t.truncate_restart_identity, "truncate: its relations and options");
    const std::string typ = Bytes().c('Y').i32(99).str("public").str("mood").b;
    ok(decode_message(typ.data(), typ.size()).name == "mood", "type");
    const std::string org = Bytes().c('O').i64(5).str("node_a").b;
    ok(decode_message(org.data(), org.size()).name == "node_a", "origin");

    const std::string w = Bytes().c('w').i64(0x2000).i64(0x3000).i64(555).b + ins;
    StreamMessage sw = decode_stream_message(w.data(), w.size());
    ok(sw.kind == StreamMessage::Kind::XLogData && sw.wal_start == 0x2000 && sw.wal_end == 0x3000 && sw.send_time == 555 &&
       sw.message && sw.message->kind == Message::Kind::Insert && sw.message->new_tuple[0].value == "MOV-1",
       "XLogData carries a pgoutput message");
    const std::string k = Bytes().c('k').i64(0x3000).i64(556).c(1).b;
    StreamMessage sk = decode_stream_message(k.data(), k.size());
    ok(sk.kind == StreamMessage::Kind::Keepalive && sk.wal_end == 0x3000 && sk.reply_requested, "keepalive");

    // Hostile or broken input: every prefix of a valid message, unknown kinds, lengths past
    // the end, trailing bytes: an error each time, never a read past the buffer.
    bool every_prefix_throws = true;
    for (const std::string& m : {ins, upd, del, rel, commit, tru})
        for (size_t n = 0; n < m.size(); ++n)
            if (!throws(m.substr(0, n))) every_prefix_throws = false;
    ok(every_prefix_throws, "every cut-short message is refused");
    ok(throws(Bytes().c('I').i32(1).c('N').i16(1).c('t').i32(0xFFFFFFFFu).c('x').b), "a value longer than the message is refused");
    ok(throws(Bytes().c('I').i32(1).c('N').i16(1).c('b').i32(1).c('x').b), "a binary value (not asked for) is refused");
    ok(throws(Bytes().c('Z').b) && throws(Bytes().c('x').b, true), "unknown message kinds are refused");
    ok(throws(ins + "x"), "trailing bytes are refused");
    ok(throws(Bytes().c('T').i32(0x40000000u).c(0).i32(1).b), "a truncate naming more relations than it holds is refused");
    ok(throws(Bytes().c('R').i32(1).str("public").b), "a string without its NUL is refused");
    ok(throws(Bytes().c('D').i32(7).c('N').i16(0).b), "a delete without the old key is refused");
    ok(throws(Bytes().c('I').i32(1).c('N').i16(65535).c('n').b), "a row announcing more columns than its message holds is refused");

    const std::string reply = standby_status_update(0x10, 0x20, 0x30, 999, false);
    ok(reply.size() == 34 && reply[0] == 'r' && reply.substr(1, 8) == Bytes().i64(0x10).b &&
       reply.substr(9, 8) == Bytes().i64(0x20).b && reply.substr(17, 8) == Bytes().i64(0x30).b &&
       reply.substr(25, 8) == Bytes().i64(999).b && reply[33] == 0,
       "the standby status update: written, flushed, applied, time, no reply asked");
}


void test_transaction_assembler() {
    using namespace sicoop::pgoutput;
    auto msg = [](const std::string& bytes) { return decode_message(bytes.data(), bytes.size()); };
    const std::string rel_mov = Bytes().c('R').i32(100).str("public").str("movimentacao_cartao").c('d').i16(2)
                                    .c(1).str("id_movimentacao_cartao").i32(1043).i32(54)
                                    .c(0).str("valor_movimentacao").i32(1700).i32(-1).b;
    const std::string rel_other = Bytes().c('R').i32(200).str("public").str("audit").c('d').i16(1)
                                      .c(1).str("id").i32(23).i32(-1).b;
    auto begin = [](uint64_t lsn, uint32_t xid) { return Bytes().c('B').i64(lsn).i64(1000 + lsn).i32(xid).b; };
    auto commit = [](uint64_t lsn) { return Bytes().c('C').c(0).i64(lsn).i64(lsn + 8).i64(1000 + lsn).b; };
    const std::string ins = Bytes().c('I').i32(100).c('N').i16(2).text("MOV-1").text("9.99").b;
    const std::string upd = Bytes().c('U').i32(100).c('N').i16(2).text("MOV-1").c('u').b;
    const std::string del = Bytes().c('D').i32(100).c('K').i16(2).text("MOV-1").c('n').b;
    const std::string other = Bytes().c('I').i32(200).c('N').i16(1).text("7").b;

    TransactionAssembler a("public", {"associado", "conta", "cartao", "movimentacao_cartao"}, 0x500);
    ok(!a.feed(msg(begin(0x400, 1))) && a.in_transaction(), "a begin opens a transaction");
    a.feed(msg(rel_mov));
    a.feed(msg(ins));
    ok(!a.feed(msg(commit(0x400))) && !a.in_transaction() && a.applied() == 0x500,
       "a transaction committed at or before the applied LSN is dropped whole (no change applied twice)");

    a.feed(msg(begin(0x600, 2)));
    a.feed(msg(rel_other));
    a.feed(msg(ins));
    a.feed(msg(other));
    a.feed(msg(upd));
    a.feed(msg(del));
    std::optional<Transaction> t = a.feed(msg(commit(0x600)));
    ok(t && t->xid == 2 && t->commit_lsn == 0x600 && t->end_lsn == 0x608 && t->commit_time == 1000 + 0x600 &&
       a.applied() == 0x600, "a later transaction comes out whole at its commit, with its LSN and commit time");
    ok(t && t->changes.size() == 3 && t->changes[0].kind == Change::Kind::Insert &&
       t->changes[1].kind == Change::Kind::Update && t->changes[2].kind == Change::Kind::Delete,
       "its changes in order; a table the pipeline does not read is left out");
    ok(t && t->changes[0].table == "movimentacao_cartao" && t->changes[0].columns.size() == 2 &&
       t->changes[0].columns[1] == "valor_movimentacao" && t->changes[0].row[1].value == "9.99",
       "a change names its table and columns");
    ok(t && t->changes[1].row[1].kind == Column::Kind::UnchangedToast && t->changes[2].old_key[0].value == "MOV-1",
       "an unchanged TOAST value stays marked, a delete carries the key");

    a.feed(msg(begin(0x700, 3)));
    a.feed(msg(Bytes().c('T').i32(2).c(0).i32(100).i32(200).b));
    t = a.feed(msg(commit(0x700)));
    ok(t && t->changes.size() == 1 && t->changes[0].kind == Change::Kind::Truncate &&
       t->changes[0].table == "movimentacao_cartao", "a truncate of a table read, and only of those");

    auto refused = [&](const std::vector<std::string>& messages, Lsn applied = 0) {
        TransactionAssembler b("public", {"movimentacao_cartao"}, applied);
        try {
            for (const std::string& m : messages) b.feed(msg(m));
        } catch (const std::runtime_error&) {
            return true;
        }
        return false;
    };
    ok(refused({ins}), "a change outside a transaction is refused");
    ok(refused({commit(0x10)}), "a commit outside a transaction is refused");
    ok(refused({begin(0x10, 1), begin(0x20, 2)}), "a begin inside a transaction is refused");
    ok(refused({begin(0x10, 1), ins}), "a change of a relation never described is refused");
    ok(refused({rel_mov, begin(0x10, 1), Bytes().c('I').i32(100).c('N').i16(1).text("x").b}),
       "a change whose column count is not its relation's is refused");
    ok(refused({Bytes().c('R').i32(100).str("public").str("movimentacao_cartao").c('n').i16(1)
                    .c(0).str("id_movimentacao_cartao").i32(1043).i32(54).b}),
       "a table the pipeline reads without a replica identity key is refused");
    ok(!refused({Bytes().c('R').i32(300).str("public").str("audit").c('n').i16(1).c(0).str("id").i32(23).i32(-1).b}),
       "one it does not read may lack one");
    ok(!refused({Bytes().c('R').i32(100).str("other_schema").str("movimentacao_cartao").c('n').i16(1)
                     .c(0).str("id").i32(23).i32(-1).b}),
       "a table of the same name in another schema is not the source's");
}


void test_fold() {
    using namespace sicoop::pgoutput;
    const std::vector<std::string> mov_cols = {"id_movimentacao_cartao", "descricao_movimentacao"};
    const std::vector<std::string> assoc_cols = {"id_associado", "estado_civil"};
    auto text = [](const std::string& v) { return Column{Column::Kind::Text, v}; };
    const Column toast{Column::Kind::UnchangedToast, ""};
    auto change = [](Change::Kind k, const std::string& table, const std::vector<std::string>& cols, Tuple old_key, Tuple row) {
        return Change{k, table, cols, std::move(old_key), std::move(row)};
    };
    std::vector<Transaction> txs = {
        {1, 0x10, 0x18, 100, {change(Change::Kind::Insert, "movimentacao_cartao", mov_cols, {}, {text("M1"), text("a")}),
                              change(Change::Kind::Insert, "associado", assoc_cols, {}, {text("A1"), text("SOLTEIRO")})}},
        {2, 0x20, 0x28, 200, {change(Change::Kind::Update, "movimentacao_cartao", mov_cols, {}, {text("M1"), toast}),
                              change(Change::Kind::Update, "associado", assoc_cols, {}, {text("A1"), text("CASADO")}),
                              change(Change::Kind::Update, "movimentacao_cartao", mov_cols, {}, {text("M2"), toast})}},
        {3, 0x30, 0x38, 300, {change(Change::Kind::Delete, "movimentacao_cartao", mov_cols, {text("M1"), Column{}}, {}),
                              change(Change::Kind::Update, "movimentacao_cartao", mov_cols, {text("M3"), Column{}},
                                     {text("M4"), text("renamed")})}},
    };
    const std::vector<std::pair<std::string, std::string>> keys = {{"movimentacao_cartao", "id_movimentacao_cartao"},
                                                                   {"associado", "id_associado"}};
    std::vector<TableBatch> b = fold(txs, keys, {"associado"});
    ok(b.size() == 2 && b[0].table == "movimentacao_cartao" && b[1].table == "associado", "one batch per table touched");
    const TableBatch& m = b[0];
    ok(m.last.size() == 4 && m.last[0].key == "M1" && m.last[0].deleted && m.last[0].commit_time == 300,
       "a key inserted, updated then deleted in the batch ends deleted, at the delete's commit");
    ok(m.last[1].key == "M2" && !m.last[1].deleted && m.last[1].row[1].kind == Column::Kind::UnchangedToast,
       "an update of a key first seen in the batch keeps 'unchanged' for the warehouse to fill");
    ok(m.last[2].key == "M3" && m.last[2].deleted && m.last[3].key == "M4" && m.last[3].row[1].value == "renamed",
       "an update that changes the key deletes the old key and writes the new one");
    ok(m.versions.empty(), "no versions are kept for a table not asked for");
    const TableBatch& a = b[1];
    ok(a.last.size() == 1 && a.last[0].row[1].value == "CASADO" && a.last[0].commit_time == 200,
       "a member's last state");
    ok(a.versions.size() == 2 && a.versions[0].row[1].value == "SOLTEIRO" && a.versions[0].commit_time == 100 &&
       a.versions[1].row[1].value == "CASADO" && a.versions[1].commit_time == 200,
       "and every state with the commit time that made it: two changes between runs are two versions");

    std::vector<Transaction> toast_txs = {
        {1, 0x10, 0x18, 100, {change(Change::Kind::Insert, "movimentacao_cartao", mov_cols, {}, {text("M9"), text("long text")})}},
        {2, 0x20, 0x28, 200, {change(Change::Kind::Update, "movimentacao_cartao", mov_cols, {}, {text("M9"), toast})}}};
    std::vector<TableBatch> tb = fold(toast_txs, keys, {});
    ok(tb[0].last[0].row[1].kind == Column::Kind::Text && tb[0].last[0].row[1].value == "long text",
       "an unchanged TOAST value after an earlier state of the batch takes that state's value");

    std::vector<Transaction> trunc = {
        {1, 0x10, 0x18, 100, {change(Change::Kind::Insert, "movimentacao_cartao", mov_cols, {}, {text("M1"), text("a")})}},
        {2, 0x20, 0x28, 200, {Change{Change::Kind::Truncate, "movimentacao_cartao", mov_cols, {}, {}},
                              change(Change::Kind::Insert, "movimentacao_cartao", mov_cols, {}, {text("M5"), text("b")})}}};
    std::vector<TableBatch> t = fold(trunc, keys, {});
    ok(t[0].truncated && t[0].last.size() == 1 && t[0].last[0].key == "M5",
       "a truncate empties the table at that point, and what follows it applies");

    auto fold_throws = [&](const std::vector<Transaction>& x) {
        try {
            fold(x, keys, {});
        } catch (const std::runtime_error&) {
            return true;
        }
        return false;
    };
    ok(fold_throws({{1, 1, 1, 1, {change(Change::Kind::Insert, "movimentacao_cartao", mov_cols, {}, {Column{}, text("a")})}}}),
       "a row without its key is refused");
    ok(fold_throws({{1, 1, 1, 1, {change(Change::Kind::Insert, "conta", {"id_conta"}, {}, {text("C1")})}}}),
       "a table with no key known is refused");
}


// Issue 25: a member changed several times in one batch keeps every state, in commit order, for
// SCD2 (a version each), while the stage takes the last.
void test_earlier_states() {
    using namespace sicoop::pgoutput;
    const std::vector<std::string> cols = {"estado_civil", "id_associado", "nome"};  // the source's order
    auto text = [](const std::string& v) { return Column{Column::Kind::Text, v}; };
    const Column toast{Column::Kind::UnchangedToast, ""};
    auto upd = [&](const std::string& id, const std::string& ec, Column nome) {
        return Change{Change::Kind::Update, "associado", cols, {}, {text(ec), text(id), std::move(nome)}};
    };
    const std::vector<std::pair<std::string, std::string>> keys = {{"associado", "id_associado"}};
    // A1: five updates in five source transactions (the 2nd leaves nome unchanged-TOAST, the 3rd
    // is a delete, the 4th an insert again); A2: one update; A3: an update that is 'u' first.
    std::vector<Transaction> txs = {
        {1, 0x10, 0x18, 100, {upd("A1", "SOLTEIRO", text("Ana Silva")), upd("A3", "CASADO", toast)}},
        {2, 0x20, 0x28, 200, {upd("A1", "CASADO", toast), upd("A2", "VIUVO", text("Bia"))}},
        {3, 0x30, 0x38, 300, {Change{Change::Kind::Delete, "associado", cols, {Column{}, text("A1"), Column{}}, {}}}},
        {4, 0x40, 0x48, 400, {Change{Change::Kind::Insert, "associado", cols, {}, {text("bad\tvalue"), text("A1"), text("Ana")}},
                              upd("A3", "SOLTEIRO", toast)}},
        {5, 0x50, 0x58, 500, {upd("A1", "DIVORCIADO", text("Ana Souza"))}},
    };
    const std::vector<TableBatch> b = fold(txs, keys, {"associado"});
    ok(b.size() == 1 && b[0].versions.size() == 8 && b[0].last.size() == 3, "every state kept, one last per key");
    const std::vector<std::string> stage = {"id_associado", "nome", "estado_civil"};
    const EarlierStates e = earlier_states(b[0], stage, "id_associado", [](Timestamp t) { return "T" + std::to_string(t); });
    ok(e.rows == 5 && e.rounds == 4, "every state but each key's last; rounds: the most earlier states of one key (A1: 4)");
    ok(e.copy_text ==
           "1\t1\tT100\tf\t{}\tA1\tAna Silva\tSOLTEIRO\n"
           "2\t1\tT100\tf\t{nome}\tA3\t\\N\tCASADO\n"
           "3\t2\tT200\tf\t{}\tA1\tAna Silva\tCASADO\n"
           "4\t3\tT300\tt\t{}\tA1\t\\N\t\\N\n"
           "5\t4\tT400\tf\t{}\tA1\tAna\tbad\\tvalue\n",
       "in commit order, numbered per key, at each commit time; an unchanged TOAST value an earlier state gave is "
       "that state's, one none gave is left to raw (keep_from_raw); a delete is its key alone; values escaped");
    ok(EarlierStates::leading_columns().size() == 5, "the table's leading columns");
    const EarlierStates none = earlier_states(fold({txs[1]}, keys, {"associado"})[0], stage, "id_associado",
                                              [](Timestamp t) { return std::to_string(t); });
    ok(none.rows == 0 && none.rounds == 0 && none.copy_text.empty(), "one state per key: nothing earlier");
    std::vector<Transaction> trunc = {txs[0], {6, 0x60, 0x68, 600, {Change{Change::Kind::Truncate, "associado", cols, {}, {}},
                                                                   upd("A1", "CASADO", text("Ana"))}}};
    ok(earlier_states(fold(trunc, keys, {"associado"})[0], stage, "id_associado", [](Timestamp) { return ""; }).rows == 0,
       "a truncate forgets the states before it (the table starts over)");
    // Several changes of a key in one source transaction are one state: its last (a delete and
    // an insert again are not a version closed and opened).
    std::vector<Transaction> same_tx = {
        {1, 0x10, 0x18, 100, {upd("A1", "SOLTEIRO", text("Ana")),
                              Change{Change::Kind::Delete, "associado", cols, {Column{}, text("A1"), Column{}}, {}},
                              Change{Change::Kind::Insert, "associado", cols, {}, {text("CASADO"), text("A1"), text("Ana")}}}},
        {2, 0x20, 0x28, 200, {upd("A1", "VIUVO", text("Ana")), upd("A1", "DIVORCIADO", text("Ana"))}}};
    const EarlierStates one_each = earlier_states(fold(same_tx, keys, {"associado"})[0], stage, "id_associado",
                                                  [](Timestamp t) { return std::to_string(t); });
    ok(one_each.rows == 1 && one_each.rounds == 1 && one_each.copy_text == "1\t1\t100\tf\t{}\tA1\tAna\tCASADO\n",
       "one state per key per source transaction: its last (the batch's last, DIVORCIADO, is the stage's)");
}

void test_stage_batch() {
    using namespace sicoop::pgoutput;
    auto text = [](const std::string& v) { return Column{Column::Kind::Text, v}; };
    ok(copy_text_value(text("a\\b\tc\nd\re")) == "a\\\\b\\tc\\nd\\re" && copy_text_value(Column{}) == "\\N" &&
       copy_text_value(Column{Column::Kind::UnchangedToast, ""}) == "\\N",
       "COPY text: backslash, tab, newline and return escaped; NULL and unchanged as \\N");
    TableBatch b;
    b.table = "movimentacao_cartao";
    // The source's own column order, and a column the pipeline does not read.
    b.columns = {"valor_movimentacao", "id_movimentacao_cartao", "extra", "descricao_movimentacao"};
    b.last = {KeyState{"M1", false, {text("9.99"), text("M1"), text("x"), text("café\tbar")}, 1, 1},
              KeyState{"M2", true, {}, 2, 2},
              KeyState{"M3", false, {Column{}, text("M3"), text("y"), Column{Column::Kind::UnchangedToast, ""}}, 3, 3}};
    StageBatch sb = stage_batch(b, {"id_movimentacao_cartao", "descricao_movimentacao", "valor_movimentacao"});
    ok(sb.rows == 2 && sb.copy_text == "M1\tcafé\\tbar\t9.99\nM3\t\\N\t\\N\n",
       "rows in the stage's column order, the source's extra column left out");
    ok(sb.deleted_keys == std::vector<std::string>{"M2"}, "deleted keys apart");
    ok(sb.fill_from_raw.size() == 1 && sb.fill_from_raw[0].first == "M3" &&
       sb.fill_from_raw[0].second == "descricao_movimentacao", "an unchanged TOAST value is to be taken from raw");
    bool refused = false;
    try {
        stage_batch(b, {"id_movimentacao_cartao", "data_movimentacao"});
    } catch (const std::runtime_error& e) {
        refused = std::string(e.what()).find("data_movimentacao") != std::string::npos;
    }
    ok(refused, "a column the source no longer sends stops the stream, naming it");
}

// A source transaction too big for memory (issue 25): the assembler hands it out in parts, and
// parts folded alone, each replacing what earlier parts staged for a key, leave the stage as
// fold() of the whole transaction does.
void test_large_transaction_parts() {
    using namespace sicoop::pgoutput;
    auto msg = [](const std::string& bytes) { return decode_message(bytes.data(), bytes.size()); };
    const std::string rel_mov = Bytes().c('R').i32(100).str("public").str("movimentacao_cartao").c('d').i16(2)
                                    .c(1).str("id_movimentacao_cartao").i32(1043).i32(54)
                                    .c(0).str("valor_movimentacao").i32(1700).i32(-1).b;
    auto begin = [](uint64_t lsn, uint32_t xid) { return Bytes().c('B').i64(lsn).i64(1000 + lsn).i32(xid).b; };
    auto commit = [](uint64_t lsn) { return Bytes().c('C').c(0).i64(lsn).i64(lsn + 8).i64(1000 + lsn).b; };
    auto ins = [](const std::string& key, const std::string& v) { return Bytes().c('I').i32(100).c('N').i16(2).text(key).text(v).b; };

    TransactionAssembler a("public", {"movimentacao_cartao"}, 0x500);
    a.feed(msg(rel_mov));
    a.feed(msg(begin(0x400, 1)));
    for (int i = 0; i < 100; ++i) a.feed(msg(ins("MOV-" + std::to_string(i), "1.00")));
    ok(a.open_bytes() == 0 && a.take_part().changes.empty() && !a.feed(msg(commit(0x400))),
       "a transaction already applied keeps nothing however big it is (its Begin says where it commits)");

    TransactionAssembler at("public", {"movimentacao_cartao"}, 0x700);
    at.feed(msg(rel_mov));
    at.feed(msg(begin(0x700, 9)));
    at.feed(msg(ins("MOV-AT", "1.00")));
    ok(at.open_bytes() > 0 && at.feed(msg(commit(0x700))).has_value(),
       "a transaction committing exactly at the applied position is kept: the warehouse stores the end of a commit "
       "it applied, or where a keepalive said everything before was sent (a restart lost a large transaction so)");

    a.feed(msg(begin(0x600, 2)));
    a.feed(msg(ins("MOV-1", "1.00")));
    const size_t one = a.open_bytes();
    a.feed(msg(ins("MOV-2", std::string(1000, 'x'))));
    ok(one > 0 && a.open_bytes() >= 2 * one + 1000, "open_bytes() counts what the changes hold, long values too");
    Transaction part = a.take_part();
    ok(part.xid == 2 && part.commit_lsn == 0x600 && part.commit_time == 1000 + 0x600 && part.end_lsn == 0 &&
       part.changes.size() == 2 && part.bytes > 0 && a.open_bytes() == 0 && a.in_transaction(),
       "take_part(): the changes so far, with the commit LSN and time the Begin gave; the transaction stays open");
    a.feed(msg(ins("MOV-3", "3.00")));
    std::optional<Transaction> rest = a.feed(msg(commit(0x600)));
    ok(rest && rest->changes.size() == 1 && rest->changes[0].row[0].value == "MOV-3" && rest->end_lsn == 0x608 &&
       rest->bytes > 0 && a.applied() == 0x600,
       "its commit returns what came after the last part, with the end LSN");

    // Parts of every size against the whole: inserts, updates leaving a TOASTed value out ('u'),
    // deletes, a key changed, a truncate in the middle, and a column the pipeline does not read.
    const std::vector<std::string> cols = {"id_movimentacao_cartao", "extra", "descricao_movimentacao", "valor_movimentacao"};
    const std::vector<std::string> stage_cols = {"id_movimentacao_cartao", "descricao_movimentacao", "valor_movimentacao"};
    const std::vector<std::pair<std::string, std::string>> keys = {{"movimentacao_cartao", "id_movimentacao_cartao"}};
    auto text = [](const std::string& v) { return Column{Column::Kind::Text, v}; };
    const Column u{Column::Kind::UnchangedToast, ""};
    auto row = [&](const std::string& k, Column d, Column v) { return Tuple{text(k), text("x"), std::move(d), std::move(v)}; };
    auto change = [&](Change::Kind kind, Tuple old_key, Tuple r) {
        return Change{kind, "movimentacao_cartao", cols, std::move(old_key), std::move(r)};
    };
    using K = Change::Kind;
    const std::vector<Change> changes = {
        change(K::Insert, {}, row("M1", text("long one"), text("1"))),
        change(K::Update, {}, row("M0", u, text("2"))),            // first seen as an update: 'u' is the warehouse's
        change(K::Update, {}, row("M1", u, text("3"))),            // takes M1's description from the insert
        change(K::Insert, {}, row("M2", text("two"), Column{})),
        change(K::Delete, {text("M2"), Column{}, Column{}, Column{}}, {}),
        change(K::Update, {}, row("M0", u, text("4"))),            // still the warehouse's
        change(K::Update, {text("M1"), Column{}, Column{}, Column{}}, row("M9", text("moved"), text("5"))),
        change(K::Insert, {}, row("M2", text("again"), text("6"))),
        change(K::Update, {}, row("M9", u, text("7"))),
        change(K::Truncate, {}, {}),
        change(K::Insert, {}, row("M5", text("after"), text("8"))),
        change(K::Update, {}, row("M5", u, text("9"))),
        change(K::Update, {}, row("M6", u, text("10"))),
        change(K::Insert, {}, row("M7", text("seven"), text("11"))),
        change(K::Delete, {text("M6"), Column{}, Column{}, Column{}}, {}),
        change(K::Update, {}, row("M7", u, Column{})),
        change(K::Update, {}, row("M7", u, text("12"))),
    };
    // The stage as the boundary leaves it: per key, deleted or its values and columns from raw.
    struct Stage {
        bool truncated = false;
        std::map<std::string, StagedState> keys;
    };
    auto lay = [&](Stage& stage, const TableBatch& b) {
        const StageBatch sb = stage_batch(b, stage_cols);
        for (const KeyState& s : b.last) {
            StagedState st;
            st.key = s.key;
            st.deleted = s.deleted;
            if (!s.deleted)
                for (const std::string& c : stage_cols) {
                    const size_t at = static_cast<size_t>(std::find(cols.begin(), cols.end(), c) - cols.begin());
                    const Column& v = s.row[at];
                    st.values.push_back(v.kind == Column::Kind::Text ? std::optional<std::string>(v.value) : std::nullopt);
                }
            for (const auto& [k, c] : sb.fill_from_raw)
                if (k == s.key) st.keep_from_raw.push_back(c);
            stage.keys[s.key] = st;
        }
    };
    auto same = [](const Stage& x, const Stage& y) {
        if (x.truncated != y.truncated || x.keys.size() != y.keys.size()) return false;
        for (const auto& [k, s] : x.keys) {
            auto f = y.keys.find(k);
            if (f == y.keys.end() || f->second.deleted != s.deleted || f->second.values != s.values ||
                f->second.keep_from_raw != s.keep_from_raw)
                return false;
        }
        return true;
    };
    Stage whole;
    for (const TableBatch& b : fold({Transaction{7, 0x10, 0x18, 100, changes}}, keys, {})) {
        whole.truncated = b.truncated;
        lay(whole, b);
    }
    ok(whole.truncated && whole.keys.size() == 3 && whole.keys["M5"].values[1] == std::optional<std::string>("after") &&
       whole.keys["M6"].deleted && whole.keys["M7"].values[1] == std::optional<std::string>("seven"),
       "(the whole transaction folded: what the parts must give)");
    bool all_same = true;
    for (size_t size = 1; size <= changes.size(); ++size) {
        Stage parted;
        for (size_t from = 0; from < changes.size(); from += size) {
            Transaction part{7, 0x10, 0, 100, {}};
            for (size_t i = from; i < std::min(changes.size(), from + size); ++i) part.changes.push_back(changes[i]);
            for (TableBatch& b : fold({part}, keys, {})) {
                if (b.truncated) {
                    parted.keys.clear();
                    parted.truncated = true;
                }
                std::vector<StagedState> earlier;
                for (const std::string& k : keys_with_unchanged(b))
                    if (parted.keys.count(k)) earlier.push_back(parted.keys[k]);
                carry_staged(b, stage_cols, earlier);
                lay(parted, b);
            }
        }
        if (!same(parted, whole)) {
            all_same = false;
            std::printf("# parts of %zu changes differ from the whole transaction\n", size);
        }
    }
    ok(all_same, "staged in parts of any size (each key's later state replacing its earlier one, 'u' carried over, "
                 "a truncate discarding what came before), the stage holds what the whole transaction gives");
    TableBatch tb;
    tb.columns = cols;
    tb.last = {KeyState{"A", false, row("A", u, text("1")), 1, 1}, KeyState{"B", true, {}, 1, 1},
               KeyState{"C", false, row("C", text("c"), text("1")), 1, 1}};
    ok(keys_with_unchanged(tb) == std::vector<std::string>{"A"}, "keys_with_unchanged: only states with a 'u' value");
    carry_staged(tb, stage_cols, {StagedState{"A", false, {std::string("A"), std::nullopt, std::string("0")}, {}}});
    ok(tb.last[0].row[2].kind == Column::Kind::Null, "carry_staged: an earlier NULL is carried as NULL");
}

void test_values() {
    using sicoop::without_values;
    ok(without_values("invalid input syntax for type numeric: \"CPF 123.456.789-09 senha hunter2\"") ==
           "invalid input syntax for type numeric: \"...\"",
       "without_values: the value PostgreSQL quotes is taken out");
    ok(without_values("date/time field value out of range: \"2025-02-30\"") == "date/time field value out of range: \"...\"",
       "without_values: an impossible date too");
    ok(without_values("cut \"hunter2") == "cut \"...\"", "without_values: an unclosed quote hides the rest");
    ok(without_values("numeric field overflow") == "numeric field overflow", "without_values: a message without quotes stays");
    const auto v = sicoop::parse_copy_line("K-1\t\\\\N\t\\N\ta\\tb\\\\c\\nd");
    ok(v.size() == 4 && v[0] == std::optional<std::string>("K-1") && v[1] == std::optional<std::string>("\\N") && !v[2] &&
           v[3] == std::optional<std::string>("a\tb\\c\nd"),
       "parse_copy_line: fields at tabs, \\N is NULL, escapes read back (an escaped backslash before N is text)");
    const auto w = sicoop::parse_copy_line("");
    ok(w.size() == 1 && w[0] == std::optional<std::string>(""), "parse_copy_line: an empty line is one empty field");
    ok(sicoop::split_copy_fields("a\\tb\tc").size() == 2, "split_copy_fields: an escaped tab does not split");
    // What stage_batch writes, read back.
    const sicoop::pgoutput::Column col{sicoop::pgoutput::Column::Kind::Text, "x\ty\\z\n"};
    ok(sicoop::parse_copy_line(sicoop::pgoutput::copy_text_value(col))[0] == std::optional<std::string>(col.value),
       "parse_copy_line reads back what copy_text_value writes");
}

// The stream worker's batch policy (src/steps/stream_policy.cpp), with the settings' defaults.
void test_stream_policy() {
    namespace sp = sicoop::stream_policy;
    const sp::Limits l = sp::limits(250, 10000, 64 * 1024, 60000);
    ok(l.part_bytes == 16u * 1024 * 1024 && l.batch_changes == 10000, "stream policy: a part is a quarter of stream_work_mem");
    const sp::Micros t0 = 1000000000;
    ok(!sp::due(t0 + 249 * sp::kMicrosPerMilli, 1, 10, t0, l), "stream policy: a small young batch is not due");
    ok(sp::due(t0 + 250 * sp::kMicrosPerMilli, 1, 10, t0, l), "stream policy: due stream_interval after its first change");
    ok(sp::due(t0, 10000, 10, t0, l), "stream policy: due at stream_batch_changes changes");
    ok(sp::due(t0, 1, l.part_bytes, t0, l), "stream policy: due at a part's bytes");
    ok(!sp::reading_paused(99999, 10, l) && sp::reading_paused(100000, 10, l) && sp::reading_paused(1, l.part_bytes, l),
       "stream policy: a held-back batch stops reading at 10x stream_batch_changes or a part");
    ok(sp::wait_ms(t0, false, 0, l) == sp::kIdleWaitMs, "stream policy: nothing gathering waits a second");
    ok(sp::wait_ms(t0 + 100 * sp::kMicrosPerMilli, true, t0, l) == 151, "stream policy: a gathering batch waits until due");
    ok(sp::wait_ms(t0 + 900 * sp::kMicrosPerMilli, true, t0, l) == 1, "stream policy: an overdue batch waits at least 1 ms");
    const sp::Silence quiet = sp::silence(t0 + 29999 * sp::kMicrosPerMilli, t0, false, l);
    ok(!quiet.ask_reply && !quiet.stalled, "stream policy: silence under half the receive timeout is fine");
    const sp::Silence half = sp::silence(t0 + 30000 * sp::kMicrosPerMilli, t0, false, l);
    ok(half.ask_reply && !half.stalled, "stream policy: at half the receive timeout a reply is asked for");
    ok(!sp::silence(t0 + 30000 * sp::kMicrosPerMilli, t0, true, l).ask_reply, "stream policy: a reply is asked for once");
    ok(sp::silence(t0 + 60000 * sp::kMicrosPerMilli, t0, true, l).stalled, "stream policy: the whole receive timeout stalls");
    const sp::Limits no_timeout = sp::limits(250, 10000, 64 * 1024, 0);
    ok(!sp::silence(t0 + 3600 * sp::kMicrosPerSecond, t0, false, no_timeout).stalled,
       "stream policy: no receive timeout, no stall");
    ok(!sp::too_many_states({{"1", 31}}, {{"1", 1}}) && sp::too_many_states({{"1", 32}}, {{"1", 1}}) &&
           !sp::too_many_states({{"1", 32}}, {{"2", 1}}),
       "stream policy: a member's 33rd state in a batch applies the batch first");
    ok(!sp::big_batch(l.part_bytes / 4 - 1, l) && sp::big_batch(l.part_bytes / 4, l),
       "stream policy: a batch of a quarter part gives its memory back");
}

// --- issue 26 (helper T): the binary COPY filter's header and malformed rows, pinned before
// binary_rows() was cut into its header, its row end and its masking.
void test_copy_filter_binary_edges() {
    using sicoop::CopyMask;
    const std::vector<CopyMask> masks = {CopyMask::CardNumber};
    const std::string card = binary_row({std::string("4111111111111111")});
    const std::string masked = binary_row({std::string("************1111")});
    const std::string extended = std::string("PGCOPY\n\377\r\n\0", 11) + be32s(0) + be32s(4) + "abcd";
    bool same = true;
    for (size_t piece : {size_t{1}, size_t{3}, size_t{20}, size_t{64}}) {
        sicoop::CopyFilter f(true, masks);
        same = same && feed_in_pieces(f, extended + card + be16s(-1), piece) == extended + masked + be16s(-1);
    }
    ok(same, "binary: a header's extension area is passed as it is, whole or in pieces, and the rows after it masked");
    sicoop::CopyFilter not_binary(true, masks);
    const std::string junk = std::string(19, 'x') + card;
    ok(feed_in_pieces(not_binary, junk, junk.size()) == junk,
       "binary: data without the COPY signature is passed as it is (COPY FROM refuses it, nothing is written)");
    sicoop::CopyFilter bad(true, masks);
    const std::string malformed = binary_header() + be16s(1) + be32s(0xFFFFFFFE) + card;
    ok(feed_in_pieces(bad, malformed, malformed.size()) == malformed,
       "binary: a field length below -1 ends the filtering (COPY FROM refuses the data, nothing is written)");
}

// A full run's comparison summed in memory: binary COPY rows (int4 bucket, int8 hash) read in
// pieces cut anywhere, and the buckets where the source and raw differ.
std::string be(uint64_t v, int bytes) {
    std::string out;
    for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
    return out;
}
std::string copy_header(uint32_t extension = 0) {
    return std::string("PGCOPY\n\xff\r\n\0", 11) + be(0, 4) + be(extension, 4) + std::string(extension, 'x');
}
std::string hash_row(int32_t bucket, uint64_t hash) {
    return be(2, 2) + be(4, 4) + be(static_cast<uint32_t>(bucket), 4) + be(8, 4) + be(hash, 8);
}
const std::string kCopyTrailer = be(0xffff, 2);

void test_row_hash_delta() {
    using Status = sicoop::RowHashReader::Status;
    const std::string stream =
        copy_header(3) + hash_row(5, 0xdeadbeefcafef00dULL) + hash_row(7, 1) + hash_row(-1, 42) + hash_row(7, ~0ULL) + kCopyTrailer;
    bool every_cut = true;
    for (size_t piece = 1; piece <= stream.size(); ++piece) {
        sicoop::RowHashDelta delta(3);
        sicoop::RowHashReader reader;
        Status last = Status::More;
        for (size_t at = 0; at < stream.size(); at += piece)
            last = reader.feed(stream.data() + at, std::min(piece, stream.size() - at), delta);
        delta.add_raw(5, 0xdeadbeefcafef00dULL);  // raw holds bucket 5 as the source does
        delta.add_raw(7, 1);                      // bucket 7 lacks a row
        every_cut &= last == Status::Ended && reader.ended() && reader.rows() == 4 &&
                     delta.differing() == std::vector<int32_t>{-1, 7};
    }
    ok(every_cut, "row hashes are read whole whatever the pieces they come in; the buckets that differ are found");

    sicoop::RowHashDelta same(4);
    ok(same.add_source(3, 10) && same.add_source(3, ~0ULL) && same.add_raw(3, 9) && same.add_raw(3, 0) &&
           same.differing().empty(),
       "a bucket whose hash sums agree (modulo 2^64) does not differ");
    sicoop::RowHashDelta moved(4);
    moved.add_source(2, 10);
    moved.add_raw(2, 11);
    sicoop::RowHashDelta doubled(4);  // the source holds a row twice, raw once
    doubled.add_source(2, 7);
    doubled.add_source(2, 7);
    doubled.add_raw(2, 7);
    sicoop::RowHashDelta null_key(4);
    null_key.add_source(-1, 0);
    ok(moved.differing() == std::vector<int32_t>{2} && doubled.differing() == std::vector<int32_t>{2} &&
           null_key.differing() == std::vector<int32_t>{-1} && !null_key.add_raw(-1, 0),
       "a bucket differs by its hash sum; a row twice at the source differs; rows with a NULL key always do, and "
       "raw has none");
    ok(!moved.add_source(16, 1) && !moved.add_source(-2, 1) && !moved.add_raw(1 << 20, 1),
       "a bucket out of range is refused");

    auto status_of = [](const std::string& bytes) {
        sicoop::RowHashDelta delta(3);
        sicoop::RowHashReader reader;
        return reader.feed(bytes.data(), bytes.size(), delta);
    };
    const std::string null_hash = be(2, 2) + be(4, 4) + be(1, 4) + be(0xffffffff, 4);
    const std::string three_fields = be(3, 2) + be(4, 4) + be(1, 4) + be(8, 4) + be(1, 8) + be(4, 4) + be(1, 4);
    const std::string numeric_hash = be(2, 2) + be(4, 4) + be(1, 4) + be(12, 4) + std::string(12, '\0');
    ok(status_of(std::string("PGCOPY\n\xff\r\n\1", 11) + be(0, 8) + kCopyTrailer) == Status::Malformed &&
           status_of(copy_header() + null_hash + hash_row(1, 1)) == Status::Malformed &&
           status_of(copy_header() + three_fields) == Status::Malformed &&
           status_of(copy_header() + numeric_hash) == Status::Malformed &&
           status_of(copy_header() + hash_row(8, 1) + kCopyTrailer) == Status::Malformed &&
           status_of(copy_header() + kCopyTrailer + hash_row(1, 1)) == Status::Malformed,
       "anything else is refused: a wrong signature, a NULL, another field count or type, a bucket out of range, "
       "bytes after the trailer");
    ok(status_of(copy_header() + hash_row(1, 1)) == Status::More && status_of(copy_header()) == Status::More &&
           status_of(copy_header() + kCopyTrailer) == Status::Ended,
       "a stream without its trailer has not ended");
}

int main() {
    test_row_hash_delta();
    test_pgoutput();
    test_transaction_assembler();
    test_fold();
    test_earlier_states();
    test_stage_batch();
    test_large_transaction_parts();
    test_pipeline_order();
    test_statements_use_only_run_parameters();
    test_raw_plans();
    test_citus_plans();
    test_downstream_plans();
    test_stream_plans();
    test_scd2_relabels_before_comparing();
    test_scd2_replays_earlier_states();
    test_card_number_never_passes_raw();
    test_timings_json();
    test_collapse_whitespace();
    test_redact_card_numbers();
    test_redact_separators();
    test_redact_times_dates_amounts();
    test_redact_unicode_digits();
    test_redact_invisible_characters();
    test_redact_invalid_utf8();
    test_contains_card_number();
    test_mask_card_and_masked_numbers();
    test_rule_prefilters();
    test_copy_masks();
    test_copy_filter_text();
    test_copy_filter_binary();
    test_strip_format_characters();
    test_is_plain_file_name();
    test_merge_sql_shape();
    test_counts();
    test_source_check();
    test_remote_quoting();
    test_remote_rows_asked();
    test_remote_copies();
    test_fill();
    test_no_placeholder_left();
    test_source_model();
    test_raw_whole_without_window();
    test_values();
    test_stream_policy();
    test_copy_filter_binary_edges();
    std::printf("1..%d\n", tests_run);
    return tests_failed == 0 ? 0 : 1;
}
