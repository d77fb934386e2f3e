#!/usr/bin/env bash
# The Docker path, as a user runs it (README "Docker"): build the image from this repository on
# debian:bookworm-slim, `up -d`, `run --rm pipeline`, and check what that left: a healthy
# server, the schedule, the flat file (equal to the one this cluster makes from the same
# sample), password-only access on 127.0.0.1, state kept across a restart.
# Engines without bridge networking (CI's) take docker-compose.host.yml; as root, with no engine
# reachable, the sandbox engine (test/docker/docker-sandbox) is started here and stopped after.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DOCKER_DIR=$REPO/docker
PORT=${SICOOP_DOCKER_PORT:-5531}
PROJECT=sicoop_etl_test
started_engine=0

if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    bash "$REPO/test/docker/docker-sandbox" start >&2
    eval "$(bash "$REPO/test/docker/docker-sandbox" env)"
    started_engine=1
  else
    echo "1..0 # SKIP no Docker engine reachable (as root this test starts one)"; exit 0
  fi
fi
if command -v docker-compose >/dev/null; then compose_bin=(docker-compose); else compose_bin=(docker compose); fi
# The schedules are the environment's (SICOOP_SCHEDULE, SICOOP_FULL_SCHEDULE): here they never
# fire while the test runs (a scheduled run would race the test's own runs for the pipeline's
# lock, and one of them would be skipped).
TEST_SCHEDULE='0 0 1 1 *' TEST_FULL_SCHEDULE='30 0 1 1 *'
compose() {
  (cd "$DOCKER_DIR" && SICOOP_PORT=$PORT SICOOP_SCHEDULE=$TEST_SCHEDULE SICOOP_FULL_SCHEDULE=$TEST_FULL_SCHEDULE \
    "${compose_bin[@]}" -p "$PROJECT" -f docker-compose.yml -f docker-compose.host.yml "$@")
}
cleanup() {
  compose --profile pipeline down -v --remove-orphans >/dev/null 2>&1 || compose down -v >/dev/null 2>&1 || true
  # The image and its build layers go too: every run builds them anew, and an engine without
  # overlay storage keeps a full copy of each layer (they filled this machine's disk once).
  docker rmi sicoop_etl:1.2 >/dev/null 2>&1 || true
  docker image prune -f >/dev/null 2>&1 || true
  [ "$started_engine" = 1 ] && bash "$REPO/test/docker/docker-sandbox" stop >&2
  rm -rf "$WORK"
}
trap cleanup EXIT
compose down -v >/dev/null 2>&1 || true

# The plain `docker compose up` (bridge networking, with docker-compose.override.yml) is valid
# and publishes the port on the host's loopback only.
(cd "$DOCKER_DIR" && SICOOP_PORT=$PORT "${compose_bin[@]}" config) >"$WORK/default.yml" 2>&1 || true
ok_if "grep -q '127.0.0.1:$PORT:5432' '$WORK/default.yml'" "the default compose files are valid and publish 127.0.0.1:$PORT only"

t0=$(date +%s)
ok_run "the image builds from the repository on debian:bookworm-slim" compose build -q db
echo "# build: $(( $(date +%s) - t0 )) s"
ok_run "up -d starts the database" compose up -d db

health=starting
for _ in $(seq 120); do
  health=$(docker inspect -f '{{.State.Health.Status}}' "$(compose ps -q db)" 2>/dev/null) || health=gone
  [ "$health" = starting ] || break
  sleep 2
done
is "$health" healthy "the database is healthy (source loaded, warehouse connected, scheduled)"
[ "$health" = healthy ] || compose logs db | tail -40 | sed 's/^/#   /'

dbq() { compose exec -T db psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }
is "$(dbq -d sicooperativedw -c "SELECT string_agg(jobname || ' ' || schedule || ' ' || username, ', ' ORDER BY jobname) FROM cron.job")" \
  "sicoop_full@sicooperativedw $TEST_FULL_SCHEDULE etl_operator, sicoop_pipeline@sicooperativedw $TEST_SCHEDULE etl_operator, sicoop_watchdog@sicooperativedw * * * * * etl_operator" \
  "the schedule the environment gives: incremental, full and the watchdog, as the operator"
is "$(dbq -d sicooperativedw -c "SELECT upper('joão poupança')")" "JOÃO POUPANÇA" "the cluster upper-cases accents"
is "$(dbq -d sicooperativedw -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'etl_operator'")" f "the operator is not a superuser"

rm -f "$DOCKER_DIR/output/movimentacao_flat.csv"
rc=0; compose run --rm pipeline >"$WORK/pipeline.out" 2>&1 || rc=$?
is "$rc" 0 "run --rm pipeline succeeds"
[ "$rc" = 0 ] || sed 's/^/#   /' "$WORK/pipeline.out" | tail -30
ok_if 'grep -q "load_fato done in" "$WORK/pipeline.out"' "the run reports each step (NOTICE)"

# The same sample through this repository's own cluster, exported the same way.
SRC=sicoop_docker_src DW=sicoop_docker_dw
recreate_db "$SRC" && q -d "$SRC" -f "$REPO/test/data/sample_source.sql" >/dev/null
make_warehouse "$DW" "$SRC" && run_pipeline "$DW" 2025-08-15
PGTZ=UTC q -d "$DW" -c "SET datestyle = 'ISO, YMD'" \
  -c "\\copy (SELECT * FROM sicoop.vw_movimentacao_flat) TO '$WORK/expected.csv' WITH (FORMAT csv, HEADER true, DELIMITER ';', ENCODING 'UTF8')"
ok_if "[ -s '$DOCKER_DIR/output/movimentacao_flat.csv' ]" "docker/output/movimentacao_flat.csv is written"
same_file "$DOCKER_DIR/output/movimentacao_flat.csv" "$WORK/expected.csv" \
  "the container's flat file equals the one this cluster makes from the same sample"
is "$(wc -l <"$DOCKER_DIR/output/movimentacao_flat.csv")" 13 "12 movements and the header"

# From the host: password only, on 127.0.0.1:PORT.
is "$(PGPASSWORD=sicoop-reader-demo "$PGBIN/psql" -X -At "host=127.0.0.1 port=$PORT dbname=sicooperativedw user=bi" \
  -c "SELECT sum(movimentacoes) FROM sicoop.vw_gasto_bandeira_tipo_cartao")" 12 "the reader reads the BI views from the host"
ok_if '! PGPASSWORD=wrong "$PGBIN/psql" -X -At "host=127.0.0.1 port=$PORT dbname=sicooperativedw user=bi" -c "SELECT 1" >/dev/null 2>&1' \
  "a wrong password is refused"
ok_if '! PGPASSWORD=sicoop-reader-demo "$PGBIN/psql" -X -At "host=127.0.0.1 port=$PORT dbname=sicooperativedw user=bi" -c "SELECT count(*) FROM sicoop.run_log" >/dev/null 2>&1' \
  "the reader cannot read the run log"

# The volume keeps the warehouse: after a restart, a second run is incremental and finds nothing new.
compose restart db >/dev/null 2>&1
for _ in $(seq 60); do
  [ "$(docker inspect -f '{{.State.Health.Status}}' "$(compose ps -q db)" 2>/dev/null)" = healthy ] && break; sleep 2
done
rc=0; compose run --rm pipeline >"$WORK/pipeline2.out" 2>&1 || rc=$?
is "$rc" 0 "a second run after a restart succeeds"
is "$(dbq -d sicooperativedw -c "SELECT (count(*) >= 2) || ' runs, ' || sum(rows_inserted) FILTER (WHERE run_id > min_run) || ' inserted after the first'
  FROM sicoop.run_log, (SELECT min(run_id) AS min_run FROM sicoop.run_log WHERE step = 'run_pipeline' AND status = 'succeeded') f
  WHERE step = 'run_pipeline' AND status = 'succeeded'")" "true runs, 0 inserted after the first" \
  "the warehouse survived the restart: the runs after the first added nothing"

for db in "$DW" "$SRC"; do drop_db "$db"; done
finish
