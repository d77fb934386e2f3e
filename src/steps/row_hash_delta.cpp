#include "steps/pure_cpp.hpp"

#include "steps/row_hash_delta.hpp"

#include <algorithm>
#include <cstddef>
#include <cstring>

namespace sicoop {

namespace {

// Network byte order, as binary COPY writes.
uint32_t be32(const unsigned char* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
uint16_t be16(const unsigned char* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint64_t be64(const unsigned char* p) { return (uint64_t{be32(p)} << 32) | be32(p + 4); }

const unsigned char kSignature[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};

}  // namespace

RowHashDelta::RowHashDelta(int bits) : sums_((size_t{1} << bits) + 1, 0) {}

std::vector<int32_t> RowHashDelta::differing() const {
    std::vector<int32_t> buckets;
    if (null_keys_) buckets.push_back(-1);
    for (size_t slot = 1; slot < sums_.size(); ++slot)
        if (sums_[slot] != 0) buckets.push_back(static_cast<int32_t>(slot) - 1);
    return buckets;
}

RowHashReader::Status RowHashReader::tuple(const unsigned char* p, RowHashDelta& into) noexcept {
    if (be32(p + 2) != 4 || be32(p + 10) != 8) return Status::Malformed;  // a NULL (-1) or another type
    if (!into.add_source(static_cast<int32_t>(be32(p + 6)), be64(p + 14))) return Status::Malformed;
    ++rows_;
    return Status::More;
}

RowHashReader::Status RowHashReader::feed(const char* data, size_t size, RowHashDelta& into) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(data);
    const unsigned char* end = p + size;
    // Takes bytes into pending_ until it holds `need`; false if the piece ends first.
    auto fill = [&](size_t need) {
        const size_t take = std::min(need - pending_size_, static_cast<size_t>(end - p));
        std::memcpy(pending_.data() + pending_size_, p, take);
        pending_size_ += take;
        p += take;
        return pending_size_ == need;
    };
    while (p < end) {
        switch (state_) {
            case State::Header:
                if (!fill(kHeader)) return Status::More;
                pending_size_ = 0;
                if (std::memcmp(pending_.data(), kSignature, sizeof kSignature) != 0) state_ = State::Malformed;
                else {
                    extension_left_ = be32(pending_.data() + 15);
                    state_ = State::Extension;
                }
                break;
            case State::Extension: {
                const size_t skip = std::min(static_cast<size_t>(extension_left_), static_cast<size_t>(end - p));
                p += skip;
                extension_left_ -= static_cast<uint32_t>(skip);
                if (extension_left_ == 0) state_ = State::Tuple;
                break;
            }
            case State::Tuple: {
                // Whole rows straight from the piece; a row cut in two through pending_.
                if (pending_size_ == 0 && end - p >= static_cast<std::ptrdiff_t>(kTuple) && be16(p) == 2) {
                    if (tuple(p, into) == Status::Malformed) state_ = State::Malformed;
                    p += kTuple;
                    break;
                }
                if (pending_size_ < 2 && !fill(2)) return Status::More;
                const uint16_t fields = be16(pending_.data());
                if (fields == 0xffff) {  // the trailer: -1
                    pending_size_ = 0;
                    state_ = State::Ended;
                    break;
                }
                if (fields != 2) {
                    state_ = State::Malformed;
                    break;
                }
                if (!fill(kTuple)) return Status::More;
                pending_size_ = 0;
                if (tuple(pending_.data(), into) == Status::Malformed) state_ = State::Malformed;
                break;
            }
            case State::Ended:  // nothing may follow the trailer
            case State::Malformed: state_ = State::Malformed; return Status::Malformed;
        }
    }
    if (state_ == State::Malformed) return Status::Malformed;
    return state_ == State::Ended ? Status::Ended : Status::More;
}

}  // namespace sicoop
