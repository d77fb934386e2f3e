-- Robustness, through the real pipeline (CALL sicoop.run_pipeline(), committing per step):
--   A. unknown members: facts whose card, account or member is missing land on sk = -1 and are
--      re-keyed (and re-stamped) by the run after the late rows arrive;
--   B. a rerun with no source change changes nothing (contents, stamps, keys, not even a rewrite);
--   C. a step failing mid-way rolls back all of its writes, is logged, and the earlier steps of
--      the run stay committed; the next run catches up;
--   D. a source that is down, or lacks the tables, gives a clear error;
--   E. two runs never execute steps at the same time (the pipeline's advisory lock);
--   F. a run cancelled mid-step, or a step failing when it commits, is logged too.
-- The file is not one transaction: the pipeline commits per step, and runs that must fail
-- happen in a second session of this database (dblink connection 'runner'), where the CALL is
-- top-level (non-atomic) as it is for psql and pg_cron, so their run_log rows are committed.
-- (throws_ok('CALL ...') itself would run the CALL inside a PL/pgSQL function: atomic, with no
-- per-step commits, and the rollback of its exception block would take run_log's rows along.)
-- Sections build on each other; sicoop.as_of moves forward within 2025-08-15 (ages stay put).
\ir helpers/reset.sql
-- The versions are followed on the cleaned values themselves: no canonical mapping here
-- (20_cleaning and 90_quality test it).
\o /dev/null
DELETE FROM sicoop.canonical_value;
\o
SELECT plan(69);

SELECT format('host=localhost port=%s dbname=%s user=%s', :'pgport', current_database(), current_user) AS selfconn \gset

-- A trigger function public.<name>() that refuses the fact movement <movement> (the trigger's
-- <row>, OLD or NEW) with <message> and SQLSTATE <code>, else returns <returned>: the faults the
-- failure cases inject.
CREATE FUNCTION pg_temp.refusing_function(name text, row_var text, movement text, message text, code text,
                                          returned text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  EXECUTE format($fn$CREATE OR REPLACE FUNCTION public.%I() RETURNS trigger LANGUAGE plpgsql AS $b$
BEGIN
  IF %s.id_movimentacao_cartao = %L THEN
    RAISE EXCEPTION %L USING ERRCODE = %L;
  END IF;
  RETURN %s;
END
$b$$fn$, name, row_var, movement, message, code, returned);
END
$f$;

-- The pipeline lock's holders and waiters in this database (the advisory lock run_pipeline takes).
CREATE FUNCTION pg_temp.pipeline_locks() RETURNS int LANGUAGE sql AS $$
  SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND classid = 1936286576 AND objid = 7338001 AND objsubid = 4
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
$$;

-- A run in the runner session at <as_of> raises SQLSTATE <code> with <message> (throws_ok).
CREATE FUNCTION pg_temp.runner_run_throws(as_of text, code text, message text, description text) RETURNS text
LANGUAGE sql AS $$
  SELECT dblink_exec('runner', format('SET sicoop.as_of = %L', as_of));
  SELECT throws_ok($q$SELECT dblink_exec('runner', 'CALL sicoop.run_pipeline()')$q$, code, message, description);
$$;

-- <what> of every row t of a table, as text, in a stable order (the rows' order), joined by <sep>.
CREATE FUNCTION pg_temp.each_row(rel regclass, what text, sep text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  out text;
BEGIN
  EXECUTE format('SELECT string_agg(%s, %L ORDER BY t::text) FROM %s t', what, sep, rel) INTO out;
  RETURN out;
END
$$;
-- Every row of a table.
CREATE FUNCTION pg_temp.snap(rel regclass) RETURNS text LANGUAGE sql AS $$ SELECT pg_temp.each_row(rel, 't::text', E'\n') $$;
-- The transaction id that last wrote each row: a rewrite with identical values changes it.
CREATE FUNCTION pg_temp.xmins(rel regclass) RETURNS text LANGUAGE sql AS $$ SELECT pg_temp.each_row(rel, 't.xmin::text', ',') $$;

\ir helpers/error_of.sql

-- Waits (up to 30 s) until backend `target` holds the pipeline lock and waits for another lock.
CREATE FUNCTION pg_temp.wait_blocked_holding_lock(target int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..600 LOOP
    IF EXISTS (SELECT 1 FROM pg_locks WHERE pid = target AND locktype = 'advisory' AND granted
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                 AND classid = 1936286576 AND objid = 7338001 AND objsubid = 4)
       AND EXISTS (SELECT 1 FROM pg_locks WHERE pid = target AND NOT granted) THEN
      RETURN true;
    END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN false;
END
$$;

-- The last run of the pipeline (its run_pipeline row).
CREATE FUNCTION pg_temp.last_run() RETURNS bigint LANGUAGE sql AS
$$ SELECT max(run_id) FROM sicoop.run_log WHERE step = 'run_pipeline' $$;

-- A second session of this warehouse, set like this one, for runs whose failure is tested.
SELECT dblink_connect('runner', :'selfconn') \g /dev/null
SELECT dblink_exec('runner', 'SET datestyle = ''ISO, YMD''') \g /dev/null
SELECT dblink_exec('runner', 'SET timezone = ''America/Sao_Paulo''') \g /dev/null
SELECT pid AS runner_pid FROM dblink('runner', 'SELECT pg_backend_pid()') AS t(pid int) \gset

------------------------------------------------------------------------------------------
-- A. Unknown members and late-arriving rows
------------------------------------------------------------------------------------------
-- The source loses its foreign keys and gets three movements with a gap each:
--   MOV-900: its card CARTAO-999 does not exist;
--   MOV-901: its card CARTAO-998 exists, the card's account CONTA-998 does not;
--   MOV-902: card CARTAO-997 and account CONTA-997 exist, the account's member ASSOC-997 does not.
SELECT dblink_exec(:'srcconn', 'ALTER TABLE movimentacao_cartao DROP CONSTRAINT movimentacao_cartao_id_cartao_fkey') \g /dev/null
SELECT dblink_exec(:'srcconn', 'ALTER TABLE cartao DROP CONSTRAINT cartao_id_conta_fkey') \g /dev/null
SELECT dblink_exec(:'srcconn', 'ALTER TABLE conta DROP CONSTRAINT conta_id_associado_fkey') \g /dev/null
INSERT INTO sicoop.src_conta VALUES ('CONTA-997', 'ASSOC-997', 'Corrente', '009-9', 'Ativa', '2024-03-01');
INSERT INTO sicoop.src_cartao VALUES
  ('CARTAO-998', 'CONTA-998', '000998', 'Nome 998', 'Visa', 'Débito', '2024-04-01'),
  ('CARTAO-997', 'CONTA-997', '000997', 'Nome 997', 'Elo', 'Crédito', '2024-03-02');
INSERT INTO sicoop.src_movimentacao_cartao VALUES
  ('MOV-900', 'CARTAO-999', 'Compra sem cartão', 900.01, '2025-08-14 21:00:00'),
  ('MOV-901', 'CARTAO-998', 'Compra sem conta', 901.01, '2025-08-14 21:10:00'),
  ('MOV-902', 'CARTAO-997', 'Compra sem associado', 902.01, '2025-08-14 21:20:00');

-- Run 1 (as_of 2025-08-15 00:00)
CALL sicoop.run_pipeline();
SELECT pg_temp.last_run() AS run1 \gset

SELECT results_eq(
  format('SELECT step, status FROM sicoop.run_log WHERE run_id = %s ORDER BY started_at', :run1),
  $$VALUES ('run_pipeline', 'succeeded'), ('load_raw', 'succeeded'), ('load_trusted', 'succeeded'),
           ('load_dims', 'succeeded'), ('scd2_associado', 'succeeded'), ('load_fato', 'succeeded')$$,
  'run 1 (with gaps in the source): every step succeeded');
SELECT is((SELECT count(*)::int FROM sicoop.fato_movimentacao_cartao), 15,
          'no movement is dropped: 12 sample movements + 3 with a missing card, account or member');
SELECT results_eq(
  $$SELECT id_movimentacao_cartao::text, sk_associado, sk_cartao, sk_conta, sk_data
    FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao IN ('MOV-900', 'MOV-901', 'MOV-902')
    ORDER BY 1$$,
  $$VALUES ('MOV-900', -1, -1, -1, 20250814),
           ('MOV-901', -1, (SELECT sk_cartao FROM sicoop.dim_cartao WHERE id_cartao = 'CARTAO-998'), -1, 20250814),
           ('MOV-902', -1, (SELECT sk_cartao FROM sicoop.dim_cartao WHERE id_cartao = 'CARTAO-997'),
                           (SELECT sk_conta FROM sicoop.dim_conta WHERE id_conta = 'CONTA-997'), 20250814)$$,
  'what is not known lands on the unknown member (-1); what is known is keyed');
SELECT results_eq(
  format($$SELECT step, rows_unknown FROM sicoop.run_log
           WHERE run_id = %s AND step IN ('load_fato', 'run_pipeline') ORDER BY step$$, :run1),
  $$VALUES ('load_fato', 3::bigint), ('run_pipeline', 3::bigint)$$,
  'run_log of run 1: rows_unknown counts the 3 facts on an unknown member');
SELECT results_eq(
  'SELECT rows_read, rows_inserted, rows_updated, rows_deleted, rows_unknown FROM sicoop.load_fato()',
  $$VALUES (3::bigint, 0::bigint, 0::bigint, 0::bigint, 3::bigint)$$,
  'the step result of load_fato() counts the 3 unknown facts, re-reads only them on a rerun, and changes nothing');
SELECT results_eq(
  $$SELECT nome_associado::text, sobrenome_associado::text, idade_associado, vlr_transacao_movimento,
           des_transacao_movimento::text, data_movimentacao, numero_cartao::text, nome_impresso_cartao::text,
           tipo_conta::text
    FROM sicoop.vw_movimentacao_flat WHERE vlr_transacao_movimento IN (900.01, 901.01, 902.01)$$,
  $$VALUES
    ('DESCONHECIDO', NULL::text, NULL::int, 900.01, 'COMPRA SEM CARTÃO', '2025-08-14 21:00'::timestamp, NULL::text, 'DESCONHECIDO', 'DESCONHECIDO'),
    ('DESCONHECIDO', NULL, NULL, 901.01, 'COMPRA SEM CONTA', '2025-08-14 21:10', '**0998', 'NOME 998', 'DESCONHECIDO'),
    ('DESCONHECIDO', NULL, NULL, 902.01, 'COMPRA SEM ASSOCIADO', '2025-08-14 21:20', '**0997', 'NOME 997', 'CORRENTE')$$,
  'the flat view keeps the three movements, on the unknown members');
SELECT is((SELECT count(*)::int FROM sicoop.vw_movimentacao_flat), 15, 'the flat view has all 15 movements');

-- The missing rows arrive.
INSERT INTO sicoop.src_cartao VALUES ('CARTAO-999', 'CONTA-101', '000999', 'Nome 999', 'Visa', 'Crédito', '2024-05-01');
INSERT INTO sicoop.src_conta VALUES ('CONTA-998', 'ASSOC-002', 'Poupança', '002-5', 'Ativa', '2024-03-15');
INSERT INTO sicoop.src_associado VALUES ('ASSOC-997', 'Zé  Ninguém', '1970-01-01', 'Casado', 'Ensino Médio');
CREATE TEMP TABLE stamps_before_run2 AS
  SELECT id_movimentacao_cartao, data_hora_atualizacao_registro FROM sicoop.fato_movimentacao_cartao;

-- Run 2 (as_of 2025-08-15 10:00)
SET sicoop.as_of = '2025-08-15 10:00:00';
CALL sicoop.run_pipeline();
SELECT pg_temp.last_run() AS run2 \gset

SELECT results_eq(
  $$SELECT id_movimentacao_cartao::text, sk_associado, sk_cartao, sk_conta
    FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao IN ('MOV-900', 'MOV-901', 'MOV-902')
    ORDER BY 1$$,
  $$SELECT m, (SELECT sk_associado FROM sicoop.dim_associado WHERE id_associado = a AND registro_ativo_associado),
           (SELECT sk_cartao FROM sicoop.dim_cartao WHERE id_cartao = c),
           (SELECT sk_conta FROM sicoop.dim_conta WHERE id_conta = co)
    FROM (VALUES ('MOV-900', 'ASSOC-001', 'CARTAO-999', 'CONTA-101'),
                 ('MOV-901', 'ASSOC-002', 'CARTAO-998', 'CONTA-998'),
                 ('MOV-902', 'ASSOC-997', 'CARTAO-997', 'CONTA-997')) v(m, a, c, co)
    ORDER BY 1$$,
  'run 2: the late card, account and member re-key the facts to their real surrogate keys');
SELECT set_eq(
  $$SELECT f.id_movimentacao_cartao::text FROM sicoop.fato_movimentacao_cartao f
    JOIN stamps_before_run2 b USING (id_movimentacao_cartao)
    WHERE f.data_hora_atualizacao_registro IS DISTINCT FROM b.data_hora_atualizacao_registro$$,
  ARRAY['MOV-900', 'MOV-901', 'MOV-902'],
  'run 2 re-stamps exactly the three re-keyed facts');
SELECT results_eq(
  $$SELECT DISTINCT data_hora_atualizacao_registro FROM sicoop.fato_movimentacao_cartao
    WHERE id_movimentacao_cartao IN ('MOV-900', 'MOV-901', 'MOV-902')$$,
  $$VALUES ('2025-08-15 10:00:00-03'::timestamptz)$$,
  'the re-keyed facts are stamped with run 2''s reference time');
SELECT results_eq(
  format($$SELECT step, rows_inserted, rows_updated, rows_deleted, rows_unknown FROM sicoop.run_log
           WHERE run_id = %s AND step IN ('load_fato', 'run_pipeline') ORDER BY step$$, :run2),
  -- run 2 also inserts the late rows upstream: 3 raw + 3 trusted + 2 dimension rows + 1 member version
  $$VALUES ('load_fato', 0::bigint, 3::bigint, 0::bigint, 0::bigint),
           ('run_pipeline', 9::bigint, 3::bigint, 0::bigint, 0::bigint)$$,
  'run_log of run 2: load_fato updated the 3 facts and no fact is left on an unknown member');
SELECT results_eq(
  $$SELECT nome_associado::text, sobrenome_associado::text, idade_associado, vlr_transacao_movimento,
           numero_cartao::text, nome_impresso_cartao::text, tipo_conta::text
    FROM sicoop.vw_movimentacao_flat WHERE vlr_transacao_movimento IN (900.01, 901.01, 902.01)$$,
  $$VALUES ('ANA', 'SILVA', 40, 900.01, '**0999', 'NOME 999', 'CORRENTE'),
           ('JOÃO', 'OLIVEIRA', 32, 901.01, '**0998', 'NOME 998', 'POUPANÇA'),
           ('ZÉ', 'NINGUÉM', 55, 902.01, '**0997', 'NOME 997', 'CORRENTE')$$,
  'the flat view now shows the real member, card and account of the three movements');

------------------------------------------------------------------------------------------
-- B. A rerun with no source change changes nothing
------------------------------------------------------------------------------------------
CREATE TEMP TABLE before_rerun AS
  SELECT rel::text AS rel, pg_temp.snap(rel) AS content, pg_temp.xmins(rel) AS xmins
  FROM unnest(ARRAY['sicoop.raw_associado', 'sicoop.raw_conta', 'sicoop.raw_cartao', 'sicoop.raw_movimentacao_cartao',
                    'sicoop.trusted_associado', 'sicoop.trusted_conta', 'sicoop.trusted_cartao',
                    'sicoop.trusted_movimentacao_cartao',
                    'sicoop.dim_data', 'sicoop.dim_conta', 'sicoop.dim_cartao', 'sicoop.dim_associado',
                    'sicoop.fato_movimentacao_cartao']::regclass[]) AS rel;

-- Run 3 (as_of 2025-08-15 18:00: a later time on the same day)
SET sicoop.as_of = '2025-08-15 18:00:00';
CALL sicoop.run_pipeline();
SELECT pg_temp.last_run() AS run3 \gset

SELECT is(pg_temp.snap(rel::regclass), content, 'rerun without source change: ' || rel || ' is unchanged')
FROM before_rerun ORDER BY rel;
SELECT is(array_agg(rel ORDER BY rel) FILTER (WHERE pg_temp.xmins(rel::regclass) IS DISTINCT FROM xmins), NULL,
          'rerun without source change: no row of any layer was rewritten')
FROM before_rerun;
SELECT results_eq(
  format($$SELECT step, status, rows_inserted, rows_updated, rows_deleted, rows_unknown
           FROM sicoop.run_log WHERE run_id = %s ORDER BY started_at$$, :run3),
  $$VALUES ('run_pipeline', 'succeeded', 0::bigint, 0::bigint, 0::bigint, 0::bigint),
           ('load_raw', 'succeeded', 0, 0, 0, 0), ('load_trusted', 'succeeded', 0, 0, 0, 0),
           ('load_dims', 'succeeded', 0, 0, 0, 0), ('scd2_associado', 'succeeded', 0, 0, 0, 0),
           ('load_fato', 'succeeded', 0, 0, 0, 0)$$,
  'run_log of the rerun: every step succeeded with 0 inserted, updated and deleted');

------------------------------------------------------------------------------------------
-- C. A step that fails mid-way
------------------------------------------------------------------------------------------
-- A source change touching every layer: a member's marital status (SCD2), an account's
-- status (dim_conta), a movement's amount (fact update), a new movement (fact insert) and a
-- movement gone (fact delete).
UPDATE sicoop.src_associado SET estado_civil = 'Casada' WHERE id_associado = 'ASSOC-003';
UPDATE sicoop.src_conta SET situacao_conta = 'Bloqueada' WHERE id_conta = 'CONTA-102';
UPDATE sicoop.src_movimentacao_cartao SET valor_movimentacao = 56.75 WHERE id_movimentacao_cartao = 'MOV-301';
INSERT INTO sicoop.src_movimentacao_cartao VALUES ('MOV-950', 'CARTAO-203', 'Farmácia Nova', 95.00, '2025-08-15 19:00:00');
DELETE FROM sicoop.src_movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-312';

-- load_fato will fail in its last statement (the delete of MOV-312), after its merge has
-- inserted MOV-950 and updated MOV-301: all of that must be rolled back.
SELECT pg_temp.refusing_function('sicoop_test_refuse_delete', 'OLD', 'MOV-312',
                                 'robustness test: fact MOV-312 may not be deleted', 'SIC01', 'OLD') \g /dev/null
-- (The guard refuses any trigger on the warehouse: the test's fault injection goes in with it off.)
ALTER EVENT TRIGGER sicoop_guard DISABLE;
CREATE TRIGGER sicoop_test_refuse_delete BEFORE DELETE ON sicoop.fato_movimentacao_cartao
  FOR EACH ROW EXECUTE FUNCTION public.sicoop_test_refuse_delete();
ALTER EVENT TRIGGER sicoop_guard ENABLE;
CREATE TEMP TABLE fato_before_failure AS SELECT pg_temp.snap('sicoop.fato_movimentacao_cartao') AS content;

-- Run 4 (as_of 2025-08-15 20:00), top-level in the runner session
SELECT pg_temp.runner_run_throws('2025-08-15 20:00:00', 'SIC01', 'robustness test: fact MOV-312 may not be deleted',
                                 'a failing step makes CALL sicoop.run_pipeline() raise its error');
SELECT pg_temp.last_run() AS run4 \gset

SELECT results_eq(
  format('SELECT step, status FROM sicoop.run_log WHERE run_id = %s ORDER BY started_at', :run4),
  $$VALUES ('run_pipeline', 'failed'), ('load_raw', 'succeeded'), ('load_trusted', 'succeeded'),
           ('load_dims', 'succeeded'), ('scd2_associado', 'succeeded'), ('load_fato', 'failed')$$,
  'run_log of the failed run: load_fato and run_pipeline failed, the steps before it succeeded');
SELECT results_eq(
  format($$SELECT step, error_sqlstate, error_message, finished_at IS NOT NULL, backend_pid
           FROM sicoop.run_log WHERE run_id = %s AND status = 'failed' ORDER BY step$$, :run4),
  format($$VALUES ('load_fato', 'SIC01', 'robustness test: fact MOV-312 may not be deleted', true, %1$s),
                  ('run_pipeline', 'SIC01', 'robustness test: fact MOV-312 may not be deleted', true, %1$s)$$,
         :runner_pid),
  'the failed rows carry the SQLSTATE, the message, a finish time and the session');
SELECT ok((SELECT error_context LIKE '%sicoop_test_refuse_delete%' FROM sicoop.run_log
           WHERE run_id = :run4 AND step = 'load_fato'),
          'the failed step''s error context is logged');
SELECT is(pg_temp.snap('sicoop.fato_movimentacao_cartao'), (SELECT content FROM fato_before_failure),
          'the failed step left none of its writes: the fact is as before the run (no insert, update or delete)');
SELECT results_eq(
  $$SELECT id_movimentacao_cartao::text, valor_movimentacao, run_id FROM sicoop.trusted_movimentacao_cartao
    WHERE id_movimentacao_cartao IN ('MOV-301', 'MOV-312', 'MOV-950') ORDER BY 1$$,
  format($$VALUES ('MOV-301', 56.75, %1$s::bigint), ('MOV-950', 95.00, %1$s)$$, :run4),
  'the steps before the failure stay committed: trusted has the changed, the new and not the gone movement');
SELECT results_eq(
  $$SELECT situacao_conta::text, data_hora_atualizacao_registro FROM sicoop.dim_conta WHERE id_conta = 'CONTA-102'$$,
  $$VALUES ('BLOQUEADA', '2025-08-15 20:00:00-03'::timestamptz)$$,
  'the steps before the failure stay committed: dim_conta was updated by the failed run');
SELECT results_eq(
  $$SELECT estado_civil_associado::text, inicio_vigencia_registro_associado, registro_ativo_associado
    FROM sicoop.dim_associado WHERE id_associado = 'ASSOC-003' ORDER BY inicio_vigencia_registro_associado$$,
  $$VALUES ('DIVORCIADO', '1900-01-01 00:00:00'::timestamptz, false),
           ('CASADA', '2025-08-15 20:00:00-03', true)$$,
  'the steps before the failure stay committed: dim_associado has the new version');
SELECT is(pg_temp.pipeline_locks(), 0, 'the failed run released the pipeline lock');

-- The cause is removed: the next run (5, as_of 21:00) catches up on load_fato only.
DROP TRIGGER sicoop_test_refuse_delete ON sicoop.fato_movimentacao_cartao;
DROP FUNCTION public.sicoop_test_refuse_delete();
SET sicoop.as_of = '2025-08-15 21:00:00';
CALL sicoop.run_pipeline();
SELECT pg_temp.last_run() AS run5 \gset

SELECT results_eq(
  format($$SELECT step, status, rows_inserted, rows_updated, rows_deleted
           FROM sicoop.run_log WHERE run_id = %s ORDER BY started_at$$, :run5),
  $$VALUES ('run_pipeline', 'succeeded', 1::bigint, 1::bigint, 1::bigint),
           ('load_raw', 'succeeded', 0, 0, 0), ('load_trusted', 'succeeded', 0, 0, 0),
           ('load_dims', 'succeeded', 0, 0, 0), ('scd2_associado', 'succeeded', 0, 0, 0),
           ('load_fato', 'succeeded', 1, 1, 1)$$,
  'the run after the failure redoes only the failed step: load_fato inserts 1, updates 1, deletes 1');
SELECT results_eq(
  $$SELECT id_movimentacao_cartao::text, valor_movimentacao, data_hora_atualizacao_registro
    FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao IN ('MOV-301', 'MOV-312', 'MOV-950') ORDER BY 1$$,
  $$VALUES ('MOV-301', 56.75, '2025-08-15 21:00:00-03'::timestamptz), ('MOV-950', 95.00, '2025-08-15 21:00:00-03')$$,
  'after the catch-up the fact has the change, the new movement and not the gone one');

------------------------------------------------------------------------------------------
-- D. A source that is down, or not a source
------------------------------------------------------------------------------------------
SELECT throws_ok(format('SELECT sicoop.connect_source(%L, 1, %L, %L)', 'localhost', :'srcdb', current_user),
                 '08001', format('sicoop: cannot connect to the source database (%s@localhost:1/%s)', current_user, :'srcdb'),
                 'connect_source() to a port nobody listens on fails with 08001, naming the source');
SELECT ok((e)[3] LIKE '%port 1 failed%' AND (e)[4] LIKE '%Check that the source is up%',
          'the error details libpq''s reason and hints at what to check')
FROM pg_temp.error_of(format('SELECT sicoop.connect_source(%L, 1, %L, %L)', 'localhost', :'srcdb', current_user)) AS e;

SELECT throws_ok(format('SELECT sicoop.connect_source(%L, %s, %L, %L)', 'localhost', :pgport, current_database(), current_user),
                 '42P01', format('sicoop: the source schema "public" of %s@localhost:%s/%s lacks what the pipeline reads',
                                 current_user, :pgport, current_database()),
                 'connect_source() to a database without the source tables fails with 42P01');
SELECT is((pg_temp.error_of(format('SELECT sicoop.connect_source(%L, %s, %L, %L)',
                                   'localhost', :pgport, current_database(), current_user)))[3],
          'table associado is missing; table conta is missing; table cartao is missing; table movimentacao_cartao is missing.',
          'the error lists every missing table');
SELECT dblink_exec(:'srcconn', 'ALTER TABLE conta RENAME COLUMN agencia TO agencia_nova') \g /dev/null
SELECT is((e)[1] || ': ' || (e)[3], '42P01: column conta.agencia is missing.',
          'a source missing one column is refused, naming the column')
FROM pg_temp.error_of(format('SELECT sicoop.connect_source(%L, %s, %L, %L)', 'localhost', :pgport, :'srcdb', current_user)) AS e;
SELECT dblink_exec(:'srcconn', 'ALTER TABLE conta RENAME COLUMN agencia_nova TO agencia') \g /dev/null
SELECT is((SELECT srvoptions FROM pg_foreign_server WHERE srvname = 'sicoop_source'),
          ARRAY['host=localhost', 'port=' || :'pgport', 'dbname=' || :'srcdb', 'fetch_size=10000'],
          'a refused connect_source() leaves the working connection as it was');

-- The source goes away behind the extension's back. Run 6, top-level in the runner session.
ALTER SERVER sicoop_source OPTIONS (SET port '1');
SELECT dblink_exec('runner', 'SET sicoop.as_of = ''2025-08-15 21:30:00''') \g /dev/null
SELECT e AS run6_error FROM pg_temp.error_of($$SELECT dblink_exec('runner', 'CALL sicoop.run_pipeline()')$$) AS e \gset
SELECT pg_temp.last_run() AS run6 \gset
SELECT is((:'run6_error'::text[])[1], '08001', 'CALL sicoop.run_pipeline() against a dead source fails with 08001');
SELECT is((:'run6_error'::text[])[2], 'sicoop: cannot connect to the source database (server sicoop_source)',
          'the error says the source cannot be reached');
SELECT ok((:'run6_error'::text[])[5] LIKE format('%%sicoop run %s, step load_raw%%', :run6),
          'the error names the run and the step');
SELECT results_eq(
  format($$SELECT step, status, error_sqlstate, error_message FROM sicoop.run_log
           WHERE run_id = %s ORDER BY started_at$$, :run6),
  $$VALUES ('run_pipeline', 'failed', '08001', 'sicoop: cannot connect to the source database (server sicoop_source)'),
           ('load_raw', 'failed', '08001', 'sicoop: cannot connect to the source database (server sicoop_source)')$$,
  'run_log records load_raw (and the run) as failed with 08001, and no later step ran');
SELECT sicoop.connect_source('localhost', :pgport, :'srcdb', current_user) \g /dev/null

------------------------------------------------------------------------------------------
-- E. Two runs never execute steps at the same time
------------------------------------------------------------------------------------------
-- E1. No role can take the lock that keeps runs apart: a role with only LOGIN and CONNECT
-- takes every SQL advisory lock with the pipeline's numbers, and runs still run.
SELECT dblink_connect('other', :'selfconn') \g /dev/null
SET client_min_messages = warning;
DROP ROLE IF EXISTS sicoop_test_intruder;
RESET client_min_messages;
CREATE ROLE sicoop_test_intruder LOGIN;
SELECT format('%s user=sicoop_test_intruder', regexp_replace(:'selfconn', 'user=\S+', '')) AS intruderconn \gset
SELECT dblink_connect('intruder', :'intruderconn') \g /dev/null
SELECT * FROM dblink('intruder', $$SELECT pg_advisory_lock(7338001), pg_advisory_lock(0, 7338001),
                                         pg_advisory_lock(1936286576, 7338001), pg_advisory_lock(1936286576::bigint << 32 | 7338001)$$)
  AS t(a text, b text, c text, d text) \g /dev/null
SELECT is((SELECT count(*)::int FROM pg_locks l JOIN pg_stat_activity a USING (pid)
           WHERE a.usename = 'sicoop_test_intruder' AND l.locktype = 'advisory' AND l.granted), 4,
          'a role with only LOGIN and CONNECT holds four advisory locks with the pipeline''s numbers');
SET sicoop.as_of = '2025-08-15 21:45:00';
SELECT max(run_id) AS before_skip FROM sicoop.run_log \gset
CALL sicoop.run_pipeline();
SELECT results_eq(
  format('SELECT DISTINCT status FROM sicoop.run_log WHERE run_id > %s', :before_skip),
  $$VALUES ('succeeded')$$,
  'the run is not skipped: it runs and succeeds');
SELECT lives_ok('SELECT sicoop.load_raw()', 'a standalone step runs too');
SELECT is((SELECT count(*)::int FROM sicoop.run_log WHERE run_id > :before_skip AND status = 'skipped'), 0,
          'no run was logged as skipped');
SELECT dblink_disconnect('intruder') \g /dev/null
DROP ROLE sicoop_test_intruder;
SET sicoop.as_of = '2025-08-15 22:00:00';
CALL sicoop.run_pipeline();
SELECT is((SELECT status FROM sicoop.run_log WHERE run_id = pg_temp.last_run() AND step = 'run_pipeline'), 'succeeded',
          'and the next run runs');

-- E2. A real run holds the lock from its first step to its last, across its commits: the
-- runner starts a run that blocks in load_fato (a third session locks the fact table).
SELECT dblink_exec('other', 'BEGIN') \g /dev/null
SELECT dblink_exec('other', 'LOCK TABLE sicoop.fato_movimentacao_cartao IN ACCESS EXCLUSIVE MODE') \g /dev/null
SELECT dblink_exec('runner', 'SET sicoop.as_of = ''2025-08-15 23:00:00''') \g /dev/null
SELECT dblink_send_query('runner', 'CALL sicoop.run_pipeline()') \g /dev/null
SELECT ok(pg_temp.wait_blocked_holding_lock(:runner_pid),
          'a run in progress holds the pipeline lock (here: waiting in load_fato)');
SELECT max(run_id) AS running_run FROM sicoop.run_log WHERE step = 'run_pipeline' AND backend_pid = :runner_pid \gset
SELECT results_eq(
  format('SELECT step, status FROM sicoop.run_log WHERE run_id = %s ORDER BY started_at', :running_run),
  $$VALUES ('run_pipeline', 'running'), ('load_raw', 'succeeded'), ('load_trusted', 'succeeded'),
           ('load_dims', 'succeeded'), ('scd2_associado', 'succeeded'), ('load_fato', 'running')$$,
  'the run in progress has committed four steps and is in load_fato');
SELECT max(run_id) AS before_skip2 FROM sicoop.run_log \gset
SET sicoop.as_of = '2025-08-15 23:00:00';
SET client_min_messages = warning;
SELECT lives_ok('CALL sicoop.run_pipeline()', 'a second run while one is in progress returns without error');
RESET client_min_messages;
SELECT results_eq(
  format('SELECT step, status, error_message FROM sicoop.run_log WHERE run_id > %s ORDER BY run_id, started_at', :before_skip2),
  format($$VALUES ('run_pipeline', 'skipped', 'skipped: another run holds the pipeline lock (backend pid %s)')$$, :runner_pid),
  'the second run is skipped, naming the running one, and runs no step');
SELECT throws_ok('SELECT sicoop.load_dims()', '55P03',
                 format('sicoop: another pipeline run is in progress (backend pid %s)', :runner_pid),
                 'a standalone step fails with 55P03 while a run is in progress');
SELECT dblink_exec('other', 'ROLLBACK') \g /dev/null
SELECT is((SELECT r FROM dblink_get_result('runner') AS t(r text)), 'CALL', 'the run in progress then finishes');
SELECT * FROM dblink_get_result('runner') AS t(r text) \g /dev/null
SELECT results_eq(
  format('SELECT step, status FROM sicoop.run_log WHERE run_id = %s ORDER BY started_at', :running_run),
  $$VALUES ('run_pipeline', 'succeeded'), ('load_raw', 'succeeded'), ('load_trusted', 'succeeded'),
           ('load_dims', 'succeeded'), ('scd2_associado', 'succeeded'), ('load_fato', 'succeeded')$$,
  'the run that held the lock succeeded');
SELECT is(pg_temp.pipeline_locks(), 0, 'no pipeline lock is left behind');

------------------------------------------------------------------------------------------
-- F. Failures outside a step's statements: a run cancelled mid-step, a step failing at commit
------------------------------------------------------------------------------------------
-- F1. The runner's run is cancelled by statement_timeout while load_fato waits for a lock
-- (as a pg_cron job with a timeout would be).
SELECT dblink_exec('other', 'BEGIN') \g /dev/null
SELECT dblink_exec('other', 'LOCK TABLE sicoop.fato_movimentacao_cartao IN ACCESS EXCLUSIVE MODE') \g /dev/null
SELECT dblink_exec('runner', 'SET sicoop.as_of = ''2025-08-15 23:10:00''') \g /dev/null
SELECT dblink_exec('runner', 'SET statement_timeout = ''2s''') \g /dev/null
SELECT (e)[1] AS timeout_sqlstate FROM pg_temp.error_of($$SELECT dblink_exec('runner', 'CALL sicoop.run_pipeline()')$$) AS e \gset
SELECT dblink_exec('other', 'ROLLBACK') \g /dev/null
SELECT dblink_exec('runner', 'RESET statement_timeout') \g /dev/null
SELECT pg_temp.last_run() AS run_cancelled \gset
SELECT is(:'timeout_sqlstate'::text, '57014', 'a run cancelled by statement_timeout raises 57014');
SELECT results_eq(
  format('SELECT step, status, error_sqlstate FROM sicoop.run_log WHERE run_id = %s ORDER BY started_at', :run_cancelled),
  $$VALUES ('run_pipeline', 'failed', '57014'), ('load_raw', 'succeeded', NULL), ('load_trusted', 'succeeded', NULL),
           ('load_dims', 'succeeded', NULL), ('scd2_associado', 'succeeded', NULL), ('load_fato', 'failed', '57014')$$,
  'the cancelled run is logged: the step it was in and the run failed with 57014');
SELECT is(pg_temp.pipeline_locks(), 0, 'the cancelled run released the pipeline lock');

-- F2. load_fato fails when its transaction commits: a deferred constraint trigger on the fact
-- refuses one new movement (MOV-960) at commit time, after the step's statements all succeeded.
INSERT INTO sicoop.src_movimentacao_cartao VALUES ('MOV-960', 'CARTAO-204', 'Loja Nova', 96.00, '2025-08-15 22:30:00');
SELECT pg_temp.refusing_function('sicoop_test_refuse_at_commit', 'NEW', 'MOV-960',
                                 'robustness test: fact MOV-960 refused at commit', 'SIC02', 'NULL') \g /dev/null
ALTER EVENT TRIGGER sicoop_guard DISABLE;
CREATE CONSTRAINT TRIGGER sicoop_test_refuse_at_commit AFTER INSERT ON sicoop.fato_movimentacao_cartao
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.sicoop_test_refuse_at_commit();
-- The search_path in force while the failure is logged (after the failed commit): still pinned.
CREATE TABLE public.sicoop_test_paths (path text);
CREATE FUNCTION public.sicoop_test_note_path() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.sicoop_test_paths VALUES (current_setting('search_path'));
  RETURN NEW;
END
$$;
CREATE TRIGGER sicoop_test_note_path BEFORE INSERT OR UPDATE ON sicoop.run_log
  FOR EACH ROW WHEN (NEW.status = 'failed') EXECUTE FUNCTION public.sicoop_test_note_path();
ALTER EVENT TRIGGER sicoop_guard ENABLE;
SELECT pg_temp.runner_run_throws('2025-08-15 23:20:00', 'SIC02', 'robustness test: fact MOV-960 refused at commit',
                                 'a step failing at its commit makes CALL sicoop.run_pipeline() raise its error');
SELECT pg_temp.last_run() AS run_commit_failed \gset
SELECT results_eq(
  format('SELECT step, status, error_sqlstate FROM sicoop.run_log WHERE run_id = %s ORDER BY started_at', :run_commit_failed),
  $$VALUES ('run_pipeline', 'failed', 'SIC02'), ('load_raw', 'succeeded', NULL), ('load_trusted', 'succeeded', NULL),
           ('load_dims', 'succeeded', NULL), ('scd2_associado', 'succeeded', NULL), ('load_fato', 'failed', 'SIC02')$$,
  'a step failing at its commit is logged as failed, and so is the run (none is left ''running'')');
SELECT is((SELECT count(*)::int FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-960'), 0,
          'the step that failed at commit left none of its writes');
SELECT is(pg_temp.pipeline_locks(), 0, 'the run that failed at commit released the pipeline lock');
SELECT is((SELECT array_agg(DISTINCT path) FROM public.sicoop_test_paths), ARRAY['pg_catalog, pg_temp'],
          'the failure was logged with the search_path still pinned (after the failed commit too)');
DROP TRIGGER sicoop_test_note_path ON sicoop.run_log;
DROP FUNCTION public.sicoop_test_note_path();
DROP TABLE public.sicoop_test_paths;
DROP TRIGGER sicoop_test_refuse_at_commit ON sicoop.fato_movimentacao_cartao;
DROP FUNCTION public.sicoop_test_refuse_at_commit();

SELECT dblink_disconnect('other') \g /dev/null
SELECT dblink_disconnect('runner') \g /dev/null

SELECT * FROM finish();
