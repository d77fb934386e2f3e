// The flat file for data science: sicoop.export_flat(path) writes sicoop.vw_movimentacao_flat
// as CSV on the server.
#pragma once

#include "pg.hpp"

namespace sicoop {

// SELECT sicoop.export_flat(path): the number of movements written.
Datum export_flat(FunctionCallInfo fcinfo);

}  // namespace sicoop
