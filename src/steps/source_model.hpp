// The source's shape, declared once: its four tables (domain.md), their columns with the
// warehouse's types, their keys, which columns hold card numbers and which column dates a
// movement. Every list of source columns the C++ side uses derives from source_tables(): the
// COPY column lists and stage types (raw.cpp), the remote queries (remote_query.cpp), the
// row hashes, the COPY filter's masks (copy_masks) and the stream's stage rows
// (src/stream_apply.cpp). The SQL side -- the foreign tables src_* (src/sql/source.sql), the
// stage and raw tables and their statistics settings (src/sql/warehouse.sql) -- is checked
// against it by `make model-check` (test/tools/model_check.cpp), through the generated
// definition src/sql/warehouse_definition.sql. Pure C++.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace sicoop {

struct SourceTable {
    std::string name;
    std::string key;
    std::vector<std::pair<std::string, std::string>> columns;  // name, warehouse SQL type; key first
    // Columns that hold a card number: masked to their last four characters on the way in,
    // never in clear past the COPY stream (PCI DSS 3).
    std::vector<std::string> card_number_columns = {};
    // The column that dates a row (movements): the watermark and the window of an incremental
    // read, the day totals of the reconciliation. Empty: the table is read by xmin.
    std::string time_column = {};

    // Dated rows (movements), appended in time: raw's and trusted's copies are indexed by BRIN
    // ranges (run_id, the time column), which a batch step summarizes after it appends.
    bool is_dated() const { return !time_column.empty(); }
    bool is_card_number(const std::string& column) const;
    bool has_card_numbers() const { return !card_number_columns.empty(); }
    // The key, or a reference to another table's (id_*): never masked as text, never free text.
    bool is_key_or_reference(const std::string& column) const;
    // Text a person typed (a name, a description): a card number typed into it is masked.
    bool is_free_text(const std::string& column, const std::string& type) const;
};

const std::vector<SourceTable>& source_tables();
// A source table by name, nullptr if there is none.
const SourceTable* find_source_table(const std::string& name);

// The type a source column is read as into the stage: wide enough for anything the source may
// have widened to (text, numeric without limits), so that every row reaches the stage as it is
// and the data-quality rules -- not a cast -- decide what a value that does not fit becomes.
std::string stage_type(const std::string& warehouse_type);

// Given the (table, column) pairs a source schema has, what the pipeline needs and misses:
// one message per missing table or column, empty if the source is complete.
std::vector<std::string> missing_source_columns(
    const std::vector<std::pair<std::string, std::string>>& present);

}  // namespace sicoop
