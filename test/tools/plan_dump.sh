#!/usr/bin/env bash
# Every statement sicoop_etl runs, with its plan, for each kind of run: what a restructuring
# that changes no behaviour must leave byte-identical (issue 26).
#   bash test/tools/plan_dump.sh OUT_DIR        (SICOOP_PGROOT picks the install to dump)
# A throwaway cluster (port SICOOP_PLAN_PORT, default 5610) with auto_explain logging every
# nested statement's plan (costs included: the same data, settings and statistics give the
# same plans). Autovacuum is off so statistics change only where sicoop_etl analyzes.
# OUT_DIR gets one file per kind of run: a batch run's statements in the order each backend ran
# them; the stream's as a set (its housekeeping runs as often as time allows).
set -euo pipefail
OUT=$(mkdir -p "${1:?usage: plan_dump.sh OUT_DIR}" && cd "$1" && pwd)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PGBIN=${SICOOP_PGROOT:-}/usr/lib/postgresql/15/bin
PORT=${SICOOP_PLAN_PORT:-5610}
N=${SICOOP_PLAN_N:-20000}
DIR=$(mktemp -d /tmp/sicoop_plan_dump.XXXXXX)
as_server_user() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$DIR"
LOG=$DIR/server.log
stop() { as_server_user "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$DIR"; }
trap stop EXIT

as_server_user "$PGBIN/initdb" -D "$DIR/data" -U postgres --auth=trust --encoding=UTF8 \
  --locale=C.UTF-8 --locale-provider=icu --icu-locale=pt-BR >/dev/null
cat >>"$DIR/data/postgresql.conf" <<EOF
port = $PORT
listen_addresses = 'localhost'
unix_socket_directories = '/tmp'
shared_preload_libraries = 'pg_cron,auto_explain'
cron.database_name = 'postgres'
max_worker_processes = 16
wal_level = logical
autovacuum = off
jit = off
work_mem = '64MB'
shared_buffers = '256MB'
log_line_prefix = '%b %d|'
log_min_messages = warning
auto_explain.log_min_duration = 0
auto_explain.log_nested_statements = on
auto_explain.log_format = text
EOF
as_server_user "$PGBIN/pg_ctl" -D "$DIR/data" -l "$LOG" -w start >/dev/null
export PGHOST=localhost PGPORT=$PORT PGUSER=postgres PGTZ=America/Sao_Paulo PGDATESTYLE='ISO, YMD'
q() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
# The tool's own queries (waits, lookups) are left out of the dump.
val() { local db=$1; shift; PGOPTIONS='-c auto_explain.log_min_duration=-1' q -d "$db" -Atc "$@"; }
# Marks where each kind of run begins in the server log.
section() { q -d postgres -c "SELECT 'plan_dump section $1'" >/dev/null; }
run() {  # run <as_of> <full>
  q -d dw -c "SET client_min_messages = warning" -c "SET sicoop.as_of = '$1'" -c "CALL sicoop.run_pipeline($2)" >/dev/null
}

q -d postgres -c "CREATE DATABASE src" -c "CREATE DATABASE dw"
q -d src -v n="$N" -f "$REPO/test/bench/generate_source.sql" >/dev/null
q -d src -c "CREATE PUBLICATION sicoop_stream FOR TABLE associado, conta, cartao, movimentacao_cartao"
q -d dw -c "SET client_min_messages = warning" -c "CREATE EXTENSION sicoop_etl CASCADE" \
  -c "SELECT sicoop.connect_source('localhost', $PORT, 'src', current_user)" >/dev/null

section batch_first;       run '2026-01-01 00:00:00-03' false
q -d src -v n="$N" -f "$REPO/test/bench/change_source.sql" >/dev/null
section batch_incremental; run '2026-01-02 00:00:00-03' false
q -d src -v n="$N" -f "$REPO/test/bench/change_old.sql" >/dev/null
section batch_full;        run '2026-01-03 00:00:00-03' true
section batch_rebuild
q -d dw -c "SET client_min_messages = warning" -c "SET sicoop.as_of = '2026-01-04 00:00:00-03'" \
  -c "SET sicoop.full_run = 'rebuild'" -c "CALL sicoop.run_pipeline(true)" >/dev/null
section batch_steps
for step in $(val dw "SELECT step FROM sicoop.step_state ORDER BY step"); do
  q -d dw -c "SET client_min_messages = warning" -c "SET sicoop.as_of = '2026-01-05 00:00:00-03'" \
    -c "SELECT sicoop.run_step('$step')" >/dev/null
done

# The stream: a change to each table in a transaction of its own, each waited for.
section stream
: >"$OUT/stream.changes"
val dw "SELECT sicoop.start_stream('sicoop_plan_dump')" >/dev/null
# Applied, and the worker's freshness sample taken after it recorded (its statement runs then).
wait_applied() {
  local lsn at; lsn=$(val src "SELECT pg_current_wal_lsn()"); at=$(val dw "SELECT clock_timestamp()")
  for _ in $(seq 600); do
    [ "$(val dw "SELECT coalesce(applied_lsn >= '$lsn'::pg_lsn AND current_at > '$at', false) FROM sicoop.stream_status()")" = t ] && return 0
    sleep 0.1
  done
  echo "plan_dump: the stream never reached $lsn: $(val dw "SELECT state || ' ' || coalesce(error_message, '') FROM sicoop.stream_status()")" >&2
  return 1
}
wait_applied
for change in \
  "UPDATE associado SET estado_civil = 'viúva' WHERE id_associado = 'ASSOC-00000003'" \
  "INSERT INTO conta SELECT 'CONTA-P0000001', id_associado, 'Poupança', '001-1', 'Ativa', '2025-01-02' FROM associado LIMIT 1" \
  "UPDATE cartao SET nome_impresso_cartao = 'plan dump' WHERE id_cartao = 'CARTAO-00000002'" \
  "INSERT INTO movimentacao_cartao VALUES ('MOV-P0000001', 'CARTAO-00000001', 'plan', 1, now()::timestamp)" \
  "DELETE FROM movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-P0000001'"; do
  echo "-- stream change: $change" >>"$OUT/stream.changes"
  q -d src -c "$change"
  wait_applied
done
section stream_full_check
run '2026-01-06 00:00:00-03' true
wait_applied
val dw "SELECT sicoop.stop_stream()" >/dev/null
for _ in $(seq 100); do
  [ "$(val postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'sicoop_etl stream'")" = 0 ] && break
  sleep 0.1
done
section end
sleep 1

# Plans as blocks, one per statement: "<backend type>|" then the query text and its plan.
# Temporary schemas' numbers and the figures of a time are what may differ between clusters.
python3 - "$LOG" "$OUT" <<'PY'
import re, sys
log, out = sys.argv[1], sys.argv[2]
blocks, cur = [], None
for line in open(log, encoding='utf-8', errors='replace'):
    line = line.rstrip('\n')
    m = re.match(r'^([^|\t ][^|]*)\|(LOG|WARNING|ERROR|NOTICE|FATAL|DETAIL|HINT|CONTEXT|STATEMENT):\s+(.*)$', line)
    if m:
        cur = None
        if m.group(2) == 'LOG' and m.group(3).startswith('duration:') and 'plan:' in m.group(3):
            cur = [m.group(1)]
            blocks.append(cur)
        continue
    if cur is not None:
        cur.append(line)
def norm(s):
    s = re.sub(r'pg_temp_\d+', 'pg_temp_N', s)
    s = re.sub(r"'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?([+-]\d\d(:\d\d)?)?'", "'<time>'", s)
    return re.sub(r"'[0-9A-F]+/[0-9A-F]+'::pg_lsn", "'<lsn>'::pg_lsn", s)
sections, name = {}, None
for b in blocks:
    text = '\n'.join(b[1:])
    s = re.search(r"plan_dump section (\w+)", text)
    if s and b[0].startswith('client backend') and 'Query Text: SELECT \'plan_dump' in text:
        name = s.group(1)
        continue
    if name is None or name == 'end':
        continue
    sections.setdefault(name, []).append((b[0], norm(text)))
for name, items in sections.items():
    # Backends run side by side (the source's sessions, the worker): each one's statements
    # in their order, one backend (by type and database) after the other.
    items = sorted(items, key=lambda i: i[0])
    with open(f'{out}/{name}.plans', 'w') as f:
        if name.startswith('stream'):
            # The worker's housekeeping runs as often as time allows, between the batches:
            # the stream's plans as a set, each statement once.
            for who, text in sorted(set(items)):
                f.write(f'=== {who}\n{text}\n')
        else:
            for who, text in items:
                f.write(f'=== {who}\n{text}\n')
PY
ls -l "$OUT"
