// Row-level SQL functions written in C++ because SQL does them badly: the trusted layer's
// text cleaning runs on every text field of every row, and a regular expression per call
// made it the slowest part of a load.
#include "pg.hpp"
#include "steps/text_rules.hpp"

extern "C" {
PGDLLEXPORT Datum sicoop_clean_text(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_redact_card_numbers(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_contains_card_number(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(sicoop_clean_text);
PG_FUNCTION_INFO_V1(sicoop_redact_card_numbers);
PG_FUNCTION_INFO_V1(sicoop_contains_card_number);
}

// sicoop.clean_text(text): invisible format characters removed (zero-width, BOM, bidirectional
// overrides), trimmed, inner white space (Unicode's, NBSP included) collapsed to one space, card
// numbers masked to their last four digits, upper-cased in the collation of the argument
// (accents kept: 'joão' -> 'JOÃO'); blank -> NULL.
Datum sicoop_clean_text(PG_FUNCTION_ARGS) {
    text* input = PG_GETARG_TEXT_PP(0);
    Oid collation = PG_GET_COLLATION();
    const char* data = VARDATA_ANY(input);
    const size_t length = VARSIZE_ANY_EXHDR(input);
    char* upper = nullptr;
    bool blank = false;
    sicoop::sql_entry([&] {
        // Format characters go first, so that a zero-width one between digits cannot split a card
        // number; a card number typed into a free-text field (a description) is masked too.
        const std::string visible = sicoop::strip_format_characters(std::string_view(data, length));
        std::string collapsed = sicoop::redact_card_numbers(sicoop::collapse_whitespace(visible));
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

// sicoop._redact_card_numbers(text): the text with every possible card number masked to its
// last four digits (what sicoop does to every error it reports or logs).
Datum sicoop_redact_card_numbers(PG_FUNCTION_ARGS) {
    text* input = PG_GETARG_TEXT_PP(0);
    const char* data = VARDATA_ANY(input);
    const size_t length = VARSIZE_ANY_EXHDR(input);
    char* redacted = nullptr;
    sicoop::sql_entry([&] {
        std::string out = sicoop::redact_card_numbers(std::string_view(data, length));
        sicoop::pg_call([&] { redacted = pnstrdup(out.data(), out.size()); });
        return (Datum) 0;
    });
    PG_RETURN_TEXT_P(cstring_to_text(redacted));
}

// sicoop.contains_card_number(text): whether the text holds what could be a card number, that
// is whether sicoop._redact_card_numbers would change it (a data-quality rule rejects keys
// that do).
Datum sicoop_contains_card_number(PG_FUNCTION_ARGS) {
    text* input = PG_GETARG_TEXT_PP(0);
    const char* data = VARDATA_ANY(input);
    const size_t length = VARSIZE_ANY_EXHDR(input);
    bool found = false;
    sicoop::sql_entry([&] {
        found = sicoop::contains_card_number(std::string_view(data, length));
        return (Datum) 0;
    });
    PG_RETURN_BOOL(found);
}
