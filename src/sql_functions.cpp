// Row-level SQL functions written in C++ because SQL does them badly: the trusted layer's
// text cleaning runs on every text field of every row, and a regular expression per call
// made it the slowest part of a load. (1.9) The names, the age and the card mask too: as SQL
// functions with a pinned search_path they were never inlined, and each call paid a GUC save
// and restore -- a fifth of load_trusted at 1M movements. None runs SQL or looks a name up.
#include "pg.hpp"
#include "steps/text_rules.hpp"

extern "C" {
PGDLLEXPORT Datum sicoop_clean_text(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_redact_card_numbers(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_contains_card_number(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(sicoop_clean_text);
PG_FUNCTION_INFO_V1(sicoop_redact_card_numbers);
PG_FUNCTION_INFO_V1(sicoop_contains_card_number);
PGDLLEXPORT Datum sicoop_first_name(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_last_name(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_age_years(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_mask_card(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(sicoop_first_name);
PG_FUNCTION_INFO_V1(sicoop_last_name);
PG_FUNCTION_INFO_V1(sicoop_age_years);
PG_FUNCTION_INFO_V1(sicoop_mask_card);
PGDLLEXPORT Datum sicoop_has_control_characters(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_may_need_trimming(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(sicoop_has_control_characters);
PG_FUNCTION_INFO_V1(sicoop_may_need_trimming);
}

namespace {

// clean_text's result in the function's collation (palloc'd), or nullptr for a blank value.
char* cleaned(text* input, Oid collation) {
    const char* data = VARDATA_ANY(input);
    const size_t length = VARSIZE_ANY_EXHDR(input);
    char* upper = nullptr;
    sicoop::sql_entry([&] {
        // Format characters go first, so that a zero-width one between digits cannot split a card
        // number; a card number typed into a free-text field (a description) is masked too.
        const std::string visible = sicoop::strip_format_characters(std::string_view(data, length));
        std::string collapsed = sicoop::redact_card_numbers(sicoop::collapse_whitespace(visible));
        if (!collapsed.empty()) {
            const char* c = collapsed.c_str();
            size_t n = collapsed.size();
            sicoop::pg_call([&] { upper = str_toupper(c, n, collation); });
        }
        return (Datum) 0;
    });
    return upper;
}

}  // namespace

// sicoop.clean_text(text): invisible format characters removed (zero-width, BOM, bidirectional
// overrides), trimmed, inner white space (Unicode's, NBSP included) collapsed to one space, card
// numbers masked to their last four digits, upper-cased in the collation of the argument
// (accents kept: 'joão' -> 'JOÃO'); blank -> NULL.
Datum sicoop_clean_text(PG_FUNCTION_ARGS) {
    char* upper = cleaned(PG_GETARG_TEXT_PP(0), PG_GET_COLLATION());
    if (upper == nullptr) PG_RETURN_NULL();
    PG_RETURN_TEXT_P(cstring_to_text(upper));
}

// sicoop.first_name(text): the first word of the cleaned name (clean_text collapses white
// space to single spaces); NULL for a blank one.
Datum sicoop_first_name(PG_FUNCTION_ARGS) {
    char* name = cleaned(PG_GETARG_TEXT_PP(0), PG_GET_COLLATION());
    if (name == nullptr) PG_RETURN_NULL();
    const char* space = strchr(name, ' ');
    PG_RETURN_TEXT_P(space == nullptr ? cstring_to_text(name) : cstring_to_text_with_len(name, space - name));
}

// sicoop.last_name(text): everything after the first word of the cleaned name; NULL if there is
// no second word.
Datum sicoop_last_name(PG_FUNCTION_ARGS) {
    char* name = cleaned(PG_GETARG_TEXT_PP(0), PG_GET_COLLATION());
    const char* space = name == nullptr ? nullptr : strchr(name, ' ');
    if (space == nullptr) PG_RETURN_NULL();
    PG_RETURN_TEXT_P(cstring_to_text(space + 1));
}

// sicoop.age_years(birth date, on_date date): whole years lived on on_date, as
// date_part('year', age(on_date::timestamp, birth::timestamp)) -- PostgreSQL's own functions,
// called directly, so that its rules (29 February, infinities, the timestamp range) hold
// unchanged; NULL for a birth after on_date. (No C++ object lives here: an error unwinds
// through PostgreSQL's frames only.)
Datum sicoop_age_years(PG_FUNCTION_ARGS) {
    const DateADT birth = PG_GETARG_DATEADT(0);
    const DateADT on_date = PG_GETARG_DATEADT(1);
    if (birth > on_date) PG_RETURN_NULL();
    const Datum age = DirectFunctionCall2(timestamp_age, DirectFunctionCall1(date_timestamp, DateADTGetDatum(on_date)),
                                          DirectFunctionCall1(date_timestamp, DateADTGetDatum(birth)));
    const Datum years = DirectFunctionCall2(interval_part, CStringGetTextDatum("year"), age);
    PG_RETURN_INT32(DatumGetInt32(DirectFunctionCall1(dtoi4, years)));
}

// sicoop.mask_card(text): every character but the last four replaced by '*', ASCII white space
// around the value ignored; NULL for a blank value. The very code the COPY filter masks raw's
// card numbers with (sicoop::mask_card_into), so the two cannot differ.
Datum sicoop_mask_card(PG_FUNCTION_ARGS) {
    text* input = PG_GETARG_TEXT_PP(0);
    const char* data = VARDATA_ANY(input);
    const size_t length = VARSIZE_ANY_EXHDR(input);
    char* masked = nullptr;
    bool blank = false;
    sicoop::sql_entry([&] {
        std::string out;
        const std::string_view value(data, length);
        if (sicoop::mask_card_into(value, out)) {
            sicoop::pg_call([&] { masked = pnstrdup(out.data(), out.size()); });
        } else {
            blank = value.find_first_not_of(" \t\n\v\f\r") == std::string_view::npos;
        }
        return (Datum) 0;
    });
    if (blank) PG_RETURN_NULL();
    if (masked == nullptr) PG_RETURN_TEXT_P(input);  // nothing to mask or trim: the value as it is
    PG_RETURN_TEXT_P(cstring_to_text(masked));
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

// sicoop._has_control_characters(text): the rule no_control_chars, without a regular expression
// per field (sicoop::has_control_characters). No C++ object lives here: it cannot throw.
Datum sicoop_has_control_characters(PG_FUNCTION_ARGS) {
    text* input = PG_GETARG_TEXT_PP(0);
    PG_RETURN_BOOL(sicoop::has_control_characters(std::string_view(VARDATA_ANY(input), VARSIZE_ANY_EXHDR(input))));
}

// sicoop._may_need_trimming(text): whether the rule trimmed's regular expression could match
// (sicoop::may_need_trimming); it runs only then.
Datum sicoop_may_need_trimming(PG_FUNCTION_ARGS) {
    text* input = PG_GETARG_TEXT_PP(0);
    PG_RETURN_BOOL(sicoop::may_need_trimming(std::string_view(VARDATA_ANY(input), VARSIZE_ANY_EXHDR(input))));
}
