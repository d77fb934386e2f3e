#!/usr/bin/env bash
# The warehouse on Citus (issue 27): a coordinator and two workers (three clusters of their own,
# Citus 13.2.2 built once from test/vendor/citus/ and cached) beside a single-node warehouse,
# both reading one source (the project's cluster). The same source changes, the same reference
# times: every relation equal (count and checksum, surrogate keys included; wall-clock columns
# left out), the flat files byte-identical, in every mode -- first load, incremental runs, a full
# check, a rebuild, the stream through two slots -- and across grant/revoke, adoption and
# undistribute(). The BI views run as tasks on the workers, and the guard checks shards.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC=sicoop_citus_src REF=sicoop_citus_ref DW=sicoop_citus_dw N=20000
COORD=$((PGPORT + 31)) WORKER1=$((PGPORT + 32)) WORKER2=$((PGPORT + 33))
cleanup() {
  end_stream "$REF"; drop_slot sicoop_citus_ref; drop_slot sicoop_citus_dw
  stop_citus_nodes
  drop_db "$REF"; drop_db "$SRC"
  rm -rf "$WORK"
}
trap cleanup EXIT

citus_cluster "$DW" "$COORD" "$WORKER1" "$WORKER2"
c() { citus_q "$COORD" "$DW" "$@"; }
cval() { c -Atc "$@"; }

make_source "$SRC" "$N"
q -d "$SRC" -c "$PUBLISH_SOURCE"
make_warehouse "$REF" "$SRC"
# Made with 1.7 (which knew nothing of Citus), then updated: Citus runs the update on the workers too.
c -c "SET client_min_messages = warning" -c "CREATE EXTENSION sicoop_etl VERSION '1.7' CASCADE" \
  -c "SELECT sicoop.connect_source('localhost', $PGPORT, '$SRC', current_user)" >/dev/null
ok_run 'ALTER EXTENSION sicoop_etl UPDATE on a Citus coordinator' c -c "SET client_min_messages = warning" -c "ALTER EXTENSION sicoop_etl UPDATE"
is "$(for port in $COORD $WORKER1 $WORKER2; do PGPORT=$port val "$DW" "SELECT extversion FROM pg_extension WHERE extname = 'sicoop_etl'"; done | sort -u)" \
   "$(val "$REF" "SELECT extversion FROM pg_extension WHERE extname = 'sicoop_etl'")" 'every node at the current version'

# --- The layout --------------------------------------------------------------------------------
is "$(cval "SELECT sicoop.distribute()")" \
  "sicoop: 7 of the warehouse's tables made Citus tables (raw_movimentacao_cartao, trusted_movimentacao_cartao, fato_movimentacao_cartao, dim_associado, dim_conta, dim_cartao, dim_data)" \
  'distribute() makes the movements distributed and the dimensions reference tables'
is "$(cval "SELECT string_agg(format('%s %s', logicalrelid::regclass, partmethod), ', ' ORDER BY logicalrelid::regclass::text) FROM pg_dist_partition")" \
  "sicoop.dim_associado n, sicoop.dim_cartao n, sicoop.dim_conta n, sicoop.dim_data n, sicoop.fato_movimentacao_cartao h, sicoop.raw_movimentacao_cartao h, sicoop.trusted_movimentacao_cartao h" \
  'hash-distributed movements, reference dimensions, nothing else'
is "$(cval "SELECT count(DISTINCT colocationid) FROM pg_dist_partition WHERE partmethod = 'h'")" 1 'raw, trusted and the fact co-located'
is "$(cval "SELECT sicoop.distribute()")" "sicoop: 0 of the warehouse's tables made Citus tables (they already were)" 'distribute() again changes nothing'
is "$(PGOPTIONS='-c citus.show_shards_for_app_name_prefixes=*' PGPORT=$WORKER1 val "$DW" "SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relkind = 'r' AND c.relname LIKE 'raw_movimentacao_cartao_%'")" 16 'a worker holds half the shards'

# --- Rounds of source changes: the same reference times on both -------------------------------
# Relations compared whole but for what two warehouses loaded side by side cannot share: when
# each row was written (wall clock), the run log's timings and the source's snapshot ids.
WALL='{warehouse_info.created_at,run_log.started_at,run_log.finished_at,run_log.detail,run_log.backend_pid,step_state.updated_at,raw_associado.loaded_at,raw_conta.loaded_at,raw_cartao.loaded_at,raw_movimentacao_cartao.loaded_at,source_sync.snapshot_xmin,source_sync.copied_at,trusted_movimentacao_cartao.updated_at,fato_movimentacao_cartao.data_hora_atualizacao_registro,dq_result.checked_at}'
# After a stream: each stream cuts its own micro-batches at its own times, so run ids, the rows'
# batch times, the run log and the order in which new members got surrogate keys differ; the flat
# view resolves every fact's keys to what they name.
STREAMED="{${WALL:1:-1},*.run_id,*.updated_at,*.data_hora_atualizacao_registro,*.sk_associado,*.sk_cartao,*.sk_conta,run_log.*,step_state.*,stream_state.*,dq_result.*,source_sync.*,reconciliation.*,warehouse_info.*}"
STREAMED_LINES='^\(sequence \|run_log \|step_state \|dq_result \|source_sync \|reconciliation \|stream_state \)'
same_warehouses() {  # same_warehouses <description> [left out]
  q -d "$REF" -At -v except="${2:-$WALL}" -f "$LIFE/fingerprint.sql" | grep -v "${3:-^$}" >"$WORK/ref.fp"
  c -At -v except="${2:-$WALL}" -f "$LIFE/fingerprint.sql" | grep -v "${3:-^$}" >"$WORK/citus.fp"
  same_file "$WORK/ref.fp" "$WORK/citus.fp" "$1"
}
both() {  # both <as_of> [full]
  run_pipeline "$REF" "$1" "${2:-}"
  c -c "SET client_min_messages = warning" -c "SET sicoop.as_of = '$1'" -c "CALL sicoop.run_pipeline(${2:-false})" >/dev/null
}
both '2025-08-16 06:00:00-03'
same_warehouses 'first load: every relation equal'
q -d "$SRC" -v n="$N" -v round=1 -f "$REPO/test/bench/change_source.sql" >/dev/null
both '2025-08-16 07:00:00-03'
same_warehouses 'incremental run after a 1% change: equal'
q -d "$SRC" -f "$LIFE/change_again.sql" >/dev/null
both '2025-08-16 08:00:00-03'
same_warehouses 'incremental run after new members, a reprint, an edit and a delete: equal'
q -d "$SRC" -v n="$N" -f "$REPO/test/bench/change_old.sql" >/dev/null
both '2025-08-16 09:00:00-03' true
same_warehouses 'full check after old movements changed: equal'
q -d "$SRC" -v n="$N" -v round=2 -f "$REPO/test/bench/change_source.sql" >/dev/null
both '2025-08-16 10:00:00-03'
same_warehouses 'a second 1% change: equal'
# Single steps, each in its own transaction (as a user calls them), at one reference time.
steps() {  # steps <psql function...>
  local step
  for step in load_raw load_trusted load_dims scd2_associado load_fato; do
    "$@" -c "SET client_min_messages = warning" -c "SET sicoop.as_of = '2025-08-16 10:30:00-03'" -c "SELECT sicoop.$step()" >/dev/null
  done
}
q -d "$SRC" -f "$REPO/test/bench/change_source.sql" -v n="$N" -v round=6 >/dev/null
steps q -d "$REF"
ok_run 'single steps on Citus, one transaction each' steps c
same_warehouses 'single steps: equal'
q -d "$REF" -c "UPDATE sicoop.canonical_value SET canonical = canonical || ' (A)' WHERE domain = 'estado_civil' AND canonical = 'CASADO'" >/dev/null
c -c "UPDATE sicoop.canonical_value SET canonical = canonical || ' (A)' WHERE domain = 'estado_civil' AND canonical = 'CASADO'" >/dev/null
both '2025-08-16 11:00:00-03' true
same_warehouses 'a canonical value edited, relabelled by a full run: equal'
q -d "$REF" -c "ALTER DATABASE $REF SET sicoop.full_run = 'rebuild'" >/dev/null
cval "ALTER DATABASE $DW SET sicoop.full_run = 'rebuild'" >/dev/null
both '2025-08-16 12:00:00-03' true
same_warehouses 'a rebuild: equal'
q -d "$REF" -c "ALTER DATABASE $REF RESET sicoop.full_run" >/dev/null
cval "ALTER DATABASE $DW RESET sicoop.full_run" >/dev/null

# --- The flat file and the BI views -----------------------------------------------------------
chmod 777 "$WORK"
val "$REF" "SELECT sicoop.export_flat('$WORK/ref.csv')" >/dev/null
cval "SELECT sicoop.export_flat('$WORK/citus.csv')" >/dev/null
ok_run 'the flat files are byte-identical' cmp -s "$WORK/ref.csv" "$WORK/citus.csv"
c -c "EXPLAIN SELECT * FROM sicoop.vw_gasto_escolaridade_estado_civil" >"$WORK/explain"
ok_if "grep -q 'Task Count: 32' '$WORK/explain' && grep -q 'port=$WORKER1' '$WORK/explain'" \
  'a BI view runs as 32 tasks, on the workers'

# --- The guard sees Citus's shards -------------------------------------------------------------
shard=$(cval "SELECT shard_name('sicoop.dim_data'::regclass, shardid) FROM pg_dist_shard WHERE logicalrelid = 'sicoop.dim_data'::regclass")
ok_if "! c -c 'ALTER TABLE $shard ADD COLUMN planted int' 2>'$WORK/err' && grep -q 'takes nothing sicoop does not define' '$WORK/err'" \
  "the guard refuses a column added to a shard ($shard)"
is "$(cval "SELECT count(*) FROM sicoop._warehouse_objects() WHERE line LIKE '%planted%'")" 0 'the handover check finds nothing planted'
is "$(cval "SELECT count(*) FROM sicoop._citus_shards()")" 4 "the handover check knows the coordinator's shards from Citus's metadata"

# --- Grant, revoke, adoption --------------------------------------------------------------------
cval "CREATE ROLE sicoop_citus_operator" >/dev/null 2>&1 || true
ok_run 'grant_operator on Citus' c -c "SELECT sicoop.grant_operator('sicoop_citus_operator')"
ok_run 'revoke_operator on Citus' c -c "SELECT sicoop.revoke_operator('sicoop_citus_operator')"
c -c "DROP EXTENSION sicoop_etl" >/dev/null
ok_run 'CREATE EXTENSION adopts the Citus warehouse (the workers hold none of their own)' \
  c -c "SET client_min_messages = error" -c "CREATE EXTENSION sicoop_etl"
q -d "$SRC" -v n="$N" -v round=3 -f "$REPO/test/bench/change_source.sql" >/dev/null
# (At the time the stream starts: the members' ages move on then, not at each stream's first
# batch, whose times would differ by the second.)
now=$(date '+%Y-%m-%d %H:%M:%S%z')
both "$now"
same_warehouses 'after grant, revoke and adoption, an incremental run: equal'

# --- The stream, through two slots --------------------------------------------------------------
val "$REF" "SELECT sicoop.start_stream('sicoop_citus_ref')" >/dev/null
cval "SELECT sicoop.start_stream('sicoop_citus_dw')" >/dev/null
wait_state "$REF" streaming 600
ok_run 'the Citus warehouse streams' env SICOOP_PGPORT="$COORD" bash -c "source '$LIFE/lib.sh'; wait_state $DW streaming 600"
q -d "$SRC" -v n="$N" -v round=4 -f "$REPO/test/bench/change_source.sql" >/dev/null
ok_run 'the stream reaches the single node' mark_and_wait "$SRC" CITUS 600 "$REF"
reached=1
for _ in $(seq 600); do
  [ "$(cval "SELECT count(*) FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = 'CITUS-$MARK'")" = 1 ] && reached=0 && break
  sleep 0.1
done
ok "$reached" 'the stream reaches the Citus warehouse'
cval "SELECT sicoop.stop_stream()" >/dev/null; end_stream "$REF"
same_warehouses 'after a stream segment: every layer equal' \
  "$STREAMED" "$STREAMED_LINES"

# --- Dump and restore ---------------------------------------------------------------------------
# pg_dump of the coordinator reads the Citus tables' rows through Citus. Restored into a new
# coordinator database (Citus's own entries left out of the list: the database has Citus),
# the tables come back local; distribute() makes them Citus tables again, as Citus documents
# for pg_dump/pg_restore.
"$PGBIN/pg_dump" -p "$COORD" -Fc -f "$WORK/citus.dump" "$DW" 2>/dev/null
"$PGBIN/pg_restore" -l "$WORK/citus.dump" | grep -v ' citus \| EXTENSION - citus' >"$WORK/toc"
RESTORED=sicoop_citus_restored
citus_database "$RESTORED" "$COORD" "$WORKER1" "$WORKER2"
r() { citus_q "$COORD" "$RESTORED" "$@"; }
ok_run 'pg_restore of the coordinator'"'"'s dump into a new Citus database: no error' \
  env PGPORT="$COORD" "$PGBIN/pg_restore" --exit-on-error -L "$WORK/toc" -d "$RESTORED" "$WORK/citus.dump"
ok_run 'distribute() on the restored warehouse' r -Atc "SET client_min_messages = warning; SELECT sicoop.distribute()"
q -d "$REF" -At -v except="$STREAMED" -f "$LIFE/fingerprint.sql" | grep -v "$STREAMED_LINES" >"$WORK/ref.fp"
r -At -v except="$STREAMED" -f "$LIFE/fingerprint.sql" | grep -v "$STREAMED_LINES" >"$WORK/restored.fp"
same_file "$WORK/ref.fp" "$WORK/restored.fp" 'the restored Citus warehouse holds what the single node holds'

# --- The way back --------------------------------------------------------------------------------
is "$(cval "SELECT sicoop.undistribute()")" \
  "sicoop: 7 of the warehouse's tables made local again (dim_associado, dim_conta, dim_cartao, dim_data, raw_movimentacao_cartao, trusted_movimentacao_cartao, fato_movimentacao_cartao)" \
  'undistribute() brings every table back'
is "$(cval "SELECT count(*) FROM pg_dist_partition")" 0 'no Citus table left'
q -d "$SRC" -v n="$N" -v round=5 -f "$REPO/test/bench/change_source.sql" >/dev/null
sleep 1
now=$(date '+%Y-%m-%d %H:%M:%S%z')
both "$now"
same_warehouses 'back on one node, an incremental run: equal' \
  "$STREAMED" "$STREAMED_LINES"
finish
