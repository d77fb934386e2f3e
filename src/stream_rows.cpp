// A stream's rows into the stage. pgoutput sends every value as text, whatever the source's
// column type is now; the stage's types are wide (text, unbounded numeric, date, timestamp) so
// that the data-quality rules see every row as the source holds it (batch mode's stage, the
// `fits` rule). A value that is not even of the stage's type -- the source made the column text
// and wrote words into it, or an impossible date -- cannot land there: COPY would fail the whole
// micro-batch, the stream would stop on it, and the error would quote the value. So:
//   1. the batch's rows are copied at COPY speed, in a subtransaction;
//   2. on a data error (and only then) that subtransaction is rolled back, each value of the
//      batch is tried against its column's type (the type's own input function, one
//      subtransaction each: PostgreSQL 15 has no soft input errors), and a value that does not
//      fit lands as NULL with its row and column in sicoop.stage_unfit, where the table's `fits`
//      rule finds it: the row is a reject with its reason, the rest of the batch loads.
// No value is ever put into a message here: the errors caught are dropped, not reported.
#include "stream_rows.hpp"

#include "copy_text.hpp"
#include "spi_session.hpp"
#include "steps/values.hpp"

namespace sicoop {

namespace {

bool unfit_written = false;

struct StageColumn {
    std::string name;
    bool text = false;  // a text column: only its encoding can be wrong
    Oid input = InvalidOid;
    Oid ioparam = InvalidOid;
    int32 typmod = -1;
};

std::vector<StageColumn> stage_columns_of(const std::string& table, const std::vector<std::string>& columns) {
    std::vector<StageColumn> out(columns.size());
    const std::string stage = "stage_" + table;
    for (size_t i = 0; i < columns.size(); ++i) {
        StageColumn& c = out[i];
        c.name = columns[i];
        const char* relname = stage.c_str();
        const char* attname = columns[i].c_str();
        pg_call([&] {
            Oid relid = RangeVarGetRelid(makeRangeVar(pstrdup("sicoop"), pstrdup(relname), -1), NoLock, false);
            AttrNumber attnum = get_attnum(relid, attname);
            if (attnum == InvalidAttrNumber) elog(ERROR, "sicoop: sicoop.%s has no column %s", relname, attname);
            Oid typid = InvalidOid, collation = InvalidOid;
            get_atttypetypmodcoll(relid, attnum, &typid, &c.typmod, &collation);
            c.text = typid == TEXTOID;
            getTypeInputInfo(typid, &c.input, &c.ioparam);
        });
    }
    return out;
}

bool is_data_error(const PgError& e) {
    return e.edata != nullptr && ERRCODE_TO_CATEGORY(e.edata->sqlerrcode) == ERRCODE_DATA_EXCEPTION;
}

void forget(PgError& e) {
    ErrorData* edata = e.edata;
    e.edata = nullptr;
    if (edata != nullptr) pg_call([&] { FreeErrorData(edata); });
}

// Whether `value` is a value of the column's type (as COPY FROM would read it).
bool fits(const StageColumn& c, const std::string& value) {
    const char* v = value.c_str();
    const int length = static_cast<int>(value.size());
    if (c.text) {
        bool valid = false;
        pg_call([&] { valid = pg_verify_mbstr(GetDatabaseEncoding(), v, length, true); });
        return valid;
    }
    spi::SubTransaction sub;
    try {
        const StageColumn* column = &c;
        pg_call([&] { (void) OidInputFunctionCall(column->input, const_cast<char*>(v), column->ioparam, column->typmod); });
        sub.release();
        return true;
    } catch (PgError& e) {
        if (!is_data_error(e)) throw;  // (the subtransaction is rolled back on the way out)
        forget(e);                     // it quotes the value: never shown
        sub.rollback();
        return false;
    }
}

// The batch again, value by value: what does not fit its column becomes \N, and its row and
// column go to sicoop.stage_unfit.
int64 stage_value_by_value(const std::string& table, const std::vector<std::string>& columns, size_t key,
                           const std::string& text) {
    const std::vector<StageColumn> types = stage_columns_of(table, columns);
    std::string rows, unfit;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        const std::string_view line(text.data() + start, end - start);
        start = end + 1;
        std::vector<std::string> fields = split_copy_fields(line);
        const std::vector<std::optional<std::string>> values = parse_copy_line(line);
        if (fields.size() == types.size()) {  // (else COPY says what is wrong with the line)
            for (size_t i = 0; i < fields.size(); ++i) {
                if (i == key || !values[i] || fits(types[i], *values[i])) continue;
                fields[i] = "\\N";
                unfit += table + "\t" + fields[key] + "\t" + types[i].name + "\n";
            }
        }
        for (size_t i = 0; i < fields.size(); ++i) rows += (i ? "\t" : "") + fields[i];
        rows += "\n";
    }
    const int64 laid = copy_text_into(("stage_" + table).c_str(), columns, rows);
    if (!unfit.empty()) {
        unfit_written = true;
        copy_text_into("stage_unfit", {"table_name", "record_id", "column_name"}, unfit);
    }
    return laid;
}

}  // namespace

int64 stage_stream_rows(const std::string& table, const std::vector<std::string>& columns, const std::string& key,
                        const std::string& text) {
    size_t key_index = columns.size();
    for (size_t i = 0; i < columns.size(); ++i)
        if (columns[i] == key) key_index = i;
    if (key_index == columns.size()) throw std::logic_error("stream rows of " + table + ": no key column " + key);
    {
        spi::SubTransaction sub;
        try {
            const int64 rows = copy_text_into(("stage_" + table).c_str(), columns, text);
            sub.release();
            return rows;
        } catch (PgError& e) {
            if (!is_data_error(e)) throw;
            forget(e);  // it quotes the value, or the COPY line holding it: never shown
            sub.rollback();
        }
    }
    return stage_value_by_value(table, columns, key_index, text);
}

void forget_unfit_values() {
    if (!unfit_written) return;
    spi::exec("TRUNCATE sicoop.stage_unfit");
    unfit_written = false;
}

}  // namespace sicoop
