// Step load_raw: the four source tables, as they are, into raw_*.
// Each table streams from the source with COPY into its unlogged stage_* table (bulk path,
// src/bulk_copy.cpp), then is merged into raw_*: new rows inserted, changed rows updated,
// rows gone from the source deleted, unchanged rows left alone.
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

Step raw_step() {
    Step step{"load_raw", "copy the source tables into raw_* (bulk COPY, then merge)", {}};
    for (const SourceTable& t : source_tables()) {
        BulkCopy copy;
        copy.source_table = "src_" + t.name;
        copy.stage_table = "stage_" + t.name;
        std::vector<std::string> non_key;
        for (const auto& [col, type] : t.columns) {
            copy.columns.push_back(col);
            copy.types.push_back(type);
            if (col != t.key) non_key.push_back(col);
        }
        step.actions.push_back(bulk_action(copy));
        const std::string stage = "sicoop." + copy.stage_table;
        const std::string raw = "sicoop.raw_" + t.name;
        // Statistics on the fresh stage table, so the merge joins are planned for its size.
        step.actions.push_back(sql_action("ANALYZE " + stage));
        std::vector<Column> columns;
        for (const auto& c : non_key) columns.push_back({c, "s." + c});
        step.actions.push_back(sql_action(merge_changed_sql(
            raw, t.key, columns, {{"run_id", "$2"}, {"loaded_at", "now()"}}, stage + " s")));
        step.actions.push_back(sql_action(delete_missing_sql(raw, t.key, stage)));
    }
    return step;
}

}  // namespace sicoop
