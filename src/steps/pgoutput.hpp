// PostgreSQL's logical replication stream, as the built-in pgoutput plugin sends it (protocol
// version 1, text values), decoded into plain C++ values: the first building block of
// streaming (issue 19), which reads the source's changes over a libpq replication connection.
//
// What arrives in a CopyData message of START_REPLICATION:
//   'w' XLogData: start LSN, end LSN, send time, then one pgoutput message;
//   'k' primary keepalive: end of WAL, send time, whether a reply is asked for.
// pgoutput messages (https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html):
//   'B' begin, 'C' commit, 'O' origin, 'R' relation, 'Y' type, 'I' insert, 'U' update,
//   'D' delete, 'T' truncate. Each tuple column is null ('n'), an unchanged TOAST value ('u',
//   sent for an update that left it alone: the warehouse keeps what it has), or text ('t').
// Everything is big-endian. Input comes from another server: every length is checked, and a
// message that is short, too long or of an unknown kind is an error (std::runtime_error), never
// a read past the buffer.
// Pure C++: no PostgreSQL headers (a boundary file turns the errors into ereport).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace sicoop::pgoutput {

using Lsn = uint64_t;
// Microseconds since 2000-01-01 00:00:00 UTC, as PostgreSQL's TimestampTz.
using Timestamp = int64_t;

// "16/B374D848", as pg_lsn prints it; and back (nullopt if it is not an LSN).
std::string format_lsn(Lsn lsn);
std::optional<Lsn> parse_lsn(const std::string& text);

struct Column {
    enum class Kind { Null, UnchangedToast, Text };
    Kind kind = Kind::Null;
    std::string value;  // Text only
};
using Tuple = std::vector<Column>;

struct RelationColumn {
    bool part_of_key = false;  // in the replica identity
    std::string name;
    uint32_t type_oid = 0;
    int32_t type_modifier = -1;
};

struct Message {
    enum class Kind { Begin, Commit, Origin, Relation, Type, Insert, Update, Delete, Truncate };
    Kind kind = Kind::Begin;
    // Begin: the transaction's final (commit) LSN; Commit: the commit's LSN.
    Lsn lsn = 0;
    Lsn end_lsn = 0;             // Commit: the end of the commit record (where to resume after it)
    Timestamp commit_time = 0;   // Begin, Commit
    uint32_t xid = 0;            // Begin
    uint32_t relation_id = 0;    // Relation, Type (the type's OID), Insert, Update, Delete
    std::string schema;          // Relation, Type
    std::string name;            // Relation (table), Type, Origin
    char replica_identity = 0;   // Relation: 'd' default, 'n' nothing, 'f' full, 'i' index
    std::vector<RelationColumn> columns;  // Relation
    // Update, Delete: the old row ('K': its key columns only; 'O': the whole row), if sent.
    char old_kind = 0;
    Tuple old_tuple;
    Tuple new_tuple;                        // Insert, Update
    std::vector<uint32_t> truncated;        // Truncate: the relations
    bool truncate_cascade = false;
    bool truncate_restart_identity = false;
};

// One CopyData message of the replication stream.
struct StreamMessage {
    enum class Kind { XLogData, Keepalive };
    Kind kind = Kind::XLogData;
    Lsn wal_start = 0;     // XLogData: where the payload starts
    Lsn wal_end = 0;       // the server's end of WAL
    Timestamp send_time = 0;
    bool reply_requested = false;  // Keepalive
    std::optional<Message> message;  // XLogData: the pgoutput message
};

// Decodes one CopyData message (its bytes after the CopyData framing).
StreamMessage decode_stream_message(const char* data, size_t length);
// Decodes one pgoutput message.
Message decode_message(const char* data, size_t length);

// The standby status update the client sends back ('r'): what it has written, flushed and
// applied, so the server may let go of the WAL before `flushed` (the slot's confirmed LSN).
std::string standby_status_update(Lsn written, Lsn flushed, Lsn applied, Timestamp now, bool reply_requested);

}  // namespace sicoop::pgoutput

namespace sicoop::pgoutput {

// One row change of a source table the pipeline reads, in the source's column order.
struct Change {
    enum class Kind { Insert, Update, Delete, Truncate };
    Kind kind = Kind::Insert;
    std::string table;          // the pipeline's name: associado, conta, cartao, movimentacao_cartao
    std::vector<std::string> columns;  // the relation's columns, as its Relation message named them
    Tuple old_key;              // Update (key changed) and Delete: the old row's key columns
    Tuple row;                  // Insert, Update: the new row ('u' columns: keep the warehouse's)
};

// A source transaction, complete: what the warehouse applies in one transaction of its own,
// together with `commit_lsn` (so that a restart resumes after it, exactly once).
struct Transaction {
    uint32_t xid = 0;
    Lsn commit_lsn = 0;
    Lsn end_lsn = 0;
    Timestamp commit_time = 0;  // when the change happened at the source (SCD2 history)
    std::vector<Change> changes;
    size_t bytes = 0;  // about the memory `changes` take (change_bytes())
};

// About the memory a change takes (its strings, vectors and the allocator's overhead): what
// the stream's bound (sicoop.stream_work_mem) counts.
size_t change_bytes(const Change& c);

// Turns the stream's messages into complete transactions, in commit order, and checks them:
//   - a transaction whose commit LSN is at or before `applied` (what the warehouse already
//     holds) is dropped whole: after a restart nothing is applied twice;
//   - only tables of schema `source_schema` named in `tables` are kept (the publication may
//     hold more); a relation must have a replica identity key, or its updates and deletes
//     could not be applied (refused with the fix);
//   - a change outside a transaction, of a relation never described, or a begin inside a
//     transaction is an error: the stream is out of step and must restart from `applied`.
class TransactionAssembler {
public:
    TransactionAssembler(std::string source_schema, std::vector<std::string> tables, Lsn applied);

    // Feeds one message; returns the transaction it completes (a commit), if any.
    std::optional<Transaction> feed(const Message& m);
    Lsn applied() const { return applied_; }
    bool in_transaction() const { return open_.has_value(); }
    // The open transaction's commit LSN (its Begin says it; 0: none open).
    Lsn open_commit_lsn() const { return open_ ? open_->commit_lsn : 0; }

    // A transaction too big to hold whole (issue 25): the memory its changes gathered so far
    // take (about: change_bytes()), and those changes taken out as a part of it -- its xid,
    // commit LSN and commit time (a Begin names them) and no end LSN -- the transaction staying
    // open; its commit then returns what came after the last part. (A transaction at or before
    // `applied` gathers nothing: its Begin says where it commits.)
    size_t open_bytes() const { return open_bytes_; }
    Transaction take_part();

private:
    struct Relation {
        std::string table;  // empty: a table the pipeline does not read
        std::vector<std::string> columns;
    };
    std::string source_schema_;
    std::vector<std::string> tables_;
    Lsn applied_;
    std::optional<Transaction> open_;
    bool skipping_ = false;  // the open transaction is already in the warehouse: nothing kept
    size_t open_bytes_ = 0;
    std::vector<std::pair<uint32_t, Relation>> relations_;

    const Relation& relation(uint32_t id) const;
    // feed()'s cases, one per kind of message that changes what is gathered.
    void begin(const Message& m);
    std::optional<Transaction> commit(const Message& m);
    void describe(const Message& m);
    void truncate(const Message& m);
    void change(const Message& m);
};

}  // namespace sicoop::pgoutput

namespace sicoop::pgoutput {

// What a micro-batch of source transactions leaves to apply, per table: the last state of
// every key it touched (a row to upsert, or a key deleted), in commit order, so that the
// warehouse applies one statement per table however often a row changed. A table truncated
// in the batch starts over from that point (`truncated`).
// Member history (SCD2) needs every state, not only the last: `versions` keeps each state of
// each key with the commit time that made it (issue 19's "true history").
struct KeyState {
    std::string key;
    bool deleted = false;
    Tuple row;                  // not deleted: the row; 'u' columns keep the warehouse's value
    Timestamp commit_time = 0;  // the commit that left the key so
    Lsn commit_lsn = 0;
};
struct TableBatch {
    std::string table;
    std::vector<std::string> columns;  // the latest Relation's column names
    bool truncated = false;            // the table was truncated at the source in this batch
    std::vector<KeyState> last;        // one per key, in the order keys were first touched
    std::vector<KeyState> versions;    // every state, in commit order (only when asked for)
};

// Folds transactions (in commit order) into per-table batches. `key_column` names each table's
// key (the pipeline's source_tables()); `with_versions` the tables whose every state is kept.
// A change whose key column is NULL, or whose row lacks the key column, is an error: the key
// is what every later step finds a row by.
std::vector<TableBatch> fold(const std::vector<Transaction>& transactions,
                             const std::vector<std::pair<std::string, std::string>>& key_column,
                             const std::vector<std::string>& with_versions);

}  // namespace sicoop::pgoutput

namespace sicoop::pgoutput {

// A table batch laid out for the warehouse's stage table: rows in the stage's column order
// (`stage_columns`, the pipeline's source columns), as COPY text lines, and the keys deleted.
// A column the source no longer sends is an error naming it (the stream stops with the fix:
// the source's schema drifted); a column the source has beyond the pipeline's is left out.
// An unchanged TOAST value is sent as `\N` and its column listed in `fill_from_raw` for that
// row's key, for the warehouse to take raw's value (it was not sent because it did not change).
struct StageBatch {
    std::string table;
    bool truncated = false;
    std::string copy_text;                    // COPY ... FROM STDIN (FORMAT text) lines
    size_t rows = 0;
    std::vector<std::string> deleted_keys;
    std::vector<std::pair<std::string, std::string>> fill_from_raw;  // key, column
};
StageBatch stage_batch(const TableBatch& batch, const std::vector<std::string>& stage_columns);

// A source transaction too big for memory is staged in parts (src/stream_large.cpp), each
// folded alone; a key an earlier part staged is replaced by the later part's state, so the
// stage ends with what fold() of the whole transaction gives. What a later state needs from
// the earlier one is its unchanged TOAST values: `StagedState` is a key as an earlier part left
// it in the stage (values in the stage's column order, nullopt for NULL; `keep_from_raw`: the
// columns still to be taken from the warehouse), and carry_staged() gives the part's states of
// those keys the earlier values for their 'u' columns, as fold() does inside one batch: the
// earlier value, or 'u' again if that one was not sent either.
struct StagedState {
    std::string key;
    bool deleted = false;
    std::vector<std::optional<std::string>> values;
    std::vector<std::string> keep_from_raw;
};
void carry_staged(TableBatch& part, const std::vector<std::string>& stage_columns, const std::vector<StagedState>& earlier);

// The keys of a part's states that have an unchanged TOAST value ('u'), not deleted: the only
// ones carry_staged() needs the earlier state of.
std::vector<std::string> keys_with_unchanged(const TableBatch& part);

// A value as COPY's text format writes it: backslash, tab, newline and carriage return
// escaped; NULL is \N.
std::string copy_text_value(const Column& c);

// A key's states before its last one in the batch (a TableBatch folded with versions): the
// stage, raw and trusted take only the last state, but dim_associado makes a version of every
// state of a member, from its commit time (issue 25: a repeated member no longer cuts the
// batch). Laid out for sicoop.stage_associado_state as COPY text lines, in commit order:
//   (a key's state per source transaction: the last of several in one transaction)
//   state_no (1, 2, ... in the batch), round (the key's 1st, 2nd, ... earlier state: SCD2
//   replays every key's round 1, then round 2, ..., then the last states), commit_time (as
//   `time_text` writes it), deleted (t/f), keep_from_raw ({col,...}: an unchanged TOAST value
//   no earlier state of the batch gave), then the stage's columns (a deleted state: its key,
//   `key_column`, and \N).
struct EarlierStates {
    std::string copy_text;
    size_t rows = 0;
    size_t rounds = 0;  // the most earlier states one key has
    static std::vector<std::string> leading_columns() {
        return {"state_no", "round", "commit_time", "deleted", "keep_from_raw"};
    }
};
EarlierStates earlier_states(const TableBatch& batch, const std::vector<std::string>& stage_columns,
                             const std::string& key_column, const std::function<std::string(Timestamp)>& time_text);

}  // namespace sicoop::pgoutput
