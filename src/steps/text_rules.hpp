// Text rules of the trusted layer that are plain string work (pure C++, unit-tested).
// Upper-casing needs the database's collation, so it stays on the PostgreSQL side.
#pragma once

#include <string>
#include <string_view>

namespace sicoop {

// Trims white space (space, tab, newline, carriage return, form feed, vertical tab) and
// collapses every inner run of it into one space.
std::string collapse_whitespace(std::string_view text);

// What could be a full card number (PAN) -- a run of 13 or more digits, with up to four
// separator bytes between them (anything but letters, digits and ',', ';', ':', parentheses)
// -- with every digit but the last four replaced by '*'.
// Applied to every error sicoop reports or logs: PCI DSS 3 allows at most the last four.
std::string redact_card_numbers(std::string_view text);

// A file name with no directory part and nothing a path reads specially: letters, digits,
// '.', '_' and '-', not starting with '.', at most 200 characters.
bool is_plain_file_name(std::string_view name);

}  // namespace sicoop
