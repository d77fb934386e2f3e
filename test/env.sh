#!/usr/bin/env bash
# The embedded environment: installs what is missing, builds the extension, runs a throwaway
# PostgreSQL 15 cluster inside the repository (.pgdata/, git-ignored), and runs the demo or
# the tests against it.
#
#   bash test/env.sh demo      set everything up, run the pipeline on the sample, export the CSV
#   bash test/env.sh test      run every test suite (unit, pg_regress, pgTAP incl. pg_cron, lifecycle)
#   bash test/env.sh test --fast   the fast tier: unit, pg_regress, pgTAP but pg_cron's suite
#   bash test/env.sh install | build | start | stop | psql [db] | status
#
# SICOOP_PGPORT (default 5499) chooses the cluster's port. SICOOP_PGROOT (default: none, the
# machine's own /usr) names a private copy of PostgreSQL's tree (usr/lib/postgresql/15 and
# usr/share/postgresql/15 under it): the cluster runs its binaries and the build installs into
# it, so that two checkouts can be tested side by side without sharing an installed library. As root, the server runs as the
# `postgres` OS user, because PostgreSQL refuses to run as root.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGBIN=${SICOOP_PGROOT:-}/usr/lib/postgresql/15/bin
PORT=${SICOOP_PGPORT:-5499}
STATE=$REPO/.pgdata
# The data directory, through .pgdata's link when the cluster lives outside the repository.
PGDATA_DIR=$(readlink -f "$STATE" 2>/dev/null || echo "$STATE")/data
SRC_DB=sicooperativedb
DW_DB=sicooperativedw
export PGHOST=localhost PGPORT=$PORT PGUSER=postgres

PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-contrib postgresql-15-pgtap
          libtap-parser-sourcehandler-pgtap-perl postgresql-15-cron libpq-dev make g++ perl python3
          python3-psycopg libpostgresql-jdbc-java default-jdk-headless)

log() { printf '\033[1m[sicoop]\033[0m %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# The server and server-side tools run as `postgres` when we are root, as ourselves otherwise.
as_server_user() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

cmd_install() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing from Debian: ${missing[*]}"
    as_root apt-get update -qq
    # The postgresql package must not start Debian's own cluster on 5432 for us: we bring ours.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

cmd_build() {
  log "building and installing the extension"
  make -C "$REPO" -s -j2 >/dev/null
  as_root make -C "$REPO" -s install ${SICOOP_PGROOT:+DESTDIR=$SICOOP_PGROOT} >/dev/null
}

# Where the cluster lives: inside the repo, unless the server user cannot reach the repo
# (e.g. a clone under /root): then in /var/tmp, linked from .pgdata so it is still found here.
prepare_state_dir() {
  [ -e "$STATE" ] && return
  if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$REPO"; then
    local outside
    outside=$(mktemp -d /var/tmp/sicoop_etl.XXXXXX)
    ln -s "$outside" "$STATE"
  else
    mkdir -p "$STATE"
  fi
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$(readlink -f "$STATE")"
  return 0
}

psql_q() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

cmd_start() {
  prepare_state_dir
  PGDATA_DIR=$(readlink -f "$STATE")/data
  if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
    log "creating the cluster in $PGDATA_DIR (UTF-8, ICU pt-BR, port $PORT)"
    # ICU makes upper() accent-aware ('joão' -> 'JOÃO') whatever libc locales are generated.
    as_server_user "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust --encoding=UTF8 \
      --locale=C.UTF-8 --locale-provider=icu --icu-locale=pt-BR >/dev/null
    cat >>"$PGDATA_DIR/postgresql.conf" <<EOF
# sicoop_etl throwaway cluster
listen_addresses = 'localhost'
unix_socket_directories = '/tmp'
shared_preload_libraries = 'pg_cron'
cron.database_name = '$DW_DB'
max_worker_processes = 16
EOF
  fi
  # Sizing for a 2-core, 24 GiB machine and multi-million-row loads. Durability stays at
  # PostgreSQL's defaults (fsync, full_page_writes, synchronous_commit).
  cat >"$PGDATA_DIR/sicoop_env.conf" <<EOF
port = $PORT
shared_buffers = '2GB'
work_mem = '64MB'
maintenance_work_mem = '1GB'
max_wal_size = '16GB'
checkpoint_timeout = '30min'
# Streaming (sicoop.start_stream()): the source side of logical replication.
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
EOF
  grep -q "^include_if_exists = 'sicoop_env.conf'" "$PGDATA_DIR/postgresql.conf" ||
    echo "include_if_exists = 'sicoop_env.conf'" >>"$PGDATA_DIR/postgresql.conf"
  sed -i "/^port = /d" "$PGDATA_DIR/postgresql.conf"
  # The security tests' source reader, the scheduling test's operator and the stream test's
  # operator and replication role authenticate with a password, as non-superusers must (postgres_fdw, sicoop.connect_source) and as production
  # does; every other role keeps trust on this throwaway cluster.
  for role in sicoop_test_source_reader sicoop_test_cron_operator sicoop_test_stream_reader sicoop_test_stream_operator; do
    if ! grep -q "$role" "$PGDATA_DIR/pg_hba.conf"; then
      sed -i "0,/^\(local\|host\)/s//host all $role 127.0.0.1\/32 scram-sha-256\nhost all $role ::1\/128 scram-sha-256\n&/" \
        "$PGDATA_DIR/pg_hba.conf"
      as_server_user "$PGBIN/pg_ctl" -D "$PGDATA_DIR" reload >/dev/null 2>&1 || true
    fi
  done
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$PGDATA_DIR/sicoop_env.conf"
  # A cluster started before streaming's settings were added restarts to take them.
  if as_server_user "$PGBIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1 &&
     [ "$(psql_q -d postgres -Atc 'SHOW wal_level' 2>/dev/null)" != logical ]; then
    log "restarting PostgreSQL for wal_level = logical"
    as_server_user "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null
  fi
  if ! as_server_user "$PGBIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
    log "starting PostgreSQL on port $PORT"
    # The server's password file (libpq's, for the connections pg_cron makes to start jobs)
    # is one the tests may write: $PGDATA/sicoop_pgpass.
    as_server_user env PGPASSFILE="$PGDATA_DIR/sicoop_pgpass" "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" \
      -w -t 60 start >/dev/null
  fi
  create_databases
}

create_databases() {
  if ! psql_q -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '$SRC_DB'" | grep -q 1; then
    log "creating $SRC_DB with the sample source"
    psql_q -d postgres -c "CREATE DATABASE $SRC_DB"
    psql_q -d "$SRC_DB" -f "$REPO/test/data/sample_source.sql" >/dev/null
  fi
  if ! psql_q -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '$DW_DB'" | grep -q 1; then
    log "creating $DW_DB with sicoop_etl and pg_cron"
    psql_q -d postgres -c "CREATE DATABASE $DW_DB"
    psql_q -d "$DW_DB" -c "CREATE EXTENSION sicoop_etl CASCADE" -c "CREATE EXTENSION pg_cron" \
      -c "SELECT sicoop.connect_source('localhost', $PORT, '$SRC_DB', 'postgres')" >/dev/null
  else
    # A warehouse made by an older build: its SQL objects follow the library just installed
    # (the update keeps the data), as a user's would.
    psql_q -d "$DW_DB" -c "ALTER EXTENSION sicoop_etl UPDATE" >/dev/null
    # A development build that changed the current version's scripts without a new version
    # number: the update above cannot know, so the demo warehouse is made anew in place (the
    # database stays, with pg_cron's launcher connected to it).
    if [ "$(psql_q -d "$DW_DB" -Atc "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database
                                       WHERE datname = current_database()")" != "sicoop_etl build $(installed_build)" ]; then
      log "remaking the demo warehouse: the installed build of sicoop_etl changed"
      psql_q -d "$DW_DB" -c "SET client_min_messages = warning" -c "DROP EXTENSION IF EXISTS sicoop_etl CASCADE" \
        -c "DROP SCHEMA IF EXISTS sicoop CASCADE" -c "DROP SERVER IF EXISTS sicoop_source CASCADE" \
        -c "CREATE EXTENSION sicoop_etl CASCADE" \
        -c "SELECT sicoop.connect_source('localhost', $PORT, '$SRC_DB', 'postgres')" >/dev/null
    fi
  fi
  psql_q -d "$DW_DB" -c "COMMENT ON DATABASE $DW_DB IS 'sicoop_etl build $(installed_build)'" >/dev/null
}

# A fingerprint of the installed extension: its scripts and library.
installed_build() {
  cat "$("$PGBIN/pg_config" --sharedir)"/extension/sicoop_etl* "$("$PGBIN/pg_config" --pkglibdir)/sicoop_etl.so" 2>/dev/null |
    md5sum | cut -c1-32
}

cmd_stop() {
  [ -f "$PGDATA_DIR/PG_VERSION" ] || return 0
  as_server_user "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast stop >/dev/null 2>&1 || true
}

cmd_demo() {
  cmd_install
  cmd_build
  cmd_start
  log "running the pipeline on the sample, in a fresh sicoop schema"
  psql_q -d "$DW_DB" -c "SET client_min_messages = warning" -c "DROP EXTENSION IF EXISTS sicoop_etl CASCADE" \
    -c "DROP SCHEMA IF EXISTS sicoop CASCADE" -c "DROP SERVER IF EXISTS sicoop_source CASCADE" \
    -c "CREATE EXTENSION sicoop_etl CASCADE" \
    -c "SELECT sicoop.connect_source('localhost', $PORT, '$SRC_DB', 'postgres')" >/dev/null
  # The sample's reference date, so the file reads as in the domain document.
  psql_q -d "$DW_DB" -c "SET sicoop.as_of = '2025-08-15'" -c "CALL sicoop.run_pipeline()"
  psql_q -d "$DW_DB" -c "SELECT step, status, rows_read, rows_inserted, rows_updated, rows_deleted,
      rows_unchanged, rows_unknown, round(extract(epoch FROM finished_at - started_at)::numeric, 3) AS seconds
    FROM sicoop.run_log WHERE run_id = (SELECT max(run_id) FROM sicoop.run_log) ORDER BY started_at"
  local out_dir="$REPO/out"
  mkdir -p "$out_dir"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$out_dir"
  if ! as_server_user test -w "$out_dir"; then
    out_dir=$(readlink -f "$STATE")/export
    as_server_user mkdir -p "$out_dir"
  fi
  local rows
  rows=$(psql_q -d "$DW_DB" -Atc "SELECT sicoop.export_flat('$out_dir/movimentacao_flat.csv')")
  log "flat file ($rows movements): $out_dir/movimentacao_flat.csv"
  echo "$out_dir/movimentacao_flat.csv"
}

# A warehouse database for pgTAP and its source (<name>_src): each test file resets both.
create_tap_databases() {
  local dw=$1
  psql_q -d postgres -c "DROP DATABASE IF EXISTS $dw WITH (FORCE)" -c "DROP DATABASE IF EXISTS ${dw}_src WITH (FORCE)" \
    -c "CREATE DATABASE $dw" -c "CREATE DATABASE ${dw}_src"
  psql_q -d "$dw" -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION dblink"
}

# The full tier (what CI runs), or with --fast the tier to run after every change: unit tests,
# pg_regress and pgTAP but its pg_cron suite (real schedules take minutes), on the same cluster.
cmd_test() {
  local fast=0
  [ "${1:-}" = --fast ] && fast=1
  cmd_install
  cmd_build
  cmd_start
  local failed=0
  log "unit tests (pure C++, no server)"
  make -C "$REPO" -s unit-tests >/dev/null
  prove --exec '' "$REPO/test/unit/unit_tests" || failed=1
  log "the SQL sources assemble to the released scripts and match the source model (make sql-check)"
  make -C "$REPO" -s sql-check || failed=1
  log "every statement the steps plan is unchanged unless pinned anew (make statements-check)"
  make -C "$REPO" -s statements-check >/dev/null || failed=1
  log "the house rules of src/ (make house-check)"
  make -C "$REPO" -s house-check || failed=1
  log "pg_regress"
  make -C "$REPO" -s installcheck || { failed=1; cat "$REPO/regression.diffs" 2>/dev/null | head -100; }
  if [ $fast = 0 ]; then
    log "benchmark smoke test (small N; figures are printed, not asserted)"
    bash "$REPO/test/bench/bench.sh" 20000 || failed=1
  fi
  log "pgTAP (schema, cleaning, SCD2, robustness, pg_cron, incremental correctness)"
  create_tap_databases sicoop_tap_dw
  local suites
  suites=$(cd "$REPO/test/pgtap" && ls ./*.sql)
  [ $fast = 1 ] && suites=$(echo "$suites" | grep -v '^./50_cron.sql$')
  # shellcheck disable=SC2086  # the suites' names have no spaces
  (cd "$REPO/test/pgtap" && pg_prove -d sicoop_tap_dw --ext .sql $suites) || failed=1
  if [ $fast = 0 ]; then
    log "lifecycle (pg_dump/pg_restore, upgrade from every release, faults, clients, Docker)"
    prove --exec bash "$REPO"/test/lifecycle/[0-9]*.sh || failed=1
  fi
  return $failed
}

case "${1:-}" in
  install) cmd_install ;;
  build) cmd_build ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  demo) cmd_demo ;;
  test) cmd_test "${2:-}" ;;
  tapdb) create_tap_databases "${2:?usage: env.sh tapdb NAME}" ;;
  status) as_server_user "$PGBIN/pg_ctl" -D "$PGDATA_DIR" status ;;
  psql) shift; exec "$PGBIN/psql" -d "${1:-$DW_DB}" "${@:2}" ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
