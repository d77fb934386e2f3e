#!/usr/bin/env bash
# The database container: one PostgreSQL 15 cluster holding SiCooperativeDB (the sample source)
# and SiCooperativeDW (sicoop_etl connected to it, with a pg_cron schedule). Runs as `postgres`.
# On the first start it creates and sets up the cluster; later starts reuse the volume as is.
set -euo pipefail
: "${PGDATA:?}" "${PGPORT:=5432}"
: "${SICOOP_LISTEN:=*}"                       # listen_addresses ('127.0.0.1' with host networking)
: "${SICOOP_OPERATOR_PASSWORD:?set SICOOP_OPERATOR_PASSWORD}"
: "${SICOOP_SOURCE_PASSWORD:?set SICOOP_SOURCE_PASSWORD}"
: "${SICOOP_READER_PASSWORD:?set SICOOP_READER_PASSWORD}"
: "${SICOOP_SCHEDULE=*/15 * * * *}"           # empty: no pg_cron job
: "${SICOOP_FULL_SCHEDULE=0 3 * * 0}"         # empty: no full run job
: "${SICOOP_AS_OF=}"                          # a fixed reference time for the sample (empty: now())
: "${SICOOP_STREAM=false}"                    # true: the warehouse follows the source's changes (start_stream)
# A stream applies changes as they happen: its reference time is now, never a fixed date.
[ "$SICOOP_STREAM" = true ] && SICOOP_AS_OF=
export PGPORT
log() { printf '[sicoop-db] %s\n' "$*" >&2; }
psql_q() { psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql "$@"; }

first_start() {
  log "creating the cluster (UTF-8, ICU pt-BR: upper('joão') = 'JOÃO')"
  initdb -D "$PGDATA" -U postgres --encoding=UTF8 --locale=C.UTF-8 --locale-provider=icu \
    --icu-locale=pt-BR --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  cat >>"$PGDATA/postgresql.conf" <<CONF
# sicoop_etl container
shared_preload_libraries = 'pg_cron'
cron.database_name = 'sicooperativedw'
# Jobs run in background workers: pg_cron needs no password and no trust rule in pg_hba.
cron.use_background_workers = on
max_worker_processes = 16
unix_socket_directories = '/var/run/postgresql'
# Streaming (sicoop.start_stream()): logical replication, with a bound on the WAL a stopped stream keeps.
wal_level = logical
max_slot_wal_keep_size = '2GB'
CONF
  # Every TCP connection authenticates with a password, from anywhere it is allowed to listen.
  printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' >>"$PGDATA/pg_hba.conf"

  pg_ctl -D "$PGDATA" -w -t 60 -o "-c listen_addresses=127.0.0.1 -p $PGPORT" -l "$PGDATA/init.log" start >/dev/null
  log "SiCooperativeDB: the sample source, read by etl_reader"
  psql_q -d postgres -c "CREATE DATABASE sicooperativedb"
  psql_q -d sicooperativedb -f /usr/share/sicoop_etl/sample_source.sql >/dev/null
  psql_q -d sicooperativedb <<'SQL'
\getenv pw SICOOP_SOURCE_PASSWORD
CREATE ROLE etl_reader LOGIN REPLICATION PASSWORD :'pw';
GRANT SELECT ON ALL TABLES IN SCHEMA public TO etl_reader;
-- What a stream follows (sicoop.start_stream()).
CREATE PUBLICATION sicoop_stream FOR TABLE associado, conta, cartao, movimentacao_cartao;
SQL

  log "SiCooperativeDW: sicoop_etl, operator etl_operator, reader bi"
  psql_q -d postgres -c "CREATE DATABASE sicooperativedw"
  psql_q -d sicooperativedw <<'SQL'
\getenv op SICOOP_OPERATOR_PASSWORD
\getenv rd SICOOP_READER_PASSWORD
\getenv as_of SICOOP_AS_OF
CREATE EXTENSION sicoop_etl CASCADE;
CREATE EXTENSION pg_cron;
CREATE ROLE etl_operator LOGIN PASSWORD :'op';
SELECT sicoop.grant_operator('etl_operator');
CREATE ROLE bi LOGIN PASSWORD :'rd';
SELECT sicoop.grant_reader('bi');
SELECT :'as_of' <> '' AS has_as_of \gset
\if :has_as_of
ALTER DATABASE sicooperativedw SET sicoop.as_of = :'as_of';
\endif
SQL
  # The operator connects the source and schedules: the jobs run as the operator.
  psql_q -d sicooperativedw <<'SQL'
\getenv pw SICOOP_SOURCE_PASSWORD
\getenv cron SICOOP_SCHEDULE
\getenv full_cron SICOOP_FULL_SCHEDULE
SET ROLE etl_operator;
SELECT sicoop.connect_source('127.0.0.1', current_setting('port')::int, 'sicooperativedb', 'etl_reader', :'pw');
SELECT :'cron' <> '' AS has_cron \gset
\if :has_cron
SELECT jobname, schedule, command FROM sicoop.schedule(:'cron', nullif(:'full_cron', ''));
\endif
SQL
  if [ "$SICOOP_STREAM" = true ]; then
    # The stream's first start (its snapshot) happens here; after this setup's restart, the
    # watchdog job (sicoop.schedule()) starts the worker again within a minute.
    log "SiCooperativeDW: streaming the source's changes (sicoop.start_stream())"
    psql_q -d sicooperativedw -c "SET ROLE etl_operator" -c "SELECT sicoop.start_stream()" >/dev/null
    for _ in $(seq 600); do
      [ "$(psql_q -d sicooperativedw -Atc "SELECT state FROM sicoop.stream_status()")" = streaming ] && break
      sleep 0.1
    done
    psql_q -d sicooperativedw -Atc "SELECT 'stream: ' || state FROM sicoop.stream_status()" >&2
  fi
  pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
  touch "$PGDATA/sicoop_ready"
  log "ready"
}

[ -s "$PGDATA/PG_VERSION" ] || first_start
# The healthcheck waits for sicoop_ready: a first start that failed half-way stays unhealthy.
exec postgres -D "$PGDATA" -p "$PGPORT" -c listen_addresses="$SICOOP_LISTEN"
