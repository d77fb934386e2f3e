// Text rules of the trusted layer that are plain string work (pure C++, unit-tested).
// Upper-casing needs the database's collation, so it stays on the PostgreSQL side.
//
// Text is UTF-8 and these rules read it by code point. A byte that does not start a valid
// sequence (a stray continuation byte, an overlong form, a surrogate, a sequence cut short by
// the end of the text) is read as one "invalid" code point: it is never a digit, never white
// space, never a format character, and it is copied through unchanged (valid UTF-8 in, valid
// UTF-8 out). Nothing reads past the end of the text.
#pragma once

#include <string>
#include <string_view>

namespace sicoop {

// Removes the invisible format characters: U+200B..U+200F (zero-width space, ZWNJ, ZWJ, LRM,
// RLM), U+202A..U+202E (bidirectional embeddings and overrides), U+2060..U+2064 (word joiner,
// invisible operators), U+2066..U+206F (bidirectional isolates, deprecated formats), U+FEFF
// (BOM, zero-width no-break space), U+00AD (soft hyphen), U+180E (Mongolian vowel separator),
// U+061C (Arabic letter mark). They show as nothing, so they only ever hide what a value is:
// two values that look equal but differ, an RTL override that shows text reversed, a digit run
// split in two. Everything else, invalid bytes included, is kept.
std::string strip_format_characters(std::string_view text);

// Trims white space and collapses every inner run of it into one ASCII space. White space is
// Unicode's White_Space property: tab, LF, VT, FF, CR, space, U+0085, NBSP U+00A0, U+1680,
// U+2000..U+200A (figure space U+2007 among them), U+2028, U+2029, U+202F, U+205F and the
// ideographic space U+3000 -- a value typed with a non-breaking space is the same value to BI.
std::string collapse_whitespace(std::string_view text);

// What could be a full card number (PAN), with every digit but its last four replaced by one
// '*' byte each (a digit of any byte length): PCI DSS 3 allows at most the last four. Applied
// to every error sicoop reports or logs, and to free text of the trusted layer (clean_text).
//
// A digit is any Unicode decimal digit (general category Nd, Unicode 15: ASCII, Arabic-Indic,
// Devanagari, full-width, the mathematical digits U+1D7CE..U+1D7FF, ...), valued by its
// position in its block of ten. Digits form runs; two runs are joined by a gap of 1 to 4
// visible separators (the bound: "4111 - 1111" has three, "(4111) (1111)" three, and more is
// no longer one number), each a non-alphanumeric character of one of two kinds:
//   - joiners: white space (as collapse_whitespace), '-', '.', '/', '_', the dashes
//     U+2010..U+2015 and U+2212, the full-width '-', '.', '/', '_' (U+FF0D, U+FF0E, U+FF0F,
//     U+FF3F), and an invalid byte (it may be a space in another encoding, LATIN1's 0xA0:
//     when in doubt, mask);
//   - listers: any other punctuation or symbol -- every ASCII character that is no letter,
//     digit or white space (',', ':', ';', '|', '+', '~', '#', '*', parentheses, quotes, ...),
//     Latin-1's punctuation and symbols (U+00A1..U+00BF, U+00D7, U+00F7), the general
//     punctuation U+2016..U+2027 and U+2030..U+205E, arrows, mathematical and technical
//     symbols, box drawing, shapes and dingbats (U+2190..U+23FF, U+2500..U+27BF,
//     U+2900..U+2BFF), the Arabic comma U+060C, CJK punctuation (U+3001..U+3003,
//     U+3008..U+3011, U+3014..U+301F) and the full-width punctuation (U+FF01..U+FF0F,
//     U+FF1A..U+FF20, U+FF3B..U+FF40, U+FF5B..U+FF65).
// Invisible code points -- Unicode's Default_Ignorable_Code_Point (the format characters
// above, variation selectors, ...) and combining marks (U+0300..U+036F, U+1AB0..U+1AFF,
// U+1DC0..U+1DFF, U+20D0..U+20FF such as the keycap U+20E3, U+FE20..U+FE2F) -- are transparent:
// they join runs and do not count towards the four. Anything else breaks: letters of any
// script, and every other code point.
//
// Two ways to be a card number:
//   - a segment (runs joined by joiners only) of 13 or more digits, whatever its checksum: a
//     mistyped PAN is still most of a PAN, and hiding a few digits of a long id costs less than
//     showing one PAN;
//   - consecutive runs across a lister gap (a list, a time, a symbol) of 13 to 19 digits in all, whose
//     runs but the last hold at least 4 digits each, and which pass the Luhn check. Lists
//     of short numbers are common in errors ("(12345, 678, 90123)", "10:30:00"); PANs are
//     grouped in at least fours (4-4-4-4, 4-6-5, 4-6-4) and are Luhn-valid, so this keeps rows,
//     times and dates readable ("2025-08-15 10:30:00-03" has 2-digit runs) while
//     "4111,1111,1111,1111" and "4111 : 1111 : 1111 : 1111" are masked.
// Separators are kept, so a masked number still reads as one: "****-****-****-0004".
std::string redact_card_numbers(std::string_view text);

// redact_card_numbers without a copy of a text that holds no card number: appends the masked
// text to `out` and returns true, or returns false and leaves `out` alone (no allocation).
bool redact_card_numbers_into(std::string_view text, std::string& out);

// Whether `text` holds what could be a card number, in clear or masked already: what
// redact_card_numbers would change, or the same with '*' read as a masked digit (whose Luhn
// check cannot be known, so is taken as passed): "************1111" and
// "****-****-****-1111" are card numbers too. A key the COPY filter masked (copy_filter.hpp)
// is one, and the key rule (kind no_card_number) rejects it.
bool contains_card_number(std::string_view text);

// sicoop.mask_card in C++, on the COPY stream: ASCII white space trimmed, then every character
// (code point) but the last four replaced by '*'. Appends the masked value to `out` and returns
// true; returns false (out untouched) when the value is blank or already what it would become.
bool mask_card_into(std::string_view value, std::string& out);

// The data-quality rule no_control_chars in C++: whether the text holds a C0 control but tab,
// newline and carriage return (U+0001-U+0008, U+000B, U+000C, U+000E-U+001F), DEL or a C1
// control (U+007F-U+009F) -- what the regular expression '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]'
// matches in a UTF-8 database.
bool has_control_characters(std::string_view text);

// Whether the rule `trimmed` (white space at either end, an invisible format character
// anywhere) could find something: false for printable ASCII that neither starts nor ends with
// a space, which no white space or format character can be. The rule's regular expression
// runs only where this says true (most keys are plain ASCII).
bool may_need_trimming(std::string_view text);

// A file name with no directory part and nothing a path reads specially: letters, digits,
// '.', '_' and '-', not starting with '.', at most 200 characters.
bool is_plain_file_name(std::string_view name);

}  // namespace sicoop
