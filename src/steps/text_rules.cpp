#include "steps/text_rules.hpp"

namespace sicoop {

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string collapse_whitespace(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    bool pending_space = false;
    for (char c : text) {
        if (is_space(c)) {
            pending_space = !out.empty();
            continue;
        }
        if (pending_space) out.push_back(' ');
        pending_space = false;
        out.push_back(c);
    }
    return out;
}

std::string redact_card_numbers(std::string_view text) {
    constexpr int kMinDigits = 13;  // the shortest PANs; shorter runs are ids, amounts, times
    auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
    std::string out(text);
    size_t i = 0;
    while (i < out.size()) {
        if (!is_digit(out[i])) {
            ++i;
            continue;
        }
        // The longest run of digits, with up to four separator bytes between digits: anything
        // but letters, digits and what separates numbers in a list or a time (',', ';', ':',
        // parentheses), so spaces, tabs, dots, dashes, slashes and a non-breaking space's bytes.
        auto is_separator = [](char c) {
            const unsigned char u = static_cast<unsigned char>(c);
            const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
            return !alnum && u != 0 && c != ',' && c != ';' && c != ':' && c != '(' && c != ')';
        };
        size_t end = i;
        int digits = 0;
        while (end < out.size()) {
            if (is_digit(out[end])) {
                ++digits;
                ++end;
                continue;
            }
            size_t gap = end;
            while (gap < out.size() && gap - end < 4 && is_separator(out[gap])) ++gap;
            if (gap > end && gap < out.size() && is_digit(out[gap])) {
                end = gap;
            } else {
                break;
            }
        }
        if (digits >= kMinDigits) {
            int to_hide = digits - 4;
            for (size_t k = i; k < end && to_hide > 0; ++k)
                if (is_digit(out[k])) out[k] = '*', --to_hide;
        }
        i = end;
    }
    return out;
}

bool is_plain_file_name(std::string_view name) {
    if (name.empty() || name.size() > 200 || name.front() == '.') return false;
    for (char c : name) {
        const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                             c == '_' || c == '-';
        if (!allowed) return false;
    }
    return true;
}

}  // namespace sicoop
