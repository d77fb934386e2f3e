#include "steps/step.hpp"

#include <utility>

namespace sicoop {

bool StepCounts::add(const std::string& column, int64_t value) {
    if (column == "rows_read") rows_read += value;
    else if (column == "rows_inserted") rows_inserted += value;
    else if (column == "rows_updated") rows_updated += value;
    else if (column == "rows_deleted") rows_deleted += value;
    else if (column == "rows_unknown") rows_unknown += value;
    else if (column == "rows_rejected") rows_rejected += value;
    else if (column == "rows_unchanged") rows_unchanged = (rows_unchanged < 0 ? 0 : rows_unchanged) + value;
    else return false;
    return true;
}

void StepCounts::finish() {
    if (rows_unchanged < 0) {
        int64_t derived = rows_read - rows_inserted - rows_updated;
        rows_unchanged = derived > 0 ? derived : 0;
    }
}

Action sql_action(std::string sql) {
    Action a{Action::Kind::Sql, std::move(sql), {}};
    return a;
}

Action bulk_action(BulkCopy copy) {
    Action a{Action::Kind::Bulk, {}, std::move(copy)};
    return a;
}

const std::vector<Step>& pipeline_steps() {
    static const std::vector<Step> steps = {raw_step(), trusted_step(), dims_step(), scd2_step(), fato_step()};
    return steps;
}

const Step* find_step(const std::string& name) {
    for (const Step& s : pipeline_steps())
        if (s.name == name) return &s;
    return nullptr;
}

}  // namespace sicoop
