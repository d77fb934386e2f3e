#!/usr/bin/env bash
# The benchmark: bash test/bench/bench.sh N [N ...]   (or: make bench N="1000000 10000000")
# For each N, in one run on the project's cluster (test/env.sh start):
#   1. builds a synthetic source at N (test/bench/generate_source.sql);
#   2. measures the limit: a plain `COPY ... TO STDOUT | COPY ... FROM STDIN` pipe of the four
#      source tables into a third database with the same tables;
#   3. runs the peer: an honest hand-written SQL pipeline over postgres_fdw (test/bench/peer.sql),
#      full refresh, what users would otherwise write;
#   4. runs a full load (CALL sicoop.run_pipeline()) into a fresh warehouse;
#   5. applies a 1% change to the source (test/bench/change_source.sql) and runs an incremental load;
#   6. applies a change the watermark cannot see (test/bench/change_old.sql: old movements
#      edited, deleted, inserted late) and runs the full check, run_pipeline(full => true);
#   7. ages the warehouse: SICOOP_BENCH_AGE (default 4) more rounds of VACUUM, a 1% change and
#      an incremental run, each run timed, the last one in the ratios (free space left across
#      the heap by old changes, filled by later rows: what months of runs do to where a run's
#      rows sit);
#   8. prints per step: rows, seconds, rows/s and the backend's peak memory, and the ratios.
# A BI reader (test/bench/readers.py) queries the star schema through one more load of each kind,
# run after the timed one (timed loads run alone, as the pipe and the peer do); its latency is
# printed next to the same queries on the idle warehouse (SICOOP_BENCH_READERS=0: no readers).
# With several N it ends with the scaling ratios (memory and time per row, largest N vs smallest).
# Figures are printed, never asserted: this machine is shared and noisy.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PGBIN=${SICOOP_PGROOT:-}/usr/lib/postgresql/15/bin
export PGHOST=localhost PGPORT=${SICOOP_PGPORT:-5499} PGUSER=postgres
SRC=sicoop_bench_src PIPE=sicoop_bench_pipe PEER=sicoop_bench_peer DW=sicoop_bench_dw DW_READ=sicoop_bench_dw_readers
READERS=${SICOOP_BENCH_READERS:-1}
WORK=$(mktemp -d /tmp/sicoop_bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

[ $# -gt 0 ] || set -- 100000
q() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

recreate_db() {
  q -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" 2>/dev/null
}

# Runs SQL in a backend of its own and samples that backend's memory every 50 ms:
# RssAnon (its private memory: palloc, malloc) and VmHWM (peak resident, shared buffers included).
run_sampled() {
  local label=$1 sql=$2 samples="$WORK/mem_$1"
  : >"$samples"
  PGAPPNAME="sicoop_bench_$label" "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$DW" -c "$sql" &
  local client=$! backend=""
  while kill -0 "$client" 2>/dev/null; do
    if [ -z "$backend" ]; then
      # (A run names its backend after what it does: "sicoop_etl run <id> <step> <table>".)
      backend=$(q -d postgres -Atc "SELECT pid FROM pg_stat_activity WHERE datname = '$DW' AND backend_type = 'client backend'
                                    AND (application_name = 'sicoop_bench_$label' OR application_name LIKE 'sicoop\_etl run %')
                                    ORDER BY application_name = 'sicoop_bench_$label' DESC LIMIT 1" || true)
    fi
    if [ -n "$backend" ] && [ -r "/proc/$backend/status" ]; then
      awk -v t="$(now)" '/^RssAnon:/ {a = $2} /^VmHWM:/ {h = $2} END {if (a) print t, a, h}' "/proc/$backend/status" >>"$samples" 2>/dev/null || true
    fi
    sleep 0.05
  done
  wait "$client"
}

# The BI reader loop (readers.py) in the background until readers_stop; readers_stop prints its line.
readers_start() {
  [ "$READERS" = 1 ] || return 0
  rm -f "$WORK/readers_stop"
  /usr/bin/python3 "$REPO/test/bench/readers.py" "host=$PGHOST port=$PGPORT dbname=${2:-$DW} user=$PGUSER" \
    "$WORK/readers_stop" "$1" >"$WORK/readers_$1" &
  READERS_PID=$!
  sleep 0.5
}
readers_stop() {
  [ "$READERS" = 1 ] || return 0
  touch "$WORK/readers_stop"; wait "$READERS_PID"
  cat "$WORK/readers_$1"
}
# Runs SQL in database $2 while the BI reader queries it, then prints the reader's line and
# "  <what>: <seconds> s" (the load's own time, untimed by the verdicts).
with_readers() {
  local label=$1 db=$2 sql=$3 what=$4 t0 t1
  readers_start "$label" "$db"
  t0=$(now); q -d "$db" -c "$sql" 2>/dev/null; t1=$(now)
  readers_stop "$label"
  echo "  $what: $(secs "$t0" "$t1") s"
}

# Per step of the latest run with this label: rows, seconds, rows/s, peak memory from the samples.
report_run() {
  local label=$1 samples="$WORK/mem_$1"
  q -d "$DW" -At -F ' ' -c "
    SELECT step, rows_read, coalesce(rows_inserted, 0) + coalesce(rows_updated, 0) + coalesce(rows_deleted, 0),
           extract(epoch FROM started_at), extract(epoch FROM finished_at)
    FROM sicoop.run_log WHERE run_id = (SELECT max(run_id) FROM sicoop.run_log WHERE step = 'run_pipeline')
    ORDER BY started_at" >"$WORK/steps_$label"
  awk -v label="$label" '
    FILENAME == ARGV[1] { t[FNR] = $1; anon[FNR] = $2; hwm[FNR] = $3; n = FNR; next }
    {
      peak_anon = 0; peak_hwm = 0
      for (i = 1; i <= n; i++) if (t[i] >= $4 - 0.05 && t[i] <= $5 + 0.05) {
        if (anon[i] > peak_anon) peak_anon = anon[i]; if (hwm[i] > peak_hwm) peak_hwm = hwm[i] }
      s = $5 - $4; rate = s > 0 ? $2 / s : 0
      printf "  %-15s %12d %12d %9.2f %12.0f %12.1f %12.1f\n", $1, $2, $3, s, rate, peak_anon / 1024, peak_hwm / 1024
    }' "$samples" "$WORK/steps_$label"
}

# A fresh warehouse reading the bench's source, checkpointed before its first run.
fresh_warehouse() {
  recreate_db "$1"
  q -d "$1" -c "SET client_min_messages = warning" -c "CREATE EXTENSION sicoop_etl CASCADE" \
    -c "SELECT sicoop.connect_source('localhost', $PGPORT, '$SRC', 'postgres')" >/dev/null
  q -d postgres -c "CHECKPOINT"
}

declare -A PEAK_ANON SECONDS_PER_ROW
bench_one() {
  local n=$1
  echo "================================================================================"
  echo "N = $n movements"
  recreate_db "$SRC"
  local t0 t1
  t0=$(now); q -d "$SRC" -v n="$n" -f "$REPO/test/bench/generate_source.sql" >/dev/null; t1=$(now)
  echo "source generated in $(secs "$t0" "$t1") s: $(q -d "$SRC" -Atc "SELECT format('%s members, %s accounts, %s cards, %s movements, %s on disk',
      (SELECT count(*) FROM associado), (SELECT count(*) FROM conta), (SELECT count(*) FROM cartao),
      (SELECT count(*) FROM movimentacao_cartao), pg_size_pretty(pg_database_size(current_database())))")"

  echo "--- the limit: COPY ... TO STDOUT | COPY ... FROM STDIN, into the same tables in another database"
  recreate_db "$PIPE"
  q -d "$PIPE" -f "$REPO/test/bench/source_schema.sql" >/dev/null
  q -d postgres -c "CHECKPOINT"
  printf "  %-20s %12s %9s %12s\n" table rows seconds rows/s
  local pipe_total=0 pipe_rows=0 table rows s
  for table in associado conta cartao movimentacao_cartao; do
    t0=$(now)
    "$PGBIN/psql" -X -q -d "$SRC" -c "COPY $table TO STDOUT" | "$PGBIN/psql" -X -q -d "$PIPE" -c "COPY $table FROM STDIN"
    t1=$(now); s=$(secs "$t0" "$t1")
    rows=$(q -d "$PIPE" -Atc "SELECT count(*) FROM $table")
    printf "  %-20s %12d %9.2f %12.0f\n" "$table" "$rows" "$s" "$(awk -v r="$rows" -v s="$s" 'BEGIN {print r / s}')"
    pipe_total=$(awk -v a="$pipe_total" -v b="$s" 'BEGIN {print a + b}')
    pipe_rows=$((pipe_rows + rows))
    [ "$table" = movimentacao_cartao ] && PIPE_MOV_RATE=$(awk -v r="$rows" -v s="$s" 'BEGIN {print r / s}')
  done
  printf "  %-20s %12d %9.2f\n" total "$pipe_rows" "$pipe_total"
  recreate_db "$PIPE"  # give the disk back

  echo "--- the peer: hand-written SQL over postgres_fdw, full refresh (test/bench/peer.sql)"
  recreate_db "$PEER"
  q -d "$PEER" -v src="$SRC" -v port="$PGPORT" -v user="$PGUSER" -f "$REPO/test/bench/peer_setup.sql" >/dev/null
  q -d postgres -c "CHECKPOINT"
  t0=$(now); q -d "$PEER" -v ref="$(date -u +%F)" -f "$REPO/test/bench/peer.sql" >/dev/null; t1=$(now)
  local peer_seconds; peer_seconds=$(secs "$t0" "$t1")
  echo "  peer full refresh: $peer_seconds s ($(q -d "$PEER" -Atc "SELECT count(*) FROM dw.fato_movimentacao_cartao") facts)"
  recreate_db "$PEER"

  echo "--- full load: CALL sicoop.run_pipeline() into a fresh warehouse (timed as the peer is: nothing else running)"
  fresh_warehouse "$DW"
  printf "  %-15s %12s %12s %9s %12s %12s %12s\n" step rows_read rows_written seconds rows/s "private MB" "peak RSS MB"
  run_sampled full "CALL sicoop.run_pipeline()"
  report_run full
  if [ "$READERS" = 1 ]; then
    # The readers' bar (no lock wait) is measured on a second first load, into a warehouse of its
    # own, so that the timed one above runs as the peer does: with no reader taking the CPU.
    echo "--- the same first load again, into another fresh warehouse, with BI readers querying it"
    fresh_warehouse "$DW_READ"
    with_readers "during the first load" "$DW_READ" "CALL sicoop.run_pipeline()" "first load with readers"
    recreate_db "$DW_READ"  # give the disk back
    readers_start "idle warehouse"; sleep 5; readers_stop "idle warehouse"
  fi
  local full_seconds raw_mov_rate raw_mov_copy_rate
  full_seconds=$(awk '$1 == "run_pipeline" {print $5 - $4}' "$WORK/steps_full")
  # The movements' rows/s into raw: the copy from the source alone (the ingestion), and the
  # whole table in load_raw (the copy, the source's day totals, the rules, the statistics).
  raw_mov_copy_rate=$(q -d "$DW" -Atc "SELECT (detail->'movimentacao_cartao'->>'rows')::numeric / nullif((detail->'movimentacao_cartao'->>'copy_seconds')::numeric, 0)
      FROM sicoop.run_log WHERE step = 'load_raw' ORDER BY run_id LIMIT 1" 2>/dev/null || echo 0)
  raw_mov_rate=$(q -d "$DW" -Atc "SELECT (detail->'movimentacao_cartao'->>'rows')::numeric / nullif((detail->'movimentacao_cartao'->>'seconds')::numeric, 0)
      FROM sicoop.run_log WHERE step = 'load_raw' ORDER BY run_id LIMIT 1" 2>/dev/null || echo 0)

  # The incremental run and the full check are timed as the pipe is, with nothing else running
  # (1.10; before, the BI reader ran during both); the readers' bar is measured on one more of
  # each right after: an incremental run of another 1% change, a full check of no new change.
  echo "--- 1% change in the source, then an incremental load (timed: nothing else running)"
  t0=$(now); q -d "$SRC" -v n="$n" -f "$REPO/test/bench/change_source.sql" >/dev/null; t1=$(now)
  echo "  change applied in $(secs "$t0" "$t1") s"
  printf "  %-15s %12s %12s %9s %12s %12s %12s\n" step rows_read rows_written seconds rows/s "private MB" "peak RSS MB"
  run_sampled incremental "CALL sicoop.run_pipeline()"
  report_run incremental
  local incr_seconds
  incr_seconds=$(awk '$1 == "run_pipeline" {print $5 - $4}' "$WORK/steps_incremental")
  if [ "$READERS" = 1 ]; then
    q -d "$SRC" -v n="$n" -v round=1 -f "$REPO/test/bench/change_source.sql" >/dev/null
    with_readers "during the incremental load" "$DW" "CALL sicoop.run_pipeline()" \
      "another 1% change's incremental load, with readers"
  fi

  echo "--- old movements edited, deleted and inserted late (0.2%), then the full check: run_pipeline(full => true) (timed: nothing else running)"
  q -d "$SRC" -v n="$n" -f "$REPO/test/bench/change_old.sql" >/dev/null
  printf "  %-15s %12s %12s %9s %12s %12s %12s\n" step rows_read rows_written seconds rows/s "private MB" "peak RSS MB"
  run_sampled check "CALL sicoop.run_pipeline(full => true)"
  report_run check
  local check_seconds
  check_seconds=$(awk '$1 == "run_pipeline" {print $5 - $4}' "$WORK/steps_check")
  if [ "$READERS" = 1 ]; then
    with_readers "during the full check" "$DW" "CALL sicoop.run_pipeline(full => true)" \
      "the full check again (no new change), with readers"
  fi

  # Months of runs leave free space across the heap (the old changes above, once vacuumed),
  # which later rows fill: a run's new and updated rows no longer sit together. AGE more rounds
  # of a 1% change (rounds 2, 3, ...), each after a VACUUM of the movements' tables (what
  # autovacuum does between scheduled runs; untimed), each followed by a timed incremental run.
  local age=${SICOOP_BENCH_AGE:-4} aged_seconds=""
  if [ "$age" -gt 0 ]; then
    echo "--- aged: $age more rounds of VACUUM, a 1% change and an incremental run (timed: nothing else running)"
    local r aged_times=""
    for ((r = 2; r < age + 2; r++)); do
      q -d "$DW" -c "VACUUM sicoop.raw_movimentacao_cartao, sicoop.trusted_movimentacao_cartao, sicoop.fato_movimentacao_cartao"
      q -d "$SRC" -v n="$n" -v round="$r" -f "$REPO/test/bench/change_source.sql" >/dev/null
      t0=$(now); q -d "$DW" -c "SET client_min_messages = warning" -c "CALL sicoop.run_pipeline()"; t1=$(now)
      aged_seconds=$(secs "$t0" "$t1"); aged_times="$aged_times $aged_seconds"
    done
    echo "  incremental runs:$aged_times s; the last one's movements in load_raw: $(q -d "$DW" -Atc "
      SELECT detail->'movimentacao_cartao'->>'seconds' FROM sicoop.run_log WHERE step = 'load_raw' ORDER BY run_id DESC LIMIT 1") s"
  fi

  local peak
  peak=$(awk '{ if ($2 > p) p = $2 } END { print p / 1024 }' "$WORK/mem_full" "$WORK/mem_incremental" "$WORK/mem_check")
  PEAK_ANON[$n]=$peak
  SECONDS_PER_ROW[$n]=$(awk -v s="$full_seconds" -v n="$n" 'BEGIN {print s / n}')
  echo "--- ratios (targets in brackets)"
  awk -v f="$full_seconds" -v p="$pipe_total" -v i="$incr_seconds" -v rr="${raw_mov_rate:-0}" -v rc="${raw_mov_copy_rate:-0}" -v pr="$PIPE_MOV_RATE" -v m="$peak" \
      -v peer="$peer_seconds" -v c="$check_seconds" -v a="$aged_seconds" 'BEGIN {
    printf "  full load / hand-written SQL peer:                 %6.2f x  [<= 1]  (%.2f s vs %.2f s)\n", f / peer, f, peer
    printf "  full load / COPY pipe of the source tables:        %6.2f x  [toward 3]  (pipe %.2f s)\n", f / p, p
    printf "  peer / COPY pipe:                                  %6.2f x\n", peer / p
    printf "  raw movements ingestion rows/s / COPY pipe rows/s: %6.2f    [>= 0.9]  (%.0f vs %.0f rows/s: the copy from the source into raw)\n", (pr > 0 ? rc / pr : 0), rc, pr
    printf "  raw movements whole table rows/s / COPY pipe:      %6.2f              (%.0f rows/s: the copy, day totals, rules and statistics)\n", (pr > 0 ? rr / pr : 0), rr
    printf "  incremental run / full load:                       %6.2f %%  [<= 5 %%]  (%.2f s vs %.2f s)\n", 100 * i / f, i, f
    printf "  full check after a 0.2%% old change / COPY pipe:    %6.2f x  [<= 1]  (%.2f s)\n", c / p, c
    if (a != "") printf "  aged incremental run / full load:                  %6.2f %%            (%.2f s: the last of the aged rounds)\n", 100 * a / f, a
    printf "  backend peak private memory:                       %6.1f MB\n", m
  }'
  if [ "$READERS" = 1 ]; then
    echo "  BI reader latency, and queries that waited over 1 s for a lock (target: none):"
    cat "$WORK"/readers_*
  fi
  # One line per target: a slower release shows the day it is made.
  local lock_waits=-
  [ "$READERS" = 1 ] && lock_waits=$(cat "$WORK"/readers_* | sed -n 's/.*lock waits > 1 s: \([0-9]*\).*/\1/p' | awk '{s += $1} END {print s + 0}')
  echo "--- verdicts at N = $n"
  awk -v f="$full_seconds" -v p="$pipe_total" -v i="$incr_seconds" -v rc="${raw_mov_copy_rate:-0}" -v pr="$PIPE_MOV_RATE" \
      -v peer="$peer_seconds" -v c="$check_seconds" -v w="$lock_waits" 'BEGIN {
    verdict("first load <= 1.0 x the hand-written SQL peer", f / peer <= 1.0, sprintf("%.2f x", f / peer))
    verdict("full check <= 1.0 x the COPY pipe", c / p <= 1.0, sprintf("%.2f x", c / p))
    verdict("incremental run <= 5 % of the first load", i / f <= 0.05, sprintf("%.1f %%", 100 * i / f))
    verdict("raw ingestion >= 0.9 x the pipe rows/s", pr > 0 && rc / pr >= 0.9, sprintf("%.2f", pr > 0 ? rc / pr : 0))
    if (w != "-") verdict("no BI query waited over 1 s for a lock", w == 0, sprintf("%d waited", w))
  }
  function verdict(what, met, figure) { printf "  %-52s %-7s %s\n", what ":", met ? "met" : "MISSED", figure }'
}

for n in "$@"; do bench_one "$n"; done

if [ $# -gt 1 ]; then
  small=$1 large=${!#}
  echo "================================================================================"
  echo "scaling, N = $large vs N = $small"
  awk -v ms="${PEAK_ANON[$small]}" -v ml="${PEAK_ANON[$large]}" -v ts="${SECONDS_PER_ROW[$small]}" -v tl="${SECONDS_PER_ROW[$large]}" 'BEGIN {
    printf "  backend peak private memory: %.1f MB vs %.1f MB = %.2f x  [<= 1.2]  %s\n", ml, ms, ml / ms, ml / ms <= 1.2 ? "met" : "MISSED"
    printf "  full load time per row:      %.2f us vs %.2f us = %.2f x  [<= 1.3]  %s\n", tl * 1e6, ts * 1e6, tl / ts, tl / ts <= 1.3 ? "met" : "MISSED"
  }'
fi
