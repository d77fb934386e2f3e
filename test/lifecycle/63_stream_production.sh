#!/usr/bin/env bash
# The stream as production runs it (issue 25), on real logical replication (the test cluster is
# source and warehouse, as in 60_stream.sh); each case replays a finding of the DBA's review:
#   - a warehouse older than its slot (a point-in-time recovery, a restore) never skips changes:
#     the stream refuses with the fix, and the fix (resync_stream) gives exactly the source;
#   - a stall (the walsender stopped) is seen: 'stalled', the lag grows, the watchdog alerts,
#     and the stream comes back by itself when the source does;
#   - a stopped stream's lag and retained WAL are seen from the source's side, and alerted;
#   - 'reconnecting' is visible while the worker starts again;
#   - autovacuum sees what the stream writes (its table statistics are reported);
#   - a full check while streaming runs at the stream's own position: no member version lost;
#   - DROP EXTENSION under a stream leaves it 'failed' with no worker, and it resumes after.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N=${SICOOP_STREAM_N:-5000}
SRC=sicoop_prod_src DW=sicoop_prod_dw REF=sicoop_prod_ref COPY=sicoop_prod_copy
SLOT=sicoop_prod_test

walsender() { val postgres "SELECT coalesce((SELECT active_pid FROM pg_replication_slots WHERE slot_name = '$SLOT'), 0)"; }
cleanup() {
  local w
  w=$(walsender 2>/dev/null || echo 0)
  [ "${w:-0}" != 0 ] && kill -CONT "$w" 2>/dev/null
  end_stream "$DW" "'$DW', '$COPY'"
  val postgres "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name LIKE 'sicoop_%' AND active_pid IS NOT NULL AND database IN ('$SRC')" >/dev/null 2>&1 || true
  sleep 0.5
  val postgres "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$SRC' AND NOT active" >/dev/null 2>&1 || true
}
drop_db "$DW"; drop_db "$COPY"
cleanup
trap 'cleanup; drop_db "$DW"; drop_db "$COPY"; drop_db "$SRC"; drop_db "$REF"; rm -rf "$WORK"' EXIT

make_source "$SRC" "$N"
q -d "$SRC" -c "$PUBLISH_SOURCE"
make_warehouse "$DW" "$SRC"
# Short bounds, so that a stall is seen in seconds (the worker reads the database's settings).
q -d postgres -c "ALTER DATABASE $DW SET sicoop.stream_receive_timeout = '4s'" >/dev/null

marker() { mark_and_wait "$SRC" MOV-PROD 600 "${1:-$DW}"; }  # marker [db]: a movement written at the source now reaches the fact of db
same_as_scratch() {  # same_as_scratch <what> [db]
  local db=${2:-$DW}
  ok_run "$1: the stream caught up (a marker row reached the fact)" marker "$db"
  make_warehouse "$REF" "$SRC"
  same_as_scratch_load "$1: every layer equals a from-scratch load of the same source" "$db" "$REF"
}
state_is() { wait_state "$1" "$2" $((2 * ${3:-150})); }  # state_is <db> <state> [tries of 0.2 s]
stop_and_wait() {  # stop_and_wait <db>: stop_stream(), and its worker ended
  val "$1" "SELECT sicoop.stop_stream()" >/dev/null
  for _ in $(seq 150); do
    [ "$(val "$1" "SELECT sicoop._stream_worker_pid() IS NULL")" = t ] && return 0
    sleep 0.2
  done
  return 1
}
changes() {  # changes <tag> <n>: n small source transactions on every table
  for i in $(seq 1 "$2"); do
    q -d "$SRC" -c "INSERT INTO movimentacao_cartao VALUES ('MOV-$1-$i', 'CARTAO-0000000$((i % 9 + 1))', 'carga $1', $i, now()::timestamp);
                   UPDATE cartao SET nome_impresso_cartao = 'NOME $1 $i' WHERE id_cartao = 'CARTAO-0000000$((i % 9 + 1))';"
  done
}

ok_run 'the stream starts and streams' q -d "$DW" -c "SELECT sicoop.start_stream('$SLOT')"
ok_run 'it takes its snapshot and streams' state_is "$DW" streaming 300
same_as_scratch 'the first sync'

# 1. Autovacuum sees what the stream writes: the fact's statistics move with streamed inserts.
ins_before=$(val "$DW" "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relid = 'sicoop.fato_movimentacao_cartao'::regclass")
changes STAT 30
marker >/dev/null || true
ok_if "(for _ in \$(seq 50); do [ \$(val '$DW' \"SELECT n_tup_ins FROM pg_stat_user_tables WHERE relid = 'sicoop.fato_movimentacao_cartao'::regclass\") -ge $((ins_before + 30)) ] && exit 0; sleep 0.2; done; exit 1)" \
  "the fact's n_tup_ins counts the streamed inserts (was $ins_before; 30 streamed)"

# 2. No silent gap. A warehouse older than its slot -- what a point-in-time recovery or a restore
#    of the warehouse gives (the slot was confirmed past it) -- is refused, with the fix.
stop_and_wait "$DW"
old_lsn=$(val "$DW" "SELECT applied_lsn FROM sicoop.stream_state")
changes GAP 20
val "$DW" "SELECT sicoop.start_stream()" >/dev/null
marker >/dev/null || true
stop_and_wait "$DW"
q -d "$DW" -c "UPDATE sicoop.stream_state SET applied_lsn = '$old_lsn'" >/dev/null  # the warehouse as it was before GAP
val "$DW" "SELECT sicoop.start_stream()" >/dev/null
ok_run 'a warehouse behind its slot does not stream' state_is "$DW" failed
ok_if "val '$DW' \"SELECT error_message FROM sicoop.stream_status()\" | grep -q 'past this warehouse.s position'" \
  'it says the slot is past the warehouse'"'"'s position'
ok_if "val '$DW' \"SELECT error_hint FROM sicoop.stream_status()\" | grep -q 'resync_stream'" 'and gives the fix'
ok_run 'the fix: resync_stream() and start_stream()' q -d "$DW" -c "SELECT sicoop.resync_stream()" -c "SELECT sicoop.start_stream()"
ok_run 'it streams again' state_is "$DW" streaming 300
same_as_scratch 'after a gap refused and resynced'

# A dump restored into another database is another warehouse: it refuses the slot it did not
# create, and streams from its own after a resync.
"$PGBIN/pg_dump" -Fc -d "$DW" -f "$WORK/dw.dump"
changes COPY 10
recreate_db "$COPY"
"$PGBIN/pg_restore" -d "$COPY" "$WORK/dw.dump" 2>"$WORK/restore.err" || true
q -d "$COPY" -c "UPDATE sicoop.stream_state SET wanted = false, state = 'stopped', worker_pid = NULL" >/dev/null
val "$COPY" "SELECT sicoop.start_stream()" >/dev/null
ok_run 'a restored copy does not stream from the original'"'"'s slot' state_is "$COPY" failed
ok_if "val '$COPY' \"SELECT error_message FROM sicoop.stream_status()\" | grep -q 'did not create it'" 'and says why'
own=$(val "$COPY" "SELECT 'sicoop_' || sicoop._warehouse_id()")
ok_run 'with a resync it streams from a slot of its own' \
  q -d "$COPY" -c "SELECT sicoop.resync_stream()" -c "SELECT sicoop.start_stream('$own')"
ok_run 'and streams' state_is "$COPY" streaming 300
same_as_scratch 'a restored copy on its own slot' "$COPY"
stop_and_wait "$COPY"
q -d "$SRC" -c "SELECT pg_drop_replication_slot('$own')" >/dev/null 2>&1 || true

# 3. 'reconnecting' is visible: the walsender ended, the worker starts again within 5 s.
w=$(walsender)
val postgres "SELECT pg_terminate_backend($w)" >/dev/null
ok_run 'a walsender killed: stream_status() says reconnecting, not "not running"' state_is "$DW" reconnecting 50
ok_run 'and the stream comes back' state_is "$DW" streaming 100

# 4. A stall: the walsender stopped (SIGSTOP) for longer than sicoop.stream_receive_timeout.
w=$(walsender)
kill -STOP "$w"
changes STALL 20
ok_run 'a stopped walsender: the stream says stalled' state_is "$DW" stalled 100
sleep 2
ok_if "[ \"\$(val '$DW' \"SELECT (lag_bytes > 0 AND lag_seconds > 2)::text FROM sicoop.stream_status()\")\" = true ]" \
  'its lag, from the source'"'"'s side, grows'
ok_if "val '$DW' \"SELECT sicoop._watch_stream()\" | grep -q 'alerted: .*stalled'" 'the watchdog alerts it'
kill -CONT "$w"
ok_run 'the walsender back, the stream streams again by itself' state_is "$DW" streaming 300
same_as_scratch 'after a stall'

# 5. A stopped stream: its lag and the WAL its slot holds, seen from the source; alerted.
stop_and_wait "$DW"
changes STOP 10
q -d "$SRC" -c "CREATE TABLE wal_filler AS SELECT i, md5(i::text) AS t FROM generate_series(1, 60000) i" -c "DROP TABLE wal_filler"
sleep 2
ok_if "[ \"\$(val '$DW' \"SELECT (state = 'stopped' AND lag_bytes > 1000000 AND lag_seconds > 1 AND retained_bytes > 1000000)::text FROM sicoop.stream_status()\")\" = true ]" \
  'a stopped stream shows its lag and the WAL its slot retains'
ok_if "q -d '$DW' -At -c \"SET sicoop.stream_lag_alert = '1s'\" -c \"SET sicoop.stream_retained_alert = '1MB'\" -c \"SELECT sicoop._watch_stream()\" | grep -q 'alerted: retaining WAL, stopped behind'" \
  'the watchdog alerts a stream stopped behind the source, and the WAL retained'
val "$DW" "SELECT sicoop.start_stream()" >/dev/null
state_is "$DW" streaming 300 >/dev/null || true
same_as_scratch 'a stopped stream started again'

# 6. A full check while streaming runs in the worker at the stream's position: a member changed
#    again and again meanwhile keeps every version.
t0=$(val "$DW" "SELECT clock_timestamp()")
# Two values, neither the member's current one: each update is a change.
read -r va vb <<<"$(val "$SRC" "SELECT string_agg(v, ' ') FROM (SELECT v FROM unnest(ARRAY['Casado', 'Solteiro', 'Divorciado']) v
                                WHERE v <> (SELECT estado_civil FROM associado WHERE id_associado = 'ASSOC-00000005') ORDER BY v LIMIT 2) x")"
(for i in $(seq 1 40); do
   q -d "$SRC" -c "UPDATE associado SET estado_civil = CASE WHEN $i % 2 = 0 THEN '$vb' ELSE '$va' END WHERE id_associado = 'ASSOC-00000005'"
   sleep 0.05
 done) &
changer=$!
sleep 0.3
q -d "$DW" -c "CALL sicoop.run_pipeline(full => true)" >"$WORK/full.out" 2>&1 || true
wait "$changer"
ok_if "grep -q 'ran the full check at the stream.s position' '$WORK/full.out'" 'run_pipeline(full => true) runs in the stream'"'"'s worker, at its position'
ok_if "[ \"\$(val '$DW' \"SELECT count(*) FROM sicoop.run_log WHERE step = 'run_pipeline' AND status = 'succeeded' AND detail->>'full_check' IS NOT NULL\")\" -ge 1 ]" \
  'the run log has the check, with the position it ran at'
same_as_scratch 'after a full check under changes'
is "$(val "$DW" "SELECT count(*) FROM sicoop.dim_associado WHERE id_associado = 'ASSOC-00000005' AND inicio_vigencia_registro_associado >= '$t0'")" 40 \
   'each of the 40 changes of a member during the check is a version of its own'
ok_run 'no two versions overlap' q -d "$DW" -c "SELECT sicoop.check_vigencia()"

# 7. DROP EXTENSION under a stream: the worker ends, 'failed', no pid; re-created, it resumes.
q -d "$DW" -c "DROP EXTENSION sicoop_etl" >/dev/null
changes DROP 5
ok_if "(for _ in \$(seq 50); do [ \"\$(val '$DW' \"SELECT state || ' ' || coalesce(worker_pid::text, 'none') FROM sicoop.stream_state\")\" = 'failed none' ] && exit 0; sleep 0.2; done; exit 1)" \
  'after DROP EXTENSION the stream is failed, with no worker'
is "$(val "$DW" "SELECT error_message FROM sicoop.stream_state")" 'sicoop: sicoop_etl is no longer installed in this database' 'and says why'
ok_if "[ \"\$(val postgres \"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'sicoop_etl stream' AND datname = '$DW'\")\" = 0 ]" \
  'and no worker runs'
q -d "$DW" -c "SET client_min_messages = warning" -c "CREATE EXTENSION sicoop_etl CASCADE" >/dev/null
ok_run 're-created, start_stream() resumes' q -d "$DW" -c "SELECT sicoop.start_stream()"
ok_run 'and it streams' state_is "$DW" streaming 300
same_as_scratch 'resumed after DROP and CREATE EXTENSION'

finish
