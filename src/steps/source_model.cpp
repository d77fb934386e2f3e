#include "steps/pure_cpp.hpp"

#include "steps/source_model.hpp"

#include "steps/copy_filter.hpp"

namespace sicoop {

// The one declaration of the source's tables. A column added here is read, staged, hashed and
// masked by the C++ side; `make model-check` then says which SQL definitions still lack it.
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
          {"tipo_cartao", "varchar(50)"}, {"data_emissao", "date"}},
         {"numero_cartao"}},
        {"movimentacao_cartao", "id_movimentacao_cartao",
         {{"id_movimentacao_cartao", "varchar(50)"}, {"id_cartao", "varchar(50)"},
          {"descricao_movimentacao", "varchar(150)"}, {"valor_movimentacao", "numeric(10,2)"},
          {"data_movimentacao", "timestamp"}},
         {},
         "data_movimentacao"},
    };
    return tables;
}

const SourceTable* find_source_table(const std::string& name) {
    for (const SourceTable& t : source_tables())
        if (t.name == name) return &t;
    return nullptr;
}

bool SourceTable::is_card_number(const std::string& column) const {
    for (const auto& c : card_number_columns)
        if (c == column) return true;
    return false;
}

bool SourceTable::is_key_or_reference(const std::string& column) const {
    return column == key || column.rfind("id_", 0) == 0;
}

bool SourceTable::is_free_text(const std::string& column, const std::string& type) const {
    return type.rfind("varchar", 0) == 0 && !is_card_number(column) && !is_key_or_reference(column);
}

std::string stage_type(const std::string& warehouse_type) {
    if (warehouse_type.rfind("varchar", 0) == 0) return "text";
    if (warehouse_type.rfind("numeric", 0) == 0) return "numeric";
    return warehouse_type;
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

// What the COPY filter (copy_filter.hpp) does to each column a copy lands in sicoop.<table>:
// raw's masking (raw.cpp's raw_columns), done on the COPY stream before the first write; a key
// (or a reference to one) that holds a card number is masked too, and rejected by the key rule.
std::vector<CopyMask> copy_masks(const std::string& table, const std::vector<std::string>& columns) {
    const SourceTable* source = nullptr;
    for (const SourceTable& t : source_tables())
        // (stage_associado_state: a member's earlier states in a micro-batch, the stage's columns)
        if (table == "stage_" + t.name || table == "raw_" + t.name || table == "stage_" + t.name + "_state") source = &t;
    std::vector<CopyMask> masks;
    for (const std::string& column : columns) {
        CopyMask mask = CopyMask::None;
        if (source == nullptr) {
            // The tables of keys (stage_key, stream_key): their keys.
            if (column == "record_id") mask = CopyMask::Key;
        } else if (source->is_card_number(column)) {
            mask = CopyMask::CardNumber;
        } else if (source->is_key_or_reference(column)) {
            mask = CopyMask::Key;
        } else {
            for (const auto& [col, type] : source->columns)
                if (col == column && source->is_free_text(col, type)) mask = CopyMask::FreeText;
        }
        masks.push_back(mask);
    }
    return masks;
}

}  // namespace sicoop
