// A stream's changes into the stage and sicoop.stream_key (src/stream_apply.hpp).
#include "stream_apply.hpp"

#include "copy_text.hpp"
#include "spi_session.hpp"
#include "stream_rows.hpp"
#include "steps/copy_filter.hpp"
#include "steps/step.hpp"

#include <malloc.h>

extern "C" {
#include "utils/fmgroids.h"
}

#include <algorithm>
#include <map>
#include <optional>

namespace sicoop::stream {

namespace pgo = sicoop::pgoutput;

std::vector<std::pair<std::string, std::string>> key_columns() {
    std::vector<std::pair<std::string, std::string>> keys;
    for (const SourceTable& t : source_tables()) keys.emplace_back(t.name, t.key);
    return keys;
}

// (Freed at once: called for every key, and a large transaction's parts run in the SPI
// procedure's memory, not the part's, once SPI has run a statement: 47 MB over a million keys.)
std::string timestamp_text(pgo::Timestamp t) {
    std::string out;
    pg_call([&] {
        char* text = DatumGetCString(DirectFunctionCall1(timestamptz_out, TimestampTzGetDatum(t)));
        out = text;
        pfree(text);
    });
    return out;
}

void Staged::add(const std::string& table, bool was_truncated) {
    if (std::find(touched.begin(), touched.end(), table) == touched.end()) touched.push_back(table);
    if (was_truncated && std::find(truncated.begin(), truncated.end(), table) == truncated.end())
        truncated.push_back(table);
}

void give_memory_back() { malloc_trim(0); }

namespace {

const SourceTable* source_table(const std::string& name) {
    for (const SourceTable& t : source_tables())
        if (t.name == name) return &t;
    return nullptr;
}

std::vector<std::string> stage_columns(const SourceTable& t) {
    std::vector<std::string> columns;
    for (const auto& c : t.columns) columns.push_back(c.first);
    return columns;
}

// Every key the batch touched, as sicoop.stream_key's COPY text.
std::string stream_keys_text(const pgo::TableBatch& batch, const pgo::StageBatch& staged) {
    std::string text;
    if (batch.truncated) {
        pgo::Timestamp latest = 0;
        for (const auto& s : batch.last) latest = std::max(latest, s.commit_time);
        text += batch.table + "\t\\N\tt\t" + timestamp_text(latest) + "\t{}\n";
    }
    for (const pgo::KeyState& s : batch.last) {
        std::string kept;
        for (const auto& [key, column] : staged.fill_from_raw)
            if (key == s.key) kept += (kept.empty() ? "" : ",") + column;
        pgo::Column key{pgo::Column::Kind::Text, s.key};
        text += batch.table + "\t" + pgo::copy_text_value(key) + "\t" + (s.deleted ? "t" : "f") + "\t" +
                timestamp_text(s.commit_time) + "\t{" + kept + "}\n";
    }
    return text;
}

// A table batch's rows into the stage and its keys into stream_key.
void stage_table_batch(const pgo::TableBatch& b, const SourceTable& table) {
    const std::vector<std::string> columns = stage_columns(table);
    const pgo::StageBatch staged = pgo::stage_batch(b, columns);
    const std::string keys = stream_keys_text(b, staged);
    if (staged.rows > 0) stage_stream_rows(b.table, columns, table.key, staged.copy_text);
    if (!keys.empty())
        copy_text_into("stream_key", {"table_name", "record_id", "deleted", "commit_time", "keep_from_raw"}, keys);
}

// Keys as the stage and stream_key hold them: the COPY filter masks a card-like key on the way
// in (steps/copy_filter.hpp), so a key is looked up masked the same way.
std::vector<std::string> as_stored(const std::vector<std::string>& keys) {
    std::string text;
    for (const std::string& k : keys) text += pgo::copy_text_value(pgo::Column{pgo::Column::Kind::Text, k}) + "\n";
    CopyFilter filter(false, copy_masks("stream_key", {"record_id"}));
    std::string masked;
    const std::string& out = filter.filter_all(text, masked);
    std::vector<std::string> stored;
    stored.reserve(keys.size());
    size_t start = 0;
    while (start < out.size()) {
        size_t end = out.find('\n', start);
        if (end == std::string::npos) end = out.size();
        const auto fields = parse_copy_line(std::string_view(out.data() + start, end - start));
        stored.push_back(fields.empty() || !fields[0] ? std::string() : *fields[0]);
        start = end + 1;
    }
    return stored;
}

// A text[] literal of `values` (a parameter: no value is ever spliced into a statement).
std::string text_array(const std::vector<std::string>& values) {
    std::string out = "{";
    for (const std::string& v : values) {
        if (out.size() > 1) out += ',';
        out += '"';
        for (char c : v) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    return out + "}";
}

// A text[] parameter: a constant to the planner (one-shot plans fold parameters), so that
// `= ANY ($n)` over thousands of keys is a hash or index lookup -- `$n::text[]` from text is
// not folded (array_in is stable) and compared each row with every key: 75 s per part.
spi::Param text_array_param(const std::vector<std::string>& values) {
    const std::string literal = text_array(values);
    spi::Param p{TEXTARRAYOID, 0, false};
    const char* l = literal.c_str();
    pg_call([&] { p.value = OidFunctionCall3(F_ARRAY_IN, CStringGetDatum(l), ObjectIdGetDatum(TEXTOID), Int32GetDatum(-1)); });
    return p;
}

// "{a,b}" (a text[] of column names, as stream_key.keep_from_raw prints) as its names.
std::vector<std::string> names_of(const char* array) {
    std::vector<std::string> names;
    std::string current;
    for (const char* p = array; p != nullptr && *p != '\0'; ++p) {
        if (*p == '{' || *p == '}' || *p == ',') {
            if (!current.empty()) names.push_back(current);
            current.clear();
        } else if (*p != '"') {
            current += *p;
        }
    }
    return names;
}

// How earlier parts left the keys `keys` (masked as stored) of `table`: deleted or not, the
// columns still to come from raw, and the stage's values. Only for keys with an unchanged TOAST
// value (rare: a long value, left alone by an update, after an earlier change of the same row
// in the same source transaction).
std::vector<pgo::StagedState> staged_states(const SourceTable& table, const std::vector<std::string>& columns,
                                            const std::vector<std::string>& keys) {
    std::string values;
    for (const std::string& c : columns) values += ", s." + c + "::text";
    const std::string sql = R"sql(SELECT k.record_id, k.deleted::text, k.keep_from_raw::text)sql" + values +
                            R"sql( FROM sicoop.stream_key k LEFT JOIN sicoop.stage_)sql" + table.name + " s ON s." + table.key +
                            R"sql( = k.record_id WHERE k.table_name = $1 AND k.record_id = ANY ($2) AND k.record_id IS NOT NULL)sql";
    std::vector<pgo::StagedState> states;
    spi::Param p[2] = {spi::text_param(table.name.c_str()), text_array_param(keys)};
    const char* statement = sql.c_str();
    pg_call([&] {
        Oid types[2] = {TEXTOID, TEXTARRAYOID};
        Datum datums[2] = {p[0].value, p[1].value};
        if (SPI_execute_with_args(statement, 2, types, datums, nullptr, true, 0) != SPI_OK_SELECT)
            elog(ERROR, "sicoop: could not read what the stream staged");
    });
    const uint64 n = SPI_processed;
    for (uint64 i = 0; i < n; ++i) {
        pgo::StagedState s;
        const size_t ncolumns = columns.size();
        auto value = [&](int column) {
            char* v = nullptr;
            pg_call([&] { v = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, column); });
            std::optional<std::string> out = v ? std::optional<std::string>(v) : std::nullopt;
            if (v) pg_call([&] { pfree(v); });  // (as timestamp_text())
            return out;
        };
        s.key = value(1).value_or("");
        s.deleted = value(2).value_or("false") == "true";
        s.keep_from_raw = names_of(value(3).value_or("").c_str());
        for (size_t c = 0; c < ncolumns; ++c) s.values.push_back(value(static_cast<int>(c) + 4));
        states.push_back(std::move(s));
    }
    pg_call([&] {
        SPI_freetuptable(SPI_tuptable);
        pfree(DatumGetPointer(p[1].value));
    });
    return states;
}

// Sets CurrentMemoryContext to `part` for a part's work; resets it after.
class PartMemory {
public:
    explicit PartMemory(MemoryContext part) : part_(part) {
        pg_call([&] { saved_ = MemoryContextSwitchTo(part_); });
    }
    ~PartMemory() {
        try {
            pg_call([&] {
                MemoryContextSwitchTo(saved_);
                MemoryContextReset(part_);
            });
        } catch (...) {
        }
    }
    PartMemory(const PartMemory&) = delete;
    PartMemory& operator=(const PartMemory&) = delete;

private:
    MemoryContext part_;
    MemoryContext saved_ = nullptr;
};

}  // namespace

Staged stage_transactions(const std::vector<pgo::Transaction>& transactions) {
    Staged staged;
    spi::exec("DELETE FROM sicoop.stream_key");  // (empty: truncated by the batch before)
    for (const pgo::TableBatch& b : pgo::fold(transactions, key_columns(), {"associado"})) {
        staged.add(b.table, b.truncated);
        const SourceTable* table = source_table(b.table);
        if (table == nullptr) continue;
        stage_table_batch(b, *table);
        // A member's states before its last: SCD2 makes a version of each (src/steps/scd2.cpp).
        const std::vector<std::string> columns = stage_columns(*table);
        const pgo::EarlierStates earlier = pgo::earlier_states(b, columns, table->key, timestamp_text);
        if (earlier.rows > 0) {
            std::vector<std::string> state_columns = pgo::EarlierStates::leading_columns();
            state_columns.insert(state_columns.end(), columns.begin(), columns.end());
            stage_stream_rows(b.table + "_state", state_columns, "state_no", earlier.copy_text);
            staged.member_rounds = std::max(staged.member_rounds, earlier.rounds);
        }
    }
    return staged;
}

PartStager::PartStager() {
    pg_call([&] {
        memory_ = AllocSetContextCreate(TopTransactionContext, "sicoop stream part", ALLOCSET_DEFAULT_SIZES);
    });
    spi::exec("DELETE FROM sicoop.stream_key");  // (empty: truncated by the batch before)
}

void PartStager::stage(pgo::Transaction part) {
    PartMemory memory(memory_);
    changes_ += part.changes.size();
    std::vector<pgo::TableBatch> batches;
    {
        std::vector<pgo::Transaction> one;
        one.push_back(std::move(part));
        batches = pgo::fold(one, key_columns(), {});
    }  // (the part's changes are freed before the stage's text is built)
    for (pgo::TableBatch& b : batches) {
        staged_.add(b.table, b.truncated);
        const SourceTable* table = source_table(b.table);
        if (table == nullptr) continue;
        const std::vector<std::string> columns = stage_columns(*table);
        spi::Param name[1] = {spi::text_param(b.table.c_str())};
        if (b.truncated) {
            // Truncated at the source after earlier parts: what they staged for the table goes.
            spi::exec(("TRUNCATE sicoop.stage_" + table->name).c_str());
            spi::exec("DELETE FROM sicoop.stream_key k WHERE k.table_name = $1", name, 1);
            spi::exec("DELETE FROM sicoop.stage_unfit u WHERE u.table_name = $1", name, 1);
        } else if (has_keys_.count(b.table) > 0) {
            // Keys an earlier part staged: this part's state replaces theirs.
            std::vector<std::string> carried = pgo::keys_with_unchanged(b);
            if (!carried.empty()) {
                const std::vector<std::string> stored = as_stored(carried);
                std::map<std::string, std::string> raw_key;  // stored -> the key as the source sent it
                for (size_t i = 0; i < carried.size(); ++i) raw_key.emplace(stored[i], carried[i]);
                std::vector<pgo::StagedState> earlier = staged_states(*table, columns, stored);
                for (pgo::StagedState& e : earlier) e.key = raw_key[e.key];
                pgo::carry_staged(b, columns, earlier);
            }
            std::vector<std::string> keys;
            keys.reserve(b.last.size());
            for (const pgo::KeyState& s : b.last) keys.push_back(s.key);
            spi::Param p[2] = {name[0], text_array_param(as_stored(keys))};
            keys = {};
            const int64 replaced = spi::exec(R"sql(
WITH gone AS (DELETE FROM sicoop.stream_key k WHERE k.table_name = $1 AND k.record_id = ANY ($2) RETURNING 1)
SELECT count(*) FROM gone)sql",
                                             p, 2);
            if (replaced > 0) {
                const std::string del = "DELETE FROM sicoop.stage_" + table->name + " s WHERE s." + table->key +
                                        R"sql( = ANY ($1))sql";
                spi::exec(del.c_str(), &p[1], 1);
                spi::exec("DELETE FROM sicoop.stage_unfit u WHERE u.table_name = $1 AND u.record_id = ANY ($2)", p, 2);
            }
            pg_call([&] { pfree(DatumGetPointer(p[1].value)); });  // (as timestamp_text())
        }
        stage_table_batch(b, *table);
        b.last = {};  // (freed as soon as staged)
        has_keys_.insert(b.table);
    }
}

}  // namespace sicoop::stream
