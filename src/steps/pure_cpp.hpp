// Included first by every source file in src/steps/: the pure C++ layer, which plans the steps
// and builds their SQL, compiles and unit-tests without a server. A PostgreSQL header already
// included fails the build here, and pg.hpp (the boundary layer's only door to PostgreSQL's
// headers) refuses to be included after this one. (As pg_duckdb's cpp_only_file.hpp.)
//
// Only the .cpp files include it: the headers of src/steps/ are also included by the boundary
// layer, after pg.hpp, where this guard would fire.
#pragma once

#if defined(POSTGRES_H) || defined(POSTGRES_FE_H) || defined(PG_VERSION_NUM) || defined(C_H)
#error "src/steps/ is pure C++: no PostgreSQL header may be included in it"
#endif

#define SICOOP_PURE_CPP_FILE 1
