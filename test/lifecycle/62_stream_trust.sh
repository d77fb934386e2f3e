#!/usr/bin/env bash
# The stream's control plane fails closed (issue 24, findings 2, 5, 6, 7, 8b, 8c), on real
# logical replication (the test cluster is the source and the warehouses):
#   - identity: the worker acts for the warehouse's owner at every transaction -- a stream a
#     superuser started, whose warehouse grant_operator then hands to an operator, runs the
#     operator's trigger on stream_state as the operator, never as a superuser; a NOLOGIN group
#     role as operator streams;
#   - slots: two warehouses stream one source with default names, each with its own slot, both
#     exact; a slot the warehouse did not create is refused and left untouched;
#   - the operator sees the worker whoever started it; resync_stream() right after stop_stream()
#     waits; stop_stream() ends a worker taking its snapshot;
#   - the publication and the replica identities are checked at every connection (publish =
#     'insert', a table left out, REPLICA IDENTITY NOTHING / FULL, a row filter), and a replica
#     identity changed mid-stream fails the stream with the fix instead of replaying forever;
#   - a refused login at the source (wrong password, no REPLICATION) fails without restarts.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SRC=sicoop_trust_src DW=sicoop_trust_dw DW2=sicoop_trust_dw2
READER=sicoop_test_stream_reader OP=sicoop_trust_operator GROUP=sicoop_trust_group MEMBER=sicoop_trust_member

workers_of() { val postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'sicoop_etl stream' AND datname = '$1'"; }
cleanup() {
  for db in "$DW" "$DW2"; do
    val "$db" "SELECT sicoop.stop_stream()" >/dev/null 2>&1 || true
    val postgres "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'sicoop_etl stream' AND datname = '$db'" >/dev/null 2>&1 || true
  done
  sleep 0.5
  val postgres "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = '$SRC' AND active_pid IS NOT NULL" >/dev/null 2>&1 || true
  sleep 0.5
  val postgres "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$SRC'" >/dev/null 2>&1 || true
  drop_db "$DW"; drop_db "$DW2"; drop_db "$SRC"
  for r in "$MEMBER" "$GROUP" "$OP" "$READER"; do q -d postgres -c "DROP ROLE IF EXISTS $r" 2>/dev/null || true; done
}
cleanup
trap 'cleanup; rm -rf "$WORK"' EXIT

make_source "$SRC" 2000
q -d "$SRC" -c "$PUBLISH_SOURCE" \
  -c "CREATE PUBLICATION sicoop_stream2 FOR TABLE associado, conta, cartao, movimentacao_cartao" \
  -c "CREATE ROLE $READER LOGIN REPLICATION PASSWORD 'trust-reader-pw'" \
  -c "GRANT SELECT ON ALL TABLES IN SCHEMA public TO $READER" >/dev/null
q -d postgres -c "CREATE ROLE $OP LOGIN" -c "CREATE ROLE $GROUP NOLOGIN" -c "CREATE ROLE $MEMBER LOGIN IN ROLE $GROUP" >/dev/null

state_of() { val "$1" "SELECT state FROM sicoop.stream_status()"; }
wait_no_worker() {  # wait_no_worker <db> [tenths]
  for _ in $(seq "${2:-100}"); do [ "$(workers_of "$1")" = 0 ] && return 0; sleep 0.1; done
  return 1
}
marker() { mark_and_wait "$SRC" MOV-TRUST 300 "$@"; }  # marker <db...>: a movement written at the source reaches every warehouse's fact
movements() { val "$1" "SELECT count(*) || ' ' || md5(string_agg(id_movimentacao_cartao || ':' || valor_movimentacao, ',' ORDER BY id_movimentacao_cartao)) FROM $2"; }
guard() {  # guard DISABLE|ENABLE: the statement that switches the lead's event trigger, if this build has it
  echo "DO \$\$ BEGIN IF EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'sicoop_guard') THEN
          EXECUTE 'ALTER EVENT TRIGGER sicoop_guard $1'; END IF; END \$\$"
}

# 1. Identity. A superuser's warehouse and stream; a table recording who runs code planted on
#    stream_state.
make_warehouse "$DW" "$SRC"
q -d "$DW" -c "CREATE TABLE public.identity_log (at timestamptz DEFAULT clock_timestamp(), who text, super boolean)" \
  -c "GRANT INSERT, SELECT ON public.identity_log TO PUBLIC" \
  -c "CREATE FUNCTION public.record_identity() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN
        INSERT INTO public.identity_log (who, super) SELECT current_user, r.rolsuper FROM pg_roles r WHERE r.rolname = current_user;
        RETURN NEW; END \$\$" \
  -c "CREATE USER MAPPING FOR $OP SERVER sicoop_source OPTIONS (user '$READER', password 'trust-reader-pw')" \
  -c "CREATE USER MAPPING FOR $GROUP SERVER sicoop_source OPTIONS (user '$READER', password 'trust-reader-pw')" >/dev/null
ok_run 'a superuser starts the stream with the default slot' q -d "$DW" -o /dev/null -c "SELECT sicoop.start_stream()"
ok_run 'it streams' wait_state "$DW" streaming
is "$(val "$DW" "SELECT slot_name = 'sicoop_' || sicoop._warehouse_id() FROM sicoop.stream_state")" t \
   "the default slot is the warehouse's own (sicoop_<system identifier>_<database OID>)"
is "$(val "$DW" "SELECT created_slot = slot_name || '@' || sicoop._warehouse_id() FROM sicoop.stream_state")" t 'and recorded as created by it'
# The warehouse goes to an operator, who plants a trigger on stream_state at once: in the same
# transaction, so that the worker, which notices the new owner within a second, never runs a
# transaction as the operator without it (on a loaded machine the worker was quicker than psql).
q -d "$DW" -1 -c "SET client_min_messages = warning" -c "$(guard DISABLE)" \
  -c "SELECT sicoop.grant_operator('$OP')" -c "SET ROLE $OP" \
  -c "CREATE TRIGGER planted BEFORE UPDATE ON sicoop.stream_state FOR EACH ROW EXECUTE FUNCTION public.record_identity()" \
  -c "RESET ROLE" -c "$(guard ENABLE)" >/dev/null
# Within seconds the worker notices the new owner, ends, and starts again acting for it: every
# row it writes from then on runs the planted trigger as the operator (the restarted worker then
# refuses the altered warehouse, as a run does).
for _ in $(seq 150); do
  [ "$(val "$DW" "SELECT count(*) FROM public.identity_log WHERE who = '$OP'")" -ge 2 ] && break
  sleep 0.1
done
is "$(val "$DW" "SELECT count(*) FILTER (WHERE super) || ' superuser, ' || (count(*) FILTER (WHERE who = '$OP') >= 2) FROM public.identity_log")" \
   '0 superuser, true' 'the planted trigger ran in the worker as the operator only, never as a superuser'
q -d "$DW" -U "$OP" -c "DROP TRIGGER planted ON sicoop.stream_state"
ok_run 'the operator starts the stream again' q -d "$DW" -U "$OP" -o /dev/null -c "SELECT sicoop.start_stream()"
ok_run 'it streams' wait_state "$DW" streaming
is "$(val "$DW" "SELECT started_by FROM sicoop.stream_state")" "$OP" 'acting for the operator'
ok_run "a change reaches the operator's fact" marker "$DW"
is "$(val "$DW" "SELECT count(*) FROM public.identity_log WHERE super")" 0 '(no row was ever written as a superuser)'
# A NOLOGIN group role (the README's group-role setup) takes the warehouse: it streams.
q -d "$DW" -c "SET client_min_messages = warning" -c "SELECT sicoop.grant_operator('$GROUP')" >/dev/null
for _ in $(seq 150); do
  [ "$(val "$DW" "SELECT started_by FROM sicoop.stream_state")" = "$GROUP" ] && [ "$(state_of "$DW")" = streaming ] && break
  sleep 0.1
done
is "$(val "$DW" "SELECT started_by || ' ' || state FROM sicoop.stream_status() JOIN sicoop.stream_state USING (state)")" \
   "$GROUP streaming" 'a NOLOGIN group role as operator: the stream streams, acting for it'
ok_run 'and applies a change' marker "$DW"

# 2. Two warehouses on one source, each with its own default slot, both exact.
make_warehouse "$DW2" "$SRC"
ok_run 'a second warehouse on the same source starts with its default slot' \
  q -d "$DW2" -o /dev/null -c "SELECT sicoop.start_stream(publication => 'sicoop_stream2')"
ok_run 'it streams' wait_state "$DW2" streaming
is "$(val postgres "SELECT count(*) FROM pg_replication_slots WHERE database = '$SRC' AND active")" 2 'two slots, both active'
q -d "$SRC" >/dev/null <<'SQL'
UPDATE movimentacao_cartao SET valor_movimentacao = valor_movimentacao + 1 WHERE id_movimentacao_cartao IN (SELECT id_movimentacao_cartao FROM movimentacao_cartao ORDER BY 1 LIMIT 30);
DELETE FROM movimentacao_cartao WHERE id_movimentacao_cartao IN (SELECT id_movimentacao_cartao FROM movimentacao_cartao ORDER BY 1 DESC LIMIT 6);
INSERT INTO movimentacao_cartao SELECT 'MOV-TWO-' || i, 'CARTAO-00000002', 'dois', i, now()::timestamp FROM generate_series(1, 6) i;
SQL
ok_run 'changes reach both' marker "$DW" "$DW2"
is "$(movements "$DW" sicoop.fato_movimentacao_cartao)" "$(movements "$SRC" movimentacao_cartao)" 'the first warehouse holds every movement'
is "$(movements "$DW2" sicoop.fato_movimentacao_cartao)" "$(movements "$SRC" movimentacao_cartao)" 'and so does the second: no change lost'

# 3. As the operator (a member of the NOLOGIN group, through SET ROLE): the worker a superuser
#    started is seen; resync right after stop waits; stop ends a worker taking its snapshot.
as_group() { q -d "$DW" -U "$MEMBER" -Atc "SET ROLE $GROUP" -c "$1"; }
start_group() { as_group "SELECT sicoop.start_stream()" >/dev/null; }
is "$(as_group "SELECT sicoop._stream_worker_pid()")" "$(val postgres "SELECT pid FROM pg_stat_activity WHERE backend_type = 'sicoop_etl stream' AND datname = '$DW'")" \
   'the operator sees the worker (its session is not the operator'"'"'s)'
said=$(as_group "SELECT sicoop.resync_stream()" 2>&1 || true)
ok_if "grep -q 'worker is running' <<<\"\$said\"" 'resync_stream() is refused while the stream runs'
[ "$FAILED" = 0 ] || echo "#   said: $said"
as_group "SELECT sicoop.stop_stream()" >/dev/null
is "$(as_group "SELECT sicoop.resync_stream()" 2>&1)" 'the next sicoop.start_stream() takes a fresh snapshot' \
   'resync_stream() right after stop_stream() waits for the worker to end'
is "$(workers_of "$DW")" 0 'and the worker is gone'
q -d "$SRC" -c "INSERT INTO movimentacao_cartao SELECT 'MOV-BULK-' || i, 'CARTAO-00000003', 'volume', 1, now()::timestamp FROM generate_series(1, 60000) i" >/dev/null
as_group "SELECT sicoop.start_stream()" >/dev/null
for _ in $(seq 100); do [ "$(state_of "$DW")" = syncing ] && break; sleep 0.05; done
is "$(state_of "$DW")" syncing 'the worker takes its snapshot (a full comparison)'
as_group "SELECT sicoop.stop_stream()" >/dev/null
ok_run 'stop_stream() ends a worker taking its snapshot, as the operator' wait_no_worker "$DW" 50
sleep 6  # (the postmaster restarts a signalled worker after 5 s: it finds the stream stopped)
is "$(workers_of "$DW") $(state_of "$DW")" '0 stopped' 'and it stays ended'
ok_run 'start_stream() again: it syncs and streams' start_group
ok_run '(streaming)' wait_state "$DW" streaming 600
ok_run 'exact after the interrupted snapshot' marker "$DW" "$DW2"
is "$(movements "$DW" sicoop.fato_movimentacao_cartao)" "$(movements "$SRC" movimentacao_cartao)" '(every movement, once)'
q -d "$DW" -c "SELECT sicoop.stop_stream()" >/dev/null
wait_no_worker "$DW" || true

# 4. A slot this warehouse did not create is refused and left untouched.
q -d "$SRC" -c "SELECT pg_create_logical_replication_slot('sicoop_not_ours', 'pgoutput')" >/dev/null
slot_before=$(val postgres "SELECT restart_lsn || ' ' || confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'sicoop_not_ours'")
q -d "$DW2" -c "SELECT sicoop.stop_stream()" >/dev/null
q -d "$DW2" -c "SELECT sicoop.resync_stream()" >/dev/null
ok_run 'start_stream() with the name of a slot that exists' q -d "$DW2" -o /dev/null -c "SELECT sicoop.start_stream('sicoop_not_ours', 'sicoop_stream2')"
ok_run 'fails' wait_state "$DW2" failed
ok_if "val '$DW2' \"SELECT error_message || error_hint FROM sicoop.stream_status()\" | grep -q 'did not create it.*pg_drop_replication_slot'" \
  'saying the slot is not its own, with the fix'
is "$(val postgres "SELECT restart_lsn || ' ' || confirmed_flush_lsn || ' ' || active FROM pg_replication_slots WHERE slot_name = 'sicoop_not_ours'")" \
   "$slot_before false" 'the slot is untouched (neither dropped nor used)'
q -d "$SRC" -c "SELECT pg_drop_replication_slot('sicoop_not_ours')" >/dev/null
start2() { q -d "$DW2" -c "SELECT sicoop.start_stream(${1:+'$1', }publication => 'sicoop_stream2')" >/dev/null; }
ok_run 'back on its own slot' start2 "sicoop_$(val "$DW2" "SELECT sicoop._warehouse_id()")"
ok_run 'it streams again' wait_state "$DW2" streaming 600

# 5. A login the source refuses is no transient failure: failed with the reason and the fix,
#    no restart.
login_case() {  # login_case <what> <breaking SQL> <in the message> <fixing SQL>
  q -d postgres -c "$2" >/dev/null
  as_group "SELECT sicoop.start_stream()" >/dev/null
  ok_run "$1: the stream fails" wait_state "$DW" failed
  ok_if "val '$DW' \"SELECT error_message || error_hint FROM sicoop.stream_status()\" | grep -q '$3.*LOGIN, REPLICATION'" \
    "$1: with the reason and the fix"
  sleep 6
  is "$(state_of "$DW") $(workers_of "$DW")" 'failed 0' "$1: no worker restarting"
  q -d postgres -c "$4" >/dev/null
}
login_case 'a wrong password' "ALTER ROLE $READER PASSWORD 'changed-at-the-source'" 'password authentication failed' \
  "ALTER ROLE $READER PASSWORD 'trust-reader-pw'"
login_case 'no REPLICATION' "ALTER ROLE $READER NOREPLICATION" 'replication role' "ALTER ROLE $READER REPLICATION"
ok_run 'fixed at the source, the stream streams' start_group
ok_run '(streaming)' wait_state "$DW" streaming 600
ok_run 'and applies a change' marker "$DW"
is "$(movements "$DW" sicoop.fato_movimentacao_cartao)" "$(movements "$SRC" movimentacao_cartao)" '(every movement, once)'
q -d "$DW" -c "SELECT sicoop.stop_stream()" >/dev/null  # (the cases below are the second warehouse's)
wait_no_worker "$DW" || true

# 6. The publication and the replica identities, checked at every connection: each case is
#    refused with its fix, and the stream works again after the fix.
pub_case() {  # pub_case <what> <breaking SQL> <in the message> <in the hint> <fixing SQL>
  q -d "$DW2" -c "SELECT sicoop.stop_stream()" >/dev/null
  wait_no_worker "$DW2" || true
  q -d "$SRC" -c "$2" >/dev/null
  start2
  ok_run "$1: the stream fails" wait_state "$DW2" failed
  local says
  says=$(val "$DW2" "SELECT error_message || ' HINT: ' || error_hint FROM sicoop.stream_status()")
  ok_if "grep -qF -- \"$3\" <<<\"\$says\" && grep -qF -- \"$4\" <<<\"\$says\"" "$1: it says what is wrong and the fix"
  [ "$FAILED" = 0 ] || echo "#   said: $says"
  q -d "$SRC" -c "$5" >/dev/null
  start2
  ok_run "$1: fixed, the stream streams again" wait_state "$DW2" streaming
}
pub_case "publish = 'insert'" "ALTER PUBLICATION sicoop_stream2 SET (publish = 'insert')" \
  'does not publish every insert, update, delete and truncate' "ALTER PUBLICATION sicoop_stream2 SET (publish = 'insert, update, delete, truncate')" \
  "ALTER PUBLICATION sicoop_stream2 SET (publish = 'insert, update, delete, truncate')"
sleep 6  # (no restart: a worker that failed is not started again)
is "$(state_of "$DW2") $(workers_of "$DW2")" 'streaming 1' '(one worker, streaming)'
pub_case 'a table left out' "ALTER PUBLICATION sicoop_stream2 DROP TABLE cartao" \
  'publication sicoop_stream2 leaves out public.cartao' 'ALTER PUBLICATION sicoop_stream2 ADD TABLE public.cartao' \
  "ALTER PUBLICATION sicoop_stream2 ADD TABLE cartao"
pub_case 'REPLICA IDENTITY NOTHING' "ALTER TABLE conta REPLICA IDENTITY NOTHING" \
  'the replica identity of public.conta is NOTHING, not its key id_conta' 'ALTER TABLE public.conta REPLICA IDENTITY DEFAULT' \
  "ALTER TABLE conta REPLICA IDENTITY DEFAULT"
pub_case 'REPLICA IDENTITY FULL' "ALTER TABLE associado REPLICA IDENTITY FULL" \
  'the replica identity of public.associado is FULL' 'ALTER TABLE public.associado REPLICA IDENTITY DEFAULT' \
  "ALTER TABLE associado REPLICA IDENTITY DEFAULT"
pub_case 'a row filter' "ALTER PUBLICATION sicoop_stream2 SET TABLE associado, conta, cartao, movimentacao_cartao WHERE (id_movimentacao_cartao <> 'X')" \
  'publishes public.movimentacao_cartao with a row filter or a column list' 'ALTER PUBLICATION sicoop_stream2 DROP TABLE public.movimentacao_cartao; ALTER PUBLICATION sicoop_stream2 ADD TABLE public.movimentacao_cartao' \
  "ALTER PUBLICATION sicoop_stream2 SET TABLE associado, conta, cartao, movimentacao_cartao"
pub_case 'a column list' "ALTER PUBLICATION sicoop_stream2 SET TABLE associado, conta, cartao (id_cartao, id_conta), movimentacao_cartao" \
  'publishes public.cartao with a row filter or a column list' 'ALTER PUBLICATION sicoop_stream2 ADD TABLE public.cartao' \
  "ALTER PUBLICATION sicoop_stream2 SET TABLE associado, conta, cartao, movimentacao_cartao"
ok_run 'after every fix, changes reach the warehouse' marker "$DW2"
is "$(movements "$DW2" sicoop.fato_movimentacao_cartao)" "$(movements "$SRC" movimentacao_cartao)" '(every movement, once)'

# 7. A replica identity changed while streaming: the stream fails with the fix (and a resync),
#    instead of replaying the change forever.
q -d "$SRC" -c "ALTER TABLE conta REPLICA IDENTITY FULL" \
  -c "UPDATE conta SET situacao_conta = 'Bloqueada' WHERE id_conta = (SELECT min(id_conta) FROM conta)" >/dev/null
ok_run 'a replica identity changed mid-stream fails the stream' wait_state "$DW2" failed
ok_if "val '$DW2' \"SELECT error_message || error_hint FROM sicoop.stream_status()\" | grep -q 'changed while streaming.*REPLICA IDENTITY DEFAULT.*resync_stream'" \
  'saying so, with the fix and the resync'
sleep 6
is "$(state_of "$DW2") $(workers_of "$DW2")" 'failed 0' 'and it stays failed, no worker replaying it'
q -d "$SRC" -c "ALTER TABLE conta REPLICA IDENTITY DEFAULT" >/dev/null
ok_run 'fixed and resynced' q -d "$DW2" -o /dev/null -c "SELECT sicoop.resync_stream()"
start2
ok_run 'it streams again' wait_state "$DW2" streaming 600
ok_run 'and is exact' marker "$DW2"
is "$(val "$DW2" "SELECT situacao_conta FROM sicoop.dim_conta WHERE id_conta = (SELECT min(id_conta) FROM sicoop.dim_conta)")" \
   "$(val "$SRC" "SELECT upper(situacao_conta) FROM conta WHERE id_conta = (SELECT min(id_conta) FROM conta)")" '(the change it failed on is there)'

# 8. A warehouse database dropped under its running stream (DROP DATABASE ... WITH (FORCE) ends
#    the worker): the postmaster starts the worker again once, it cannot connect, and it ends for
#    good -- no restart every 5 s for ever.
SERVER_LOG=$(readlink -f "$REPO/.pgdata")/data/server.log
dw2_oid=$(val postgres "SELECT oid FROM pg_database WHERE datname = '$DW2'")
log_start=$(stat -c %s "$SERVER_LOG")
drop_db "$DW2"
sleep 16
is "$(tail -c +"$((log_start + 1))" "$SERVER_LOG" | grep -c "database $dw2_oid does not exist")" 1 \
   'a database dropped under its stream: the worker tries once more, then ends for good (no restart loop)'

finish
