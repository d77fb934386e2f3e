#include "steps/pure_cpp.hpp"

#include "steps/text_rules.hpp"

#include <vector>

namespace sicoop {

namespace {

// ---- UTF-8 ---------------------------------------------------------------------------------

// Not a code point: what an invalid byte reads as (never a digit, a space or a format character;
// between digits, a joiner: see separator_kind).
constexpr char32_t kInvalid = 0xFFFFFFFF;

struct CodePoint {
    char32_t value;
    size_t at;    // byte offset in the text
    size_t size;  // bytes: 1 for an invalid byte, so reading resumes at the next one
};

// The multi-byte code point at `at` (< text.size()). Overlong forms, surrogates, values past
// U+10FFFF and sequences cut short (by the end of the text or by a byte that does not continue
// them) are invalid: their first byte alone is read, as kInvalid.
CodePoint decode_multibyte(std::string_view text, size_t at) {
    constexpr char32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};  // by size: shorter is overlong
    const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
    const unsigned char lead = byte(at);
    const CodePoint invalid{kInvalid, at, 1};
    // Not a lead: a continuation byte, C0/C1 (always overlong), F5..FF (past U+10FFFF).
    if (lead < 0xC2 || lead > 0xF4) return invalid;
    const size_t size = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (text.size() - at < size) return invalid;
    char32_t value = lead & (0x7F >> size);
    for (size_t i = at + 1; i < at + size; ++i) {
        if ((byte(i) & 0xC0) != 0x80) return invalid;
        value = (value << 6) | (byte(i) & 0x3F);
    }
    if (value < kSmallest[size] || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return invalid;
    return {value, at, size};
}

// The code point at `at` (< text.size()); ASCII, most of any text, inline.
inline CodePoint decode_utf8(std::string_view text, size_t at) {
    const unsigned char lead = static_cast<unsigned char>(text[at]);
    return lead < 0x80 ? CodePoint{lead, at, 1} : decode_multibyte(text, at);
}

template <typename F>
void for_each_code_point(std::string_view text, F&& visit) {
    for (size_t at = 0; at < text.size();) {
        const CodePoint c = decode_utf8(text, at);
        visit(c);
        at += c.size;
    }
}

void append_code_point(std::string& out, std::string_view text, const CodePoint& c) {
    if (c.size == 1) out.push_back(text[c.at]);  // most text is ASCII: no call to append
    else out.append(text.data() + c.at, c.size);
}

// ---- Character classes (tables sorted, so a lookup stops at the first range past it) --------

struct Range {
    char32_t first, last;
};

template <size_t N>
bool in_ranges(char32_t c, const Range (&ranges)[N]) {
    for (const Range& r : ranges) {
        if (c < r.first) return false;
        if (c <= r.last) return true;
    }
    return false;
}

// Unicode's White_Space property.
constexpr Range kWhiteSpace[] = {{0x0009, 0x000D}, {0x0020, 0x0020}, {0x0085, 0x0085}, {0x00A0, 0x00A0},
                                 {0x1680, 0x1680}, {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F},
                                 {0x205F, 0x205F}, {0x3000, 0x3000}};

// The format characters strip_format_characters removes (see text_rules.hpp).
constexpr Range kFormatCharacters[] = {{0x00AD, 0x00AD}, {0x061C, 0x061C}, {0x180E, 0x180E}, {0x200B, 0x200F},
                                       {0x202A, 0x202E}, {0x2060, 0x2064}, {0x2066, 0x206F}, {0xFEFF, 0xFEFF}};

// What shows as nothing next to a digit: Default_Ignorable_Code_Point (Unicode 15) and the
// blocks of combining marks. Between digits these are transparent, so they cannot split a PAN.
constexpr Range kInvisible[] = {
    {0x00AD, 0x00AD}, {0x0300, 0x036F}, {0x061C, 0x061C}, {0x115F, 0x1160},   {0x17B4, 0x17B5},  {0x180B, 0x180F},
    {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF}, {0x200B, 0x200F}, {0x202A, 0x202E},   {0x2060, 0x206F},  {0x20D0, 0x20FF},
    {0x3164, 0x3164}, {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F}, {0xFEFF, 0xFEFF},   {0xFFA0, 0xFFA0},  {0xFFF0, 0xFFF8},
    {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A}, {0xE0000, 0xE0FFF}};

// The zero of every block of ten decimal digits (general category Nd) of Unicode 15.
constexpr char32_t kDigitZeros[] = {
    0x0030,  0x0660,  0x06F0,  0x07C0,  0x0966,  0x09E6,  0x0A66,  0x0AE6,  0x0B66,  0x0BE6,  0x0C66,  0x0CE6,
    0x0D66,  0x0DE6,  0x0E50,  0x0ED0,  0x0F20,  0x1040,  0x1090,  0x17E0,  0x1810,  0x1946,  0x19D0,  0x1A80,
    0x1A90,  0x1B50,  0x1BB0,  0x1C40,  0x1C50,  0xA620,  0xA8D0,  0xA900,  0xA9D0,  0xA9F0,  0xAA50,  0xABF0,
    0xFF10,  0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0,
    0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x11F50, 0x16A60, 0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8,
    0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E950, 0x1FBF0};

int non_ascii_digit_value(char32_t c) {
    for (char32_t zero : kDigitZeros) {
        if (c < zero) return -1;
        if (c < zero + 10) return static_cast<int>(c - zero);
    }
    return -1;
}

// 0 to 9 for a decimal digit of any script, -1 for anything else.
inline int digit_value(char32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9' ? static_cast<int>(c - '0') : -1;
    return non_ascii_digit_value(c);
}

bool is_white_space(char32_t c) {
    if (c < 0x80) return c == ' ' || (c >= '\t' && c <= '\r');
    return in_ranges(c, kWhiteSpace);
}

// ---- Card numbers --------------------------------------------------------------------------

constexpr int kMinPanDigits = 13;  // the shortest PANs; shorter runs are ids, amounts, times
constexpr int kMaxPanDigits = 19;  // the longest
constexpr int kMaxGap = 4;         // visible separators between two runs of one number
constexpr int kMinListedGroup = 4; // PANs are grouped in fours or more (4-4-4-4, 4-6-5)
constexpr int kShownDigits = 4;    // PCI DSS: at most the last four

// What a code point does between two digits (see text_rules.hpp).
enum class Separator { Joiner, Lister, Invisible, Break };

// Punctuation and symbols beyond ASCII: Latin-1's, general punctuation, arrows, mathematical and
// technical symbols, box drawing, shapes, dingbats, CJK punctuation and the full-width forms.
constexpr Range kSymbols[] = {{0x00A1, 0x00BF}, {0x00D7, 0x00D7}, {0x00F7, 0x00F7}, {0x060C, 0x060C},
                              {0x2016, 0x2027}, {0x2030, 0x205E}, {0x2190, 0x23FF}, {0x2500, 0x27BF},
                              {0x2900, 0x2BFF}, {0x3001, 0x3003}, {0x3008, 0x3011}, {0x3014, 0x301F},
                              {0xFF01, 0xFF0F}, {0xFF1A, 0xFF20}, {0xFF3B, 0xFF40}, {0xFF5B, 0xFF65}};

// Neither a letter nor a digit: ASCII's punctuation and controls, and the symbols above.
bool is_symbol(char32_t c) {
    if (c < 0x80) return !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
    return in_ranges(c, kSymbols);
}

Separator separator_kind(char32_t c) {
    switch (c) {
        case '-': case '.': case '/': case '_':
        case 0x2212: case 0xFF0D: case 0xFF0E: case 0xFF0F: case 0xFF3F:  // minus, full-width - . / _
            return Separator::Joiner;
        default: break;
    }
    if (is_white_space(c) || (c >= 0x2010 && c <= 0x2015)) return Separator::Joiner;  // dashes
    if (c == kInvalid) return Separator::Joiner;  // perhaps a space in another encoding: mask
    if (in_ranges(c, kInvisible)) return Separator::Invisible;
    // Any other punctuation or symbol (',', ':', ';', '|', '+', '~', '#', parentheses, ...).
    if (is_symbol(c)) return Separator::Lister;
    return Separator::Break;  // letters (of any script), and what is not known to be a symbol
}

struct Digit {
    size_t at, size;  // bytes in the text
    int value;        // 0..9, or kMasked
};

// A '*' read as a digit already masked (Stars::AreDigits): its value is unknown.
constexpr int kMasked = 10;

// Whether '*' is read as a masked digit (contains_card_number: a number masked already is
// still a card number) or as a symbol (redact_card_numbers).
enum class Stars { AreSymbols, AreDigits };

inline int digit_or_star(char32_t c, Stars stars) {
    if (c == '*' && stars == Stars::AreDigits) return kMasked;
    return digit_value(c);
}

// Digits with no visible separator between them; `after_lister` when a ',' or ':' precedes it.
struct Run {
    size_t begin, end;  // indices into Chain::digits
    bool after_lister;
    int length() const { return static_cast<int>(end - begin); }
};

// Runs joined by gaps of at most kMaxGap separators.
struct Chain {
    std::vector<Digit> digits;
    std::vector<Run> runs;
    size_t end() const { return digits.back().at + digits.back().size; }
};

// The chain that starts at the digit at `at`.
Chain read_chain(std::string_view text, size_t at, Stars stars) {
    Chain chain;
    int gap = 0;  // visible separators since the last digit
    bool lister = false;
    for (size_t pos = at; pos < text.size();) {
        const CodePoint c = decode_utf8(text, pos);
        const int value = digit_or_star(c.value, stars);
        if (value >= 0) {
            if (chain.runs.empty() || gap > 0) chain.runs.push_back({chain.digits.size(), 0, lister});
            chain.digits.push_back({pos, c.size, value});
            chain.runs.back().end = chain.digits.size();
            gap = 0;
            lister = false;
        } else {
            const Separator kind = separator_kind(c.value);
            if (kind == Separator::Break || (kind != Separator::Invisible && ++gap > kMaxGap)) break;
            lister = lister || kind == Separator::Lister;
        }
        pos += c.size;
    }
    return chain;
}

bool passes_luhn(const std::vector<Digit>& digits, size_t begin, size_t end) {
    int sum = 0;
    bool doubled = false;  // every second digit from the right
    for (size_t i = end; i-- > begin; doubled = !doubled) {
        if (digits[i].value == kMasked) return true;  // a masked digit: its check cannot be known
        const int d = doubled ? digits[i].value * 2 : digits[i].value;
        sum += d > 9 ? d - 9 : d;
    }
    return sum % 10 == 0;
}

void hide_all_but_last_four(std::vector<bool>& hidden, size_t begin, size_t end) {
    for (size_t i = begin; i + kShownDigits < end; ++i) hidden[i] = true;
}

// Segments (runs joined by joiners only) of 13 or more digits, whatever their checksum.
void hide_long_segments(const Chain& chain, std::vector<bool>& hidden) {
    for (size_t first = 0; first < chain.runs.size();) {
        size_t last = first;
        while (last + 1 < chain.runs.size() && !chain.runs[last + 1].after_lister) ++last;
        const size_t begin = chain.runs[first].begin, end = chain.runs[last].end;
        if (end - begin >= static_cast<size_t>(kMinPanDigits)) hide_all_but_last_four(hidden, begin, end);
        first = last + 1;
    }
}

// Consecutive runs across a ',' or ':' that look like a grouped PAN: 13 to 19 digits, every
// run but the last at least four digits long, Luhn-valid. Lists of short numbers and times
// stay readable; the check digit tells a listed PAN from a list of ids.
void hide_listed_pans(const Chain& chain, std::vector<bool>& hidden) {
    const auto& runs = chain.runs;
    // Whole segments only: a listed number does not begin or end inside a number written with
    // joiners ("4111 1111 1111 1111; 4111 ..." is two numbers, not one across the ';').
    const auto segment_ends_at = [&](size_t last) { return last + 1 == runs.size() || runs[last + 1].after_lister; };
    for (size_t first = 0; first < runs.size(); ++first) {
        if (first > 0 && !runs[first].after_lister) continue;
        int digits = runs[first].length();
        bool listed = false;
        for (size_t last = first + 1; last < runs.size(); ++last) {
            if (runs[last - 1].length() < kMinListedGroup) break;
            digits += runs[last].length();
            listed = listed || runs[last].after_lister;
            if (digits > kMaxPanDigits) break;
            const size_t begin = runs[first].begin, end = runs[last].end;
            if (listed && segment_ends_at(last) && digits >= kMinPanDigits && passes_luhn(chain.digits, begin, end))
                hide_all_but_last_four(hidden, begin, end);
        }
    }
}

bool has_fewer_digits_than_a_pan(std::string_view text, Stars stars) {
    int digits = 0;
    for (size_t at = 0; at < text.size() && digits < kMinPanDigits;) {
        const CodePoint c = decode_utf8(text, at);
        digits += digit_or_star(c.value, stars) >= 0;
        at += c.size;
    }
    return digits < kMinPanDigits;
}

// The digits (their bytes in the text) that redact_card_numbers replaces, in text order.
std::vector<Digit> card_digits_to_hide(std::string_view text, Stars stars = Stars::AreSymbols) {
    std::vector<Digit> to_hide;
    if (has_fewer_digits_than_a_pan(text, stars)) return to_hide;  // most text: no allocation, one pass
    for (size_t at = 0; at < text.size();) {
        const CodePoint c = decode_utf8(text, at);
        if (digit_or_star(c.value, stars) < 0) {
            at += c.size;
            continue;
        }
        const Chain chain = read_chain(text, at, stars);
        if (chain.digits.size() >= static_cast<size_t>(kMinPanDigits)) {
            std::vector<bool> hidden(chain.digits.size(), false);
            hide_long_segments(chain, hidden);
            hide_listed_pans(chain, hidden);
            for (size_t i = 0; i < chain.digits.size(); ++i)
                if (hidden[i]) to_hide.push_back(chain.digits[i]);
        }
        at = chain.end();
    }
    return to_hide;
}

}  // namespace

std::string strip_format_characters(std::string_view text) {
    std::string out;
    size_t copied = 0;  // text before this is in `out`, but for the format characters
    for_each_code_point(text, [&](const CodePoint& c) {
        if (c.size == 1 || !in_ranges(c.value, kFormatCharacters)) return;  // all are multi-byte
        out.append(text.data() + copied, c.at - copied);
        copied = c.at + c.size;
    });
    if (copied == 0) return std::string(text);  // nearly always: one copy
    out.append(text.substr(copied));
    return out;
}

std::string collapse_whitespace(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    bool pending_space = false;
    for_each_code_point(text, [&](const CodePoint& c) {
        if (is_white_space(c.value)) {
            pending_space = !out.empty();
            return;
        }
        if (pending_space) out.push_back(' ');
        pending_space = false;
        append_code_point(out, text, c);
    });
    return out;
}

bool redact_card_numbers_into(std::string_view text, std::string& out) {
    const std::vector<Digit> to_hide = card_digits_to_hide(text);
    if (to_hide.empty()) return false;
    size_t copied = 0;
    for (const Digit& d : to_hide) {
        out.append(text.substr(copied, d.at - copied));
        out.push_back('*');  // one byte, whatever the digit's length: the text stays valid UTF-8
        copied = d.at + d.size;
    }
    out.append(text.substr(copied));
    return true;
}

std::string redact_card_numbers(std::string_view text) {
    std::string out;
    if (!redact_card_numbers_into(text, out)) return std::string(text);
    return out;
}

bool contains_card_number(std::string_view text) { return !card_digits_to_hide(text, Stars::AreDigits).empty(); }

bool mask_card_into(std::string_view value, std::string& out) {
    const auto is_space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
    size_t begin = 0, end = value.size();
    while (begin < end && is_space(value[begin])) ++begin;
    while (end > begin && is_space(value[end - 1])) --end;
    const std::string_view number = value.substr(begin, end - begin);
    if (number.empty()) return false;  // blank: mask_card makes it NULL
    size_t characters = 0;             // code points (an invalid byte is one), as length() counts them
    for (size_t at = 0; at < number.size(); at += decode_utf8(number, at).size) ++characters;
    if (characters <= static_cast<size_t>(kShownDigits)) {
        if (number.size() == value.size()) return false;  // nothing to mask, nothing to trim
        out.append(number);
        return true;
    }
    size_t kept_from = 0;  // the last four characters are kept
    for (size_t skip = characters - kShownDigits; skip > 0; --skip) kept_from += decode_utf8(number, kept_from).size;
    const size_t at = out.size();
    out.append(characters - kShownDigits, '*');
    out.append(number.substr(kept_from));
    if (std::string_view(out).substr(at) == value) {  // masked already
        out.resize(at);
        return false;
    }
    return true;
}

bool has_control_characters(std::string_view text) {
    for (size_t at = 0; at < text.size(); ++at) {
        const unsigned char b = static_cast<unsigned char>(text[at]);
        if ((b >= 0x01 && b <= 0x08) || b == 0x0B || b == 0x0C || (b >= 0x0E && b <= 0x1F) || b == 0x7F) return true;
        // U+0080-U+009F are C2 80-C2 9F; C2 is never a continuation byte, so no decoding is needed.
        if (b == 0xC2 && at + 1 < text.size()) {
            const unsigned char next = static_cast<unsigned char>(text[at + 1]);
            if (next >= 0x80 && next <= 0x9F) return true;
        }
    }
    return false;
}

bool may_need_trimming(std::string_view text) {
    if (text.empty()) return false;
    if (text.front() == ' ' || text.back() == ' ') return true;
    for (char c : text) {
        const unsigned char b = static_cast<unsigned char>(c);
        if (b < 0x20 || b > 0x7E) return true;
    }
    return false;
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
