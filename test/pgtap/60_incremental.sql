-- Incremental correctness: after generated sequences of source inserts, updates and deletes,
-- interleaved with incremental runs, the warehouse equals a from-scratch load of the same
-- source (surrogate key values aside), in every layer. The from-scratch load is a second
-- warehouse database (<this database>_ref), rebuilt after every round.
--
-- The sequences are pseudo-random but reproducible (setseed). They touch every table: new,
-- edited and deleted members, accounts moved to other members, cards moved to other accounts,
-- rows pointing at missing parents, new movements, movements edited (amount, description, card,
-- time) or deleted within the incremental window (sicoop.lookback). What the window cannot see
-- (an edit older than it) is shown to be caught by a full run.
--
-- What only history explains is left out of the comparison: SCD2 versions other than the
-- current one, and the card, account or member a movement points to once that row left the
-- source (the warehouse keeps dimension rows and the member version valid then; a fresh load
-- never saw them).
\ir helpers/reset.sql
\set rounds 8
\set ops 40
SELECT plan(8 * 8 + 19);

SELECT current_database() || '_ref' AS refdb \gset
SELECT format('host=localhost port=%s dbname=%s user=%s', :'pgport', :'refdb', current_user) AS refconn \gset
SELECT format('host=localhost port=%s dbname=postgres user=%s', :'pgport', current_user) AS adminconn \gset
\o /dev/null
SELECT dblink_exec(:'adminconn', format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'refdb'));
SELECT dblink_exec(:'adminconn', format('CREATE DATABASE %I', :'refdb'));
-- Any sequence must be possible, orphans included: the source loses its foreign keys.
SELECT dblink_exec(:'srcconn', $$
  ALTER TABLE conta DROP CONSTRAINT conta_id_associado_fkey;
  ALTER TABLE cartao DROP CONSTRAINT cartao_id_conta_fkey;
  ALTER TABLE movimentacao_cartao DROP CONSTRAINT movimentacao_cartao_id_cartao_fkey$$);
\o

-- One id from the source's table, chosen by the seeded local random().
CREATE FUNCTION pg_temp.pick(conn text, query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  ids text[];
BEGIN
  SELECT array_agg(id ORDER BY id) INTO ids FROM dblink(conn, query) AS t(id text);
  IF ids IS NULL THEN RETURN NULL; END IF;
  RETURN ids[1 + floor(random() * array_length(ids, 1))::int];
END
$$;

-- Deletes one row of the source's <tbl> (key column <key>), picked among <query>'s ids.
CREATE FUNCTION pg_temp.delete_one(conn text, tbl text, key text, query text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  id text := pg_temp.pick(conn, query);
BEGIN
  IF id IS NOT NULL THEN
    PERFORM dblink_exec(conn, format('DELETE FROM %s WHERE %s = %L', tbl, key, id));
  END IF;
END
$$;

-- One round of `ops` random changes to the source.
CREATE FUNCTION pg_temp.random_round(conn text, round int, ops int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  r float8;
  id text;
  other text;
  newest timestamp;
  civil text[] := ARRAY['solteira', 'Casado ', 'DIVORCIADO', 'viúvo', ' casada'];
  school text[] := ARRAY[' Ensino superior Completo', 'Ensino Medio', 'pós-graduação', 'ENSINO FUNDAMENTAL'];
  names text[] := ARRAY['Ana Silva', 'joão  de souza', 'Conceição Araújo', 'JOSÉ', 'Lúcia Gonçalves Lima'];
BEGIN
  FOR i IN 1..ops LOOP
    r := random();
    SELECT t INTO newest FROM dblink(conn, 'SELECT max(data_movimentacao) FROM movimentacao_cartao') AS x(t timestamp);
    IF r < 0.08 THEN
      PERFORM dblink_exec(conn, format('INSERT INTO associado VALUES (%L, %L, %L, %L, %L)',
        format('GEN-A-%s-%s', round, i), names[1 + floor(random() * 5)::int],
        date '1960-01-01' + floor(random() * 20000)::int, civil[1 + floor(random() * 5)::int],
        school[1 + floor(random() * 4)::int]));
    ELSIF r < 0.16 THEN
      id := pg_temp.pick(conn, 'SELECT id_associado FROM associado');
      PERFORM dblink_exec(conn, format('UPDATE associado SET %s WHERE id_associado = %L',
        (ARRAY[format('estado_civil = %L', civil[1 + floor(random() * 5)::int]),
               format('escolaridade = %L', school[1 + floor(random() * 4)::int]),
               format('nome = %L', names[1 + floor(random() * 5)::int]),
               format('data_nascimento = %L', date '1960-01-01' + floor(random() * 20000)::int)])[1 + floor(random() * 4)::int],
        id));
    ELSIF r < 0.20 THEN
      PERFORM pg_temp.delete_one(conn, 'associado', 'id_associado', 'SELECT id_associado FROM associado');
    ELSIF r < 0.26 THEN
      other := CASE WHEN random() < 0.85 THEN pg_temp.pick(conn, 'SELECT id_associado FROM associado') ELSE 'NO-SUCH-MEMBER' END;
      PERFORM dblink_exec(conn, format('INSERT INTO conta VALUES (%L, %L, %L, %L, %L, %L)',
        format('GEN-C-%s-%s', round, i), other, (ARRAY['Corrente', 'poupança ', 'Salário'])[1 + floor(random() * 3)::int],
        '001-' || floor(random() * 9)::int, 'Ativa', date '2020-01-01' + floor(random() * 1500)::int));
    ELSIF r < 0.32 THEN
      id := pg_temp.pick(conn, 'SELECT id_conta FROM conta');
      other := pg_temp.pick(conn, 'SELECT id_associado FROM associado');
      PERFORM dblink_exec(conn, format('UPDATE conta SET %s WHERE id_conta = %L',
        CASE WHEN random() < 0.5 THEN format('id_associado = %L', other) ELSE 'tipo_conta = ''  Poupança''' END, id));
    ELSIF r < 0.35 THEN
      PERFORM pg_temp.delete_one(conn, 'conta', 'id_conta', 'SELECT id_conta FROM conta');
    ELSIF r < 0.41 THEN
      other := CASE WHEN random() < 0.85 THEN pg_temp.pick(conn, 'SELECT id_conta FROM conta') ELSE 'NO-SUCH-ACCOUNT' END;
      PERFORM dblink_exec(conn, format('INSERT INTO cartao VALUES (%L, %L, %L, %L, %L, %L, %L)',
        format('GEN-K-%s-%s', round, i), other, lpad(floor(random() * 1e8)::text, 16, '4'),
        'nome ' || i, 'Visa', 'Crédito', date '2022-01-01' + floor(random() * 900)::int));
    ELSIF r < 0.47 THEN
      id := pg_temp.pick(conn, 'SELECT id_cartao FROM cartao');
      other := pg_temp.pick(conn, 'SELECT id_conta FROM conta');
      PERFORM dblink_exec(conn, format('UPDATE cartao SET %s WHERE id_cartao = %L',
        CASE WHEN random() < 0.5 THEN format('id_conta = %L', other) ELSE format('numero_cartao = %L', floor(random() * 1e6)::text) END, id));
    ELSIF r < 0.50 THEN
      PERFORM pg_temp.delete_one(conn, 'cartao', 'id_cartao', 'SELECT id_cartao FROM cartao');
    ELSIF r < 0.75 THEN
      other := CASE WHEN random() < 0.9 THEN pg_temp.pick(conn, 'SELECT id_cartao FROM cartao') ELSE 'NO-SUCH-CARD' END;
      PERFORM dblink_exec(conn, format('INSERT INTO movimentacao_cartao VALUES (%L, %L, %L, %s, %L)',
        format('GEN-M-%s-%s', round, i), other, (ARRAY['Padaria  Pão Quente', ' posto ipiranga', 'Farmácia'])[1 + floor(random() * 3)::int],
        round((random() * 500)::numeric, 2), newest - interval '1 day' + random() * interval '26 hours'));
    ELSIF r < 0.90 THEN
      -- An edit inside the window (the last day and a half: well within the 3-day lookback).
      id := pg_temp.pick(conn, format('SELECT id_movimentacao_cartao FROM movimentacao_cartao WHERE data_movimentacao > %L',
                                      newest - interval '36 hours'));
      other := pg_temp.pick(conn, 'SELECT id_cartao FROM cartao');
      CONTINUE WHEN id IS NULL;
      PERFORM dblink_exec(conn, format('UPDATE movimentacao_cartao SET %s WHERE id_movimentacao_cartao = %L',
        (ARRAY[format('valor_movimentacao = %s', round((random() * 500)::numeric, 2)),
               'descricao_movimentacao = ''Estorno  parcial''',
               format('id_cartao = %L', other),
               format('data_movimentacao = data_movimentacao - interval ''%s minutes''', floor(random() * 600)::int)])[1 + floor(random() * 4)::int],
        id));
    ELSE
      PERFORM pg_temp.delete_one(conn, 'movimentacao_cartao', 'id_movimentacao_cartao',
                                 format('SELECT id_movimentacao_cartao FROM movimentacao_cartao WHERE data_movimentacao > %L',
                                        newest - interval '36 hours'));
    END IF;
  END LOOP;
END
$$;

\ir helpers/layer_query.sql

-- Rebuilds the reference warehouse from scratch, at the same reference time.
CREATE FUNCTION pg_temp.rebuild_reference(refconn text, pgport text, srcdb text, as_of text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM dblink_connect('ref', refconn);
  PERFORM dblink_exec('ref', 'SET client_min_messages = warning');
  PERFORM dblink_exec('ref', 'DROP EXTENSION IF EXISTS sicoop_etl CASCADE');
  PERFORM dblink_exec('ref', 'DROP SCHEMA IF EXISTS sicoop CASCADE');
  PERFORM dblink_exec('ref', 'DROP SERVER IF EXISTS sicoop_source CASCADE');
  PERFORM dblink_exec('ref', 'CREATE EXTENSION sicoop_etl CASCADE');
  PERFORM * FROM dblink('ref', format('SELECT sicoop.connect_source(%L, %s, %L, current_user)', 'localhost', pgport, srcdb))
    AS t(connected text);
  PERFORM dblink_exec('ref', 'SET timezone = ''America/Sao_Paulo''');
  PERFORM dblink_exec('ref', format('SET sicoop.as_of = %L', as_of));
  PERFORM dblink_exec('ref', 'CALL sicoop.run_pipeline()');
  PERFORM dblink_disconnect('ref');
END
$$;

CREATE FUNCTION pg_temp.compare_all(refconn text, round int) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
  layer text;
BEGIN
  FOREACH layer IN ARRAY ARRAY['trusted_associado', 'trusted_conta', 'trusted_cartao', 'trusted_movimentacao_cartao',
                               'dim_conta', 'dim_cartao', 'dim_associado', 'fato'] LOOP
    RETURN NEXT set_eq(pg_temp.layer_query(layer),
                       format('SELECT r FROM dblink(%L, %L) AS t(r text)', refconn, pg_temp.layer_query(layer)),
                       format('round %s: %s equals a from-scratch load', round, layer));
  END LOOP;
END
$$;

SELECT setseed(0.4242);

\set round 1
\ir helpers/incremental_round.sql
\set round 2
\ir helpers/incremental_round.sql
\set round 3
\ir helpers/incremental_round.sql
\set round 4
\ir helpers/incremental_round.sql
\set round 5
\ir helpers/incremental_round.sql
\set round 6
\ir helpers/incremental_round.sql
\set round 7
\ir helpers/incremental_round.sql
\set round 8
\ir helpers/incremental_round.sql

-- dim_data stays contiguous from the first to the last movement day, gaps filled (a movement
-- some days after all the others must not leave the days in between out).
\o /dev/null
SELECT dblink_exec(:'srcconn', $$INSERT INTO movimentacao_cartao VALUES ('MOV-GAP', 'CARTAO-202', 'later', 3.00, '2025-08-25 12:00')$$);
\o
SET sicoop.as_of = '2025-08-17 09:00:00-03';
CALL sicoop.run_pipeline();
SELECT is((SELECT (max(data) - min(data) + 1 - count(*))::int FROM sicoop.dim_data WHERE sk_data <> -1), 0,
          'dim_data covers every day between its first and last, with no gap');

-- A movement dated far in the future does not hide the new ones from the window.
\o /dev/null
SELECT dblink_exec(:'srcconn', $$INSERT INTO movimentacao_cartao VALUES ('MOV-FUTURE', 'CARTAO-201', 'typo', 1.00, '2099-01-01 00:00')$$);
\o
SET sicoop.as_of = '2025-08-17 10:00:00-03';
CALL sicoop.run_pipeline();
\o /dev/null
SELECT dblink_exec(:'srcconn', $$INSERT INTO movimentacao_cartao VALUES ('MOV-AFTER-FUTURE', 'CARTAO-201', 'new', 2.00, '2025-08-17 09:00')$$);
\o
SET sicoop.as_of = '2025-08-17 11:00:00-03';
CALL sicoop.run_pipeline();
SELECT ok(EXISTS (SELECT 1 FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-AFTER-FUTURE'),
          'a new movement is loaded after a future-dated one raised the watermark');

-- Beyond the window: the source's count and sum per movement day (read in the load's
-- snapshot) show which older days changed, and an incremental run reads those days whole.
SET sicoop.lookback = '1 hour';
SET sicoop.as_of = '2025-08-17 12:00:00-03';
SELECT id AS old_edit, v AS old_value
FROM dblink(:'srcconn', 'SELECT id_movimentacao_cartao, valor_movimentacao FROM movimentacao_cartao
                         ORDER BY data_movimentacao, id_movimentacao_cartao LIMIT 1') AS t(id text, v numeric) \gset
SELECT id AS old_delete
FROM dblink(:'srcconn', 'SELECT id_movimentacao_cartao FROM movimentacao_cartao
                         ORDER BY data_movimentacao, id_movimentacao_cartao OFFSET 1 LIMIT 1') AS t(id text) \gset
\o /dev/null
SELECT dblink_exec(:'srcconn', format('UPDATE movimentacao_cartao SET valor_movimentacao = 999.99 WHERE id_movimentacao_cartao = %L', :'old_edit'));
\o
CALL sicoop.run_pipeline();
SELECT is((SELECT valor_movimentacao FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = :'old_edit'), 999.99,
          'an incremental run sees an amount edited older than the lookback (its day''s sum changed)');
-- An edit that keeps its day's count and sum (the description) is the documented limit.
\o /dev/null
SELECT dblink_exec(:'srcconn', format('UPDATE movimentacao_cartao SET descricao_movimentacao = %L WHERE id_movimentacao_cartao = %L', 'old text edited', :'old_edit'));
\o
SET sicoop.as_of = '2025-08-17 12:30:00-03';
CALL sicoop.run_pipeline();
SELECT isnt((SELECT descricao_movimentacao::text FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = :'old_edit'),
            'OLD TEXT EDITED', 'an incremental run does not see an old edit that keeps its day''s count and sum (the documented limit)');
CALL sicoop.run_pipeline(full => true);
SELECT is((SELECT descricao_movimentacao::text FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = :'old_edit'),
          'OLD TEXT EDITED', 'a full run catches it');
-- (Rejected rows are read again by every run: their buckets differ, as raw lacks them.)
SELECT cmp_ok((SELECT rows_read FROM sicoop.run_log WHERE step = 'load_raw' ORDER BY run_id DESC LIMIT 1), '<=',
              1 + 2 * (SELECT count(*) FROM sicoop.reject),
              'comparing row checksums per bucket, it copied only the bucket that differs (and the rejected rows)');
-- Nothing changed since: every bucket's checksum matches (card numbers, masked on the
-- source's side as raw holds them, dates, amounts), and no row travels.
CALL sicoop.run_pipeline(full => true);
SELECT is((SELECT rows_read - 2 * (SELECT count(*) FROM sicoop.reject) FROM sicoop.run_log
           WHERE step = 'load_raw' ORDER BY run_id DESC LIMIT 1), 0::bigint,
          'a full run with nothing changed copies no row but the rejected ones');
-- sicoop.full_run = 'rebuild': every source row again.
SET sicoop.full_run = 'rebuild';
CALL sicoop.run_pipeline(full => true);
RESET sicoop.full_run;
SELECT is((SELECT rows_read FROM sicoop.run_log WHERE step = 'load_raw' ORDER BY run_id DESC LIMIT 1),
          (SELECT sum(n)::bigint FROM dblink(:'srcconn', 'SELECT count(*) FROM associado UNION ALL SELECT count(*) FROM conta
                                                   UNION ALL SELECT count(*) FROM cartao UNION ALL SELECT count(*) FROM movimentacao_cartao') AS t(n bigint)),
          'a rebuild (sicoop.full_run = rebuild) copies every source row again');
-- And an old deletion and a late, old insert.
\o /dev/null
SELECT dblink_exec(:'srcconn', format('DELETE FROM movimentacao_cartao WHERE id_movimentacao_cartao = %L', :'old_delete'));
SELECT dblink_exec(:'srcconn', $$INSERT INTO movimentacao_cartao VALUES ('MOV-LATE', 'CARTAO-203', 'late', 1.00, '2025-08-01 08:00')$$);
\o
SET sicoop.as_of = '2025-08-17 13:00:00-03';
CALL sicoop.run_pipeline();
SELECT ok(NOT EXISTS (SELECT 1 FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = :'old_delete')
          AND EXISTS (SELECT 1 FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-LATE'),
          'an incremental run sees an old deletion and a late insert older than the lookback (their days'' totals changed)');
SELECT is_empty('SELECT 1 FROM sicoop.reconciliation WHERE NOT balanced', 'and every movement day balances with the source');
-- Those runs took the totals raw and the rejects hold from the last run's balanced
-- reconciliation. When it does not describe raw any more -- a load_raw ran after it, or it
-- was emptied -- raw is summed, and old changes are still seen.
SELECT id AS old_edit2, v AS old_value2
FROM dblink(:'srcconn', 'SELECT id_movimentacao_cartao, valor_movimentacao FROM movimentacao_cartao
                         ORDER BY data_movimentacao, id_movimentacao_cartao OFFSET 2 LIMIT 1') AS t(id text, v numeric) \gset
-- An old amount edited and loaded into raw by a load_raw of its own, then edited back: the
-- source's day is again what the reconciliation recorded, but raw's is not.
\o /dev/null
SELECT dblink_exec(:'srcconn', format('UPDATE movimentacao_cartao SET valor_movimentacao = 777.77 WHERE id_movimentacao_cartao = %L', :'old_edit2'));
SET sicoop.as_of = '2025-08-17 13:30:00-03';
SELECT * FROM sicoop.run_step('load_raw');
SELECT dblink_exec(:'srcconn', format('UPDATE movimentacao_cartao SET valor_movimentacao = %s WHERE id_movimentacao_cartao = %L', :'old_value2', :'old_edit2'));
\o
SET sicoop.as_of = '2025-08-17 14:00:00-03';
CALL sicoop.run_pipeline();
SELECT is((SELECT valor_movimentacao FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = :'old_edit2'), :'old_value2'::numeric,
          'after a load_raw of its own (the reconciliation a run behind), an old edit undone at the source is seen: raw is summed');
\o /dev/null
DELETE FROM sicoop.reconciliation;
SELECT dblink_exec(:'srcconn', format('UPDATE movimentacao_cartao SET valor_movimentacao = 666.66 WHERE id_movimentacao_cartao = %L', :'old_edit2'));
\o
SET sicoop.as_of = '2025-08-17 14:30:00-03';
CALL sicoop.run_pipeline();
SELECT is((SELECT valor_movimentacao FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = :'old_edit2'), 666.66,
          'with the reconciliation emptied, the same');
SELECT is_empty('SELECT 1 FROM sicoop.reconciliation WHERE NOT balanced', 'and every movement day balances again');
-- Many old days changed at once: raw's rows of those days are found in one scan of its time
-- index, not one per day (with updates scattering raw's pages, each day's scan could read most
-- of raw; 1.9 as released made one per day and statement).
SELECT array_agg(id) AS old_days_edits, count(*) AS old_days
FROM dblink(:'srcconn', 'SELECT DISTINCT ON (data_movimentacao::date) id_movimentacao_cartao FROM movimentacao_cartao
                         WHERE data_movimentacao < timestamp ''2025-08-17 00:00''
                         ORDER BY data_movimentacao::date, id_movimentacao_cartao') AS t(id text) \gset
\o /dev/null
SELECT dblink_exec(:'srcconn', format('UPDATE movimentacao_cartao SET valor_movimentacao = valor_movimentacao + 0.01
                                       WHERE id_movimentacao_cartao = ANY (%L::text[])', :'old_days_edits'));
SELECT pg_stat_force_next_flush();
\o
CREATE TEMP TABLE time_index_scans AS
SELECT idx_scan FROM pg_stat_user_indexes WHERE schemaname = 'sicoop' AND indexrelname = 'raw_movimentacao_cartao_data';
SET sicoop.as_of = '2025-08-17 15:00:00-03';
-- (This raw is small enough to be read whole by any plan: without sequential scans and plain
-- index scans, the planner takes the time index, and shows how many scans a plan makes of it.)
SET enable_seqscan = off;
SET enable_indexscan = off;
CALL sicoop.run_pipeline();
RESET enable_seqscan;
RESET enable_indexscan;
\o /dev/null
SELECT pg_stat_force_next_flush();
\o
SELECT ok(:old_days >= 3
          AND (SELECT count(*) FROM sicoop.fato_movimentacao_cartao f
               WHERE f.id_movimentacao_cartao = ANY (:'old_days_edits'::text[])
                 AND f.valor_movimentacao = (SELECT v FROM dblink(:'srcconn', format('SELECT valor_movimentacao FROM movimentacao_cartao WHERE id_movimentacao_cartao = %L', f.id_movimentacao_cartao)) AS t(v numeric))) = :old_days,
          format('an edit on each of %s old days is loaded', :old_days));
SELECT cmp_ok((SELECT s.idx_scan - b.idx_scan FROM pg_stat_user_indexes s, time_index_scans b
               WHERE s.schemaname = 'sicoop' AND s.indexrelname = 'raw_movimentacao_cartao_data'), '<=', 2::bigint,
              format('raw''s time index was scanned once per statement that looks for the window''s rows, whatever the days (%s)', :old_days));
RESET sicoop.lookback;
\o /dev/null
SELECT pg_temp.rebuild_reference(:'refconn', :'pgport', :'srcdb', '2025-08-17 14:30:00-03');
\o
SELECT set_eq(pg_temp.layer_query('fato'), format('SELECT r FROM dblink(%L, %L) AS t(r text)', :'refconn', pg_temp.layer_query('fato')),
              'after the full run the facts equal a from-scratch load');
SELECT set_eq(pg_temp.layer_query('trusted_movimentacao_cartao'),
              format('SELECT r FROM dblink(%L, %L) AS t(r text)', :'refconn', pg_temp.layer_query('trusted_movimentacao_cartao')),
              'and so do the trusted movements');

-- (1.12) The movements' BRIN indexes have no autosummarize (a first load's requests overflowed
-- autovacuum's queue, a log line each): a batch run summarizes the page ranges it added. New
-- movements, enough for new ranges, then an incremental run: nothing is left unsummarized.
\o /dev/null
SELECT dblink_exec(:'srcconn', $$INSERT INTO movimentacao_cartao
  SELECT 'MOV-BRIN-' || i, (SELECT min(id_cartao) FROM cartao), 'compra ' || i || repeat(' x', 50), 10,
         timestamp '2025-08-17 15:10' + i * interval '1 second'
  FROM generate_series(1, 2000) AS i$$);
\o
SET sicoop.as_of = '2025-08-17 16:00:00-03';
CALL sicoop.run_pipeline();
SELECT is((SELECT count(*) FROM sicoop.trusted_movimentacao_cartao WHERE id_movimentacao_cartao LIKE 'MOV-BRIN-%'), 2000::bigint,
          'two thousand new movements loaded');
SELECT is(ARRAY[brin_summarize_new_values('sicoop.raw_movimentacao_cartao_run'),
                brin_summarize_new_values('sicoop.raw_movimentacao_cartao_data'),
                brin_summarize_new_values('sicoop.trusted_movimentacao_cartao_run')], ARRAY[0, 0, 0],
          'and the run summarized the BRIN ranges they filled in raw and trusted: none is left to summarize');

SELECT * FROM finish();
