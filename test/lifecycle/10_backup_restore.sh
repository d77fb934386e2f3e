#!/usr/bin/env bash
# Backups keep everything: a warehouse with SCD2 history, dumped with pg_dump (custom and
# plain formats) and restored into fresh databases, holds every row, sequence position, run
# log row, incremental state and source option it had. The next run is incremental (it reads
# and writes what changed, not everything) and converges to a from-scratch load. A password
# is re-entered with connect_source() without losing the incremental state.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N=20000
SRC=sicoop_life_src DW=sicoop_life_dw RC=sicoop_life_restored_fc RP=sicoop_life_restored_plain REF=sicoop_life_ref

make_source "$SRC" "$N"
make_warehouse "$DW" "$SRC"
run_pipeline "$DW" '2025-08-16 10:00:00-03' >/dev/null
q -d "$SRC" -v n="$N" -f "$REPO/test/bench/change_source.sql" >/dev/null
run_pipeline "$DW" '2025-08-17 10:00:00-03' >/dev/null
closed=$(val "$DW" "SELECT count(*) FROM sicoop.dim_associado WHERE NOT registro_ativo_associado AND id_associado IS NOT NULL")
ok_if '[ "$closed" -gt 0 ]' "the warehouse has SCD2 history to keep ($closed closed member versions)"
fingerprint "$DW" >"$WORK/before"

"$PGBIN/pg_dump" -Fc -f "$WORK/dw.dump" "$DW"
"$PGBIN/pg_dump" -Fp -f "$WORK/dw.sql" "$DW"
ok_if "grep -q '^COPY sicoop.fato_movimentacao_cartao' '$WORK/dw.sql'" \
  'the plain dump holds the facts (COPY data), not only CREATE EXTENSION'
ok_if "! '$PGBIN/pg_restore' -l '$WORK/dw.dump' | grep -q -e 'TABLE sicoop stage_' -e 'TABLE DATA sicoop stage_'" \
  'and not the scratch stage tables (the extension'"'"'s: pg_dump neither dumps nor locks them, so a run never waits for a backup)'

recreate_db "$RC"
ok_run 'pg_restore -j 2 of the custom-format dump into a fresh database: no error' \
  "$PGBIN/pg_restore" --exit-on-error -j 2 -d "$RC" "$WORK/dw.dump"
recreate_db "$RP"
ok_run 'psql of the plain dump into a fresh database, ON_ERROR_STOP: no error' \
  q -d "$RP" -o /dev/null -f "$WORK/dw.sql"

fingerprint "$RC" >"$WORK/after_fc"
fingerprint "$RP" >"$WORK/after_plain"
show_fingerprint 'dumped  ' "$WORK/before"
show_fingerprint 'restored' "$WORK/after_fc"
same_file "$WORK/before" "$WORK/after_fc" 'custom format: every relation, row, sequence position and source option as it was'
same_file "$WORK/before" "$WORK/after_plain" 'plain format: the same'
is "$(val "$RC" "SELECT extversion FROM pg_extension WHERE extname = 'sicoop_etl'")" \
   "$(val "$DW" "SELECT extversion FROM pg_extension WHERE extname = 'sicoop_etl'")" 'the restored database runs the same extension version'

# The source moves on; the restored warehouses catch up incrementally.
q -d "$SRC" -f "$LIFE/change_again.sql" >/dev/null
source_rows=$(val "$SRC" "SELECT (SELECT count(*) FROM associado) + (SELECT count(*) FROM conta)
                                 + (SELECT count(*) FROM cartao) + (SELECT count(*) FROM movimentacao_cartao)")
ok_run 'the restored warehouse runs without reconnecting (the dump kept the server and user mapping)' \
  run_pipeline "$RC" '2025-08-18 10:00:00-03'
echo "# restored (custom) run, step:read/written: $(last_run "$RC")  (source rows: $source_rows)"
step_figure() { val "$1" "SELECT $3 FROM sicoop.run_log WHERE step = '$2' ORDER BY run_id DESC LIMIT 1"; }
raw_read=$(step_figure "$RC" load_raw rows_read)
trusted_read=$(step_figure "$RC" load_trusted rows_read)
fato_written=$(step_figure "$RC" load_fato 'rows_inserted + rows_updated + rows_deleted')
ok_if '[ "$raw_read" -lt $((source_rows / 5)) ]' \
  "the run after the restore is incremental: load_raw read $raw_read of $source_rows source rows (< 20%)"
ok_if '[ "$trusted_read" -lt 200 ] && [ "$fato_written" -lt 200 ]' \
  "and later steps touched only what changed (trusted read $trusted_read rows, facts written $fato_written)"

# Restored into a database of another supported collation (libc C.UTF-8 instead of ICU pt-BR),
# the same rules and canonical values are the same signature: the first run is incremental,
# not a full one owed to rules that did not change.
RL=sicoop_life_restored_libc
drop_db "$RL"
q -d postgres -c "CREATE DATABASE $RL TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER libc LOCALE 'C.UTF-8'"
ok_run 'the dump restores into a libc C.UTF-8 database' "$PGBIN/pg_restore" --exit-on-error -d "$RL" "$WORK/dw.dump"
is "$(val "$RL" "SELECT sicoop._full_run_owed() IS NULL")" t 'no full run is owed there: the rules'"'"' signature does not depend on the collation'
run_pipeline "$RL" '2025-08-18 10:00:00-03'
raw_read=$(step_figure "$RL" load_raw rows_read)
ok_if '[ "$raw_read" -lt $((source_rows / 5)) ]' "and its first run is incremental (load_raw read $raw_read rows)"
drop_db "$RL"

# A lost password (or a dump without the user mapping) is re-entered with connect_source():
# same source, so the incremental state stays.
q -d "$RP" -c "DROP USER MAPPING FOR CURRENT_USER SERVER sicoop_source"
run_pipeline "$RP" '2025-08-18 10:00:00-03' 2>"$WORK/nomap.out" || true
ok_if "grep -q 'user mapping not found' '$WORK/nomap.out'" 'a run without a user mapping fails, saying so'
syncs=$(val "$RP" "SELECT count(*) FROM sicoop.source_sync")
val "$RP" "SELECT sicoop.connect_source('localhost', $PGPORT, '$SRC', current_user)" >/dev/null
is "$(val "$RP" "SELECT count(*) FROM sicoop.source_sync")" "$syncs" 'connect_source() to the same source keeps the incremental state'
run_pipeline "$RP" '2025-08-18 10:00:00-03' >/dev/null
raw_read=$(step_figure "$RP" load_raw rows_read)
ok_if '[ "$raw_read" -lt $((source_rows / 5)) ]' "and the next run is incremental (load_raw read $raw_read rows)"

# Both converge to a from-scratch load of the same source at the same reference time.
make_warehouse "$REF" "$SRC"
run_pipeline "$REF" '2025-08-18 10:00:00-03' >/dev/null
layers "$REF" >"$WORK/ref_layers"
layers "$RC" >"$WORK/rc_layers"
layers "$RP" >"$WORK/rp_layers"
same_file "$WORK/ref_layers" "$WORK/rc_layers" 'restored (custom) then incremental: every layer equals a from-scratch load'
same_file "$WORK/ref_layers" "$WORK/rp_layers" 'restored (plain), password re-entered, then incremental: the same'
versions_kept=$(val "$RC" "SELECT count(*) FROM sicoop.dim_associado")
versions_fresh=$(val "$REF" "SELECT count(*) FROM sicoop.dim_associado")
ok_if '[ "$versions_kept" -gt "$versions_fresh" ]' \
  "the restored warehouse keeps the history a fresh load cannot have ($versions_kept member versions against $versions_fresh)"
is "$(val "$RC" "SELECT count(*) FROM (SELECT 1 FROM sicoop.fato_movimentacao_cartao GROUP BY id_movimentacao_cartao HAVING count(*) > 1) d")" 0 \
   'no duplicated fact'

# A dump taken while a first load has a table's secondary indexes dropped (the run drops them
# in a short transaction of its own before the step, and the step builds them after its
# insert): the dump keeps their definitions, and the first run after the restore builds them.
MID=sicoop_life_mid RM=sicoop_life_restored_mid
fact_indexes="SELECT string_agg(indexdef, E'\n' ORDER BY indexname) FROM pg_indexes
              WHERE schemaname = 'sicoop' AND tablename = 'fato_movimentacao_cartao'"
make_warehouse "$MID" "$SRC"
q -d "$MID" -c "SELECT sicoop._defer_indexes('sicoop.fato_movimentacao_cartao')" >/dev/null
ok_if '[ "$(val "$MID" "SELECT count(*) FROM sicoop.deferred_index")" -gt 0 ]' \
  'a first load'"'"'s window: the fact'"'"'s secondary indexes are dropped, their definitions in sicoop.deferred_index'
"$PGBIN/pg_dump" -Fc -f "$WORK/mid.dump" "$MID"
recreate_db "$RM"
ok_run 'a dump taken in that window restores with no error' "$PGBIN/pg_restore" --exit-on-error -d "$RM" "$WORK/mid.dump"
run_pipeline "$RM" '2025-08-18 10:00:00-03'
is "$(val "$RM" "$fact_indexes")" "$(val "$REF" "$fact_indexes")" \
   'the first run after the restore builds the indexes the dump kept: the fact has every index a fresh warehouse has'
is "$(val "$RM" "SELECT count(*) FROM sicoop.deferred_index")" 0 'and nothing waits in sicoop.deferred_index'

# An operator's warehouse, in which the operator tries to plant a CHECK that calls its own
# function (it records who runs it): the guard refuses it (1.6). Planted all the same with the
# guard off (a warehouse from before 1.6), its dump's restore is refused at the CHECK; restored
# as the README says -- the guard off for the restore, the schema as a superuser, the rows as the
# operator -- the CHECK runs as the operator only, never as the superuser; and the superuser's
# grant_operator then refuses the warehouse, naming the CHECK.
OPW=sicoop_life_operator_dw OPR=sicoop_life_operator_restored
q -d postgres -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sicoop_life_operator') THEN CREATE ROLE sicoop_life_operator LOGIN; END IF;
  END \$\$" >/dev/null
recreate_db "$OPW"
q -d "$OPW" -c "SET client_min_messages = warning" -c "CREATE EXTENSION sicoop_etl CASCADE" \
  -c "SELECT sicoop.grant_operator('sicoop_life_operator')" \
  -c "CREATE TABLE public.sicoop_life_trap (who text, superuser boolean)" -c "GRANT INSERT ON public.sicoop_life_trap TO PUBLIC" \
  -c "GRANT CREATE ON SCHEMA public TO sicoop_life_operator" >/dev/null
q -d "$OPW" -c "SET ROLE sicoop_life_operator" -c "CREATE FUNCTION public.sicoop_life_evil(text) RETURNS boolean LANGUAGE plpgsql AS
  \$f\$ BEGIN INSERT INTO public.sicoop_life_trap SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user; RETURN true; END \$f\$" \
  -c "INSERT INTO sicoop.raw_associado (id_associado, nome, run_id) VALUES ('ASSOC-TRAP', 'Trap', 1)" >/dev/null
out=$(q -d "$OPW" -c "SET ROLE sicoop_life_operator" \
        -c "ALTER TABLE sicoop.raw_associado ADD CONSTRAINT sicoop_life_check CHECK (public.sicoop_life_evil(nome))" 2>&1) && st=0 || st=$?
ok_if '[ $st != 0 ] && grep -q "the warehouse takes nothing sicoop does not define.*sicoop_life_check" <<<"$out"' \
  'the guard refuses the operator'"'"'s CHECK at the statement (1.6)'
# A warehouse from before 1.6 (or one whose guard a superuser disabled) may hold one: planted so.
q -d "$OPW" -c "ALTER EVENT TRIGGER sicoop_guard DISABLE" -c "SET ROLE sicoop_life_operator" \
  -c "ALTER TABLE sicoop.raw_associado ADD CONSTRAINT sicoop_life_check CHECK (public.sicoop_life_evil(nome))" \
  -c "RESET ROLE" -c "ALTER EVENT TRIGGER sicoop_guard ENABLE" >/dev/null
q -d "$OPW" -c "TRUNCATE public.sicoop_life_trap" >/dev/null
"$PGBIN/pg_dump" -Fc -f "$WORK/operator.dump" "$OPW"
recreate_db "$OPR"
out=$("$PGBIN/pg_restore" --exit-on-error --section=pre-data -d "$OPR" "$WORK/operator.dump" 2>&1) && st=0 || st=$?
ok_if '[ $st != 0 ] && grep -q "the warehouse takes nothing sicoop does not define.*sicoop_life_check" <<<"$out"' \
  'restoring its dump, the guard refuses the planted CHECK, naming it'
# To get the data back all the same (the README's way): the guard off for the restore only,
# the schema as a superuser, the rows as the operator, then the rest.
recreate_db "$OPR"
"$PGBIN/pg_restore" -l "$WORK/operator.dump" >"$WORK/all.list"
grep -E ' SCHEMA - sicoop | EXTENSION - ' "$WORK/all.list" >"$WORK/first.list"
grep -v -F -x -f "$WORK/first.list" "$WORK/all.list" >"$WORK/rest.list"
"$PGBIN/pg_restore" --exit-on-error -L "$WORK/first.list" -d "$OPR" "$WORK/operator.dump"
q -d "$OPR" -c "ALTER EVENT TRIGGER sicoop_guard DISABLE" >/dev/null
ok_run "the schema of an operator's warehouse restores as a superuser (pre-data: no row, no code of the operator's runs)" \
  "$PGBIN/pg_restore" --exit-on-error --section=pre-data -L "$WORK/rest.list" -d "$OPR" "$WORK/operator.dump"
"$PGBIN/pg_restore" -l "$WORK/operator.dump" | grep -v ' sicoop deferred_index ' >"$WORK/operator.list"
ok_run 'its rows restore as the operator (pg_restore --role), but for the extension'"'"'s own deferred_index' \
  "$PGBIN/pg_restore" --exit-on-error --section=data --role=sicoop_life_operator -L "$WORK/operator.list" -d "$OPR" "$WORK/operator.dump"
ok_run 'which restores as the superuser (an extension member: its definition is the extension'"'"'s, not the dump'"'"'s)' \
  "$PGBIN/pg_restore" --exit-on-error --section=data -n sicoop -t deferred_index -d "$OPR" "$WORK/operator.dump"
ok_run 'and the rest (indexes, whose expressions PostgreSQL runs as the table owner; constraints) as the superuser' \
  "$PGBIN/pg_restore" --exit-on-error --section=post-data -d "$OPR" "$WORK/operator.dump"
q -d "$OPR" -c "ALTER EVENT TRIGGER sicoop_guard ENABLE" >/dev/null
is "$(val "$OPR" "SELECT count(*) FROM sicoop.raw_associado WHERE id_associado = 'ASSOC-TRAP'")" 1 'the rows are back'
is "$(val "$OPR" "SELECT coalesce(string_agg(DISTINCT who || ':' || superuser, ','), 'none') FROM public.sicoop_life_trap")" \
   'sicoop_life_operator:false' 'the planted CHECK ran during the restore as the operator only, never as a superuser'
out=$(q -d "$OPR" -c "SELECT sicoop.grant_operator('sicoop_life_operator')" 2>&1) && st=0 || st=$?
ok_if '[ $st != 0 ] && grep -q "constraint sicoop.raw_associado.sicoop_life_check.*DROP CONSTRAINT sicoop_life_check" <<<"$out"' \
  "and the superuser's grant_operator refuses the restored warehouse, naming the CHECK and its DROP"
for db in "$OPW" "$OPR"; do drop_db "$db"; done
q -d postgres -c "DROP ROLE sicoop_life_operator" >/dev/null

for db in "$DW" "$RC" "$RP" "$REF" "$SRC" "$MID" "$RM"; do drop_db "$db"; done
finish
