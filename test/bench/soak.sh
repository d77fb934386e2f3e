#!/usr/bin/env bash
# The soak: bash test/bench/soak.sh [N] [RUNS]   (or: make soak N=300000 RUNS=200)
# Months of scheduled runs, compressed: on the project's cluster (test/env.sh start), a synthetic
# source at N movements (test/bench/generate_source.sql), a first load into a fresh warehouse,
# then RUNS incremental runs, each after a ~1% change of its own (test/bench/change_source.sql
# with -v round=R: new, edited and deleted movements, member changes, new members; a round is
# a day of the source's time, and each run's time, sicoop.as_of, an hour after its latest
# movement: 200 rounds end before today).
# Every 20 runs it prints the runs' time (mean and slowest), the sizes of the tables that grow
# and their dead tuples, so that a run cost or a table that grows with the number of runs (not
# with the data) shows. It ends with the first 20 runs against the last 20.
# The retention is compressed as well (SICOOP_SOAK_RETENTION, default 1 min: the soak's runs
# are a second or two apart, a schedule's 15 minutes), so the purge runs as it would in production.
# Autovacuum runs as the cluster sets it (its settings are printed). Figures are printed, never
# asserted: this machine is shared and noisy.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PGBIN=${SICOOP_PGROOT:-}/usr/lib/postgresql/15/bin
export PGHOST=localhost PGPORT=${SICOOP_PGPORT:-5499} PGUSER=postgres
SRC=sicoop_soak_src DW=sicoop_soak_dw
N=${1:-300000}
RUNS=${2:-200}
RETENTION=${SICOOP_SOAK_RETENTION:-1 min}

q() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
recreate_db() { q -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" 2>/dev/null; }

echo "soak: N = $N movements, $RUNS incremental runs, sicoop.log_retention = '$RETENTION'"
echo "autovacuum: $(q -d postgres -Atc "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings
                                       WHERE name IN ('autovacuum', 'autovacuum_naptime', 'autovacuum_vacuum_scale_factor')")"
recreate_db "$SRC"
q -d "$SRC" -v n="$N" -f "$REPO/test/bench/generate_source.sql" >/dev/null
recreate_db "$DW"
q -d "$DW" -c "SET client_min_messages = warning" -c "CREATE EXTENSION sicoop_etl CASCADE" \
  -c "SELECT sicoop.connect_source('localhost', $PGPORT, '$SRC', 'postgres')" \
  -c "ALTER DATABASE $DW SET sicoop.log_retention = '$RETENTION'" >/dev/null
as_of=$(q -d "$SRC" -Atc "SELECT to_char(max(data_movimentacao) + interval '1 hour', 'YYYY-MM-DD HH24:MI:SS') FROM movimentacao_cartao")
t0=$(now)
q -d "$DW" -c "SET client_min_messages = warning" -c "SET sicoop.as_of = '$as_of America/Sao_Paulo'" -c "CALL sicoop.run_pipeline()"
t1=$(now)
echo "first load: $(secs "$t0" "$t1") s"

# One line per table that a run writes: size (table, indexes and TOAST) and dead tuples.
report_tables() {
  q -d "$DW" -At -F ' ' -c "
    SELECT c.relname, pg_total_relation_size(c.oid) / 1024, s.n_live_tup, s.n_dead_tup, coalesce(s.autovacuum_count, 0)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_stat_user_tables s ON s.relid = c.oid
    WHERE n.nspname = 'sicoop' AND c.relkind = 'r'
      AND c.relname IN ('fato_movimentacao_cartao', 'raw_movimentacao_cartao', 'trusted_movimentacao_cartao',
                        'dim_associado', 'trusted_associado', 'raw_associado', 'run_log', 'dq_result', 'reconciliation',
                        'reject', 'source_day_total')
    ORDER BY c.relname" |
    awk '{ printf "    %-28s %10.1f MB %10d live %9d dead %4d autovacuums\n", $1, $2 / 1024, $3, $4, $5 }'
  echo "    warehouse database: $(q -d "$DW" -Atc "SELECT pg_size_pretty(pg_database_size(current_database()))")"
}

: >/tmp/sicoop_soak_times.$$
trap 'rm -f /tmp/sicoop_soak_times.$$' EXIT
for ((r = 1; r <= RUNS; r++)); do
  q -d "$SRC" -v n="$N" -v round="$r" -f "$REPO/test/bench/change_source.sql" >/dev/null
  # The run's time follows the source's (an hour after its latest movement): 200 rounds span
  # two years of it, which would otherwise run past today's date into movements "in the future".
  as_of=$(q -d "$SRC" -Atc "SELECT to_char(max(data_movimentacao) + interval '1 hour', 'YYYY-MM-DD HH24:MI:SS') FROM movimentacao_cartao")
  t0=$(now)
  q -d "$DW" -c "SET client_min_messages = warning" -c "SET sicoop.as_of = '$as_of America/Sao_Paulo'" -c "CALL sicoop.run_pipeline()"
  t1=$(now)
  secs "$t0" "$t1" >>/tmp/sicoop_soak_times.$$; echo >>/tmp/sicoop_soak_times.$$
  if ((r % 20 == 0)); then
    awk -v from=$((r - 19)) -v to="$r" 'NR >= from && NR <= to { s += $1; if ($1 > m) m = $1 }
      END { printf "runs %3d-%3d: mean %.2f s, slowest %.2f s\n", from, to, s / (to - from + 1), m }' /tmp/sicoop_soak_times.$$
    echo "    run_log: $(q -d "$DW" -Atc "SELECT count(DISTINCT run_id) || ' runs, ' || count(*) || ' rows' FROM sicoop.run_log"),"\
         "dq_result: $(q -d "$DW" -Atc "SELECT count(*) || ' rows' FROM sicoop.dq_result"),"\
         "dim_associado: $(q -d "$DW" -Atc "SELECT count(*) || ' versions' FROM sicoop.dim_associado")"
    report_tables
  fi
done
echo "--- the first 20 runs vs the last 20"
awk -v runs="$RUNS" 'BEGIN { k = runs < 20 ? runs : 20 } NR <= k { a += $1 } NR > runs - k { b += $1 }
  END { printf "  mean run time: %.2f s vs %.2f s = %.2f x\n", a / k, b / k, (b / k) / (a / k) }' /tmp/sicoop_soak_times.$$
echo "  fact rows: $(q -d "$DW" -Atc "SELECT count(*) FROM sicoop.fato_movimentacao_cartao") (source: $(q -d "$SRC" -Atc "SELECT count(*) FROM movimentacao_cartao"))"
echo "  rejects: $(q -d "$DW" -Atc "SELECT count(*) FROM sicoop.reject")"
echo "  unbalanced days: $(q -d "$DW" -Atc "SELECT count(*) FROM sicoop.reconciliation WHERE NOT balanced")"
