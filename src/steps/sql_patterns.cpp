#include "steps/pure_cpp.hpp"

#include "steps/sql_patterns.hpp"

namespace sicoop {

static std::string join(const std::vector<std::string>& parts, const std::string& sep) {
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
    return out;
}

std::string merge_changed_sql(const std::string& target, const std::string& key,
                              const std::vector<Column>& columns,
                              const std::vector<Column>& stamps, const std::string& source) {
    std::vector<std::string> names, exprs, sets, old_values, new_values;
    names.push_back(key);
    exprs.push_back("s." + key);
    for (const auto& c : columns) {
        names.push_back(c.name);
        exprs.push_back(c.expression);
        sets.push_back(c.name + " = EXCLUDED." + c.name);
        old_values.push_back("t." + c.name);
        new_values.push_back("EXCLUDED." + c.name);
    }
    for (const auto& c : stamps) {
        names.push_back(c.name);
        exprs.push_back(c.expression);
        sets.push_back(c.name + " = EXCLUDED." + c.name);
    }
    return "WITH merged AS (\n"
           "  INSERT INTO " + target + " AS t (" + join(names, ", ") + ")\n"
           "  SELECT " + join(exprs, ", ") + "\n"
           "  FROM " + source + "\n"
           "  ON CONFLICT (" + key + ") DO UPDATE SET " + join(sets, ", ") + "\n"
           "  WHERE (" + join(old_values, ", ") + ") IS DISTINCT FROM (" + join(new_values, ", ") + ")\n"
           "  RETURNING (t.xmax = 0) AS inserted)\n"
           "SELECT count(*) FILTER (WHERE inserted) AS rows_inserted,\n"
           "       count(*) FILTER (WHERE NOT inserted) AS rows_updated FROM merged";
}

std::string delete_missing_sql(const std::string& target, const std::string& key,
                               const std::string& source_relation, const std::string& extra_condition) {
    return "WITH gone AS (\n"
           "  DELETE FROM " + target + " t\n"
           "  WHERE NOT EXISTS (SELECT 1 FROM " + source_relation + " s WHERE s." + key + " = t." + key + ")" +
           (extra_condition.empty() ? "" : " AND " + extra_condition) + "\n"
           "  RETURNING 1)\n"
           "SELECT count(*) AS rows_deleted FROM gone";
}

std::string insert_all_sql(const std::string& target, const std::string& key, const std::vector<Column>& columns,
                           const std::vector<Column>& stamps, const std::string& source) {
    std::vector<std::string> names{key}, exprs{"s." + key};
    for (const auto& c : columns) names.push_back(c.name), exprs.push_back(c.expression);
    for (const auto& c : stamps) names.push_back(c.name), exprs.push_back(c.expression);
    return "INSERT INTO " + target + " (" + join(names, ", ") + ")\n"
           "SELECT " + join(exprs, ", ") + "\n"
           "FROM " + source;
}

std::string delete_with_tombstones_sql(const std::string& table, const std::string& key,
                                       const std::string& condition) {
    return "WITH gone AS (\n"
           "  DELETE FROM sicoop.raw_" + table + " r WHERE " + condition + "\n"
           "  RETURNING r." + key + " AS record_id),\n"
           "buried AS (\n"
           "  INSERT INTO sicoop.raw_tombstone AS b (table_name, record_id, run_id)\n"
           "  SELECT '" + table + "', record_id, $2 FROM gone\n"
           "  ON CONFLICT (table_name, record_id) DO UPDATE SET run_id = EXCLUDED.run_id\n"
           "  RETURNING 1)\n"
           "SELECT count(*) AS rows_deleted FROM buried";
}

std::string drop_temp_table_sql(const std::string& name) {
    return "DO $$ BEGIN IF to_regclass('pg_temp." + name + "') IS NOT NULL THEN\n"
           "  DROP TABLE pg_temp." + name + ";\nEND IF; END $$";
}

std::string fill(const std::string& sql, const std::vector<std::pair<std::string, std::string>>& values) {
    std::string out;
    for (size_t i = 0; i < sql.size(); ++i) {
        const std::pair<std::string, std::string>* match = nullptr;
        if (sql[i] == '{')
            for (const auto& v : values)
                if (sql.compare(i + 1, v.first.size(), v.first) == 0 && i + 1 + v.first.size() < sql.size() &&
                    sql[i + 1 + v.first.size()] == '}')
                    match = &v;
        if (match == nullptr) {
            out += sql[i];
            continue;
        }
        out += match->second;
        i += match->first.size() + 1;
    }
    return out;
}

std::string count_read_sql(const std::string& relation) {
    return "SELECT count(*) AS rows_read FROM " + relation;
}

}  // namespace sicoop
