#!/usr/bin/env bash
# Faults, as a DBA would cause them, in every step: the warehouse backend killed, an immediate
# shutdown and restart, a statement timeout; and at the source: its session killed mid-COPY,
# a table locked past sicoop.source_timeout, a cancelled run waiting on the source; and two
# runs started at once. After each, the run log tells the truth (nothing stays 'running') and
# the next plain run equals a from-scratch load of the same source.
#
# A step is caught in the middle by holding an EXCLUSIVE lock on the table it writes last
# (reads pass, its first write there waits): the step has done part of its work, and waits.
# The source is generated (N movements), large enough that the copy of the movements is still
# streaming when the source session is killed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N=${SICOOP_FAULT_N:-100000}
SRC=sicoop_fault_src DW=sicoop_fault_dw REF=sicoop_fault_ref
DATA_DIR=$(readlink -f "$REPO/.pgdata")/data

make_source "$SRC" "$N"
make_warehouse "$DW" "$SRC"
ROUND=0
as_of() { date -d "2025-08-16 10:00:00 -0300 + $((ROUND * 10)) minutes" '+%Y-%m-%d %H:%M:%S-03'; }
run_pipeline "$DW" "$(as_of)"

# A change for every step to work on: movements edited and added, a member's escolaridade
# (a new SCD2 version), a card reprinted.
change_source() {
  q -d "$SRC" -v k="$ROUND" >/dev/null <<'SQL'
UPDATE movimentacao_cartao SET valor_movimentacao = valor_movimentacao + 1
WHERE id_movimentacao_cartao IN (SELECT id_movimentacao_cartao FROM movimentacao_cartao ORDER BY data_movimentacao DESC LIMIT 200);
INSERT INTO movimentacao_cartao
SELECT format('MOV-F%s-%s', :k, i), 'CARTAO-' || lpad((1 + i % 900)::text, 8, '0'), 'falha ' || :k, i * 0.5,
       (SELECT max(data_movimentacao) FROM movimentacao_cartao) + i * interval '1 second'
FROM generate_series(1, 300) AS i;
UPDATE associado SET escolaridade = 'Rodada ' || :k WHERE id_associado = 'ASSOC-' || lpad((10 + :k)::text, 8, '0');
UPDATE cartao SET nome_impresso_cartao = 'rodada ' || :k WHERE id_cartao = 'CARTAO-' || lpad((20 + :k)::text, 8, '0');
SQL
}

# Holds an EXCLUSIVE lock on a warehouse table in a background session until released.
block() {  # block <table>
  q -d "$DW" -c "BEGIN; LOCK TABLE sicoop.$1 IN EXCLUSIVE MODE; SELECT pg_sleep(120); COMMIT;" >/dev/null 2>&1 &
  BLOCKER=$!
  for _ in $(seq 100); do
    [ "$(val "$DW" "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                    WHERE c.relname = '$1' AND l.mode = 'ExclusiveLock' AND l.granted")" = 1 ] && return 0
    sleep 0.1
  done
  echo "# could not lock $1"; return 1
}
release() {
  val "$DW" "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = '$DW' AND query LIKE 'BEGIN; LOCK TABLE%'" >/dev/null 2>&1 || true
  wait "$BLOCKER" 2>/dev/null || true
}
# Starts a run in the background (its output in $WORK/run.out) and waits until it waits on a lock.
start_run() {  # start_run [settings...]
  q -d "$DW" -c "SET client_min_messages = warning" -c "SET sicoop.as_of = '$(as_of)'" "$@" \
    -c "CALL sicoop.run_pipeline()" >"$WORK/run.out" 2>&1 &
  RUNNER=$!
}
wait_blocked() {  # wait_blocked <step>: the run's step is running and waiting on a lock
  for _ in $(seq 300); do
    [ "$(val "$DW" "SELECT count(*) FROM sicoop.run_log WHERE step = '$1' AND status = 'running'")" = 1 ] &&
      [ "$(val "$DW" "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DW' AND query LIKE 'CALL sicoop.run_pipeline%'
                      AND wait_event_type = 'Lock'")" = 1 ] && return 0
    sleep 0.1
  done
  echo "# step $1 never waited"; return 1
}
run_pid() { val "$DW" "SELECT pid FROM pg_stat_activity WHERE datname = '$DW' AND query LIKE 'CALL sicoop.run_pipeline%'"; }
faulted_run() { val "$DW" "SELECT max(run_id) FROM sicoop.run_log WHERE step = 'run_pipeline'"; }
# sicoop's sessions at the source.
source_sessions() { val "$SRC" "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sicoop_etl'"; }
# Terminates the run (pg_terminate_backend: the backend exits, no error handling runs), then
# waits up to 5 s for its sessions at the source to end.
terminate_run() {
  val "$DW" "SELECT pg_terminate_backend($(run_pid))" >/dev/null
  wait "$RUNNER" || true
  for _ in $(seq 50); do
    [ "$(source_sessions)" = 0 ] && break
    sleep 0.1
  done
}
# Ends the session holding a source table locked.
unlock_source() {
  val "$SRC" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'BEGIN; LOCK TABLE%'" >/dev/null
  wait "$SRC_BLOCKER" 2>/dev/null || true
}
statuses() {  # statuses <run id> [view]: step=status, in order
  val "$DW" "SELECT string_agg(step || '=' || status, ' ' ORDER BY started_at) FROM ${2:-sicoop.run_log} WHERE run_id = $1"
}

# The next plain run succeeds, leaves nothing 'running', and equals a from-scratch load.
recovers() {  # recovers <what>
  ok_run "$1: the next run succeeds" run_pipeline "$DW" "$(as_of)"
  is "$(val "$DW" "SELECT count(*) FROM sicoop.run_log WHERE status = 'running'")" 0 "$1: no run is left 'running'"
  make_warehouse "$REF" "$SRC"
  same_as_scratch_load "$1: every layer equals a from-scratch load of the same source" "$DW" "$REF" "$(as_of)"
  is "$(val "$DW" "SELECT count(*) FROM sicoop.reconciliation WHERE NOT balanced")" 0 "$1: every movement day balances"
}

# The table each step writes last (its earlier work is done when it waits there).
declare -A LAST_TABLE=([load_raw]=raw_movimentacao_cartao [load_trusted]=trusted_movimentacao_cartao
                       [load_dims]=dim_cartao [scd2_associado]=dim_associado [load_fato]=fato_movimentacao_cartao)

for step in ${SICOOP_FAULT_STEPS:-load_raw load_trusted load_dims scd2_associado load_fato}; do
  # 1. The warehouse backend killed mid-step.
  ROUND=$((ROUND + 1)); change_source
  block "${LAST_TABLE[$step]}"
  start_run; wait_blocked "$step"
  run=$(faulted_run)
  val "$DW" "SELECT pg_terminate_backend($(run_pid))" >/dev/null
  wait "$RUNNER" || true
  release
  # Read at once, before any other run: run_status() shows the run aborted.
  status=$(statuses "$run" 'sicoop.run_status()')
  ok_if "echo '$status' | grep -q 'run_pipeline=aborted' && echo '$status' | grep -q '$step=aborted' && ! echo '$status' | grep -q running" \
    "$step, backend killed: sicoop.run_status() shows the run and the step aborted at once ($status)"
  recovers "$step, backend killed"
  is "$(statuses "$run")" "$status" "$step, backend killed: the next run recorded it so in run_log"
  is "$(val "$DW" "SELECT error_message FROM sicoop.run_log WHERE run_id = $run AND step = '$step'")" \
     "$(val "$DW" "SELECT format('the run''s backend (pid %s) ended before the run did: a server crash or shutdown, or a terminated backend', backend_pid) FROM sicoop.run_log WHERE run_id = $run AND step = '$step'")" \
     "$step, backend killed: and says what happened"

  # 2. An immediate shutdown mid-step, then a restart.
  ROUND=$((ROUND + 1)); change_source
  block "${LAST_TABLE[$step]}"
  start_run; wait_blocked "$step"
  run=$(faulted_run)
  as_server_user "$PGBIN/pg_ctl" -D "$DATA_DIR" -m immediate stop >/dev/null
  wait "$RUNNER" || true
  wait "$BLOCKER" 2>/dev/null || true
  bash "$REPO/test/env.sh" start >/dev/null
  status=$(statuses "$run" 'sicoop.run_status()')
  ok_if "echo '$status' | grep -q '$step=aborted' && ! echo '$status' | grep -q running" \
    "$step, immediate shutdown: after the restart the run shows aborted ($status)"
  recovers "$step, immediate shutdown"

  # 3. A statement timeout hits mid-step.
  ROUND=$((ROUND + 1)); change_source
  block "${LAST_TABLE[$step]}"
  start_run -c "SET statement_timeout = '3s'"
  wait "$RUNNER" || true
  release
  run=$(faulted_run)
  is "$(val "$DW" "SELECT string_agg(step || '=' || status || ':' || error_sqlstate, ' ' ORDER BY started_at)
                   FROM sicoop.run_log WHERE run_id = $run AND status = 'failed'")" \
     "run_pipeline=failed:57014 $step=failed:57014" "$step, statement timeout: the run and the step failed with SQLSTATE 57014"
  is "$(val "$DW" "SELECT error_context LIKE '%sicoop step $step%' FROM sicoop.run_log WHERE run_id = $run AND step = '$step'")" t \
    "$step, statement timeout: run_log keeps the error's context (the step and the statement)"
  recovers "$step, statement timeout"
done

# The source session killed while the movements stream (the source is large enough: the kill
# is retried every 5 ms until it lands on the COPY, and must land).
ROUND=$((ROUND + 1)); change_source
q -d "$DW" -c "SET client_min_messages = warning" -c "SET sicoop.as_of = '$(as_of)'" -c "CALL sicoop.run_pipeline(full => true)" \
  >"$WORK/run.out" 2>&1 &
RUNNER=$!
cat >"$WORK/kill_copy.sql" <<'SQL'
DO $$
BEGIN
  FOR i IN 1 .. 6000 LOOP
    PERFORM pg_stat_clear_snapshot();
    PERFORM pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE application_name = 'sicoop_etl' AND state = 'active'
      AND query LIKE 'COPY (SELECT id_movimentacao_cartao::text, id_cartao::text%';
    IF FOUND THEN RAISE NOTICE 'killed'; RETURN; END IF;
    PERFORM pg_sleep(0.005);
  END LOOP;
END $$;
SQL
killed=$(q -d "$SRC" -f "$WORK/kill_copy.sql" 2>&1)
wait "$RUNNER" || true
ok_if "echo '$killed' | grep -q killed" 'source session killed while it streamed the movements'
run=$(faulted_run)
message=$(val "$DW" "SELECT error_sqlstate || ' ' || error_message FROM sicoop.run_log WHERE run_id = $run AND step = 'load_raw'")
ok_if 'grep -Eq "^08006 sicoop: the connection to the source was lost" <<<"$message"' \
  "the run failed saying the source connection was lost ($message)"
ok_if "! grep -q 'refused to commit' '$WORK/run.out'" 'and does not call it a refusal to commit'
is "$(val "$DW" "SELECT full_run_owed_by FROM sicoop.warehouse_info")" "$run" 'the interrupted full run is owed'
recovers 'source session killed'
is "$(val "$DW" "SELECT full_run_owed_by IS NULL FROM sicoop.warehouse_info")" t 'the next run was that full run, and nothing is owed any more'

# A source table held in ACCESS EXCLUSIVE past sicoop.source_timeout.
ROUND=$((ROUND + 1)); change_source
q -d "$SRC" -c "BEGIN; LOCK TABLE movimentacao_cartao IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT;" >/dev/null 2>&1 &
SRC_BLOCKER=$!
sleep 0.5
start=$(date +%s)
start_run -c "SET sicoop.source_timeout = '2s'"
wait "$RUNNER" || true
took=$(( $(date +%s) - start ))
run=$(faulted_run)
message=$(val "$DW" "SELECT error_message || ' / ' || coalesce(error_detail, '') FROM sicoop.run_log WHERE run_id = $run AND step = 'load_raw'")
ok_if '[ $took -lt 30 ] && grep -q "sicoop.source_timeout" <<<"$message"' \
  "a source table locked past sicoop.source_timeout fails the run in $took s, saying so ($message)"
is "$(source_sessions)" 0 'and leaves no session on the source'

# How many of sicoop's sessions at the source wait on a lock; with an argument, first waits up to
# 10 s for that many.
source_lock_waits() {
  local n
  for _ in $(seq 100); do
    n=$(val "$SRC" "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sicoop_etl' AND wait_event_type = 'Lock'")
    [ -z "${1:-}" ] || [ "$n" = "$1" ] && break
    sleep 0.1
  done
  [ -n "${1:-}" ] || echo "$n"
}
# A run cancelled while it waits on the source: its statement there is cancelled too.
start_run -c "SET sicoop.source_timeout = 0"
source_lock_waits 1
is "$(source_lock_waits)" 1 \
   'a run with no source timeout waits on the locked source table'
val "$DW" "SELECT pg_cancel_backend($(run_pid))" >/dev/null
wait "$RUNNER" || true
sleep 1
is "$(source_sessions)" 0 \
   'cancelled in the warehouse, it no longer waits at the source (libpq cancel)'
# Terminated rather than cancelled (pg_terminate_backend: the backend exits, no error handling
# runs): its exit still cancels the statement at the source.
start_run -c "SET sicoop.source_timeout = 0"
source_lock_waits 1
is "$(source_lock_waits)" 1 \
   'a second run waits on the locked source table'
terminate_run
is "$(source_sessions)" 0 \
   'terminated in the warehouse, it leaves no session at the source within 5 s (its exit sends the cancel)'
unlock_source
recovers 'source locked, timeout and cancel'

# An incremental run sends the movements' day totals first, in their own source session, which
# stays open while the other tables load: terminated while the cards' session waits on a lock,
# the run leaves neither session at the source.
ROUND=$((ROUND + 1)); change_source
q -d "$SRC" -c "BEGIN; LOCK TABLE cartao IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT;" >/dev/null 2>&1 &
SRC_BLOCKER=$!
sleep 0.5
start_run -c "SET sicoop.source_timeout = 0"
source_lock_waits 1
is "$(source_sessions)" 2 \
   "an incremental run waiting on the locked cards holds two sessions at the source: the movements' (day totals sent first) and the cards'"
terminate_run
is "$(source_sessions)" 0 \
   'terminated in the warehouse, it leaves neither session at the source within 5 s'
unlock_source
recovers 'two source sessions, terminated'

# Progress: while a run is in load_raw (held at its last table), another session reads
# sicoop.progress; psql got a NOTICE for each step that finished.
ROUND=$((ROUND + 1)); change_source
block raw_movimentacao_cartao
q -d "$DW" -c "SET sicoop.as_of = '$(as_of)'" -c "CALL sicoop.run_pipeline()" >"$WORK/run.out" 2>&1 &
RUNNER=$!
wait_blocked load_raw
is "$(val "$DW" "SELECT concat_ws(' ', run_id = (SELECT max(run_id) FROM sicoop.run_log), step, table_name,
                                   rows_expected > 0, step_elapsed IS NOT NULL) FROM sicoop.progress")" \
   't load_raw movimentacao_cartao t t' \
   'sicoop.progress, read from another session mid-run: the run, its step and table, time elapsed, rows expected (the latest run)'
release
wait "$RUNNER"
is "$(grep -c 'NOTICE:  sicoop run [0-9]*: [a-z_0-9]* done in' "$WORK/run.out")" 5 'psql got one NOTICE per finished step, with its figures'
is "$(val "$DW" "SELECT count(*) FROM sicoop.progress")" 0 'and once the run is over, sicoop.progress is empty'

# Alerts: a client LISTENing on sicoop_alerts (psql prints what arrives after each command)
# hears of a failed run, an aborted one, and a skip behind a run older than max_run_time.
{ echo "LISTEN sicoop_alerts;"; for _ in $(seq 1500); do echo "SELECT pg_sleep(0.2);"; done; } >"$WORK/listen.sql"
q -d "$DW" -At -f "$WORK/listen.sql" >"$WORK/alerts.out" 2>&1 &
LISTENER=$!
sleep 1
ROUND=$((ROUND + 1)); change_source
block fato_movimentacao_cartao
start_run -c "SET statement_timeout = '3s'"
wait "$RUNNER" || true
release
failed_run=$(faulted_run)
block fato_movimentacao_cartao
start_run; wait_blocked load_fato
aborted_run=$(faulted_run)
val "$DW" "SELECT pg_terminate_backend($(run_pid))" >/dev/null
wait "$RUNNER" || true
release
recovers 'alerts'
# Two runs at once (two schedules firing together): one runs, the other is skipped; a skip
# behind a run older than sicoop.max_run_time is an error.
ROUND=$((ROUND + 1)); change_source
block fato_movimentacao_cartao
start_run; wait_blocked load_fato
out=$(q -d "$DW" -c "SET sicoop.as_of = '$(as_of)'" -c "CALL sicoop.run_pipeline()" 2>&1) || true
ok_if "echo '$out' | grep -q 'skipped: another run holds the pipeline lock'" 'a second run at once is skipped, with a notice'
sleep 2
out=$(q -d "$DW" -c "SET sicoop.max_run_time = '1s'" -c "SET sicoop.as_of = '$(as_of)'" -c "CALL sicoop.run_pipeline()" 2>&1) && st=0 || st=$?
ok_if "[ $st != 0 ] && echo '$out' | grep -q 'longer than sicoop.max_run_time'" \
  'behind a run going on for longer than sicoop.max_run_time, the skip is an error (pg_cron shows it failed)'
is "$(val "$DW" "SELECT string_agg(status, ',' ORDER BY run_id) FROM sicoop.run_log WHERE step = 'run_pipeline' AND run_id > $(faulted_run) - 2
                 AND run_id <> (SELECT max(run_id) FROM sicoop.run_log WHERE status = 'running')")" 'skipped,skipped' \
   'both skips are in run_log'
release
wait "$RUNNER" || true
is "$(val "$DW" "SELECT status FROM sicoop.run_log WHERE step = 'run_pipeline' AND run_id = (SELECT min(run_id) FROM sicoop.run_log WHERE status = 'running' OR (step = 'run_pipeline' AND run_id > $(faulted_run) - 3))")" succeeded \
   'the run that held the lock finishes'
recovers 'two runs at once'
sleep 1
kill "$LISTENER" 2>/dev/null || true
wait "$LISTENER" 2>/dev/null || true
alerts() { grep -o 'payload "{.*}" received' "$WORK/alerts.out" | sed 's/^payload "//; s/" received$//'; }
alert_of() {  # alert_of <run id> <step>: the alert's status and SQLSTATE, as JSON text
  alerts | python3 -c "import sys, json
for line in sys.stdin:
    a = json.loads(line)
    if a['run_id'] == $1 and a['step'] == '$2': print(a['status'], a['sqlstate'] or '-', 'counts' in a and not any(k.startswith('error') for k in a))"
}
echo "# alerts heard: $(alerts | wc -l)"
is "$(alert_of "$failed_run" load_fato)" 'failed 57014 True' 'a listening client hears of the failed run: its step, status, SQLSTATE and counts, as JSON (no error text: any role may LISTEN)'
is "$(alert_of "$aborted_run" load_fato)" 'aborted - True' 'and of the aborted one (sent by the next run, naming the step that was running)'
ok_if "alerts | grep '\"status\" : \"skipped\"' | grep -q '\"sqlstate\" : \"55P03\"'" \
  'and of a skip behind a run older than sicoop.max_run_time, with the SQLSTATE of the error it raised (55P03)'

for db in "$DW" "$REF" "$SRC"; do drop_db "$db"; done
finish
