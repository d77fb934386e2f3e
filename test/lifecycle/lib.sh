# Shared by the lifecycle tests (test/lifecycle/*.sh): TAP output, psql against the project's
# cluster (test/env.sh start), and the warehouse fingerprints and comparisons they assert on.
# Each test prints TAP, so `prove` runs them like the other suites.
set -euo pipefail
LIFE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$LIFE/../.." && pwd)
PGBIN=${SICOOP_PGROOT:-}/usr/lib/postgresql/15/bin
export PGHOST=localhost PGPORT=${SICOOP_PGPORT:-5499} PGUSER=postgres
# Fingerprints and comparisons read timestamps as text: the same settings on every side.
export PGTZ=America/Sao_Paulo PGDATESTYLE='ISO, YMD'
WORK=$(mktemp -d /tmp/sicoop_lifecycle.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

TESTS=0
FAILED=0
ok() {  # ok <status> <description>: status 0 passes ("... # TODO why": a known failure, shown, not counted)
  TESTS=$((TESTS + 1))
  if [ "$1" = 0 ]; then echo "ok $TESTS - $2"; else echo "not ok $TESTS - $2"; [[ "$2" == *"# TODO "* ]] || FAILED=$((FAILED + 1)); fi
}
is() {  # is <got> <expected> <description>
  if [ "$1" = "$2" ]; then ok 0 "$3"; else ok 1 "$3"; echo "#   got:      '$1'"; echo "#   expected: '$2'"; fi
}
same_file() {  # same_file <a> <b> <description>: the two files are equal (a diff is shown otherwise)
  if diff -u "$1" "$2" >"$WORK/diff"; then ok 0 "$3"; else ok 1 "$3"; sed 's/^/#   /' "$WORK/diff" | head -60; fi
}
ok_if() {  # ok_if <shell condition> <description>
  if eval "$1"; then ok 0 "$2"; else ok 1 "$2"; fi
}
ok_run() {  # ok_run <description> <command...>: the command succeeds
  local desc=$1; shift
  if "$@"; then ok 0 "$desc"; else ok 1 "$desc"; fi
}
finish() { echo "1..$TESTS"; [ "$FAILED" = 0 ]; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
q() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
val() { local db=$1; shift; q -d "$db" -Atc "$@"; }
recreate_db() { q -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" 2>/dev/null; }
drop_db() { q -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" 2>/dev/null; }

# A generated source of n movements (test/bench/generate_source.sql), with an index on movement times.
make_source() {
  recreate_db "$1"
  q -d "$1" -v n="$2" -f "$REPO/test/bench/generate_source.sql" >/dev/null
  q -d "$1" -c "CREATE INDEX ON movimentacao_cartao (data_movimentacao)"
}

# A warehouse database with the extension, connected to the source database.
make_warehouse() {  # make_warehouse <db> <source db> [extension version]
  recreate_db "$1"
  q -d "$1" -c "SET client_min_messages = warning" \
    -c "CREATE EXTENSION sicoop_etl ${3:+VERSION '$3'} CASCADE" \
    -c "SELECT sicoop.connect_source('localhost', $PGPORT, '$2', current_user)" >/dev/null
}

run_pipeline() {  # run_pipeline <db> <as_of> [full]: quiet but for errors
  q -d "$1" -c "SET client_min_messages = warning" -c "SET sicoop.as_of = '$2'" \
    -c "CALL sicoop.run_pipeline(${3:-false})" >/dev/null
}

# Every relation of schema sicoop with its row count and a checksum of its rows, every
# sequence's position, and the source's server, foreign table and user mapping options
# (the password left out): what a backup, an upgrade or a re-created extension must keep.
fingerprint() { q -d "$1" -At -f "$LIFE/fingerprint.sql"; }

# The key lines of a fingerprint, as TAP comments (the figures a reader checks).
show_fingerprint() {  # show_fingerprint <label> <file>
  grep -E '^(fato_movimentacao_cartao|dim_associado|raw_movimentacao_cartao|run_log|source_sync|step_state) |^sequence ' "$2" |
    sed "s/^/# $1: /"
}

# The warehouse's layers as a from-scratch load would have them (test/pgtap/helpers/layer_query.sql):
# row count and checksum per layer.
layers() {
  q -d "$1" -At -f "$REPO/test/pgtap/helpers/layer_query.sql" -c "
    SELECT format('%s %s %s', layer, n, digest)
    FROM unnest(ARRAY['trusted_associado', 'trusted_conta', 'trusted_cartao', 'trusted_movimentacao_cartao',
                      'dim_conta', 'dim_cartao', 'dim_associado', 'fato']) AS layer,
         LATERAL (SELECT * FROM pg_temp.layer_digest(layer)) d"
}

# Per step of the latest run: step, rows read, rows written.
last_run() {
  val "$1" "SELECT string_agg(format('%s:%s/%s', step, rows_read,
                                     rows_inserted + rows_updated + rows_deleted), ' ' ORDER BY started_at)
            FROM sicoop.run_log WHERE run_id = (SELECT max(run_id) FROM sicoop.run_log WHERE step = 'run_pipeline')"
}

# As the server's OS user (`postgres` when we are root), as test/env.sh runs the server.
as_server_user() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

# --- What the stream suites (6x_*.sh) share ---------------------------------------------------

# The publication a stream reads: the four source tables.
PUBLISH_SOURCE="CREATE PUBLICATION sicoop_stream FOR TABLE associado, conta, cartao, movimentacao_cartao"

# stop_stream() in <db>, then up to 10 s for the stream workers of <datnames> (default: <db>)
# to end. Quiet: it also cleans up after a run that failed half-way.
end_stream() {  # end_stream <db> [SQL list of database names]
  val "$1" "SELECT sicoop.stop_stream()" >/dev/null 2>&1 || true
  for _ in $(seq 50); do
    [ "$(val postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'sicoop_etl stream' AND datname IN (${2:-'$1'})" 2>/dev/null)" = 0 ] && break
    sleep 0.2
  done
}

# A replication slot dropped: its walsender ended first (a stopped stream's may linger).
drop_slot() {  # drop_slot <slot> [seconds to let the walsender end, 0.5]
  val postgres "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '$1' AND active_pid IS NOT NULL" >/dev/null 2>&1 || true
  sleep "${2:-0.5}"
  val postgres "SELECT pg_drop_replication_slot('$1') FROM pg_replication_slots WHERE slot_name = '$1'" >/dev/null 2>&1 || true
}

# Waits for stream_status().state of <db> to be <state>; else says what it is, and fails.
wait_state() {  # wait_state <db> <state> [tenths of a second, 300]
  for _ in $(seq "${3:-300}"); do
    [ "$(val "$1" "SELECT state FROM sicoop.stream_status()")" = "$2" ] && return 0
    sleep 0.1
  done
  echo "# $1: state $(val "$1" "SELECT concat_ws(' | ', state, error_message, error_hint) FROM sicoop.stream_status()"), not $2"
  return 1
}

# A movement written at the source now, that must reach the fact of every warehouse <db>
# (waiting <tries> tenths of a second for each); else says where the stream is, and fails.
# MARK counts the markers (ids <prefix>-<MARK>); MARK_AMOUNT is the amount's literal,
# MARK_DETAIL the stream_status() column shown on a failure; with MARK_UNTIL_FAILED=1 a stream
# that failed is not waited for.
MARK=0 MARK_AMOUNT=1 MARK_DETAIL=error_message MARK_UNTIL_FAILED=0
mark_and_wait() {  # mark_and_wait <source db> <id prefix> <tries> <db...>
  local src=$1 id db
  id=$2-$((MARK += 1))
  local tries=$3
  shift 3
  q -d "$src" -c "INSERT INTO movimentacao_cartao VALUES ('$id', 'CARTAO-00000001', 'marker', $MARK_AMOUNT, now()::timestamp)"
  for db in "$@"; do
    for _ in $(seq "$tries"); do
      [ "$(val "$db" "SELECT count(*) FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = '$id'")" = 1 ] && continue 2
      [ "$MARK_UNTIL_FAILED" = 1 ] && [ "$(val "$db" "SELECT state FROM sicoop.stream_status()")" = failed ] && break
      sleep 0.1
    done
    echo "# marker $MARK never reached $db: $(val "$db" "SELECT state || ' ' || coalesce($MARK_DETAIL, '') FROM sicoop.stream_status()")"
    return 1
  done
  return 0
}

# A new directory under /var/tmp for a cluster of its own, that the server may write.
new_cluster_dir() {  # new_cluster_dir <name prefix>: prints the directory
  local dir
  dir=$(mktemp -d "/var/tmp/$1.XXXXXX")
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  echo "$dir"
}

# A source on a PostgreSQL cluster of its own (in <directory>, see new_cluster_dir): its
# database <db> holds <n> generated movements and the publication. Extra lines for its
# postgresql.conf may follow.
start_source_cluster() {  # start_source_cluster <directory> <port> <db> <n> [conf line...]
  as_server_user "$PGBIN/initdb" -D "$1/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  printf "port = %s\nlisten_addresses = 'localhost'\nunix_socket_directories = '/tmp'\nwal_level = logical\n" "$2" \
    >>"$1/data/postgresql.conf"
  [ $# -le 4 ] || printf '%s\n' "${@:5}" >>"$1/data/postgresql.conf"
  as_server_user "$PGBIN/pg_ctl" -D "$1/data" -l "$1/server.log" -w start >/dev/null
  q -p "$2" -d postgres -c "CREATE DATABASE $3"
  q -p "$2" -d "$3" -v n="$4" -f "$REPO/test/bench/generate_source.sql" >/dev/null
  q -p "$2" -d "$3" -c "$PUBLISH_SOURCE"
}
stop_source_cluster() {  # stop_source_cluster <directory>: stopped at once, and removed
  as_server_user "$PGBIN/pg_ctl" -D "$1/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$1"
}

# Every layer of <db> equals <ref>'s: a warehouse (made by the caller) on the same source,
# loaded from scratch now by run_pipeline at <as_of> (default: the current time).
same_as_scratch_load() {  # same_as_scratch_load <description> <db> <ref> [as_of]
  run_pipeline "$3" "${4:-$(date '+%Y-%m-%d %H:%M:%S%z')}"
  layers "$3" >"$WORK/ref"
  layers "$2" >"$WORK/dw"
  same_file "$WORK/ref" "$WORK/dw" "$1"
}

# --- Citus (70_citus.sh, test/bench/citus_bench.sh) ----------------------------------------------

# Three nodes of a Citus cluster, each a cluster of its own (ICU pt-BR, as the project's: cleaning
# runs on the workers), citus preloaded; <db> made on each, with its coordinator and workers
# registered. Citus 13.2.2 is built once from test/vendor/citus/ (cached) and installed first.
# CITUS_EXTRA_CONF: more postgresql.conf lines for every node.
CITUS_NODES=()
citus_cluster() {  # citus_cluster <db> <coordinator port> <worker port> <worker port>
  "$REPO/test/vendor/citus/build.sh" | sed 's/^/# /'
  local port dir
  for port in "${@:2}"; do
    dir=$(new_cluster_dir sicoop_citus)
    CITUS_NODES+=("$dir")
    as_server_user "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
      --locale-provider=icu --icu-locale=pt-BR >/dev/null
    printf '%s\n' "port = $port" "listen_addresses = 'localhost'" "unix_socket_directories = '/tmp'" \
      "shared_preload_libraries = 'citus'" "max_worker_processes = 16" "shared_buffers = '${CITUS_SHARED_BUFFERS:-256MB}'" \
      "work_mem = '64MB'" "max_wal_size = '8GB'" "citus.node_conninfo = 'sslmode=prefer'" ${CITUS_EXTRA_CONF:+"$CITUS_EXTRA_CONF"} \
      >>"$dir/data/postgresql.conf"
    as_server_user "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
  done
  citus_database "$@"
}
citus_database() {  # citus_database <db> <coordinator port> <worker port> <worker port>
  local port
  for port in "${@:2}"; do
    q -p "$port" -d postgres -c "CREATE DATABASE $1"
    q -p "$port" -d "$1" -c "SET client_min_messages = warning" -c "CREATE EXTENSION citus"
  done
  q -p "$2" -d "$1" -Atc "SELECT citus_set_coordinator_host('localhost', $2)" >/dev/null
  for port in "${@:3}"; do q -p "$2" -d "$1" -Atc "SELECT citus_add_node('localhost', $port)" >/dev/null; done
}
# psql on a Citus node, without Citus's warnings about objects it keeps local (temporary
# functions, views of local tables): citus_q <port> <db> [psql arguments...]
citus_q() { local port=$1 db=$2; shift 2; PGPORT=$port q -d "$db" "$@" \
  2> >(grep -v 'dependency\|will be created only locally\|^DETAIL:  "\|^HINT:  Dist' >&2); }
stop_citus_nodes() { local dir; for dir in "${CITUS_NODES[@]}"; do stop_source_cluster "$dir"; done; }
