#!/usr/bin/env bash
# The benchmark on Citus (issue 27): bash test/bench/citus_bench.sh N
# In one run: the single-node benchmark (test/bench/bench.sh N: the COPY pipe, the hand-written
# SQL peer, first load, incremental after 1%, full check after a 0.2% old change), then the same
# source sequence (the generator and the changes are deterministic) into a warehouse on three
# local Citus nodes (a coordinator and two workers, clusters of their own on this machine),
# distributed by sicoop.distribute() before the first load. It prints the Citus runs' steps
# beside the single node's, and the same ratios against the same pipe and peer.
# Figures are printed, never asserted.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lifecycle/lib.sh"
[ $# -eq 1 ] || { echo "usage: $0 N" >&2; exit 2; }
N=$1 SRC=sicoop_citus_bench_src DW=sicoop_citus_bench_dw
COORD=$((PGPORT + 41)) WORKER1=$((PGPORT + 42)) WORKER2=$((PGPORT + 43))
trap 'stop_citus_nodes; drop_db "$SRC"; rm -rf "$WORK"' EXIT

SICOOP_BENCH_READERS=0 bash "$REPO/test/bench/bench.sh" "$N" | tee "$WORK/single"
pipe=$(awk '$1 == "total" {print $3}' "$WORK/single")
peer=$(sed -n 's/^  peer full refresh: \([0-9.]*\) s.*/\1/p' "$WORK/single")
single() { awk -v label="$1" '$0 ~ "^--- " label {on = 1; next} /^---/ {on = 0} on && $1 == "run_pipeline" {print $4}' "$WORK/single"; }

echo "================================================================================"
echo "Citus: a coordinator and two workers on this machine, N = $N"
CITUS_SHARED_BUFFERS=1GB citus_cluster "$DW" "$COORD" "$WORKER1" "$WORKER2"
make_source "$SRC" "$N"
c() { citus_q "$COORD" "$DW" "$@"; }
c -c "SET client_min_messages = warning" -c "CREATE EXTENSION sicoop_etl CASCADE" \
  -c "SELECT sicoop.connect_source('localhost', $PGPORT, '$SRC', current_user)" >/dev/null
c -Atc "SET client_min_messages = warning; SELECT sicoop.distribute()"

# One run on the Citus warehouse: its steps (rows read, written, seconds) and its total.
citus_run() {  # citus_run <label> <full>
  echo "--- $1"
  c -c "CHECKPOINT" >/dev/null
  c -c "SET client_min_messages = warning" -c "CALL sicoop.run_pipeline($2)" >/dev/null
  c -At -F ' ' -c "
    SELECT step, rows_read, coalesce(rows_inserted, 0) + coalesce(rows_updated, 0) + coalesce(rows_deleted, 0),
           round(extract(epoch FROM finished_at - started_at)::numeric, 2)
    FROM sicoop.run_log WHERE run_id = (SELECT max(run_id) FROM sicoop.run_log WHERE step = 'run_pipeline')
    ORDER BY started_at" | awk '{printf "  %-15s %12d %12d %9.2f\n", $1, $2, $3, $4}' | tee "$WORK/citus_$1"
}
printf "  %-15s %12s %12s %9s\n" step rows_read rows_written seconds
citus_run "full load" false
q -d "$SRC" -v n="$N" -f "$REPO/test/bench/change_source.sql" >/dev/null
citus_run "incremental" false
q -d "$SRC" -v n="$N" -f "$REPO/test/bench/change_old.sql" >/dev/null
citus_run "full check" true

total() { awk '$1 == "run_pipeline" {print $4}' "$WORK/citus_$1"; }
echo "--- Citus beside the single node (same source sequence, same pipe and peer)"
awk -v f="$(total 'full load')" -v i="$(total incremental)" -v c="$(total 'full check')" \
    -v sf="$(single 'full load')" -v si="$(single '1% change')" -v sc="$(single 'old movements')" -v p="$pipe" -v peer="$peer" 'BEGIN {
  printf "  %-34s %10s %10s %10s\n", "", "single", "Citus", "Citus/single"
  printf "  %-34s %9.2fs %9.2fs %9.2f x\n", "first load", sf, f, f / sf
  printf "  %-34s %9.2fs %9.2fs %9.2f x\n", "incremental after 1%", si, i, i / si
  printf "  %-34s %9.2fs %9.2fs %9.2f x\n", "full check after a 0.2% old change", sc, c, c / sc
  printf "  %-34s %9.2fx %9.2fx\n", "first load / hand-written SQL peer", sf / peer, f / peer
  printf "  %-34s %9.2fx %9.2fx\n", "first load / COPY pipe", sf / p, f / p
  printf "  %-34s %9.2f%% %9.2f%%\n", "incremental / first load", 100 * si / sf, 100 * i / f
  printf "  %-34s %9.2fx %9.2fx\n", "full check / COPY pipe", sc / p, c / p
}'
echo "--- where the Citus first load's time goes, by step (single node beside it)"
paste <(awk '{print $1, $4}' "$WORK/citus_full load") \
      <(awk '/^--- full load/ {on = 1; next} /^---/ {on = 0} on && NF == 7 && $1 != "step" {print $4}' "$WORK/single") |
  awk '{printf "  %-15s Citus %8.2f s   single %8.2f s\n", $1, $2, $3}'
echo "--- what each node stores after the runs (the scale model's figures: README, \"On a Citus cluster\")"
c -At -F ' ' -c "
  SELECT t, n, pg_size_pretty(s), round(s::numeric / nullif(n, 0), 1)
  FROM unnest(ARRAY['raw_movimentacao_cartao', 'trusted_movimentacao_cartao', 'fato_movimentacao_cartao',
                    'dim_associado', 'dim_conta', 'dim_cartao', 'dim_data']) t,
       LATERAL (SELECT citus_total_relation_size(('sicoop.' || t)::regclass) AS s) z,
       LATERAL (SELECT (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM sicoop.%I', t), false, true, '')))[1]::text::bigint AS n) r" |
  awk '{printf "  %-28s %10d rows %10s %s (citus_total_relation_size) %8s bytes/row\n", $1, $2, $3, $4, $5}'
for port in $COORD $WORKER1 $WORKER2; do
  echo "  node $port: database $(PGPORT=$port val "$DW" "SELECT pg_size_pretty(pg_database_size(current_database()))")"
done
