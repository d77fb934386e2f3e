#include "steps/pure_cpp.hpp"

#include "steps/copy_filter.hpp"

#include "steps/text_rules.hpp"

#include <cstring>

namespace sicoop {

namespace {

constexpr int kMinPanDigits = 13;                        // a field with fewer digits holds no card number
constexpr char kBinarySignature[] = "PGCOPY\n\377\r\n";  // and a zero byte: 11 bytes
constexpr size_t kBinaryHeader = 19;                     // signature, flags, extension length

uint32_t be32(const char* p) {
    const auto b = [&](int i) { return static_cast<uint32_t>(static_cast<unsigned char>(p[i])); };
    return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

void append_be32(std::string& out, uint32_t v) {
    const char bytes[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                           static_cast<char>(v)};
    out.append(bytes, 4);
}

// Whether the bytes may hold 13 digits: ASCII digits, and bytes of other scripts' digits (and of
// escapes that write one: "\x34" and "\064" carry more digits than they write).
bool may_hold_a_card_number(std::string_view raw) {
    int candidates = 0;
    for (char c : raw) {
        const unsigned char u = static_cast<unsigned char>(c);
        candidates += (u >= '0' && u <= '9') || u >= 0x80;
        if (candidates >= kMinPanDigits) return true;
    }
    return false;
}

int octal(char c) { return c >= '0' && c <= '7' ? c - '0' : -1; }
int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// A text-format field's value, its escapes decoded as COPY FROM decodes them
// (CopyReadAttributesText).
void decode_text_field(std::string_view raw, std::string& out) {
    out.clear();
    for (size_t i = 0; i < raw.size(); ++i) {
        char c = raw[i];
        if (c != '\\' || i + 1 >= raw.size()) {
            out.push_back(c);
            continue;
        }
        c = raw[++i];
        if (octal(c) >= 0) {
            int v = octal(c);
            for (int n = 0; n < 2 && i + 1 < raw.size() && octal(raw[i + 1]) >= 0; ++n) v = v * 8 + octal(raw[++i]);
            out.push_back(static_cast<char>(v & 0377));
            continue;
        }
        if (c == 'x' && i + 1 < raw.size() && hex(raw[i + 1]) >= 0) {
            int v = hex(raw[++i]);
            if (i + 1 < raw.size() && hex(raw[i + 1]) >= 0) v = v * 16 + hex(raw[++i]);
            out.push_back(static_cast<char>(v & 0xff));
            continue;
        }
        switch (c) {
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            case 'v':
                c = '\v';
                break;
            default:
                break;  // any other character stands for itself
        }
        out.push_back(c);
    }
}

// A value written as a text-format field: what COPY TO escapes, escaped.
void encode_text_field(std::string_view value, std::string& out) {
    out.clear();
    for (char c : value) {
        switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            case '\v':
                out += "\\v";
                break;
            default:
                out.push_back(c);
        }
    }
}

}  // namespace

CopyFilter::CopyFilter(bool binary, std::vector<CopyMask> masks) : binary_(binary), masks_(std::move(masks)) {
    for (CopyMask m : masks_) active_ = active_ || m != CopyMask::None;
}

bool CopyFilter::mask_value(std::string_view value, CopyMask mask) {
    masked_.clear();
    bool changed = false;
    if (mask == CopyMask::CardNumber)
        changed = mask_card_into(value, masked_);
    else if (mask != CopyMask::None && may_hold_a_card_number(value))
        changed = redact_card_numbers_into(value, masked_);
    fields_masked_ += changed;
    return changed;
}

bool CopyFilter::mask_text_field(std::string_view raw, CopyMask mask) {
    if (mask == CopyMask::None || raw.empty() || raw == "\\N") return false;
    if (mask != CopyMask::CardNumber && !may_hold_a_card_number(raw)) return false;
    std::string_view value = raw;
    if (raw.find('\\') != std::string_view::npos) {
        decode_text_field(raw, field_);
        value = field_;
    }
    if (!mask_value(value, mask)) return false;
    encode_text_field(masked_, field_);
    masked_.swap(field_);
    return true;
}

// Text format: rows end at an unescaped LF or CR (COPY FROM takes either as the end of a line,
// and refuses a row holding the other), fields at an unescaped tab; a backslash escapes the byte
// after it. One pass: each field is masked when it ends; a row cut by the end of the data is
// taken back out of the output.
size_t CopyFilter::text_rows(std::string_view data, bool at_end, bool& changed) {
    size_t emitted = 0;  // data before this is in out_ (when changed)
    size_t row_start = 0;
    size_t i = 0;
    while (row_start < data.size()) {
        const size_t out_at_row = out_.size(), emitted_at_row = emitted;
        const bool changed_at_row = changed;
        size_t field_start = row_start, column = 0;
        bool row_ended = false;
        for (i = row_start;; ++i) {
            const bool end_of_data = i >= data.size();
            const char c = end_of_data ? '\n' : data[i];
            if (c == '\\' && !end_of_data) {
                ++i;  // the escaped byte (past the end: the row is cut)
                continue;
            }
            if (c != '\t' && c != '\n' && c != '\r') continue;
            if (end_of_data && !at_end) break;  // the row is cut: it waits for the rest
            const size_t field_end = std::min(i, data.size());
            const CopyMask mask = column < masks_.size() ? masks_[column] : CopyMask::FreeText;
            if (mask_text_field(data.substr(field_start, field_end - field_start), mask)) {
                changed = true;
                out_.append(data.substr(emitted, field_start - emitted));
                out_.append(masked_);
                emitted = field_end;
            }
            ++column;
            field_start = i + 1;
            if (c != '\t') {
                row_ended = true;
                break;
            }
        }
        if (!row_ended) {  // cut: nothing of this row is passed on yet
            out_.resize(out_at_row);
            emitted = emitted_at_row;
            changed = changed_at_row;
            break;
        }
        row_start = std::min(i + 1, data.size());
    }
    if (changed) out_.append(data.substr(emitted, row_start - emitted));
    return row_start;
}

namespace {

// Where a binary row that starts at `pos` ends (`end`), all of it being in `data`: Whole; Cut
// when its end is not here yet; Malformed when a field length is below -1 (COPY FROM refuses
// the row, and so the copy).
enum class BinaryRow { Whole, Cut, Malformed };
constexpr size_t kFieldCountBytes = 2;   // a row's 16-bit field count
constexpr size_t kFieldLengthBytes = 4;  // a field's 32-bit length

BinaryRow binary_row_end(std::string_view data, size_t pos, int fields, size_t& end) {
    end = pos + kFieldCountBytes;
    for (int f = 0; f < fields; ++f) {
        if (data.size() - end < kFieldLengthBytes) return BinaryRow::Cut;
        const int32_t length = static_cast<int32_t>(be32(data.data() + end));
        end += kFieldLengthBytes;
        if (length < -1) return BinaryRow::Malformed;
        if (length > 0 && data.size() - end < static_cast<size_t>(length)) return BinaryRow::Cut;
        if (length > 0) end += static_cast<size_t>(length);
    }
    return BinaryRow::Whole;
}

}  // namespace

// The binary file header: false when binary_rows() returns `pos` at once (the header not all
// here yet: 0; not COPY binary data: all of it, COPY FROM refuses it and nothing is written).
bool CopyFilter::binary_header(std::string_view data, size_t& pos) {
    pos = 0;
    if (data.size() < kBinaryHeader) return false;
    header_done_ = true;
    if (memcmp(data.data(), kBinarySignature, sizeof kBinarySignature) != 0) {
        trailer_seen_ = true;
        pos = data.size();
        return false;
    }
    const uint32_t extension = be32(data.data() + kBinaryHeader - kFieldLengthBytes);
    if (data.size() - kBinaryHeader < extension) {
        header_done_ = false;
        return false;
    }
    pos = kBinaryHeader + extension;
    return true;
}

// The fields of the whole binary row whose fields start at `at`: those to mask are written
// masked to out_ (with what came before them since `emitted`).
void CopyFilter::mask_binary_row(std::string_view data, size_t at, int fields, size_t& emitted, bool& changed) {
    for (int f = 0; f < fields; ++f) {
        const int32_t length = static_cast<int32_t>(be32(data.data() + at));
        const size_t value_at = at + kFieldLengthBytes;
        const size_t value_end = value_at + (length > 0 ? static_cast<size_t>(length) : 0);
        const CopyMask mask = static_cast<size_t>(f) < masks_.size() ? masks_[f] : CopyMask::FreeText;
        if (length >= 0 && mask != CopyMask::None && mask_value(data.substr(value_at, value_end - value_at), mask)) {
            changed = true;
            out_.append(data.substr(emitted, at - emitted));
            append_be32(out_, static_cast<uint32_t>(masked_.size()));
            out_.append(masked_);
            emitted = value_end;
        }
        at = value_end;
    }
}

// Binary format: the header, then rows of a 16-bit field count (-1: the end) and fields of a
// 32-bit length (-1: NULL) and their bytes. A text or varchar field's bytes are the text itself.
size_t CopyFilter::binary_rows(std::string_view data, bool& changed) {
    size_t pos = 0;
    if (!header_done_ && !binary_header(data, pos)) return pos;
    size_t emitted = 0;
    while (pos < data.size()) {
        if (trailer_seen_) {
            pos = data.size();
            break;
        }
        if (data.size() - pos < kFieldCountBytes) break;
        const int16_t fields = static_cast<int16_t>((static_cast<unsigned char>(data[pos]) << 8) |
                                                    static_cast<unsigned char>(data[pos + 1]));
        if (fields < 0) {  // the end marker (or no valid row: COPY FROM refuses it)
            trailer_seen_ = true;
            continue;
        }
        // First the row's end (all of it must be here), then its fields.
        size_t end = 0;
        const BinaryRow row = binary_row_end(data, pos, fields, end);
        if (row == BinaryRow::Cut) break;
        if (row == BinaryRow::Malformed) {
            trailer_seen_ = true;
            continue;
        }
        mask_binary_row(data, pos + kFieldCountBytes, fields, emitted, changed);
        pos = end;
    }
    if (changed) out_.append(data.substr(emitted, pos - emitted));
    return pos;
}

size_t CopyFilter::process(std::string_view data, bool at_end, bool& changed) {
    changed = false;
    out_.clear();
    return binary_ ? binary_rows(data, changed) : text_rows(data, at_end, changed);
}

std::string_view CopyFilter::feed(std::string_view chunk) {
    if (!active_) return chunk;
    bool changed = false;
    if (pending_.empty()) {
        const size_t used = process(chunk, false, changed);
        if (used < chunk.size()) pending_.assign(chunk.substr(used));
        return changed ? std::string_view(out_) : chunk.substr(0, used);
    }
    // The rest of a cut row: joined with it (rare: the source sends whole rows per message).
    joined_.swap(pending_);
    joined_.append(chunk);
    pending_.clear();
    const size_t used = process(joined_, false, changed);
    if (used < joined_.size()) pending_.assign(joined_, used, std::string::npos);
    return changed ? std::string_view(out_) : std::string_view(joined_).substr(0, used);
}

std::string_view CopyFilter::finish() {
    if (!active_ || pending_.empty()) return {};
    joined_.swap(pending_);
    pending_.clear();
    if (binary_) return {};  // a cut row: dropped (COPY FROM then reports the data cut short)
    bool changed = false;
    const size_t used = process(joined_, true, changed);
    return changed ? std::string_view(out_) : std::string_view(joined_).substr(0, used);
}

const std::string& CopyFilter::filter_all(const std::string& text, std::string& out) {
    if (!active_) return text;
    const std::string_view a = feed(text);
    if (a.data() == text.data() && a.size() == text.size() && pending_.empty()) return text;
    out.assign(a);
    out.append(finish());
    return out;
}

}  // namespace sicoop
