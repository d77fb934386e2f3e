// A stream's micro-batch into the stage, value by value when it must be (src/stream_rows.cpp).
#pragma once

#include "pg.hpp"

#include <string>
#include <vector>

namespace sicoop {

// Lays a micro-batch's rows of source table `table` (COPY text, src/steps/pgoutput.cpp) into
// sicoop.stage_<table>'s `columns`; `key` is the table's key column. A value that is not of its
// stage column's type (the source changed the column's type: text in a numeric or date column,
// an impossible date, a number past numeric's range; or text not valid in the database's
// encoding) lands as NULL, and sicoop.stage_unfit names its row and column: the table's `fits`
// rule rejects the row (sicoop._row_rule_checks), as it rejects a value too long or too precise
// for the warehouse. The batch's other rows load. Returns the rows laid.
int64 stage_stream_rows(const std::string& table, const std::vector<std::string>& columns, const std::string& key,
                        const std::string& text);

// Empties sicoop.stage_unfit if a batch wrote to it (TRUNCATE: the keys leave with the batch,
// not even as dead rows). The batch's transaction calls it after its steps.
void forget_unfit_values();

}  // namespace sicoop
