#!/usr/bin/env bash
# Streaming (issue 19) on real logical replication: the test cluster (wal_level = logical) is
# both the source and the warehouse. The warehouse follows a generated source with
# sicoop.start_stream(); after each case the stream must hold exactly the source -- every layer
# equal to a from-scratch batch load of the same source, nothing lost, nothing applied twice.
#   - the handoff: the stream starts while the source is being written;
#   - every kind of change, a member changed twice (two SCD2 versions, from commit times);
#   - a bad change becomes a reject with its reason, and the stream goes on;
#   - an unchanged TOAST value (pgoutput's 'u') is taken from what the warehouse holds;
#   - faults under load: the walsender killed, the worker killed, an immediate shutdown;
#   - batch runs while streaming (an incremental skips, a full run pauses the stream);
#   - source DDL: a column added is ignored, a column dropped stops the stream with its name;
#   - a lost slot stops the stream with the fix, and resync_stream() starts over, history kept.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N=${SICOOP_STREAM_N:-20000}
SRC=sicoop_stream_src DW=sicoop_stream_dw REF=sicoop_stream_ref
DATA_DIR=$(readlink -f "$REPO/.pgdata")/data

# What a previous run of this test left: the stream's worker and its slot.
cleanup() { end_stream "$DW"; drop_slot sicoop_stream_test; }
drop_db "$DW"
cleanup
trap 'cleanup; drop_db "$DW"; drop_db "$SRC"; drop_db "$REF"; rm -rf "$WORK"' EXIT

make_source "$SRC" "$N"
q -d "$SRC" -c "$PUBLISH_SOURCE"
make_warehouse "$DW" "$SRC"

# A movement written at the source now; waits until the fact has it (freshness, in seconds).
marker() { mark_and_wait "$SRC" MOV-MARK 600 "$DW"; }
# The stream holds exactly the source: every layer equals a from-scratch load of it.
same_as_scratch() {  # same_as_scratch <what>
  ok_run "$1: the stream caught up (a marker row reached the fact)" marker
  make_warehouse "$REF" "$SRC"
  same_as_scratch_load "$1: every layer equals a from-scratch load of the same source" "$DW" "$REF"
  is "$(val "$DW" "SELECT count(*) FROM sicoop.fato_movimentacao_cartao")" \
     "$(val "$SRC" "SELECT count(*) FROM movimentacao_cartao")" "$1: one fact per source movement, none twice"
}
# Writes at the source in the background: small transactions of inserts, updates and deletes.
LOADER=
start_load() {  # start_load <tag>
  (for i in $(seq 1 400); do
     q -d "$SRC" -c "INSERT INTO movimentacao_cartao VALUES ('MOV-$1-$i', 'CARTAO-0000000$((i % 9 + 1))', 'carga $1', $i, now()::timestamp);
                    UPDATE movimentacao_cartao SET valor_movimentacao = valor_movimentacao + 1 WHERE id_movimentacao_cartao = 'MOV-$1-$((i / 2))';
                    DELETE FROM movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-$1-$((i - 5))' AND $i % 7 = 0;" 2>/dev/null || true
   done) &
  LOADER=$!
}
stop_load() { wait "$LOADER" 2>/dev/null || true; }
worker_pid() { val "$DW" "SELECT coalesce(sicoop._stream_worker_pid(), 0)"; }
wait_streaming() { wait_state "$DW" streaming; }

# 1. The handoff: the stream starts (its slot's snapshot, a first load) while the source is written.
start_load H
sleep 1
ok_run 'start_stream() starts the worker' q -d "$DW" -c "SELECT sicoop.start_stream('sicoop_stream_test')"
ok_run 'the worker takes its snapshot, loads the warehouse from it, and streams' wait_streaming
stop_load
same_as_scratch 'handoff under concurrent source writes'
is "$(val "$DW" "SELECT count(*) FROM sicoop.run_log WHERE step = 'run_pipeline' AND status = 'succeeded'")" 1 \
   'the initial sync is logged as one run'

# 2. Every kind of change; a member changed twice, in two transactions.
q -d "$SRC" >/dev/null <<'SQL'
UPDATE movimentacao_cartao SET descricao_movimentacao = 'editada' WHERE id_movimentacao_cartao IN (SELECT id_movimentacao_cartao FROM movimentacao_cartao ORDER BY 1 LIMIT 50);
DELETE FROM movimentacao_cartao WHERE id_movimentacao_cartao IN (SELECT id_movimentacao_cartao FROM movimentacao_cartao ORDER BY 1 DESC LIMIT 20);
UPDATE cartao SET nome_impresso_cartao = 'REIMPRESSO' WHERE id_cartao = 'CARTAO-00000003';
INSERT INTO associado VALUES ('ASSOC-NOVO-1', 'Ana Nova', '1990-01-01', 'Solteiro', 'Superior');
UPDATE associado SET estado_civil = 'Divorciado' WHERE id_associado = 'ASSOC-00000002';
SQL
q -d "$SRC" -c "UPDATE associado SET estado_civil = 'Viúvo' WHERE id_associado = 'ASSOC-00000002'"
same_as_scratch 'inserts, updates and deletes of every table'
is "$(val "$DW" "SELECT string_agg(estado_civil_associado, ' > ' ORDER BY inicio_vigencia_registro_associado)
                 FROM sicoop.dim_associado WHERE id_associado = 'ASSOC-00000002'
                   AND inicio_vigencia_registro_associado > now() - interval '1 hour'")" 'DIVORCIADO(A) > VIÚVO(A)' \
   'true history: two changes of a member are two versions'
is "$(val "$DW" "SELECT bool_and(d.inicio_vigencia_registro_associado = p.fim_vigencia_registro_associado)
                 FROM sicoop.dim_associado d JOIN sicoop.dim_associado p ON p.id_associado = d.id_associado
                   AND p.fim_vigencia_registro_associado = d.inicio_vigencia_registro_associado
                 WHERE d.id_associado = 'ASSOC-00000002'")" t 'and the versions follow each other with no gap'
ok_run 'no two versions overlap (check_vigencia)' q -d "$DW" -c "SELECT sicoop.check_vigencia()"

# 2b. The movements truncated at the source: a batch empties every layer of them; written again,
#     three years earlier, they come in a later batch, into an empty trusted (its path is a first
#     load's insert, which keeps the batch's movements by reading them back): dim_data gets their
#     days, and the fact (empty: a first load too) every movement.
q -d "$SRC" -c "CREATE TABLE movements_kept AS SELECT * FROM movimentacao_cartao" -c "TRUNCATE movimentacao_cartao"
emptied() {
  for _ in $(seq 600); do
    [ "$(val "$DW" "SELECT (SELECT count(*) FROM sicoop.fato_movimentacao_cartao) + (SELECT count(*) FROM sicoop.trusted_movimentacao_cartao)")" = 0 ] && return 0
    sleep 0.1
  done
  return 1
}
ok_run 'a truncate at the source empties trusted and the fact' emptied
q -d "$SRC" -c "INSERT INTO movimentacao_cartao SELECT id_movimentacao_cartao, id_cartao, descricao_movimentacao,
                 valor_movimentacao, data_movimentacao - interval '3 years' FROM movements_kept" -c "DROP TABLE movements_kept"
same_as_scratch 'the movements written again after a truncate, into an empty trusted'
is "$(val "$DW" "SELECT count(*) FROM sicoop.fato_movimentacao_cartao f WHERE NOT EXISTS (SELECT 1 FROM sicoop.dim_data d WHERE d.sk_data = f.sk_data)")" 0 \
   'and dim_data has the day of every movement written again'

# 3. A bad change is a reject with its reason; the stream goes on; fixed at the source, it loads.
q -d "$SRC" -c "INSERT INTO movimentacao_cartao VALUES ('MOV-FUTURA', 'CARTAO-00000001', 'futura', 5, now()::timestamp + interval '400 days')"
ok_run 'a bad change does not stop the stream' marker
is "$(val "$DW" "SELECT rule_name FROM sicoop.reject WHERE record_id = 'MOV-FUTURA'")" movimentacao_data_range \
   'the bad change is in sicoop.reject with the rule it breaks'
q -d "$SRC" -c "UPDATE movimentacao_cartao SET data_movimentacao = now()::timestamp WHERE id_movimentacao_cartao = 'MOV-FUTURA'"
same_as_scratch 'a reject fixed at the source'
is "$(val "$DW" "SELECT count(*) FROM sicoop.reject WHERE record_id = 'MOV-FUTURA'")" 0 'and it left the rejects'

# 4. An unchanged TOAST value: a description too long for the warehouse (rejected), then another
#    column of that row updated -- pgoutput leaves the description out ('u').
q -d "$SRC" -c "ALTER TABLE movimentacao_cartao ALTER COLUMN descricao_movimentacao TYPE text" \
  -c "ALTER TABLE movimentacao_cartao ALTER COLUMN descricao_movimentacao SET STORAGE EXTERNAL"  # out of line, uncompressed
q -d "$SRC" -c "INSERT INTO movimentacao_cartao VALUES ('MOV-LONGA', 'CARTAO-00000001',
                  (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 400) i), 7, now()::timestamp)"
is "$(val "$SRC" "SELECT pg_relation_size(reltoastrelid) > 0 FROM pg_class WHERE oid = 'movimentacao_cartao'::regclass")" t \
   'the long description is TOASTed at the source (out of line)'
q -d "$SRC" -c "UPDATE movimentacao_cartao SET valor_movimentacao = 8 WHERE id_movimentacao_cartao = 'MOV-LONGA'"
ok_run 'an update leaving a TOASTed value out is applied' marker
is "$(val "$DW" "SELECT rule_name || ' ' || (record->>'valor_movimentacao') || ' ' || length(record->>'descricao_movimentacao')
                 FROM sicoop.reject WHERE record_id = 'MOV-LONGA'")" 'movimentacao_fits 8.00 12800' \
   "the row keeps its description (taken from what the warehouse held) and its new amount"
q -d "$SRC" -c "DELETE FROM movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-LONGA'"

# 5. Faults under load: after each, nothing lost and nothing applied twice.
start_load W
sleep 2
val postgres "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'sicoop_stream_test'" >/dev/null
stop_load
same_as_scratch 'the walsender killed mid-stream'

start_load K
sleep 2
val "$DW" "SELECT pg_terminate_backend(sicoop._stream_worker_pid())" >/dev/null
stop_load
same_as_scratch 'the worker killed mid-stream (the postmaster starts it again)'

start_load S
sleep 2
as_server_user "$PGBIN/pg_ctl" -D "$DATA_DIR" -m immediate stop >/dev/null
stop_load
bash "$REPO/test/env.sh" start >/dev/null
is "$(val "$DW" "SELECT state FROM sicoop.stream_status()")" 'not running' \
   'after an immediate shutdown and restart, stream_status() says the worker is not running'
ok_if "val '$DW' 'SELECT sicoop._watch_stream()' | grep -q '^started the stream worker again'" 'the watchdog starts it again'
same_as_scratch 'an immediate shutdown of the server mid-stream'

# 6. Batch runs while streaming.
is "$(q -d "$DW" -c "CALL sicoop.run_pipeline()" 2>&1 | grep -c 'the stream keeps the warehouse current')" 1 \
   'an incremental batch run skips, saying the stream keeps the warehouse current'
ok_run 'a full run (the check) runs, in the stream'"'"'s worker at its position' run_pipeline "$DW" "$(date '+%Y-%m-%d %H:%M:%S%z')" true
is "$(val "$DW" "SELECT count(*) FROM sicoop.reconciliation WHERE NOT balanced")" 0 'and every movement day balances'
same_as_scratch 'the stream after a full run'

# 7. Source DDL: an added column is left out; a dropped column stops the stream, named.
q -d "$SRC" -c "ALTER TABLE cartao ADD COLUMN apelido text" -c "UPDATE cartao SET apelido = 'x', tipo_cartao = 'Débito' WHERE id_cartao = 'CARTAO-00000004'"
same_as_scratch 'a column added at the source'
q -d "$SRC" -c "ALTER TABLE cartao DROP COLUMN bandeira_cartao" -c "UPDATE cartao SET tipo_cartao = 'Crédito' WHERE id_cartao = 'CARTAO-00000004'"
for _ in $(seq 100); do [ "$(val "$DW" "SELECT state FROM sicoop.stream_status()")" = failed ] && break; sleep 0.2; done
is "$(val "$DW" "SELECT state FROM sicoop.stream_status()")" failed 'a column dropped at the source stops the stream'
ok_if "val '$DW' \"SELECT error_message FROM sicoop.stream_status()\" | grep -q 'no longer sends column bandeira_cartao'" \
  'and stream_status() names the column'
q -d "$SRC" -c "ALTER TABLE cartao ADD COLUMN bandeira_cartao varchar(50)" \
  -c "UPDATE cartao SET bandeira_cartao = 'Visa'" >/dev/null

# 8. A lost slot: the WAL it needs is gone (max_slot_wal_keep_size), the stream says how to resync.
val "$DW" "SELECT sicoop.stop_stream()" >/dev/null
for _ in $(seq 50); do [ "$(worker_pid)" = 0 ] && break; sleep 0.2; done
versions_before=$(val "$DW" "SELECT count(*) FROM sicoop.dim_associado")
q -d postgres -c "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'" -c "SELECT pg_reload_conf()" >/dev/null
q -d "$SRC" -c "CREATE TABLE wal_filler AS SELECT i, md5(i::text) AS t FROM generate_series(1, 200000) i" -c "DROP TABLE wal_filler"
for _ in 1 2 3; do q -d postgres -c "SELECT pg_switch_wal()" -c "CHECKPOINT" >/dev/null; done
is "$(val postgres "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'sicoop_stream_test'")" lost 'the slot lost its WAL'
q -d postgres -c "ALTER SYSTEM RESET max_slot_wal_keep_size" -c "SELECT pg_reload_conf()" >/dev/null
val "$DW" "SELECT sicoop.start_stream('sicoop_stream_test')" >/dev/null
for _ in $(seq 100); do [ "$(val "$DW" "SELECT state FROM sicoop.stream_status()")" = failed ] && break; sleep 0.2; done
is "$(val "$DW" "SELECT state FROM sicoop.stream_status()")" failed 'a lost slot stops the stream'
ok_if "val '$DW' \"SELECT error_hint FROM sicoop.stream_status()\" | grep -q 'resync_stream'" 'and says how to resync'
ok_run 'resync_stream() resets it' q -d "$DW" -c "SELECT sicoop.resync_stream()"
ok_run 'start_stream() takes a fresh snapshot' q -d "$DW" -c "SELECT sicoop.start_stream('sicoop_stream_test')"
ok_run 'and streams again' wait_streaming
same_as_scratch 'after a resync'
ok_if "[ $(val "$DW" "SELECT count(*) FROM sicoop.dim_associado") -ge $versions_before ]" 'the history is kept across the resync'

# 9. A source restart, with the source on a cluster of its own (restarted alone, mid-load).
SRC_PORT=$((PGPORT + 13))
SRC_DIR=$(new_cluster_dir sicoop_stream_src)
src2() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -p "$SRC_PORT" "$@"; }
trap 'stop_source_cluster "$SRC_DIR"; cleanup; drop_db "$DW"; drop_db "$SRC"; drop_db "$REF"; rm -rf "$WORK"' EXIT
start_source_cluster "$SRC_DIR" "$SRC_PORT" src_alone 5000
val "$DW" "SELECT sicoop.stop_stream()" >/dev/null
for _ in $(seq 50); do [ "$(worker_pid)" = 0 ] && break; sleep 0.2; done
recreate_db "$DW"
q -d "$DW" -c "SET client_min_messages = warning" -c "CREATE EXTENSION sicoop_etl CASCADE" \
  -c "SELECT sicoop.connect_source('localhost', $SRC_PORT, 'src_alone', current_user)" >/dev/null
val "$DW" "SELECT sicoop.start_stream('sicoop_stream_alone')" >/dev/null
ok_run 'a stream from a source cluster of its own' wait_streaming
(for i in $(seq 1 300); do
   src2 -d src_alone -c "INSERT INTO movimentacao_cartao VALUES ('MOV-R-$i', 'CARTAO-00000001', 'reinicio', $i, now()::timestamp)" 2>/dev/null || true
 done) &
LOADER=$!
sleep 1
as_server_user "$PGBIN/pg_ctl" -D "$SRC_DIR/data" -m fast -w restart -l "$SRC_DIR/server.log" >/dev/null
stop_load
src2 -d src_alone -c "INSERT INTO movimentacao_cartao VALUES ('MOV-R-LAST', 'CARTAO-00000001', 'fim', 1, now()::timestamp)"
for _ in $(seq 300); do
  [ "$(val "$DW" "SELECT count(*) FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-R-LAST'")" = 1 ] && break
  sleep 0.1
done
is "$(val "$DW" "SELECT count(*) FROM sicoop.fato_movimentacao_cartao")" "$(src2 -d src_alone -Atc "SELECT count(*) FROM movimentacao_cartao")" \
   'a source restart mid-stream: one fact per source movement, nothing lost, none twice'
is "$(val "$DW" "SELECT md5(string_agg(id_movimentacao_cartao || valor_movimentacao, ',' ORDER BY id_movimentacao_cartao)) FROM sicoop.fato_movimentacao_cartao")" \
   "$(src2 -d src_alone -Atc "SELECT md5(string_agg(id_movimentacao_cartao || valor_movimentacao, ',' ORDER BY id_movimentacao_cartao)) FROM movimentacao_cartao")" \
   'and the same movements, with the same amounts'
ok_if "val '$DW' \"SELECT count(*) FROM sicoop.run_log WHERE step = 'stream'\" | grep -qv '^0$'" 'the stream applied micro-batches across the restart'
val "$DW" "SELECT sicoop.stop_stream()" >/dev/null
for _ in $(seq 50); do [ "$(worker_pid)" = 0 ] && break; sleep 0.2; done

# 10. An operator that is no superuser streams, through a source role with REPLICATION and a
#     password (as the README sets it up); the worker acts for the operator.
OPDW=sicoop_stream_opdw OPSRC=sicoop_stream_opsrc
drop_operator_case() {
  end_stream "$OPDW"
  val postgres "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'sicoop_stream_op'" >/dev/null 2>&1 || true
  drop_db "$OPDW"; drop_db "$OPSRC"
  q -d postgres -c "DROP ROLE IF EXISTS sicoop_test_stream_operator" -c "DROP ROLE IF EXISTS sicoop_test_stream_reader" 2>/dev/null || true
}
drop_operator_case
trap 'drop_operator_case; stop_source_cluster "$SRC_DIR"; cleanup; drop_db "$DW"; drop_db "$SRC"; drop_db "$REF"; rm -rf "$WORK"' EXIT
make_source "$OPSRC" 2000
q -d "$OPSRC" -c "$PUBLISH_SOURCE" \
  -c "CREATE ROLE sicoop_test_stream_reader LOGIN REPLICATION PASSWORD 'stream-reader-pw'" \
  -c "GRANT SELECT ON ALL TABLES IN SCHEMA public TO sicoop_test_stream_reader"
recreate_db "$OPDW"
q -d "$OPDW" -c "SET client_min_messages = warning" -c "CREATE EXTENSION sicoop_etl CASCADE" \
  -c "CREATE ROLE sicoop_test_stream_operator LOGIN PASSWORD 'stream-operator-pw'" \
  -c "SELECT sicoop.grant_operator('sicoop_test_stream_operator')" >/dev/null
as_operator() { PGPASSWORD=stream-operator-pw PGUSER=sicoop_test_stream_operator "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$OPDW" "$@"; }
as_operator -c "SELECT sicoop.connect_source('localhost', $PGPORT, '$OPSRC', 'sicoop_test_stream_reader', 'stream-reader-pw')" >/dev/null
ok_run "the operator (no superuser) starts the stream" as_operator -c "SELECT sicoop.start_stream('sicoop_stream_op')"
for _ in $(seq 300); do [ "$(val "$OPDW" "SELECT state FROM sicoop.stream_status()")" = streaming ] && break; sleep 0.1; done
is "$(val "$OPDW" "SELECT state FROM sicoop.stream_status()")" streaming "and it streams (state: $(val "$OPDW" "SELECT coalesce(error_message, '') FROM sicoop.stream_status()"))"
is "$(val "$OPDW" "SELECT started_by FROM sicoop.stream_state")" \
   sicoop_test_stream_operator 'the worker acts for the operator (the warehouse owner)'
q -d "$OPSRC" -c "INSERT INTO movimentacao_cartao VALUES ('MOV-OPERADOR', 'CARTAO-00000001', 'operador', 3, now()::timestamp)"
for _ in $(seq 300); do
  [ "$(val "$OPDW" "SELECT count(*) FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-OPERADOR'")" = 1 ] && break
  sleep 0.1
done
is "$(val "$OPDW" "SELECT count(*) FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-OPERADOR'")" 1 \
   "a change at the source reaches the operator's fact"
is "$(as_operator -Atc "SELECT sicoop.stop_stream() LIKE 'the stream stops%'")" t 'and the operator stops it'

finish
