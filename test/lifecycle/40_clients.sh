#!/usr/bin/env bash
# Client examples, run against a real warehouse on the sample source: Python with psycopg
# (Debian's python3-psycopg) and JDBC (Debian's libpostgresql-jdbc-java, a headless JDK), as a
# data scientist's notebook and a BI tool reach sicoop_etl. Each prints TAP; this relays it.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SRC=sicoop_clients_src DW=sicoop_clients_dw
recreate_db "$SRC"
q -d "$SRC" -f "$REPO/test/data/sample_source.sql" >/dev/null
make_warehouse "$DW" "$SRC"

relay() {  # relay <command...>: its TAP lines, renumbered into this test's
  local line
  while IFS= read -r line; do
    case "$line" in
      "ok "*) ok 0 "${line#ok * - }" ;;
      "not ok "*) ok 1 "${line#not ok * - }" ;;
      "1.."*) ;;
      *) echo "# $line" ;;
    esac
  done < <("$@" 2>&1 || echo "not ok 0 - $* exited with an error")
}
relay /usr/bin/python3 "$REPO/test/clients/client_psycopg.py" "host=$PGHOST port=$PGPORT dbname=$DW user=$PGUSER" "$WORK/flat.csv"
recreate_db "$DW" && make_warehouse "$DW" "$SRC"
relay java -cp /usr/share/java/postgresql.jar "$REPO/test/clients/ClientJdbc.java" \
  "jdbc:postgresql://$PGHOST:$PGPORT/$DW" "$PGUSER"

for db in "$DW" "$SRC"; do drop_db "$db"; done
finish
