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
// visible separators (why four: "4111 - 1111" has three, and more is no longer one number),
// each one of:
//   - joiners: white space (as collapse_whitespace), '-', '.', '/', '_', the dashes
//     U+2010..U+2015 and U+2212, the full-width '-', '.', '/', '_' (U+FF0D, U+FF0E, U+FF0F,
//     U+FF3F), and an invalid byte (it may be a space in another encoding, LATIN1's 0xA0:
//     when in doubt, mask);
//   - listers: ',' and ':', their full-width forms U+FF0C and U+FF1A, the Arabic comma U+060C
//     and the ideographic comma U+3001.
// Invisible code points -- Unicode's Default_Ignorable_Code_Point (the format characters
// above, variation selectors, ...) and combining marks (U+0300..U+036F, U+1AB0..U+1AFF,
// U+1DC0..U+1DFF, U+20D0..U+20FF such as the keycap U+20E3, U+FE20..U+FE2F) -- are transparent:
// they join runs and do not count towards the four. Anything else breaks: letters,
// parentheses, ';', other symbols ('#', '*', quotes, ...).
//
// Two ways to be a card number:
//   - a segment (runs joined by joiners only) of 13 or more digits, whatever its checksum: a
//     mistyped PAN is still most of a PAN, and hiding a few digits of a long id costs less than
//     showing one PAN;
//   - consecutive runs across a lister gap (a list, a time) of 13 to 19 digits in all, whose
//     runs but the last hold at least 4 digits each, and which pass the Luhn check. Lists
//     of short numbers are common in errors ("(12345, 678, 90123)", "10:30:00"); PANs are
//     grouped in at least fours (4-4-4-4, 4-6-5, 4-6-4) and are Luhn-valid, so this keeps rows,
//     times and dates readable ("2025-08-15 10:30:00-03" has 2-digit runs) while
//     "4111,1111,1111,1111" and "4111 : 1111 : 1111 : 1111" are masked.
// Separators are kept, so a masked number still reads as one: "****-****-****-0004".
std::string redact_card_numbers(std::string_view text);

// Whether redact_card_numbers would change `text`: it holds what could be a card number.
bool contains_card_number(std::string_view text);

// A file name with no directory part and nothing a path reads specially: letters, digits,
// '.', '_' and '-', not starting with '.', at most 200 characters.
bool is_plain_file_name(std::string_view name);

}  // namespace sicoop
