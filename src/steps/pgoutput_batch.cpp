// What the stream does with decoded transactions (src/steps/pgoutput.hpp): folds a micro-batch
// to the last state of each key per table, and writes what a stage's COPY and the member
// history's earlier states need. The decoder and the transaction assembler are in pgoutput.cpp.
#include "steps/pure_cpp.hpp"

#include "steps/pgoutput.hpp"

#include <algorithm>
#include <stdexcept>
#include <unordered_map>

namespace sicoop::pgoutput {

namespace {

// The text of the key column in `tuple`, or an error.
std::string key_of(const Change& c, const Tuple& tuple, const std::string& key_column) {
    for (size_t i = 0; i < c.columns.size() && i < tuple.size(); ++i)
        if (c.columns[i] == key_column) {
            if (tuple[i].kind != Column::Kind::Text)
                throw std::runtime_error("replication stream: a change of " + c.table + " without its key " + key_column);
            return tuple[i].value;
        }
    throw std::runtime_error("replication stream: table " + c.table + " has no column " + key_column);
}

TableBatch& batch_of(std::vector<TableBatch>& batches, const Change& c) {
    for (TableBatch& b : batches)
        if (b.table == c.table) {
            b.columns = c.columns;
            return b;
        }
    batches.push_back(TableBatch{c.table, c.columns, false, {}, {}});
    return batches.back();
}

void set_state(TableBatch& b, std::unordered_map<std::string, size_t>& index, KeyState s, bool with_versions) {
    KeyState* known = nullptr;
    if (auto found = index.find(s.key); found != index.end()) known = &b.last[found->second];
    // An unchanged TOAST value ('u') after an earlier state of this batch takes that state's
    // value: only a key whose first state in the batch is an update keeps 'u' for the warehouse.
    if (known && !s.deleted && !known->deleted)
        for (size_t i = 0; i < s.row.size() && i < known->row.size(); ++i)
            if (s.row[i].kind == Column::Kind::UnchangedToast) s.row[i] = known->row[i];
    if (with_versions) b.versions.push_back(s);
    if (known) {
        *known = std::move(s);
    } else {
        index.emplace(s.key, b.last.size());
        b.last.push_back(std::move(s));
    }
}

}  // namespace

std::vector<TableBatch> fold(const std::vector<Transaction>& transactions,
                             const std::vector<std::pair<std::string, std::string>>& key_column,
                             const std::vector<std::string>& with_versions) {
    std::vector<TableBatch> batches;
    std::unordered_map<std::string, std::unordered_map<std::string, size_t>> key_index;  // table -> key -> position in last
    for (const Transaction& t : transactions)
        for (const Change& c : t.changes) {
            std::string key_name;
            for (const auto& [table, key] : key_column)
                if (table == c.table) key_name = key;
            if (key_name.empty()) throw std::runtime_error("replication stream: no key known for table " + c.table);
            const bool versions = std::find(with_versions.begin(), with_versions.end(), c.table) != with_versions.end();
            TableBatch& b = batch_of(batches, c);
            auto& index = key_index[c.table];
            switch (c.kind) {
                case Change::Kind::Truncate:
                    b.truncated = true;
                    b.last.clear();
                    index.clear();
                    if (versions) b.versions.clear();
                    break;
                case Change::Kind::Delete:
                    set_state(b, index, KeyState{key_of(c, c.old_key, key_name), true, {}, t.commit_time, t.commit_lsn}, versions);
                    break;
                case Change::Kind::Insert:
                case Change::Kind::Update: {
                    const std::string key = key_of(c, c.row, key_name);
                    // A key changed by an update: the old key is gone.
                    if (c.kind == Change::Kind::Update && !c.old_key.empty()) {
                        const std::string old_key = key_of(c, c.old_key, key_name);
                        if (old_key != key) set_state(b, index, KeyState{old_key, true, {}, t.commit_time, t.commit_lsn}, versions);
                    }
                    set_state(b, index, KeyState{key, false, c.row, t.commit_time, t.commit_lsn}, versions);
                    break;
                }
            }
        }
    return batches;
}

}  // namespace sicoop::pgoutput

namespace sicoop::pgoutput {

std::string copy_text_value(const Column& c) {
    if (c.kind != Column::Kind::Text) return "\\N";
    std::string out;
    out.reserve(c.value.size());
    for (char ch : c.value) {
        switch (ch) {
            case '\\': out += "\\\\"; break;
            case '\t': out += "\\t"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            default: out += ch;
        }
    }
    return out;
}

StageBatch stage_batch(const TableBatch& batch, const std::vector<std::string>& stage_columns) {
    StageBatch out;
    out.table = batch.table;
    out.truncated = batch.truncated;
    // Where each stage column is in the source's row.
    std::vector<size_t> position;
    for (const std::string& column : stage_columns) {
        auto found = std::find(batch.columns.begin(), batch.columns.end(), column);
        if (found == batch.columns.end())
            throw std::runtime_error("replication stream: source table " + batch.table + " no longer sends column " +
                                     column + " (its schema changed): restore the column at the source, or stop the "
                                     "stream and run the batch pipeline, whose drift rule reports it");
        position.push_back(static_cast<size_t>(found - batch.columns.begin()));
    }
    for (const KeyState& s : batch.last) {
        if (s.deleted) {
            out.deleted_keys.push_back(s.key);
            continue;
        }
        for (size_t i = 0; i < position.size(); ++i) {
            const Column& c = s.row.at(position[i]);
            if (c.kind == Column::Kind::UnchangedToast) out.fill_from_raw.emplace_back(s.key, stage_columns[i]);
            if (i > 0) out.copy_text += '\t';
            out.copy_text += copy_text_value(c);
        }
        out.copy_text += '\n';
        ++out.rows;
    }
    return out;
}

}  // namespace sicoop::pgoutput

namespace sicoop::pgoutput {

EarlierStates earlier_states(const TableBatch& batch, const std::vector<std::string>& stage_columns,
                             const std::string& key_column, const std::function<std::string(Timestamp)>& time_text) {
    EarlierStates out;
    std::vector<size_t> position;
    for (const std::string& column : stage_columns) {
        auto found = std::find(batch.columns.begin(), batch.columns.end(), column);
        if (found == batch.columns.end())
            throw std::runtime_error("replication stream: source table " + batch.table + " no longer sends column " + column);
        position.push_back(static_cast<size_t>(found - batch.columns.begin()));
    }
    // A key's state per source transaction (the last of several in one transaction: a batch per
    // transaction never saw the others); how many each key has (its last is `batch.last`'s);
    // then every state but the last, numbered per key.
    std::vector<bool> kept(batch.versions.size(), true);
    std::unordered_map<std::string, size_t> latest;  // key -> index of its latest state so far
    for (size_t i = 0; i < batch.versions.size(); ++i) {
        const KeyState& s = batch.versions[i];
        auto [at, fresh] = latest.try_emplace(s.key, i);
        if (!fresh) {
            if (batch.versions[at->second].commit_lsn == s.commit_lsn) kept[at->second] = false;
            at->second = i;
        }
    }
    std::unordered_map<std::string, size_t> total, seen;
    for (size_t i = 0; i < batch.versions.size(); ++i)
        if (kept[i]) ++total[batch.versions[i].key];
    for (size_t i = 0; i < batch.versions.size(); ++i) {
        if (!kept[i]) continue;
        const KeyState& s = batch.versions[i];
        const size_t round = ++seen[s.key];
        if (round == total[s.key]) continue;  // the last: the stage's
        out.rounds = std::max(out.rounds, round);
        std::string kept;
        std::string values;
        for (size_t i = 0; i < position.size(); ++i) {
            Column c;  // a deleted state: only its key
            if (!s.deleted) {
                c = s.row.at(position[i]);
                if (c.kind == Column::Kind::UnchangedToast) kept += (kept.empty() ? "" : ",") + stage_columns[i];
            } else if (stage_columns[i] == key_column) {
                c = Column{Column::Kind::Text, s.key};
            }
            values += "\t" + copy_text_value(c);
        }
        ++out.rows;
        out.copy_text += std::to_string(out.rows) + "\t" + std::to_string(round) + "\t" + time_text(s.commit_time) + "\t" +
                         (s.deleted ? "t" : "f") + "\t{" + kept + "}" + values + "\n";
    }
    return out;
}

void carry_staged(TableBatch& part, const std::vector<std::string>& stage_columns, const std::vector<StagedState>& earlier) {
    if (earlier.empty()) return;
    std::unordered_map<std::string, const StagedState*> by_key;
    for (const StagedState& e : earlier) by_key.emplace(e.key, &e);
    // Where each of the source's columns is in the stage (none: a column the pipeline does not read).
    std::vector<size_t> in_stage(part.columns.size(), stage_columns.size());
    for (size_t i = 0; i < part.columns.size(); ++i)
        in_stage[i] = static_cast<size_t>(std::find(stage_columns.begin(), stage_columns.end(), part.columns[i]) -
                                          stage_columns.begin());
    for (KeyState& s : part.last) {
        if (s.deleted) continue;
        const auto found = by_key.find(s.key);
        if (found == by_key.end() || found->second->deleted) continue;
        const StagedState& e = *found->second;
        for (size_t i = 0; i < s.row.size() && i < in_stage.size(); ++i) {
            if (s.row[i].kind != Column::Kind::UnchangedToast) continue;
            const size_t at = in_stage[i];
            if (at >= stage_columns.size() || at >= e.values.size()) continue;
            if (std::find(e.keep_from_raw.begin(), e.keep_from_raw.end(), stage_columns[at]) != e.keep_from_raw.end())
                continue;  // not sent the first time either: still the warehouse's
            s.row[i] = e.values[at] ? Column{Column::Kind::Text, *e.values[at]} : Column{};
        }
    }
}

std::vector<std::string> keys_with_unchanged(const TableBatch& part) {
    std::vector<std::string> keys;
    for (const KeyState& s : part.last)
        if (!s.deleted && std::any_of(s.row.begin(), s.row.end(),
                                      [](const Column& c) { return c.kind == Column::Kind::UnchangedToast; }))
            keys.push_back(s.key);
    return keys;
}

}  // namespace sicoop::pgoutput
