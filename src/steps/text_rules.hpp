// Text rules of the trusted layer that are plain string work (pure C++, unit-tested).
// Upper-casing needs the database's collation, so it stays on the PostgreSQL side.
#pragma once

#include <string>
#include <string_view>

namespace sicoop {

// Trims white space (space, tab, newline, carriage return, form feed, vertical tab) and
// collapses every inner run of it into one space.
std::string collapse_whitespace(std::string_view text);

}  // namespace sicoop
