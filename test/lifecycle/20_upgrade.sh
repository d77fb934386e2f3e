#!/usr/bin/env bash
# Versioned upgrades: the real 1.0 -- its install script and library as released, built from
# the git history -- loads a source and a change; then the current build is installed and
# ALTER EXTENSION sicoop_etl UPDATE runs (1.0 -> 1.1 -> 1.2 -> 1.3 -> 1.4 -> 1.5 -> 1.6 -> 1.7, each script in turn). The data and history are intact, no data object is
# an extension member any more, the next incremental run equals a from-scratch load, the
# upgraded install has the same schema as a fresh one (pg_dump --schema-only and the catalog),
# and it survives a dump/restore and a DROP EXTENSION.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RELEASE_1_0=b3d7fea  # the commit 1.0 was released at
RELEASE_1_3=5631738  # the commit 1.3 was released at
RELEASE_1_4=1797871  # the commit 1.4 was released at
RELEASE_1_5=562ec34  # the commit 1.5 landed at (its scripts last changed in d34690b, before it landed)
RELEASE_1_6=b68d6bf  # the commit 1.6 was released at
RELEASE_1_7=2be2fc3  # the commit 1.7 was released at
CURRENT=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$REPO/sicoop_etl.control")  # this build's version
N=20000
SRC=sicoop_up_src UP=sicoop_up_dw FRESH=sicoop_up_fresh REF=sicoop_up_ref RESTORED=sicoop_up_restored

if ! git -C "$REPO" cat-file -e "$RELEASE_1_0^{commit}" 2>/dev/null; then
  echo "1..0 # SKIP this checkout has no git history of the 1.0 release ($RELEASE_1_0)"
  exit 0
fi

# Whatever happens, the current build is what stays installed.
install_current() { as_root make -C "$REPO" -s install ${SICOOP_PGROOT:+DESTDIR=$SICOOP_PGROOT} >/dev/null; }
trap 'install_current; rm -rf "$WORK"' EXIT

# The released scripts the build installs (sql/) are the ones released, byte for byte: each
# stood at the top level of its release commit (they moved to sql/ after 1.7).
same_as_released() {  # same_as_released <commit> <file>
  git -C "$REPO" show "$1:$2" | cmp -s - "$REPO/sql/$2"
}
ok_if 'same_as_released "$RELEASE_1_0" sicoop_etl--1.0.sql' 'sql/ holds 1.0 exactly as released'
ok_if 'same_as_released "$RELEASE_1_3" sicoop_etl--1.3.sql && same_as_released "$RELEASE_1_3" sicoop_etl--1.2.sql &&
       same_as_released "$RELEASE_1_3" sicoop_etl--1.1.sql && same_as_released "$RELEASE_1_3" sicoop_etl--1.0--1.1.sql &&
       same_as_released "$RELEASE_1_3" sicoop_etl--1.1--1.2.sql && same_as_released "$RELEASE_1_3" sicoop_etl--1.2--1.3.sql' \
  'and every script released up to 1.3 as it was at 1.3'"'"'s release'
ok_if 'same_as_released "$RELEASE_1_4" sicoop_etl--1.4.sql && same_as_released "$RELEASE_1_4" sicoop_etl--1.3--1.4.sql' \
  'and 1.4'"'"'s scripts as they were at its release'
ok_if 'same_as_released "$RELEASE_1_5" sicoop_etl--1.5.sql && same_as_released "$RELEASE_1_5" sicoop_etl--1.4--1.5.sql' \
  'and 1.5'"'"'s scripts as they were at its release'
ok_if 'same_as_released "$RELEASE_1_6" sicoop_etl--1.6.sql && same_as_released "$RELEASE_1_6" sicoop_etl--1.5--1.6.sql' \
  'and 1.6'"'"'s scripts as they were at its release'
ok_if 'same_as_released "$RELEASE_1_7" sicoop_etl--1.7.sql && same_as_released "$RELEASE_1_7" sicoop_etl--1.6--1.7.sql' \
  'and 1.7'"'"'s scripts as they were at its release'

echo "# building sicoop_etl 1.0 from $RELEASE_1_0"
mkdir -p "$WORK/v1.0"
git -C "$REPO" archive "$RELEASE_1_0" | tar -x -C "$WORK/v1.0"
make -C "$WORK/v1.0" -s -j2 >/dev/null 2>&1
as_root make -C "$WORK/v1.0" -s install ${SICOOP_PGROOT:+DESTDIR=$SICOOP_PGROOT} >/dev/null

make_source "$SRC" "$N"
# A member 1.0 rejects (nome blank): its reject is carried over by the upgrade.
q -d "$SRC" -c "INSERT INTO associado VALUES ('ASSOC-BLANK', '   ', '1990-01-01', 'Casado', 'Ensino Medio')" >/dev/null
make_warehouse "$UP" "$SRC" 1.0
is "$(val "$UP" "SELECT extversion FROM pg_extension WHERE extname = 'sicoop_etl'")" 1.0 'the released 1.0 is installed'
run_pipeline "$UP" '2025-08-16 10:00:00-03'
q -d "$SRC" -v n="$N" -f "$REPO/test/bench/change_source.sql" >/dev/null
run_pipeline "$UP" '2025-08-17 10:00:00-03'
closed=$(val "$UP" "SELECT count(*) FROM sicoop.dim_associado WHERE NOT registro_ativo_associado AND id_associado IS NOT NULL")
ok_if '[ "$closed" -gt 0 ]' "1.0 loaded the source and a change ($closed closed member versions)"
fingerprint "$UP" | grep -v '^raw_cartao ' >"$WORK/before"
# raw_cartao as 1.1 keeps it: card numbers masked (1.0 kept them in clear).
cards_masked() {  # cards_masked <db> <expression of numero_cartao>
  val "$1" "SELECT md5(string_agg((id_cartao, $2, nome_impresso_cartao, bandeira_cartao, tipo_cartao, data_emissao,
                                   run_id, loaded_at)::text, E'\n' ORDER BY id_cartao)) FROM sicoop.raw_cartao"
}
cards_before=$(cards_masked "$UP" 'sicoop.mask_card(numero_cartao)')

install_current
run_pipeline "$UP" '2025-08-17 11:00:00-03' 2>"$WORK/mismatch.out" || true
ok_if "grep -q 'ALTER EXTENSION sicoop_etl UPDATE' '$WORK/mismatch.out'" \
  'with the new library but the 1.0 SQL objects, a run is refused and says to run ALTER EXTENSION ... UPDATE'
fingerprint "$UP" | grep -v '^raw_cartao ' >"$WORK/after_refusal"
same_file "$WORK/before" "$WORK/after_refusal" 'the refused run changed nothing'

ok_run 'ALTER EXTENSION sicoop_etl UPDATE succeeds' q -d "$UP" -c "ALTER EXTENSION sicoop_etl UPDATE"
is "$(val "$UP" "SELECT extversion FROM pg_extension WHERE extname = 'sicoop_etl'")" "$CURRENT" "the extension is now $CURRENT"
is "$(val "$UP" "SELECT layout_version FROM sicoop.warehouse_info")" "$CURRENT" "and its data is marked as layout $CURRENT"
# What 1.2 adds (the rules, their results, the canonical values, the reconciliation, the
# analysts' views; reject has a new shape) and 1.5 (the stream's state) is not in the 1.0
# warehouse to compare with.
fingerprint "$UP" | grep -v -e '^warehouse_info ' -e '^raw_cartao ' -e '^dq_rule ' -e '^dq_result ' -e '^canonical_value ' \
                            -e '^reconciliation ' -e '^reject ' -e '^vw_gasto_' -e '^vw_associados_' -e '^progress ' \
                            -e '^stream_state ' >"$WORK/after"
is "$(val "$UP" "SELECT full_run_owed_by IS NOT NULL FROM sicoop.warehouse_info")" t \
  'and the next run is owed as a full one (the rows loaded before the rules existed are checked by them)'
grep -v '^reject ' "$WORK/before" >"$WORK/before_kept"
show_fingerprint '1.0     ' "$WORK/before_kept"
show_fingerprint 'upgraded' "$WORK/after"
same_file "$WORK/before_kept" "$WORK/after" 'every relation, row, sequence position and source option is as it was'
is "$(val "$UP" "SELECT count(*) FROM sicoop.reject")" "$(grep '^reject ' "$WORK/before" | sed 's/.*rows=\([0-9]*\).*/\1/')" \
  'and the rejects are carried over'
is "$(val "$UP" "SELECT record_id || ' ' || rule_name || ' ' || (record->>'nome') FROM sicoop.reject")" 'ASSOC-BLANK associado_nome_not_blank    ' \
  'with the rule that now rejects them'
is "$(cards_masked "$UP" numero_cartao)" "$cards_before" \
   'raw_cartao: the same cards, their numbers now masked (the rest of each row as it was)'
numbers=$(val "$SRC" "SELECT string_agg(numero_cartao, ',') FROM cartao WHERE length(numero_cartao) > 4")
is "$(val "$UP" "SELECT count(*) FROM sicoop.raw_cartao r WHERE r.numero_cartao = ANY (string_to_array('$numbers', ','))")" 0 \
   'no full card number is left in raw'
is "$(val "$UP" "SELECT count(*) FROM pg_depend d JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid
                 WHERE d.deptype = 'e' AND c.relnamespace = 'sicoop'::regnamespace
                   AND c.relname NOT LIKE 'stage\_%' AND c.relname NOT IN ('deferred_index', 'source_day_total', 'stream_key')")" 0 \
   'no table, sequence or view of the warehouse is an extension member any more (only the scratch tables are)'

# The first run after the upgrade is the full one owed; the next is incremental; both converge
# to a from-scratch load of the same source.
q -d "$SRC" -f "$LIFE/change_again.sql" >/dev/null
ok_run 'the upgraded warehouse runs' run_pipeline "$UP" '2025-08-18 10:00:00-03'
source_rows=$(val "$SRC" "SELECT (SELECT count(*) FROM associado) + (SELECT count(*) FROM conta)
                                 + (SELECT count(*) FROM cartao) + (SELECT count(*) FROM movimentacao_cartao)")
raw_read=$(val "$UP" "SELECT rows_read FROM sicoop.run_log WHERE step = 'load_raw' ORDER BY run_id DESC LIMIT 1")
ok_if '[ "$raw_read" -ge "$source_rows" ] && [ "$(val "$UP" "SELECT full_run_owed_by IS NULL FROM sicoop.warehouse_info")" = t ]' \
  "the first run after the upgrade is the full one owed: load_raw read $raw_read of $source_rows source rows, and nothing is owed any more"
q -d "$SRC" -c "UPDATE movimentacao_cartao SET valor_movimentacao = valor_movimentacao + 1
                WHERE id_movimentacao_cartao IN (SELECT id_movimentacao_cartao FROM movimentacao_cartao
                                                 ORDER BY data_movimentacao DESC LIMIT 5)" >/dev/null
ok_run 'and runs again' run_pipeline "$UP" '2025-08-18 11:00:00-03'
echo "# upgraded run, step:read/written: $(last_run "$UP")"
raw_read=$(val "$UP" "SELECT rows_read FROM sicoop.run_log WHERE step = 'load_raw' ORDER BY run_id DESC LIMIT 1")
ok_if '[ "$raw_read" -lt $((source_rows / 5)) ]' "incrementally: load_raw read $raw_read of $source_rows source rows"
make_warehouse "$REF" "$SRC"
run_pipeline "$REF" '2025-08-18 11:00:00-03'
layers "$REF" >"$WORK/ref_layers"
layers "$UP" >"$WORK/up_layers"
same_file "$WORK/ref_layers" "$WORK/up_layers" 'every layer equals a from-scratch load (history aside)'
is "$(val "$UP" "SELECT count(*) FROM sicoop.reconciliation WHERE NOT balanced")" 0 'and every movement day balances with the source'

# A fresh install of this build, connected to the same source and run, has the same schema.
make_warehouse "$FRESH" "$SRC"
run_pipeline "$FRESH" '2025-08-18 11:00:00-03'
schema() {
  "$PGBIN/pg_dump" --schema-only "$1" | grep -v -e '^\\restrict ' -e '^\\unrestrict ' -e '^-- Dumped' >"$WORK/schema_$1"
  q -d "$1" -At -f "$LIFE/catalog.sql" >"$WORK/catalog_$1"
}
schema "$UP"
schema "$FRESH"
defaults="SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM (SELECT q::text AS t FROM sicoop.dq_rule q
          UNION ALL SELECT c::text FROM sicoop.canonical_value c) x"
is "$(val "$UP" "$defaults")" "$(val "$FRESH" "$defaults")" 'the upgrade brings the same default rules and canonical values as a fresh install'
same_file "$WORK/schema_$FRESH" "$WORK/schema_$UP" "pg_dump --schema-only: a fresh $CURRENT and an upgraded 1.0 are the same"
same_file "$WORK/catalog_$FRESH" "$WORK/catalog_$UP" \
  'the catalog: same extension members, function definitions, privileges and column order'

# The upgraded warehouse survives a dump and restore, and a DROP EXTENSION.
fingerprint "$UP" >"$WORK/up_now"
"$PGBIN/pg_dump" -Fc -f "$WORK/up.dump" "$UP"
recreate_db "$RESTORED"
ok_run 'the upgraded warehouse dumps and restores with no error' "$PGBIN/pg_restore" --exit-on-error -d "$RESTORED" "$WORK/up.dump"
fingerprint "$RESTORED" >"$WORK/up_restored"
same_file "$WORK/up_now" "$WORK/up_restored" 'and the restored copy holds the same data'
q -d "$UP" -c "DROP EXTENSION sicoop_etl"
fingerprint "$UP" >"$WORK/up_dropped"
same_file "$WORK/up_now" "$WORK/up_dropped" 'DROP EXTENSION on the upgraded install keeps every row'

# The released 1.3, as 1.3's users run it: its incremental runs ANALYZE the stage while it holds
# the source's card numbers (typed into descriptions too, which 1.3's raw keeps in clear). The
# update clears those statistics, masks raw's free text, and gives what a fresh 1.4 is.
echo "# building sicoop_etl 1.3 from $RELEASE_1_3"
mkdir -p "$WORK/v1.3"
git -C "$REPO" archive "$RELEASE_1_3" | tar -x -C "$WORK/v1.3"
make -C "$WORK/v1.3" -s -j2 >/dev/null 2>&1
as_root make -C "$WORK/v1.3" -s install ${SICOOP_PGROOT:+DESTDIR=$SICOOP_PGROOT} >/dev/null
UP13=sicoop_up13_dw
q -d "$SRC" -c "INSERT INTO movimentacao_cartao (id_movimentacao_cartao, id_cartao, descricao_movimentacao, valor_movimentacao, data_movimentacao)
                SELECT 'MOV-UP13-PAN', min(id_cartao), 'PAGTO 4111 1111 1111 1111', 9.99, '2025-08-17 09:00' FROM cartao" >/dev/null
make_warehouse "$UP13" "$SRC" 1.3
run_pipeline "$UP13" '2025-08-18 10:00:00-03'
q -d "$SRC" -c "UPDATE movimentacao_cartao SET valor_movimentacao = valor_movimentacao + 1 WHERE id_movimentacao_cartao = 'MOV-UP13-PAN'" \
  -c "UPDATE cartao SET tipo_cartao = tipo_cartao WHERE id_cartao <= 'CARTAO-00000020'" >/dev/null  # copied again, by their xmin
run_pipeline "$UP13" '2025-08-18 10:30:00-03'
# (Of the stage's text columns: a date's or a timestamp's digits, which the loads' plans keep
# statistics of, read as a long run of digits too.)
long_digit_stats="SELECT count(*) FROM pg_stats s
                    JOIN pg_attribute a ON a.attrelid = format('%I.%I', s.schemaname, s.tablename)::regclass AND a.attname = s.attname,
                    unnest(coalesce(s.most_common_vals::text::text[], '{}') || coalesce(s.histogram_bounds::text::text[], '{}')) v
                  WHERE s.schemaname = 'sicoop' AND s.tablename LIKE 'stage\_%'
                    AND a.atttypid IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype)
                    AND regexp_replace(v, '[ .:/_-]+', '', 'g') ~ '[0-9]{13,}'"
ok_if "[ \"\$(val '$UP13' \"$long_digit_stats\")\" -gt 0 ]" \
  "1.3's incremental runs left full card numbers in the stage's statistics ($(val "$UP13" "$long_digit_stats") values)"
is "$(val "$UP13" "SELECT descricao_movimentacao FROM sicoop.raw_movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-UP13-PAN'")" \
   'PAGTO 4111 1111 1111 1111' "and 1.3's raw kept a number typed into a description in clear"
install_current
ok_run 'ALTER EXTENSION sicoop_etl UPDATE from 1.3 succeeds' q -d "$UP13" -c "ALTER EXTENSION sicoop_etl UPDATE"
is "$(val "$UP13" "$long_digit_stats")" 0 'the update cleared the stage statistics that held card numbers'
is "$(val "$UP13" "SELECT count(*) FROM pg_statistic s JOIN pg_class c ON c.oid = s.starelid
                   WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relname LIKE 'stage\_%'
                     AND (SELECT a.atttypid FROM pg_attribute a WHERE a.attrelid = s.starelid AND a.attnum = s.staattnum)
                         IN ('text'::regtype, 'jsonb'::regtype)")" 0 'and every statistic of the stage'"'"'s text columns'
is "$(val "$UP13" "SELECT descricao_movimentacao FROM sicoop.raw_movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-UP13-PAN'")" \
   'PAGTO **** **** **** 1111' 'and masked the number in raw'"'"'s description'
ok_run 'the updated 1.3 warehouse runs (the full run the new rules owe)' run_pipeline "$UP13" '2025-08-18 12:00:00-03'
ok_run 'and runs again' run_pipeline "$UP13" '2025-08-18 12:30:00-03'
is "$(val "$UP13" "$long_digit_stats")" 0 'and its runs leave no card number in statistics'
schema "$UP13"
same_file "$WORK/schema_$FRESH" "$WORK/schema_$UP13" "pg_dump --schema-only: a fresh $CURRENT and an updated 1.3 are the same"
same_file "$WORK/catalog_$FRESH" "$WORK/catalog_$UP13" 'and so is the catalog'
drop_db "$UP13"
# A 1.3 install that never connected a source has no warehouse yet: the update changes the
# extension only, and the first connect_source makes a 1.5 warehouse.
BARE13=sicoop_up13_bare
recreate_db "$BARE13"
q -d "$BARE13" -c "SET client_min_messages = warning" -c "CREATE EXTENSION sicoop_etl VERSION '1.3' CASCADE" >/dev/null
ok_run "a 1.3 install with no warehouse yet updates to $CURRENT" q -d "$BARE13" -c "ALTER EXTENSION sicoop_etl UPDATE"
q -d "$BARE13" -o /dev/null -c "SET client_min_messages = warning" -c "SELECT sicoop.connect_source('localhost', $PGPORT, '$SRC', 'postgres')"
is "$(val "$BARE13" "SELECT layout_version FROM sicoop.warehouse_info")" "$CURRENT" "and connect_source then makes a $CURRENT warehouse"
drop_db "$BARE13"
q -d "$SRC" -c "DELETE FROM movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-UP13-PAN'" >/dev/null

# A released version (1.5, 1.6), with data, an operator, and a stream's state (a stream that
# ran, then was stopped: its slot and applied position kept): the update keeps every row, the
# stream's position included, and gives what a fresh install of this build is (schema and
# catalog), guard included.
update_from_release() {  # update_from_release <version> <commit>
  local v=$1 commit=$2 db=sicoop_up${1//./}_dw
  echo "# building sicoop_etl $v from $commit"
  mkdir -p "$WORK/v$v"
  git -C "$REPO" archive "$commit" | tar -x -C "$WORK/v$v"
  make -C "$WORK/v$v" -s -j2 >/dev/null 2>&1
  as_root make -C "$WORK/v$v" -s install ${SICOOP_PGROOT:+DESTDIR=$SICOOP_PGROOT} >/dev/null
  make_warehouse "$db" "$SRC" "$v"
  run_pipeline "$db" '2025-08-18 10:00:00-03'
  q -d "$db" -c "INSERT INTO sicoop.stream_state (slot_name, publication, wanted, state, applied_lsn, received_lsn, changes_applied,
                   transactions_applied, batches_applied, last_commit_time, started_by, started_at, stopped_at)
                 VALUES ('sicoop_stream', 'sicoop_stream', false, 'stopped', '0/1A2B3C4D', '0/1A2B3C4D', 1234, 56, 7,
                         '2025-08-18 09:59:00-03', current_user, '2025-08-18 09:00:00-03', '2025-08-18 10:00:00-03')" >/dev/null
  fingerprint "$db" | grep -v -e '^warehouse_info ' -e '^stream_state ' >"$WORK/before$v"
  local stream="SELECT concat_ws(' ', slot_name, publication, wanted, state, applied_lsn, changes_applied, transactions_applied, batches_applied) FROM sicoop.stream_state"
  local stream_before
  stream_before=$(val "$db" "$stream")
  install_current
  ok_run "ALTER EXTENSION sicoop_etl UPDATE from $v (data, a stream's state) succeeds" q -d "$db" -c "ALTER EXTENSION sicoop_etl UPDATE"
  fingerprint "$db" | grep -v -e '^warehouse_info ' -e '^stream_state ' >"$WORK/after$v"
  same_file "$WORK/before$v" "$WORK/after$v" "every relation, row, sequence position and source option of the $v warehouse is as it was"
  is "$(val "$db" "$stream")" "$stream_before" "and the stream's state: its slot, its applied position, its counts"
  is "$(val "$db" "SELECT layout_version FROM sicoop.warehouse_info")" "$CURRENT" "and its data is marked as layout $CURRENT"
  is "$(val "$db" "SELECT count(*) FROM pg_event_trigger WHERE evtname = 'sicoop_guard' AND evtenabled = 'O'")" 1 \
     'the update brings the guard, or keeps it'
  ok_run "the updated $v warehouse runs" run_pipeline "$db" '2025-08-18 12:00:00-03'
  schema "$db"
  same_file "$WORK/schema_$FRESH" "$WORK/schema_$db" "pg_dump --schema-only: a fresh $CURRENT and an updated $v are the same"
  same_file "$WORK/catalog_$FRESH" "$WORK/catalog_$db" 'and so is the catalog'
  drop_db "$db"
}
update_from_release 1.5 "$RELEASE_1_5"
update_from_release 1.6 "$RELEASE_1_6"

# 1.12 makes the movements' BRIN indexes again with 4 pages per range (no autosummarize). A 1.11 warehouse caught
# in its first load (raw's indexes deferred, waiting in sicoop.deferred_index) gets the new
# definitions there, and the load builds them; trusted's, in place, is made again.
DEF=sicoop_up_deferred_dw
brin_ranges="SELECT string_agg(c.relname || '=' || coalesce(array_to_string(c.reloptions, ','), ''), ' ' ORDER BY c.relname)
             FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.relnamespace = 'sicoop'::regnamespace AND a.amname = 'brin'"
make_warehouse "$DEF" "$SRC" 1.11
q -d "$DEF" -c "SELECT sicoop._defer_indexes('sicoop.raw_movimentacao_cartao')" >/dev/null
ok_run "a 1.11 warehouse with raw's indexes deferred updates to $CURRENT" q -d "$DEF" -c "ALTER EXTENSION sicoop_etl UPDATE"
is "$(val "$DEF" "SELECT count(*) FROM sicoop.deferred_index WHERE definition LIKE '%USING brin%pages_per_range=''4''%'")" 2 \
   'the deferred BRIN definitions are the 4-page ones'
is "$(val "$DEF" "$brin_ranges")" 'trusted_movimentacao_cartao_run=pages_per_range=4' \
   'and only trusted'"'"'s BRIN index exists until the load, with 4-page ranges'
ok_run 'the first load runs' run_pipeline "$DEF" '2025-08-18 10:00:00-03'
is "$(val "$DEF" "$brin_ranges")" \
   'raw_movimentacao_cartao_data=pages_per_range=4 raw_movimentacao_cartao_run=pages_per_range=4 trusted_movimentacao_cartao_run=pages_per_range=4' \
   'and builds raw'"'"'s with 4-page ranges too'
drop_db "$DEF"

# An operator's warehouse (made by grant_operator under 1.1) stays the operator's through the
# update: the new tables are its own, it may run the new functions, runs the pipeline, and
# revoke_operator takes the warehouse back (the handover record follows the new definition).
OPDB=sicoop_up_operator_dw
recreate_db "$OPDB"
q -d postgres -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sicoop_up_operator') THEN CREATE ROLE sicoop_up_operator LOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sicoop_test_source_reader') THEN
    CREATE ROLE sicoop_test_source_reader LOGIN PASSWORD 'reader-pw';
  END IF; END \$\$" >/dev/null
q -d "$SRC" -c "GRANT SELECT ON ALL TABLES IN SCHEMA public TO sicoop_test_source_reader" >/dev/null
q -d "$OPDB" -c "SET client_min_messages = warning" -c "CREATE EXTENSION sicoop_etl VERSION '1.1' CASCADE" \
  -c "SELECT sicoop.grant_operator('sicoop_up_operator')" >/dev/null
ok_run "an operator's 1.1 warehouse updates to $CURRENT" q -d "$OPDB" -c "ALTER EXTENSION sicoop_etl UPDATE"
is "$(val "$OPDB" "SELECT string_agg(c.relname, ', ' ORDER BY c.relname) FROM pg_class c
                   WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relkind IN ('r', 'v', 'S', 'f')
                     AND c.relowner <> 'sicoop_up_operator'::regrole")" '' \
   'every relation of the warehouse, the new ones included, is the operator'"'"'s'
ok_run "the operator connects the source and runs the pipeline on $CURRENT" \
  q -d "$OPDB" -U sicoop_up_operator -o /dev/null -c "SET client_min_messages = warning" \
    -c "SELECT sicoop.connect_source('localhost', $PGPORT, '$SRC', 'sicoop_test_source_reader', 'reader-pw')" \
    -c "CALL sicoop.run_pipeline()"
is "$(val "$OPDB" "SELECT count(*) > 0 FROM sicoop.dq_result")" t 'its run applied the data-quality rules'
ok_run 'revoke_operator takes the updated warehouse back' q -d "$OPDB" -o /dev/null -c "SELECT sicoop.revoke_operator('sicoop_up_operator')"
drop_db "$OPDB"
q -d "$SRC" -c "REVOKE SELECT ON ALL TABLES IN SCHEMA public FROM sicoop_test_source_reader" >/dev/null
q -d postgres -c "DROP ROLE sicoop_up_operator" >/dev/null

for db in "$UP" "$FRESH" "$REF" "$RESTORED" "$SRC"; do drop_db "$db"; done
finish
