#include "steps/pure_cpp.hpp"

#include "steps/sql_patterns.hpp"

#include <stdexcept>

namespace sicoop {

namespace {

// The statements, written whole. Their substitution points are filled with the extension's
// own table and column names, and the lists made of them (comma-separated).
const char* const kMerged = R"sql(merged AS (
  INSERT INTO ${target} AS t (${names})
  SELECT ${expressions}
  FROM ${source}
  ON CONFLICT (${key}) DO UPDATE SET ${sets}
  WHERE (${old_values}) IS DISTINCT FROM (${new_values})
  RETURNING (t.xmax = 0) AS inserted))sql";
const char* const kMergeChanged = R"sql(WITH ${merged}
SELECT count(*) FILTER (WHERE inserted) AS rows_inserted,
       count(*) FILTER (WHERE NOT inserted) AS rows_updated FROM merged)sql";
// The rows to merge read once, as `taken`: counted, then merged.
const char* const kMergeTaken = R"sql(WITH taken AS MATERIALIZED (
  ${read}),
${merged}
SELECT (SELECT count(*) FROM taken) AS rows_read,
       count(*) FILTER (WHERE inserted) AS rows_inserted,
       count(*) FILTER (WHERE NOT inserted) AS rows_updated FROM merged)sql";
// The same, the rows taken already in the target's columns, and also kept in ${kept} (a
// temporary table of the key and those columns).
const char* const kMergeTakenKept = R"sql(WITH taken AS MATERIALIZED (
  SELECT ${values} FROM (${read}) s),
kept AS (
  INSERT INTO ${kept} (${names}) SELECT ${names} FROM taken),
${merged}
SELECT (SELECT count(*) FROM taken) AS rows_read,
       count(*) FILTER (WHERE inserted) AS rows_inserted,
       count(*) FILTER (WHERE NOT inserted) AS rows_updated FROM merged)sql";

// The source's rows with a value of their own (n), less those the target already holds as they
// are: ON CONFLICT DO UPDATE locks every conflicting row, its WHERE false or not (a WAL record
// and a dirtied page per unchanged row), so rows known identical are left out before it.
// (OFFSET 0: each value computed once, not again in the comparison.)
const char* const kChangedOnly = R"sql((SELECT ${expressions} FROM ${source} OFFSET 0) n
  WHERE NOT EXISTS (SELECT 1 FROM ${target} o WHERE o.${key} = n.${key}
                    AND (${target_values}) IS NOT DISTINCT FROM (${source_values})))sql";

// ${extra}: nothing, or " AND " and the caller's extra condition.
const char* const kDeleteMissing = R"sql(WITH gone AS (
  DELETE FROM ${target} t
  WHERE NOT EXISTS (SELECT 1 FROM ${source} s WHERE s.${key} = t.${key})${extra}
  RETURNING 1)
SELECT count(*) AS rows_deleted FROM gone)sql";

const char* const kInsertAll = R"sql(INSERT INTO ${target} (${names})
SELECT ${expressions}
FROM ${source})sql";

const char* const kDeleteWithTombstones = R"sql(WITH gone AS (
  DELETE FROM sicoop.raw_${table} r WHERE ${condition}
  RETURNING r.${key} AS record_id),
buried AS (
  INSERT INTO sicoop.raw_tombstone AS b (table_name, record_id, run_id)
  SELECT '${table}', record_id, $2 FROM gone
  ON CONFLICT (table_name, record_id) DO UPDATE SET run_id = EXCLUDED.run_id
  RETURNING 1)
SELECT count(*) AS rows_deleted FROM buried)sql";

const char* const kDropTempTable = R"sql(DO $$ BEGIN IF to_regclass('pg_temp.${name}') IS NOT NULL THEN
  DROP TABLE pg_temp.${name};
END IF; END $$)sql";

// A temporary table of trusted movements' columns but the stamps, made once per session (its
// rows go at commit).
const char* const kTempMovementsTable = R"sql(DO $$ BEGIN IF to_regclass('pg_temp.${name}') IS NULL THEN
  CREATE TEMP TABLE ${name} (LIKE sicoop.trusted_movimentacao_cartao) ON COMMIT DELETE ROWS;
  ALTER TABLE pg_temp.${name} DROP COLUMN run_id, DROP COLUMN updated_at;
END IF; END $$)sql";

const char* const kStreamKeys =
    R"sql(ARRAY(SELECT k.record_id FROM sicoop.stream_key k WHERE k.table_name = '${table}' AND k.record_id IS NOT NULL))sql";

// A stream's keys of source table ${table}, as `${column} = ANY (...)`.
const char* const kInStreamKeys = R"sql(${column} = ANY (${keys}))sql";

const char* const kCountRead = R"sql(SELECT count(*) AS rows_read FROM ${relation})sql";

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
    return out;
}

// Each name with `prefix` before it: {"a", "b"}, "t." -> {"t.a", "t.b"}.
std::vector<std::string> prefixed(const std::vector<std::string>& names, const std::string& prefix) {
    std::vector<std::string> out;
    for (const auto& n : names) out.push_back(prefix + n);
    return out;
}

// The merge as the CTE `merged` (kMerged), from `source`.
std::string merged_cte(const std::string& target, const std::string& key, const std::vector<Column>& columns,
                       const std::vector<Column>& stamps, const std::string& source, bool skip_identical) {
    std::vector<std::string> names{key}, exprs{"s." + key}, compared, sets;
    for (const auto& c : columns) compared.push_back(c.name);
    for (const auto* group : {&columns, &stamps})
        for (const auto& c : *group)
            names.push_back(c.name), exprs.push_back(c.expression), sets.push_back(c.name + " = EXCLUDED." + c.name);
    std::string from = source;
    if (skip_identical) {
        std::vector<std::string> named_exprs;
        for (size_t i = 0; i < names.size(); ++i) named_exprs.push_back(exprs[i] + " AS " + names[i]);
        from = fill(kChangedOnly, {{"expressions", join(named_exprs, ", ")},
                                   {"source", source},
                                   {"target", target},
                                   {"key", key},
                                   {"target_values", join(prefixed(compared, "o."), ", ")},
                                   {"source_values", join(prefixed(compared, "n."), ", ")}});
        exprs = prefixed(names, "n.");
    }
    return fill(kMerged, {{"target", target},
                          {"names", join(names, ", ")},
                          {"expressions", join(exprs, ", ")},
                          {"source", from},
                          {"key", key},
                          {"sets", join(sets, ", ")},
                          {"old_values", join(prefixed(compared, "t."), ", ")},
                          {"new_values", join(prefixed(compared, "EXCLUDED."), ", ")}});
}

}  // namespace

std::string merge_changed_sql(const std::string& target, const std::string& key,
                              const std::vector<Column>& columns,
                              const std::vector<Column>& stamps, const std::string& source, bool skip_identical) {
    return fill(kMergeChanged, {{"merged", merged_cte(target, key, columns, stamps, source, skip_identical)}});
}

std::string merge_taken_sql(const std::string& target, const std::string& key, const std::vector<Column>& columns,
                            const std::vector<Column>& stamps, const std::string& read, const std::string& kept) {
    if (kept.empty())
        return fill(kMergeTaken, {{"read", read}, {"merged", merged_cte(target, key, columns, stamps, "taken s", false)}});
    std::vector<std::string> names{key}, values{"s." + key};
    std::vector<Column> taken_columns;
    for (const auto& c : columns) {
        names.push_back(c.name);
        values.push_back(c.expression + " AS " + c.name);
        taken_columns.push_back({c.name, "s." + c.name});
    }
    return fill(kMergeTakenKept, {{"values", join(values, ", ")},
                                  {"read", read},
                                  {"kept", kept},
                                  {"names", join(names, ", ")},
                                  {"merged", merged_cte(target, key, taken_columns, stamps, "taken s", false)}});
}

std::string delete_missing_sql(const std::string& target, const std::string& key,
                               const std::string& source_relation, const std::string& extra_condition) {
    return fill(kDeleteMissing, {{"target", target},
                                 {"source", source_relation},
                                 {"key", key},
                                 {"extra", extra_condition.empty() ? "" : " AND " + extra_condition}});
}

std::string insert_all_sql(const std::string& target, const std::string& key, const std::vector<Column>& columns,
                           const std::vector<Column>& stamps, const std::string& source) {
    std::vector<std::string> names{key}, exprs{"s." + key};
    for (const auto& c : columns) names.push_back(c.name), exprs.push_back(c.expression);
    for (const auto& c : stamps) names.push_back(c.name), exprs.push_back(c.expression);
    return fill(kInsertAll,
                {{"target", target}, {"names", join(names, ", ")}, {"expressions", join(exprs, ", ")}, {"source", source}});
}

std::string delete_with_tombstones_sql(const std::string& table, const std::string& key,
                                       const std::string& condition) {
    return fill(kDeleteWithTombstones, {{"table", table}, {"key", key}, {"condition", condition}});
}

std::string drop_temp_table_sql(const std::string& name) { return fill(kDropTempTable, {{"name", name}}); }

std::string temp_movements_table_sql(const std::string& name) { return fill(kTempMovementsTable, {{"name", name}}); }

std::string stream_keys_sql(const std::string& table) {
    return fill(kStreamKeys, {{"table", table}});
}

std::string fill(const std::string& sql, const SqlValues& values) {
    std::string out;
    size_t done = 0;
    for (size_t at = sql.find("${"); at != std::string::npos; at = sql.find("${", done)) {
        const size_t close = sql.find('}', at);
        if (close == std::string::npos) throw std::logic_error("unclosed placeholder in: " + sql.substr(at));
        const std::string name = sql.substr(at + 2, close - at - 2);
        const std::string* value = nullptr;
        for (const auto& [n, v] : values)
            if (n == name) value = &v;
        if (value == nullptr) throw std::logic_error("placeholder ${" + name + "} has no value");
        out.append(sql, done, at - done).append(*value);
        done = close + 1;
    }
    return out.append(sql, done, std::string::npos);
}

std::string in_stream_keys_sql(const std::string& column, const std::string& table) {
    return fill(kInStreamKeys, {{"column", column}, {"keys", stream_keys_sql(table)}});
}

std::string count_read_sql(const std::string& relation) { return fill(kCountRead, {{"relation", relation}}); }

std::string summarize_ranges_sql(const std::string& table) {
    return fill(R"sql(SELECT sicoop._summarize_ranges('${table}'))sql", {{"table", table}});
}

}  // namespace sicoop
