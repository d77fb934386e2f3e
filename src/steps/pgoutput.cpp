// The pgoutput decoder and the transaction assembler (src/steps/pgoutput.hpp); what the stream
// does with the transactions they give is in pgoutput_batch.cpp.
#include "steps/pure_cpp.hpp"

#include "steps/pgoutput.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace sicoop::pgoutput {

namespace {

// A cursor over one message: every read checks what is left first.
class Reader {
public:
    Reader(const char* data, size_t length) : data_(data), length_(length) {}

    size_t left() const { return length_ - pos_; }
    uint8_t byte() {
        need(1, "a byte");
        return static_cast<uint8_t>(data_[pos_++]);
    }
    uint16_t int16() { return static_cast<uint16_t>(big_endian(2, "an Int16")); }
    uint32_t int32() { return static_cast<uint32_t>(big_endian(4, "an Int32")); }
    uint64_t int64() { return big_endian(8, "an Int64"); }
    // A NUL-terminated string.
    std::string string() {
        for (size_t end = pos_; end < length_; ++end)
            if (data_[end] == '\0') {
                std::string s(data_ + pos_, end - pos_);
                pos_ = end + 1;
                return s;
            }
        throw std::runtime_error("pgoutput: a string without its terminating NUL");
    }
    std::string bytes(size_t n) {
        need(n, "a value");
        std::string s(data_ + pos_, n);
        pos_ += n;
        return s;
    }
    void expect_end(const char* what) const {
        if (pos_ != length_)
            throw std::runtime_error(std::string("pgoutput: ") + std::to_string(length_ - pos_) +
                                     " unexpected byte(s) after a " + what + " message");
    }

private:
    void need(size_t n, const char* what) const {
        if (left() < n)
            throw std::runtime_error(std::string("pgoutput: the message ends where ") + what + " was expected");
    }
    uint64_t big_endian(size_t n, const char* what) {
        need(n, what);
        uint64_t v = 0;
        for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<uint8_t>(data_[pos_++]);
        return v;
    }

    const char* data_;
    size_t length_;
    size_t pos_ = 0;
};

Tuple read_tuple(Reader& r) {
    const uint16_t ncols = r.int16();
    if (ncols > r.left()) throw std::runtime_error("pgoutput: a row with more columns than its message holds");
    Tuple tuple;
    tuple.reserve(ncols);
    for (uint16_t i = 0; i < ncols; ++i) {
        Column c;
        switch (const char kind = static_cast<char>(r.byte())) {
            case 'n': c.kind = Column::Kind::Null; break;
            case 'u': c.kind = Column::Kind::UnchangedToast; break;
            case 't': {
                c.kind = Column::Kind::Text;
                const uint32_t len = r.int32();
                c.value = r.bytes(len);
                break;
            }
            default:
                throw std::runtime_error(std::string("pgoutput: unknown column kind '") + kind +
                                         "' (binary values are not asked for)");
        }
        tuple.push_back(std::move(c));
    }
    return tuple;
}

void read_begin(Reader& r, Message& m) {
    m.kind = Message::Kind::Begin;
    m.lsn = r.int64();
    m.commit_time = static_cast<Timestamp>(r.int64());
    m.xid = r.int32();
    r.expect_end("begin");
}

void read_commit(Reader& r, Message& m) {
    m.kind = Message::Kind::Commit;
    r.byte();  // flags, unused
    m.lsn = r.int64();
    m.end_lsn = r.int64();
    m.commit_time = static_cast<Timestamp>(r.int64());
    r.expect_end("commit");
}

void read_origin(Reader& r, Message& m) {
    m.kind = Message::Kind::Origin;
    m.lsn = r.int64();
    m.name = r.string();
    r.expect_end("origin");
}

void read_type(Reader& r, Message& m) {
    m.kind = Message::Kind::Type;
    m.relation_id = r.int32();
    m.schema = r.string();
    m.name = r.string();
    r.expect_end("type");
}

void read_insert(Reader& r, Message& m) {
    m.kind = Message::Kind::Insert;
    m.relation_id = r.int32();
    if (r.byte() != 'N') throw std::runtime_error("pgoutput: an insert without its new row");
    m.new_tuple = read_tuple(r);
    r.expect_end("insert");
}

void read_relation(Reader& r, Message& m) {
    m.kind = Message::Kind::Relation;
    m.relation_id = r.int32();
    m.schema = r.string();
    m.name = r.string();
    m.replica_identity = static_cast<char>(r.byte());
    const uint16_t ncols = r.int16();
    for (uint16_t i = 0; i < ncols; ++i) {
        RelationColumn c;
        c.part_of_key = (r.byte() & 1) != 0;
        c.name = r.string();
        c.type_oid = r.int32();
        c.type_modifier = static_cast<int32_t>(r.int32());
        m.columns.push_back(std::move(c));
    }
    r.expect_end("relation");
}

void read_update(Reader& r, Message& m) {
    m.kind = Message::Kind::Update;
    m.relation_id = r.int32();
    char next = static_cast<char>(r.byte());
    if (next == 'K' || next == 'O') {  // the old row: its key ('K') or all of it ('O')
        m.old_kind = next;
        m.old_tuple = read_tuple(r);
        next = static_cast<char>(r.byte());
    }
    if (next != 'N') throw std::runtime_error("pgoutput: an update without its new row");
    m.new_tuple = read_tuple(r);
    r.expect_end("update");
}

void read_delete(Reader& r, Message& m) {
    m.kind = Message::Kind::Delete;
    m.relation_id = r.int32();
    const char old_kind = static_cast<char>(r.byte());
    if (old_kind != 'K' && old_kind != 'O') throw std::runtime_error("pgoutput: a delete without the old row's key");
    m.old_kind = old_kind;
    m.old_tuple = read_tuple(r);
    r.expect_end("delete");
}

void read_truncate(Reader& r, Message& m) {
    m.kind = Message::Kind::Truncate;
    const uint32_t nrels = r.int32();
    const uint8_t options = r.byte();
    m.truncate_cascade = (options & 1) != 0;
    m.truncate_restart_identity = (options & 2) != 0;
    if (nrels > r.left() / 4) throw std::runtime_error("pgoutput: a truncate names more relations than it holds");
    for (uint32_t i = 0; i < nrels; ++i) m.truncated.push_back(r.int32());
    r.expect_end("truncate");
}

void put_int64(std::string& out, uint64_t v) {
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

}  // namespace

std::string format_lsn(Lsn lsn) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(lsn >> 32), static_cast<unsigned>(lsn & 0xffffffffu));
    return buf;
}

std::optional<Lsn> parse_lsn(const std::string& text) {
    const size_t slash = text.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == text.size()) return std::nullopt;
    auto hex = [](const std::string& s, uint64_t& v) {
        if (s.size() > 8) return false;
        v = 0;
        for (char c : s) {
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0) return false;
            v = (v << 4) | static_cast<uint64_t>(d);
        }
        return true;
    };
    uint64_t hi = 0, lo = 0;
    if (!hex(text.substr(0, slash), hi) || !hex(text.substr(slash + 1), lo)) return std::nullopt;
    return (hi << 32) | lo;
}

Message decode_message(const char* data, size_t length) {
    Reader r(data, length);
    Message m;
    switch (const char kind = static_cast<char>(r.byte())) {
        case 'B': read_begin(r, m); break;
        case 'C': read_commit(r, m); break;
        case 'O': read_origin(r, m); break;
        case 'R': read_relation(r, m); break;
        case 'Y': read_type(r, m); break;
        case 'I': read_insert(r, m); break;
        case 'U': read_update(r, m); break;
        case 'D': read_delete(r, m); break;
        case 'T': read_truncate(r, m); break;
        default:
            throw std::runtime_error(std::string("pgoutput: unknown message kind '") + kind + "'");
    }
    return m;
}

StreamMessage decode_stream_message(const char* data, size_t length) {
    Reader r(data, length);
    StreamMessage s;
    switch (const char kind = static_cast<char>(r.byte())) {
        case 'w':
            s.kind = StreamMessage::Kind::XLogData;
            s.wal_start = r.int64();
            s.wal_end = r.int64();
            s.send_time = static_cast<Timestamp>(r.int64());
            s.message = decode_message(data + (length - r.left()), r.left());
            break;
        case 'k':
            s.kind = StreamMessage::Kind::Keepalive;
            s.wal_end = r.int64();
            s.send_time = static_cast<Timestamp>(r.int64());
            s.reply_requested = r.byte() != 0;
            r.expect_end("keepalive");
            break;
        default:
            throw std::runtime_error(std::string("replication stream: unknown message kind '") + kind + "'");
    }
    return s;
}

std::string standby_status_update(Lsn written, Lsn flushed, Lsn applied, Timestamp now, bool reply_requested) {
    std::string out(1, 'r');
    put_int64(out, written);
    put_int64(out, flushed);
    put_int64(out, applied);
    put_int64(out, static_cast<uint64_t>(now));
    out.push_back(reply_requested ? 1 : 0);
    return out;
}

}  // namespace sicoop::pgoutput

namespace sicoop::pgoutput {

namespace {
// A string's memory: itself, and its heap buffer (with the allocator's header) past the
// short-string buffer.
size_t string_bytes(const std::string& s) { return sizeof(std::string) + (s.capacity() > 15 ? s.capacity() + 1 + 16 : 0); }
size_t tuple_bytes(const Tuple& t) {
    size_t n = t.capacity() * sizeof(Column) + 16;
    for (const Column& c : t) n += string_bytes(c.value) - sizeof(std::string);
    return n;
}
}  // namespace

size_t change_bytes(const Change& c) {
    size_t n = sizeof(Change) + string_bytes(c.table) - sizeof(std::string) + tuple_bytes(c.old_key) + tuple_bytes(c.row) +
               c.columns.capacity() * sizeof(std::string) + 16;
    for (const std::string& name : c.columns) n += string_bytes(name) - sizeof(std::string);
    return n;
}

Transaction TransactionAssembler::take_part() {
    if (!open_) throw std::logic_error("replication stream: a part taken outside a transaction");
    Transaction part{open_->xid, open_->commit_lsn, 0, open_->commit_time, std::move(open_->changes), open_bytes_};
    open_->changes = {};
    open_bytes_ = 0;
    return part;
}

TransactionAssembler::TransactionAssembler(std::string source_schema, std::vector<std::string> tables, Lsn applied)
    : source_schema_(std::move(source_schema)), tables_(std::move(tables)), applied_(applied) {}

const TransactionAssembler::Relation& TransactionAssembler::relation(uint32_t id) const {
    for (const auto& [rid, rel] : relations_)
        if (rid == id) return rel;
    throw std::runtime_error("replication stream: a change of relation " + std::to_string(id) +
                             " that no Relation message described");
}

std::optional<Transaction> TransactionAssembler::feed(const Message& m) {
    using K = Message::Kind;
    switch (m.kind) {
        case K::Begin:
            begin(m);
            return std::nullopt;
        case K::Commit:
            return commit(m);
        case K::Relation:
            describe(m);
            return std::nullopt;
        case K::Insert:
        case K::Update:
        case K::Delete:
        case K::Truncate:
            if (!open_) throw std::runtime_error("replication stream: a change outside a transaction");
            if (m.kind == K::Truncate)
                truncate(m);
            else
                change(m);
            return std::nullopt;
        case K::Origin:
        case K::Type:
            return std::nullopt;
    }
    return std::nullopt;
}

void TransactionAssembler::begin(const Message& m) {
    if (open_) throw std::runtime_error("replication stream: a transaction began inside another");
    open_ = Transaction{m.xid, m.lsn, 0, m.commit_time, {}};
    // Already in the warehouse (a replay after a restart): nothing of it is kept, however
    // big it is. (Its commit drops it whole, as before.)
    skipping_ = m.lsn != 0 && m.lsn < applied_;
    open_bytes_ = 0;
}

std::optional<Transaction> TransactionAssembler::commit(const Message& m) {
    if (!open_) throw std::runtime_error("replication stream: a commit outside a transaction");
    Transaction t = std::move(*open_);
    open_.reset();
    t.commit_lsn = m.lsn;
    t.end_lsn = m.end_lsn;
    t.commit_time = m.commit_time;
    t.bytes = open_bytes_;
    skipping_ = false;
    open_bytes_ = 0;
    // Already in the warehouse: what it stores is the end of the last commit applied (past
    // that commit's LSN), or a position the source said it had sent everything before
    // (a keepalive while nothing was pending): a transaction committing exactly there was
    // not sent yet, and is kept (issue 25: a restart lost a large transaction so).
    if (t.commit_lsn < applied_) return std::nullopt;
    applied_ = t.commit_lsn;
    return t;
}

// A Relation message: what the source says a relation id is (again, after a schema change).
void TransactionAssembler::describe(const Message& m) {
    Relation rel;
    const bool ours = m.schema == source_schema_ &&
                      std::find(tables_.begin(), tables_.end(), m.name) != tables_.end();
    if (ours) {
        bool has_key = false;
        for (const RelationColumn& c : m.columns) has_key = has_key || c.part_of_key;
        if (m.replica_identity == 'n' || !has_key)
            throw std::runtime_error("replication stream: source table " + m.schema + "." + m.name +
                                     " has no replica identity key, so its updates and deletes cannot be "
                                     "applied: give it a primary key, or ALTER TABLE ... REPLICA IDENTITY "
                                     "USING INDEX on a unique index of its key");
        rel.table = m.name;
        for (const RelationColumn& c : m.columns) rel.columns.push_back(c.name);
    }
    for (auto& [rid, known] : relations_)
        if (rid == m.relation_id) {
            known = std::move(rel);
            return;
        }
    relations_.emplace_back(m.relation_id, std::move(rel));
}

void TransactionAssembler::truncate(const Message& m) {
    for (uint32_t id : m.truncated) {
        const Relation& rel = relation(id);
        if (rel.table.empty() || skipping_) continue;
        open_->changes.push_back(Change{Change::Kind::Truncate, rel.table, rel.columns, {}, {}});
        open_bytes_ += change_bytes(open_->changes.back());
    }
}

// An insert, update or delete inside the open transaction.
void TransactionAssembler::change(const Message& m) {
    using K = Message::Kind;
    const Relation& rel = relation(m.relation_id);
    if (rel.table.empty()) return;
    const Tuple& shape = m.kind == K::Delete ? m.old_tuple : m.new_tuple;
    if (shape.size() != rel.columns.size())
        throw std::runtime_error("replication stream: a change of " + rel.table + " with " +
                                 std::to_string(shape.size()) + " columns, its relation has " +
                                 std::to_string(rel.columns.size()));
    Change c;
    c.kind = m.kind == K::Insert ? Change::Kind::Insert : m.kind == K::Update ? Change::Kind::Update
                                                                               : Change::Kind::Delete;
    c.table = rel.table;
    c.columns = rel.columns;
    if (skipping_) return;
    c.old_key = m.old_tuple;
    c.row = m.new_tuple;
    open_bytes_ += change_bytes(c);
    open_->changes.push_back(std::move(c));
}

}  // namespace sicoop::pgoutput
