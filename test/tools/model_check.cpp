// Checks the SQL side against the source model (src/steps/source_model.cpp), through the
// generated warehouse definition (src/sql/warehouse_definition.sql, written from a fresh install
// by test/tools/warehouse_definition.sh): for each source table, the foreign table src_<t>
// (src/sql/source.sql) has exactly the model's columns and types, the stage table stage_<t> the
// stage's wide types with no statistics on its text (it holds card numbers as the source sent
// them), and raw_<t> the model's columns and types plus its run stamps. `make model-check`
// (part of `make sql-check`) prints one line per difference and fails.
//   test/tools/model_check src/sql/warehouse_definition.sql
#include "steps/source_model.hpp"

#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <string>

namespace {

// relation -> column -> "type statistics=n", as the definition lists them.
using Definition = std::map<std::string, std::map<std::string, std::string>>;

Definition read_definition(const char* path) {
    static const std::regex column(R"(^(\w+): column \w+\.(\w+) (.+?) collation=\S+ notnull=\S+ identity=\S+ .* statistics=(-?\d+)$)");
    Definition out;
    std::ifstream in(path);
    std::smatch m;
    for (std::string line; std::getline(in, line);)
        if (std::regex_match(line, m, column)) out[m[1]][m[2]] = m[3].str() + " statistics=" + m[4].str();
    return out;
}

// The catalog's name of a type the model writes as SQL does.
std::string catalog_type(const std::string& type) {
    if (type.rfind("varchar", 0) == 0) return "character varying" + type.substr(7);
    if (type == "timestamp") return "timestamp without time zone";
    return type;
}

int differences = 0;

void expect(const Definition& def, const std::string& relation, const std::map<std::string, std::string>& want,
            bool only_these) {
    const auto found = def.find(relation);
    if (found == def.end()) {
        std::cout << relation << ": missing from the definition\n";
        ++differences;
        return;
    }
    for (const auto& [column, type] : want) {
        const auto got = found->second.find(column);
        const std::string have = got == found->second.end() ? "(no such column)" : got->second;
        // (src_ and raw_: the statistics target is the operator's; the stage's is the model's.)
        const bool same = type.find(" statistics=") == std::string::npos ? have.rfind(type + " statistics=", 0) == 0
                                                                         : have == type;
        if (!same) {
            std::cout << relation << "." << column << ": the model says " << type << ", the definition " << have << "\n";
            ++differences;
        }
    }
    for (const auto& [column, type] : found->second)
        if (only_these && want.count(column) == 0) {
            std::cout << relation << "." << column << ": in the definition, not in the model\n";
            ++differences;
        }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: model_check src/sql/warehouse_definition.sql\n";
        return 2;
    }
    const Definition def = read_definition(argv[1]);
    for (const sicoop::SourceTable& t : sicoop::source_tables()) {
        std::map<std::string, std::string> source, stage, raw;
        for (const auto& [column, type] : t.columns) {
            source[column] = raw[column] = catalog_type(type);
            const std::string wide = catalog_type(sicoop::stage_type(type));
            stage[column] = wide + (wide == "text" ? " statistics=0" : " statistics=-1");
        }
        raw["run_id"] = "bigint";
        raw["loaded_at"] = "timestamp with time zone";
        expect(def, "src_" + t.name, source, true);
        expect(def, "stage_" + t.name, stage, true);
        expect(def, "raw_" + t.name, raw, true);
    }
    // A member's earlier states in a micro-batch are stage rows with their bookkeeping.
    std::map<std::string, std::string> states;
    for (const auto& [column, type] : sicoop::find_source_table("associado")->columns)
        states[column] = catalog_type(sicoop::stage_type(type));
    expect(def, "stage_associado_state", states, false);
    if (differences) std::cout << differences << " difference(s) between src/steps/source_model.cpp and " << argv[1] << "\n";
    return differences ? 1 : 0;
}
