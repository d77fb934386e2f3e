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
ok() {  # ok <status> <description>: status 0 passes
  TESTS=$((TESTS + 1))
  if [ "$1" = 0 ]; then echo "ok $TESTS - $2"; else echo "not ok $TESTS - $2"; FAILED=$((FAILED + 1)); fi
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
