// Row-level SQL functions written in C++ because SQL does them badly: the trusted layer's
// text cleaning runs on every text field of every row, and a regular expression per call
// made it the slowest part of a load.
#include "pg.hpp"
#include "steps/text_rules.hpp"

extern "C" {
#include "utils/formatting.h"
PGDLLEXPORT Datum sicoop_clean_text(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(sicoop_clean_text);
}

// sicoop.clean_text(text): trimmed, inner white space collapsed, upper-cased in the
// collation of the argument (accents kept: 'joão' -> 'JOÃO'); blank -> NULL.
Datum sicoop_clean_text(PG_FUNCTION_ARGS) {
    text* input = PG_GETARG_TEXT_PP(0);
    Oid collation = PG_GET_COLLATION();
    const char* data = VARDATA_ANY(input);
    const size_t length = VARSIZE_ANY_EXHDR(input);
    char* upper = nullptr;
    bool blank = false;
    sicoop::sql_entry([&] {
        std::string collapsed = sicoop::collapse_whitespace(std::string_view(data, length));
        blank = collapsed.empty();
        if (!blank) {
            const char* c = collapsed.c_str();
            size_t n = collapsed.size();
            sicoop::pg_call([&] { upper = str_toupper(c, n, collation); });
        }
        return (Datum) 0;
    });
    if (blank) PG_RETURN_NULL();
    PG_RETURN_TEXT_P(cstring_to_text(upper));
}
