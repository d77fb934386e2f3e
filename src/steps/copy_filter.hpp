// The COPY filter: no full card number reaches a table of the warehouse, not even for an
// instant (a dead tuple, a WAL record, an unlogged stage page). Every COPY that lands source
// rows -- the bulk copy from the source into the stage or straight into raw (src/bulk_copy.cpp),
// and a stream's micro-batch from memory -- passes its bytes through one CopyFilter before
// COPY FROM parses them, so the masking happens in memory, before the first write:
//   - numero_cartao: masked as sicoop.mask_card does (all but the last four characters);
//   - free text (names, descriptions, every other text column of a source table): card numbers
//     in it masked as sicoop._redact_card_numbers does;
//   - keys (id_*, and record_id of the tables of keys): a key cannot be masked without breaking
//     it, so one that holds a card number is masked all the same -- it never reaches a table in
//     clear -- and the key rule (kind no_card_number, sicoop.contains_card_number, which reads a
//     masked number as one) rejects its row with its reason, as 1.4 decided;
//   - anything else (dates, amounts, run ids) passes as it is.
// A field that is not rewritten is passed on byte for byte; a chunk with nothing to rewrite is
// handed on as it came (no copy). Both COPY formats: text (escapes decoded before the check and
// written again after: \t \n \r \\ \N, octal and hex escapes) and binary (length-prefixed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sicoop {

enum class CopyMask : unsigned char { None, CardNumber, FreeText, Key };

// The masks of a COPY's columns into sicoop.<table> (stage_<t> or raw_<t> of a source table,
// stage_key, stream_key), in the order the COPY lists them (src/steps/raw.cpp).
std::vector<CopyMask> copy_masks(const std::string& table, const std::vector<std::string>& columns);

class CopyFilter {
public:
    CopyFilter() = default;
    CopyFilter(bool binary, std::vector<CopyMask> masks);

    // Whether any column is masked (else the filter is not needed).
    bool active() const { return active_; }

    // The next bytes of the COPY data; returns what to pass on: `chunk` itself when nothing in it
    // changed, else the filter's buffer (valid until the next call). A row cut at the end of the
    // chunk is held back until its end comes.
    std::string_view feed(std::string_view chunk);
    // At the end of the data: what was held back (text: a last row without its newline, masked;
    // binary: a cut row is dropped, and COPY FROM reports the data cut short).
    std::string_view finish();
    // The whole of a COPY text in memory, filtered: `text` itself, or `out` with the result.
    const std::string& filter_all(const std::string& text, std::string& out);

    uint64_t fields_masked() const { return fields_masked_; }

private:
    bool binary_ = false;
    bool active_ = false;
    std::vector<CopyMask> masks_;
    bool header_done_ = false;   // binary: the file header was passed
    bool trailer_seen_ = false;  // binary: the end marker was seen (the rest passes as it is)
    std::string pending_;        // a row cut at the end of the previous chunk
    std::string joined_;         // that row and the chunk that ends it
    std::string out_;            // the rewritten bytes
    std::string field_;          // scratch: a text field decoded
    std::string masked_;         // scratch: a field masked
    uint64_t fields_masked_ = 0;

    // Rewrites the whole rows of `data` into out_ (if something changed); returns the bytes of
    // whole rows consumed, and sets `changed`.
    size_t process(std::string_view data, bool at_end, bool& changed);
    size_t text_rows(std::string_view data, bool at_end, bool& changed);
    size_t binary_rows(std::string_view data, bool& changed);
    bool binary_header(std::string_view data, size_t& pos);
    void mask_binary_row(std::string_view data, size_t at, int fields, size_t& emitted, bool& changed);
    // Whether the field (as it is in the data) must change; if so, its new bytes are in masked_.
    bool mask_text_field(std::string_view raw, CopyMask mask);
    bool mask_value(std::string_view value, CopyMask mask);
};

}  // namespace sicoop
