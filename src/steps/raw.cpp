// Step load_raw: the four source tables, as they are, into raw_*.
//
// Every table streams from the source with COPY (bulk path, src/bulk_copy.cpp):
//   - into an empty raw table (a first load), straight into raw_* at COPY speed;
//   - otherwise into its unlogged stage_* table, then merged into raw_*: new rows inserted,
//     changed rows updated (and stamped with the run id, which later steps follow), rows gone
//     from the source deleted with a tombstone, identical rows left alone.
// associado, conta and cartao are read incrementally by the source rows' xmin: the rows
// written since the snapshot of the previous copy (sicoop.source_sync); their deletions are
// found by comparing per-bucket checksums of the keys, then reading only the keys of the
// buckets that differ. (The source tables must be tables, not views: xmin is a system column.)
// movimentacao_cartao, the big one, is read incrementally: only the source rows whose
// data_movimentacao is at or after the window start ($5: the watermark, the latest movement
// time the previous copy saw in the source, minus the lookback sicoop.lookback, default 3 days). Rows of that window missing from
// the source's answer are looked up again by id before being deleted, so a movement whose
// time was edited out of the window is updated, not lost. Changes older than the window (a
// late insert or an edit of an old movement) and deletions older than it are caught by a full
// run, CALL sicoop.run_pipeline(full => true), which compares the whole table.
// The source needs an index on movimentacao_cartao(data_movimentacao) for the window query.
#include "steps/sql_patterns.hpp"
#include "steps/step.hpp"

namespace sicoop {

const std::vector<SourceTable>& source_tables() {
    static const std::vector<SourceTable> tables = {
        {"associado", "id_associado",
         {{"id_associado", "varchar(50)"}, {"nome", "varchar(255)"}, {"data_nascimento", "date"},
          {"estado_civil", "varchar(50)"}, {"escolaridade", "varchar(100)"}}},
        {"conta", "id_conta",
         {{"id_conta", "varchar(50)"}, {"id_associado", "varchar(50)"}, {"tipo_conta", "varchar(50)"},
          {"agencia", "varchar(20)"}, {"situacao_conta", "varchar(50)"}, {"data_criacao_conta", "date"}}},
        {"cartao", "id_cartao",
         {{"id_cartao", "varchar(50)"}, {"id_conta", "varchar(50)"}, {"numero_cartao", "varchar(50)"},
          {"nome_impresso_cartao", "varchar(150)"}, {"bandeira_cartao", "varchar(50)"},
          {"tipo_cartao", "varchar(50)"}, {"data_emissao", "date"}}},
        {"movimentacao_cartao", "id_movimentacao_cartao",
         {{"id_movimentacao_cartao", "varchar(50)"}, {"id_cartao", "varchar(50)"},
          {"descricao_movimentacao", "varchar(150)"}, {"valor_movimentacao", "numeric(10,2)"},
          {"data_movimentacao", "timestamp"}}},
    };
    return tables;
}

std::vector<std::string> missing_source_columns(
    const std::vector<std::pair<std::string, std::string>>& present) {
    auto has = [&](const std::string& table, const std::string& column) {
        for (const auto& [t, c] : present)
            if (t == table && (column.empty() || c == column)) return true;
        return false;
    };
    std::vector<std::string> missing;
    for (const SourceTable& t : source_tables()) {
        if (!has(t.name, "")) {
            missing.push_back("table " + t.name + " is missing");
            continue;
        }
        for (const auto& col : t.columns)
            if (!has(t.name, col.first)) missing.push_back("column " + t.name + "." + col.first + " is missing");
    }
    return missing;
}

namespace {

// What raw keeps of each non-key source column (s: the stage row). All of it as it is, but
// card numbers, which raw keeps masked to their last four characters, never in clear (PCI DSS
// 3); a change shows in the masked number, which is all any later layer holds. (A keyed hash
// of the whole number beside it would let whoever owns raw -- and so reads the key and feeds
// the stage -- recover numbers from their last four digits by trying candidates.) Tables with
// such columns go through the stage, which the step empties in the same transaction.
std::vector<Column> raw_columns(const SourceTable& t) {
    std::vector<Column> columns;
    for (const auto& [col, type] : t.columns) {
        if (col == t.key) continue;
        if (col == "numero_cartao") {
            columns.push_back({"numero_cartao", "sicoop.mask_card(s.numero_cartao)"});
        } else {
            columns.push_back({col, "s." + col});
        }
    }
    return columns;
}

bool kept_as_is(const SourceTable& t) {
    for (const auto& [col, type] : t.columns)
        if (col == "numero_cartao") return false;
    return true;
}

BulkCopy copy_of(const SourceTable& t, const std::string& target) {
    BulkCopy copy;
    copy.source_table = "src_" + t.name;
    copy.target_table = target;
    for (const auto& [col, type] : t.columns) {
        copy.columns.push_back(col);
        copy.types.push_back(type);
    }
    return copy;
}

}  // namespace

std::vector<Action> plan_raw(const RunContext& ctx) {
    std::vector<Action> actions;
    for (const SourceTable& t : source_tables()) {
        const std::string raw_table = "raw_" + t.name;
        const std::string raw = "sicoop." + raw_table;
        const std::string stage = "sicoop.stage_" + t.name;
        const bool movements = t.name == "movimentacao_cartao";
        const std::vector<Column> columns = raw_columns(t);
        const std::vector<Column> stamps = {{"run_id", "$2"}, {"loaded_at", "now()"}};

        if (ctx.is_empty(raw_table) && !kept_as_is(t)) {
            // First load through the stage, so that what raw must not keep never lands there.
            BulkCopy copy = copy_of(t, "stage_" + t.name);
            copy.capture_snapshot = true;
            actions.push_back(bulk_action(copy, t.name));
            actions.push_back(dml_action(insert_all_sql(raw, t.key, columns, stamps, stage + " s"), "rows_inserted", t.name));
            actions.push_back(sql_action("SELECT sicoop._summarize('" + raw + "')", t.name));
            continue;
        }
        if (ctx.is_empty(raw_table)) {
            // First load: straight into raw, the rows stamped with the run id on the way.
            BulkCopy copy = copy_of(t, raw_table);
            copy.truncate_first = false;
            copy.rows_are_inserts = true;
            copy.stamp_run_id = true;
            copy.capture_snapshot = true;
            if (movements) copy.watermark_column = "data_movimentacao";
            actions.push_back(bulk_action(copy, t.name));
            actions.push_back(sql_action("SELECT sicoop._summarize('" + raw + "')", t.name));
            continue;
        }

        const std::string merge = merge_changed_sql(raw, t.key, columns, stamps, stage + " s");
        const std::string not_in_stage = "NOT EXISTS (SELECT 1 FROM " + stage + " s WHERE s." + t.key + " = r." + t.key + ")";

        if (ctx.full) {
            // Everything, compared whole.
            BulkCopy copy = copy_of(t, "stage_" + t.name);
            copy.capture_snapshot = true;
            if (movements) copy.watermark_column = "data_movimentacao";
            actions.push_back(bulk_action(copy, t.name));
            actions.push_back(sql_action("ANALYZE " + stage, t.name));
            actions.push_back(sql_action(merge, t.name));
            actions.push_back(sql_action(delete_with_tombstones_sql(t.name, t.key, not_in_stage), t.name));
        } else if (movements) {
            // The window after the watermark (all of it when there is none yet).
            BulkCopy copy = copy_of(t, "stage_" + t.name);
            copy.capture_snapshot = true;
            copy.watermark_column = "data_movimentacao";
            if (ctx.has_window) {
                copy.rows = BulkCopy::Rows::Window;
                copy.window_column = "data_movimentacao";
            }
            actions.push_back(bulk_action(copy, t.name));
            const std::string missing = (ctx.has_window ? "r.data_movimentacao >= $5 AND " : "") + not_in_stage;
            if (ctx.has_window) {
                // Rows of the window the source did not return: fetch them by id, in case their
                // time moved out of the window; what still is not found was deleted.
                BulkCopy recheck = copy_of(t, "stage_" + t.name);
                recheck.truncate_first = false;
                recheck.rows = BulkCopy::Rows::Keys;
                recheck.key_column = t.key;
                recheck.keys_query = "SELECT array_agg(r." + t.key + "::text) FROM " + raw + " r WHERE " + missing;
                actions.push_back(bulk_action(recheck, t.name));
            }
            actions.push_back(sql_action("ANALYZE " + stage, t.name));
            actions.push_back(sql_action(merge, t.name));
            actions.push_back(sql_action(delete_with_tombstones_sql(t.name, t.key, missing), t.name));
        } else {
            // Rows written in the source since the last copy's snapshot (by their xmin)...
            BulkCopy changed = copy_of(t, "stage_" + t.name);
            changed.rows = BulkCopy::Rows::ChangedSinceSnapshot;
            changed.capture_snapshot = true;
            actions.push_back(bulk_action(changed, t.name));
            actions.push_back(sql_action("ANALYZE " + stage, t.name));
            actions.push_back(sql_action(merge, t.name));
            // ...and deletions: key checksums per bucket on both sides; only the keys of the
            // buckets that differ are read, and raw keys missing from them were deleted.
            BulkCopy checksums;
            checksums.source_table = "src_" + t.name;
            checksums.target_table = "stage_key_checksum";
            checksums.columns = {"bucket", "keys", "key_hash_sum"};
            checksums.rows = BulkCopy::Rows::KeyChecksums;
            checksums.key_column = t.key;
            actions.push_back(bulk_action(checksums, t.name));
            actions.push_back(sql_action("TRUNCATE sicoop.stage_bucket", t.name));
            actions.push_back(sql_action(
                "INSERT INTO sicoop.stage_bucket (bucket)\n"
                "SELECT bucket FROM sicoop.stage_key_checksum s\n"
                "FULL JOIN (SELECT " + key_bucket_sql("r." + t.key) + " AS bucket, count(*) AS keys,\n"
                "                  sum(" + key_hash_sql("r." + t.key) + ")::numeric AS key_hash_sum\n"
                "           FROM " + raw + " r GROUP BY 1) l USING (bucket)\n"
                "WHERE (s.keys, s.key_hash_sum) IS DISTINCT FROM (l.keys, l.key_hash_sum)", t.name));
            BulkCopy keys;
            keys.source_table = "src_" + t.name;
            keys.target_table = "stage_key";
            keys.columns = {"record_id"};
            keys.rows = BulkCopy::Rows::KeysInBuckets;
            keys.key_column = t.key;
            keys.keys_query = "SELECT array_agg(bucket)::text FROM sicoop.stage_bucket";
            actions.push_back(bulk_action(keys, t.name));
            actions.push_back(sql_action(delete_with_tombstones_sql(
                t.name, t.key,
                key_bucket_sql("r." + t.key) + " IN (SELECT bucket FROM sicoop.stage_bucket)\n"
                "    AND NOT EXISTS (SELECT 1 FROM sicoop.stage_key k WHERE k.record_id = r." + t.key + ")"), t.name));
        }
    }
    // Nothing stays in the stage after the step: it held source rows, full card numbers included.
    actions.push_back(sql_action(R"sql(
TRUNCATE sicoop.stage_associado, sicoop.stage_conta, sicoop.stage_cartao, sicoop.stage_movimentacao_cartao,
         sicoop.stage_key_checksum, sicoop.stage_bucket, sicoop.stage_key)sql"));
    return actions;
}

}  // namespace sicoop
