#!/usr/bin/env bash
# `docker compose run --rm pipeline`: one run of the pipeline as the operator, then the flat
# file, client-side (psql's \copy), into /output/movimentacao_flat.csv.
set -euo pipefail
: "${PGHOST:=db}" "${PGPORT:=5432}" "${SICOOP_OPERATOR_PASSWORD:?set SICOOP_OPERATOR_PASSWORD}"
: "${SICOOP_FULL:=false}" "${SICOOP_OUTPUT:=/output}"
export PGHOST PGPORT PGUSER=etl_operator PGDATABASE=sicooperativedw PGPASSWORD="$SICOOP_OPERATOR_PASSWORD"
export PGAPPNAME=sicoop-pipeline
psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

for _ in $(seq 60); do psql_q -Atc 'SELECT 1' >/dev/null 2>&1 && break; sleep 2; done
case "$SICOOP_FULL" in true|false) ;; *) echo "SICOOP_FULL must be true or false" >&2; exit 2 ;; esac
psql_q -c "CALL sicoop.run_pipeline(full => $SICOOP_FULL)"
psql_q -c "SELECT step, status, rows_read, rows_inserted, rows_updated, rows_deleted, rows_unchanged,
      round(extract(epoch FROM finished_at - started_at)::numeric, 3) AS seconds
    FROM sicoop.run_log WHERE run_id = (SELECT max(run_id) FROM sicoop.run_log) ORDER BY started_at"
mkdir -p "$SICOOP_OUTPUT"
tmp="$SICOOP_OUTPUT/.movimentacao_flat.csv.part"
psql_q -c "SET datestyle = 'ISO, YMD'" \
  -c "\\copy (SELECT * FROM sicoop.vw_movimentacao_flat) TO '$tmp' WITH (FORMAT csv, HEADER true, DELIMITER ';', ENCODING 'UTF8')"
mv "$tmp" "$SICOOP_OUTPUT/movimentacao_flat.csv"
echo "[sicoop-pipeline] $(($(wc -l <"$SICOOP_OUTPUT/movimentacao_flat.csv") - 1)) movements in docker/output/movimentacao_flat.csv" >&2
