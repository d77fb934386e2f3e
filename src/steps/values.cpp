#include "steps/pure_cpp.hpp"

#include "steps/values.hpp"

namespace sicoop {

std::string without_values(std::string_view message) {
    std::string out;
    bool quoted = false;
    for (char c : message) {
        if (c == '"') {
            out += quoted ? "\"" : "\"...";
            quoted = !quoted;
        } else if (!quoted) {
            out += c;
        }
    }
    if (quoted) out += '"';
    return out;
}

std::vector<std::string> split_copy_fields(std::string_view line) {
    std::vector<std::string> fields(1);
    for (char c : line) {
        if (c == '\t')
            fields.emplace_back();
        else
            fields.back() += c;
    }
    return fields;
}

std::vector<std::optional<std::string>> parse_copy_line(std::string_view line) {
    std::vector<std::optional<std::string>> values;
    for (const std::string& field : split_copy_fields(line)) {
        if (field == "\\N") {
            values.emplace_back(std::nullopt);
            continue;
        }
        std::string value;
        for (size_t i = 0; i < field.size(); ++i) {
            if (field[i] != '\\' || i + 1 == field.size()) {
                value += field[i];
                continue;
            }
            switch (const char e = field[++i]) {
                case 'b': value += '\b'; break;
                case 'f': value += '\f'; break;
                case 'n': value += '\n'; break;
                case 'r': value += '\r'; break;
                case 't': value += '\t'; break;
                case 'v': value += '\v'; break;
                default: value += e;  // \\ and any other character stands for itself
            }
        }
        values.emplace_back(std::move(value));
    }
    return values;
}

}  // namespace sicoop
