# sicoop_etl: built with PGXS against Debian's PostgreSQL 15 (pg_config).
MODULE_big = sicoop_etl
EXTENSION  = sicoop_etl
# The version this build is: the SQL objects it expects (checked at every run).
EXTVERSION = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" sicoop_etl.control)
# Every install and update script released, frozen in sql/ as it shipped: never edited.
# A released version's scripts were assembled from src/sql/ at its release.
DATA       = $(wildcard sql/sicoop_etl--*.sql)
# A version not released yet is assembled from the SQL sources in src/sql/ (src/sql/assemble.sh)
# into build/ (git-ignored): its install script and one update per
# src/sql/updates/FROM--$(EXTVERSION).sql. To release it, copy build/*.sql to sql/.
UPDATES_FROM = $(patsubst src/sql/updates/%--$(EXTVERSION).sql,%,$(wildcard src/sql/updates/*--$(EXTVERSION).sql))
ASSEMBLED    = build/sicoop_etl--$(EXTVERSION).sql $(foreach v,$(UPDATES_FROM),build/sicoop_etl--$(v)--$(EXTVERSION).sql)
ifeq ($(wildcard sql/sicoop_etl--$(EXTVERSION).sql),)
DATA_built   = $(ASSEMBLED)
endif
SQL_SOURCES  = src/sql/assemble.sh $(wildcard src/sql/*.sql src/sql/install/*.sql src/sql/updates/*.sql) sicoop_etl.control

# Pure C++ (no PostgreSQL headers, unit-tested without a server)
PURE_SRCS = $(sort $(wildcard src/steps/*.cpp))
# Boundary layer (PostgreSQL headers, SPI, fmgr, libpq)
PG_SRCS   = $(sort $(wildcard src/*.cpp))
OBJS = $(PURE_SRCS:.cpp=.o) $(PG_SRCS:.cpp=.o)

REGRESS = pipeline_sample

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(shell $(PG_CONFIG) --includedir) -Isrc -DSICOOP_EXTENSION_VERSION='"$(EXTVERSION)"'
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Wno-register -Wno-missing-field-initializers $(if $(CI),-Werror)
SHLIB_LINK = -lpq -lstdc++

# No LLVM bitcode: JIT inlining buys nothing for orchestration code.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

build/sicoop_etl--$(EXTVERSION).sql: $(SQL_SOURCES)
	@mkdir -p build
	bash src/sql/assemble.sh install $(EXTVERSION) $@
build/sicoop_etl--%--$(EXTVERSION).sql: $(SQL_SOURCES)
	@mkdir -p build
	bash src/sql/assemble.sh update $* $(EXTVERSION) $@

# The SQL sources assemble to exactly what is installed: for a released version, its frozen
# scripts (so src/sql/ is what the latest release shipped until the next version starts).
sql-check: $(ASSEMBLED) model-check
	@for f in $(ASSEMBLED); do \
	  if [ -f "sql/$$(basename $$f)" ]; then cmp -s "$$f" "sql/$$(basename $$f)" || \
	    { echo "src/sql/ no longer assembles to the released $$(basename $$f): set default_version to the next version"; exit 1; }; fi; \
	done

.PHONY: sql-check

# The house rules a reader can check in src/: files <= 500 lines, functions <= 60, no include
# circle, no global shared between files (test/tools/house_check.py).
house-check:
	@python3 test/tools/house_check.py

.PHONY: house-check

# PGXS compiles C++ with CXXFLAGS; make sure ours win.
override CXXFLAGS += $(PG_CXXFLAGS)

UNIT_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -O1 -g -Isrc
unit-tests: test/unit/unit_tests
test/unit/unit_tests: test/unit/unit_tests.cpp $(PURE_SRCS) $(wildcard src/steps/*.hpp)
	$(CXX) $(UNIT_CXXFLAGS) -o $@ test/unit/unit_tests.cpp $(PURE_SRCS)

.PHONY: unit-tests

# PGXS tracks no header dependencies: rebuild everything when a header changes.
$(OBJS): $(wildcard src/*.hpp src/steps/*.hpp)
# The version is compiled in.
src/run_shared.o: sicoop_etl.control

# The benchmark (test/bench/bench.sh): make bench N="1000000 10000000"
N ?= 100000
bench:
	bash test/bench/bench.sh $(N)

.PHONY: bench

# The soak (test/bench/soak.sh): make soak N=300000 RUNS=200
RUNS ?= 200
soak:
	bash test/bench/soak.sh $(if $(filter command line,$(origin N)),$(N),300000) $(RUNS)

.PHONY: soak

# The streaming benchmark (test/bench/stream_bench.py): make bench-stream N=1000000 [RATES="100 1000 max"] [DURATION=300] [CATCHUP=100000: the catch-up speed instead]
bench-stream:
	/usr/bin/python3 test/bench/stream_bench.py $(if $(filter command line,$(origin N)),$(N),1000000)

.PHONY: bench-stream

# Every statement the pure layer plans, for every kind of run (test/tools/planned_statements.cpp):
# a restructuring of the builders must keep it byte for byte. planned_statements.sha256 pins the
# current dump; after an intended change of a statement, `make statements-dump` and update it.
# (test/tools/plan_dump.sh compares the server's plans of real runs, before and after.)
test/tools/planned_statements: test/tools/planned_statements.cpp $(PURE_SRCS) $(wildcard src/steps/*.hpp)
	$(CXX) $(UNIT_CXXFLAGS) -o $@ test/tools/planned_statements.cpp $(PURE_SRCS)
statements-dump: test/tools/planned_statements
	@mkdir -p build
	test/tools/planned_statements > build/planned_statements.txt && sha256sum < build/planned_statements.txt | cut -d' ' -f1
statements-check: statements-dump
	@test "$$(sha256sum < build/planned_statements.txt | cut -d' ' -f1)" = "$$(cat test/tools/planned_statements.sha256)" || \
	  { echo "a planned statement changed (build/planned_statements.txt): compare with the dump of the base commit"; exit 1; }
.PHONY: statements-dump statements-check

# The SQL side's source tables (foreign, stage, raw) against the source model, declared once in
# src/steps/source_model.cpp (test/tools/model_check.cpp).
test/tools/model_check: test/tools/model_check.cpp src/steps/source_model.cpp src/steps/copy_filter.cpp $(wildcard src/steps/*.hpp)
	$(CXX) $(UNIT_CXXFLAGS) -o $@ test/tools/model_check.cpp src/steps/source_model.cpp src/steps/copy_filter.cpp src/steps/text_rules.cpp
model-check: test/tools/model_check
	@test/tools/model_check src/sql/warehouse_definition.sql
.PHONY: model-check
