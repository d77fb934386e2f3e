// Where the source's values meet the warehouse's messages and stage (pure C++, unit-tested):
// a message with its quoted values taken out, and COPY's text format read back field by field.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sicoop {

// A message without the values it quotes: PostgreSQL quotes the value it could not take in
// double quotes ("invalid input syntax for type numeric: "CPF ..."", "date/time field value out
// of range: "2025-02-30""), and every quoted part becomes "...". Used by the bulk copy's
// conversion errors and by the stream worker for any error that is not sicoop's own: the
// warehouse's log and state get no more of a row than the source's do.
std::string without_values(std::string_view message);

// One line of COPY's text format (without its newline), as src/steps/pgoutput.cpp writes it:
// fields split at tabs, each unescaped (\\, \t, \n, \r and the other backslash escapes COPY
// reads as one character); \N is NULL (nullopt).
std::vector<std::optional<std::string>> parse_copy_line(std::string_view line);

// Splits COPY text at its line ends, keeping each line's raw (escaped) fields: the fields of
// a line can be rewritten (a field set to \N) and joined again with tabs.
std::vector<std::string> split_copy_fields(std::string_view line);

}  // namespace sicoop
