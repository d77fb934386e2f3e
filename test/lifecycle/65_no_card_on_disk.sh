#!/usr/bin/env bash
# No full card number is ever written by the warehouse (issue 24, finding 3): not in a live row,
# not in a dead one, not in the WAL, not in the stage -- in every path that lands source rows:
# a first load (the direct copy into raw), an incremental run, a full check, a rebuild, a stream
# batch, and a stream batch that fails after its stage rows were written (a lock timeout).
# The source is a cluster of its own (PGPORT+15), so the warehouse cluster's WAL holds nothing
# of the source's inserts. Each path loads new card numbers, in every form the masking knows
# (plain, Luhn-valid, separated by spaces, dashes, dots, commas, ';', '|', '+', '~', '#', in
# parentheses, full-width digits, zero-width joiners), in numero_cartao, in descriptions, in
# names, and one as a movement's key. After each path and a CHECKPOINT, for every form of every
# number and its plain digits (fixed strings, bytes):
#   - no page of any relation of the warehouse database holds one (pageinspect, through the
#     buffer manager: dirty and unlogged pages -- the stage -- included);
#   - no file of the warehouse database's directory (base/<oid>/) holds one;
#   - no WAL segment written since the test began holds one.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DW=sicoop_nocard_dw
SRC_PORT=$((PGPORT + 15))
SRC_DIR=$(new_cluster_dir sicoop_nocard_src)
as_reader() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@" 2>/dev/null || "$@"; fi; }
src() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h localhost -p "$SRC_PORT" -d nocard_src "$@"; }
LOCKER=
cleanup() {
  [ -n "$LOCKER" ] && kill "$LOCKER" 2>/dev/null || true
  end_stream "$DW"
  drop_db "$DW"
  stop_source_cluster "$SRC_DIR"
  rm -rf "$WORK"
}
trap cleanup EXIT
drop_db "$DW"

# The WAL from here on is what this test looks at.
WAL_START=$(val postgres "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
DATA_DIR=$(val postgres "SHOW data_directory")
# Card numbers of this run only (so a WAL segment recycled from an earlier run cannot match).
SALT=$(printf '%06d' $(( 10#$(date +%s%N | cut -c8-16) % 1000000 )))

start_source_cluster "$SRC_DIR" "$SRC_PORT" nocard_src 500
src -c "CREATE INDEX ON movimentacao_cartao (data_movimentacao)"
# The numbers and their forms, at the source: path p, place k (1 numero_cartao, 2 a printed
# name, 3 a description, 4 a member's name), form f; and path p's key.
src >/dev/null <<SQL
CREATE TABLE nocard_number (p int, k int, f int, number text, form text);
CREATE FUNCTION luhn(body text) RETURNS text LANGUAGE sql AS \$\$
  SELECT body || ((10 - sum(CASE WHEN (length(body) - i) % 2 = 0 THEN (d * 2) % 10 + (d * 2) / 10 ELSE d END) % 10) % 10)::text
  FROM (SELECT i, substr(body, i, 1)::int AS d FROM generate_series(1, length(body)) i) x \$\$;
CREATE FUNCTION form(n text, f int) RETURNS text LANGUAGE sql AS \$\$
  SELECT CASE WHEN f = 0 THEN n
              WHEN f <= 10 THEN array_to_string(ARRAY[substr(n, 1, 4), substr(n, 5, 4), substr(n, 9, 4), substr(n, 13, 4)],
                                                (ARRAY[' ', '-', '.', ',', ';', '|', '+', '~', '#', U&'\200D'])[f])
              WHEN f = 11 THEN '(' || substr(n, 1, 4) || ')(' || substr(n, 5, 4) || ')(' || substr(n, 9, 4) || ')(' || substr(n, 13, 4) || ')'
              ELSE translate(n, '0123456789', U&'\FF10\FF11\FF12\FF13\FF14\FF15\FF16\FF17\FF18\FF19') END \$\$;
INSERT INTO nocard_number
SELECT p, k, f, n, form(n, f)
FROM generate_series(1, 6) p, generate_series(1, 4) k, generate_series(0, 12) f,
     LATERAL (SELECT luhn('4' || p || k || lpad(f::text, 2, '0') || '$SALT' || '4242') AS n) x;
INSERT INTO nocard_number
SELECT p, 0, 0, n, n FROM generate_series(1, 6) p, LATERAL (SELECT luhn('5' || p || '99' || '$SALT' || '7' || p || '777') AS n) x;
-- Path p's rows: cards, movements and members holding its numbers, and a movement keyed by one.
CREATE FUNCTION add_path(path int) RETURNS void LANGUAGE sql AS \$\$
  INSERT INTO associado (id_associado, nome, data_nascimento, estado_civil, escolaridade)
  SELECT 'NC-A-' || path || '-' || f, 'JOAO ' || form, date '1980-01-01', 'CASADO', 'ENSINO MEDIO' FROM nocard_number WHERE p = path AND k = 4;
  INSERT INTO cartao (id_cartao, id_conta, numero_cartao, nome_impresso_cartao, bandeira_cartao, tipo_cartao, data_emissao)
  SELECT 'NC-C-' || path || '-' || a.f, (SELECT min(id_conta) FROM conta), a.form, 'CARD ' || b.form, 'VISA', 'CREDITO', date '2024-01-01'
  FROM nocard_number a JOIN nocard_number b ON b.p = a.p AND b.f = a.f AND b.k = 2 WHERE a.p = path AND a.k = 1;
  INSERT INTO movimentacao_cartao
  SELECT 'NC-M-' || path || '-' || f, 'NC-C-' || path || '-' || f, 'PAGTO ' || form || ' LOJA', 10 + f, now()::timestamp
  FROM nocard_number WHERE p = path AND k = 3;
  INSERT INTO movimentacao_cartao
  SELECT number, 'NC-C-' || path || '-0', 'CHAVE', 1, now()::timestamp FROM nocard_number WHERE p = path AND k = 0;
\$\$;
SQL
# What is looked for: every form and every plain number (fixed strings).
src -Atc "SELECT DISTINCT form FROM nocard_number UNION SELECT DISTINCT number FROM nocard_number" >"$WORK/patterns"
ok_if "[ $(wc -l <"$WORK/patterns") = 606 ]" 'the test looks for 606 strings: 13 forms of 4 x 6 numbers, their plain digits, 6 keys'

q -d postgres -c "CREATE DATABASE $DW" >/dev/null
q -d "$DW" -c "SET client_min_messages = warning" -c "CREATE EXTENSION sicoop_etl CASCADE" -c "CREATE EXTENSION pageinspect" \
  -c "SELECT sicoop.connect_source('localhost', $SRC_PORT, 'nocard_src', 'postgres')" >/dev/null
DB_DIR="$DATA_DIR/$(val "$DW" "SELECT 'base/' || oid FROM pg_database WHERE datname = current_database()")"
# Every page of every relation of schema sicoop (its indexes and TOAST too), as the buffer
# manager has it -- dirty pages and the unlogged stage's, which no checkpoint writes -- searched
# for the patterns (given in hex: the query text holds no number). A table another session holds
# exclusively is skipped (the stream's failed batch); its file is grepped all the same.
q -d "$DW" >/dev/null <<'SQL'
CREATE FUNCTION public.nocard_pages_holding(hex text[]) RETURNS TABLE (rel text, hits bigint)
LANGUAGE plpgsql AS $$
DECLARE r record; page bytea; n bigint; pats bytea[] := ARRAY(SELECT decode(h, 'hex') FROM unnest(hex) h);
BEGIN
  FOR r IN SELECT c.oid::regclass::text AS name, c.oid FROM pg_class c
           WHERE c.relkind IN ('r', 'i', 't', 'S')
             AND (c.relnamespace = 'sicoop'::regnamespace
                  OR c.oid IN (SELECT t.reltoastrelid FROM pg_class t WHERE t.relnamespace = 'sicoop'::regnamespace)
                  OR c.oid IN (SELECT i.indexrelid FROM pg_index i JOIN pg_class t ON t.reltoastrelid = i.indrelid
                               WHERE t.relnamespace = 'sicoop'::regnamespace))
             AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.relation = c.oid AND l.mode = 'AccessExclusiveLock'
                                                       AND l.pid <> pg_backend_pid())
  LOOP
    n := 0;
    FOR b IN 0 .. pg_relation_size(r.oid) / 8192 - 1 LOOP
      page := get_raw_page(r.name, 'main', b::int);
      n := n + (SELECT count(*) FROM unnest(pats) p WHERE position(p IN page) > 0);
    END LOOP;
    IF n > 0 THEN rel := r.name; hits := n; RETURN NEXT; END IF;
  END LOOP;
END $$;
SQL
HEX_PATTERNS=$(while IFS= read -r p; do printf "'%s'\n" "$(printf '%s' "$p" | od -An -tx1 | tr -d ' \n')"; done <"$WORK/patterns" | paste -sd,)

# After a path: a checkpoint, then pages, files and WAL.
no_card_anywhere() {  # no_card_anywhere <path>
  q -d "$DW" -c "CHECKPOINT" >/dev/null
  local pages
  pages=$(val "$DW" "SET lock_timeout = '2s'; SELECT coalesce(string_agg(rel || ':' || hits, ' '), '') FROM public.nocard_pages_holding(ARRAY[$HEX_PATTERNS])")
  is "$pages" "" "$1: no page of the warehouse database holds a card number (stage and dead tuples included)"
  local files
  files=$(as_reader find "$DB_DIR" -type f -exec env LC_ALL=C grep -l -a -F -f "$WORK/patterns" {} + 2>/dev/null | tr '\n' ' ' || true)
  is "$files" "" "$1: no file of the warehouse database holds a card number"
  local segments
  segments=$(cd "$DATA_DIR/pg_wal" && as_reader ls | grep -E '^[0-9A-F]{24}$' | awk -v s="$WAL_START" '$0 >= s' |
             xargs -r env LC_ALL=C grep -l -a -F -f "$WORK/patterns" 2>/dev/null | tr '\n' ' ' || true)
  is "$segments" "" "$1: no WAL segment written since the test began holds a card number"
}
count() { val "$DW" "$1"; }

# 1. A first load: the direct copy into raw (associado, conta, movements), the stage (cards).
src -c "SELECT add_path(1)" >/dev/null
run_pipeline "$DW" "$(date '+%Y-%m-%d %H:%M:%S%z')"
is "$(count "SELECT count(*) FROM sicoop.raw_movimentacao_cartao WHERE id_movimentacao_cartao LIKE 'NC-M-1-%' AND descricao_movimentacao LIKE 'PAGTO %*%'")" 13 \
   'first load: the movements with card numbers in their descriptions are in raw, masked'
is "$(count "SELECT count(*) FROM sicoop.raw_cartao WHERE id_cartao LIKE 'NC-C-1-%' AND numero_cartao LIKE '%*%'")" 13 \
   'first load: the cards are in raw, masked'
is "$(count "SELECT count(*) FROM sicoop.reject WHERE table_name = 'movimentacao_cartao' AND rule_name = 'movimentacao_id_no_card_number'")" 1 \
   'first load: the movement keyed by a card number is rejected by the key rule (masked)'
is "$(count "SELECT count(*) FROM sicoop.raw_associado WHERE id_associado LIKE 'NC-A-1-%' AND nome LIKE 'JOAO %*%'")" 13 \
   'first load: names holding card numbers are in raw, masked'
no_card_anywhere 'first load'

# 2. An incremental run with new such rows.
src -c "SELECT add_path(2)" >/dev/null
run_pipeline "$DW" "$(date '+%Y-%m-%d %H:%M:%S%z')"
is "$(count "SELECT count(*) FROM sicoop.raw_movimentacao_cartao WHERE id_movimentacao_cartao LIKE 'NC-M-2-%'")" 13 'incremental: loaded'
no_card_anywhere 'incremental run'

# 3. A full check (the comparison by checksums: the rows of the buckets that differ).
src -c "SELECT add_path(3)" >/dev/null
run_pipeline "$DW" "$(date '+%Y-%m-%d %H:%M:%S%z')" true
is "$(count "SELECT count(*) FROM sicoop.raw_cartao WHERE id_cartao LIKE 'NC-C-3-%'")" 13 'full check: loaded'
no_card_anywhere 'full check'

# 4. A rebuild (every row copied again).
src -c "SELECT add_path(4)" >/dev/null
q -d "$DW" -c "SET client_min_messages = warning" -c "SET sicoop.full_run = 'rebuild'" \
  -c "SET sicoop.as_of = '$(date '+%Y-%m-%d %H:%M:%S%z')'" -c "CALL sicoop.run_pipeline(true)" >/dev/null
is "$(count "SELECT count(*) FROM sicoop.raw_associado WHERE id_associado LIKE 'NC-A-4-%'")" 13 'rebuild: loaded'
no_card_anywhere 'rebuild'

# 5. A stream batch. (The worker's lock waits are short, for the failed batch below.)
q -d postgres -c "ALTER DATABASE $DW SET lock_timeout = '500ms'" >/dev/null
val "$DW" "SELECT sicoop.start_stream('sicoop_nocard')" >/dev/null
state() { val "$DW" "SELECT state FROM sicoop.stream_status()"; }
wait_for() {  # wait_for <seconds> <sql that returns t>
  for _ in $(seq $(($1 * 10))); do [ "$(val "$DW" "$2" 2>/dev/null)" = t ] && return 0; sleep 0.1; done
  return 1
}
ok_run 'stream: it starts and streams' wait_for 60 "SELECT state = 'streaming' FROM sicoop.stream_status()"
src -c "SELECT add_path(5)" >/dev/null
ok_run 'stream: a batch applies the new rows' \
  wait_for 60 "SELECT count(*) = 13 FROM sicoop.raw_movimentacao_cartao WHERE id_movimentacao_cartao LIKE 'NC-M-5-%'"
is "$(count "SELECT count(*) FROM sicoop.reject WHERE rule_name = 'movimentacao_id_no_card_number' AND record_id = '************' || '$(src -Atc "SELECT right(number, 4) FROM nocard_number WHERE p = 5 AND k = 0")'")" 1 \
   'stream: its movement keyed by a card number is rejected too, its key masked'
no_card_anywhere 'stream batch'

# 6. A stream batch that fails after its stage rows were written: raw_cartao held exclusively,
#    the batch's merge times out on the lock (55P03), the batch rolls back, and the worker retries.
(q -d "$DW" -c "BEGIN" -c "LOCK TABLE sicoop.raw_cartao IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep(8)" -c "COMMIT" >/dev/null 2>&1) &
LOCKER=$!
wait_for 5 "SELECT count(*) > 0 FROM pg_locks WHERE relation = 'sicoop.raw_cartao'::regclass AND mode = 'AccessExclusiveLock' AND granted" || true
src -c "SELECT add_path(6)" >/dev/null
# (stream_state itself: stream_status() says 'not running' while the postmaster waits to start
# the worker again, most of the 5 s the state is 'reconnecting')
ok_run 'failed batch: the batch fails on the lock (the stream reconnects)' \
  wait_for 6 "SELECT state = 'reconnecting' AND error_sqlstate = '55P03' FROM sicoop.stream_state"
no_card_anywhere 'failed stream batch'
wait "$LOCKER" 2>/dev/null || true
LOCKER=
ok_run 'failed batch: once the lock is gone the batch applies' \
  wait_for 60 "SELECT count(*) = 13 FROM sicoop.raw_cartao WHERE id_cartao LIKE 'NC-C-6-%'"
no_card_anywhere 'the failed batch retried'
is "$(count "SELECT count(*) FROM sicoop.raw_cartao WHERE numero_cartao !~ '^\\*+.{1,4}$' AND id_cartao LIKE 'NC-%'")" 0 \
   'every card of the test is in raw masked'
val "$DW" "SELECT sicoop.stop_stream()" >/dev/null
finish
