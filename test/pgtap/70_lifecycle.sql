-- The warehouse's data belongs to its owner, not to the extension: DROP EXTENSION (with or
-- without CASCADE) and DROP EXTENSION postgres_fdw CASCADE keep it; re-creating the
-- extension adopts it when its layout matches, and refuses clearly, changing nothing,
-- when it does not. (Dump/restore and upgrades: test/lifecycle/.)
\ir helpers/reset.sql
SELECT plan(27);
CALL sicoop.run_pipeline();
\o /dev/null
SELECT dblink_exec(:'srcconn', $$UPDATE associado SET estado_civil = 'Divorciado' WHERE id_associado = (SELECT min(id_associado) FROM associado)$$);
\o
SET sicoop.as_of = '2025-08-16';
CALL sicoop.run_pipeline();

-- What the warehouse holds now: every relation's rows, as text.
CREATE TABLE pg_temp.kept (rel text, rows_digest text);
CREATE FUNCTION pg_temp.snapshot() RETURNS TABLE (rel text, rows_digest text) LANGUAGE plpgsql AS $$
DECLARE
  r record;
  d text;
BEGIN
  -- The warehouse's relations: not the extension's own (its scratch tables).
  FOR r IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'sicoop' AND c.relkind IN ('r', 'v')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                             AND d.deptype = 'e')
           ORDER BY 1 LOOP
    EXECUTE format('SELECT count(*) || '' '' || md5(coalesce(string_agg(t::text, '','' ORDER BY t::text), '''')) FROM sicoop.%I t', r.relname) INTO d;
    rel := r.relname; rows_digest := d;
    RETURN NEXT;
  END LOOP;
END
$$;
INSERT INTO pg_temp.kept SELECT * FROM pg_temp.snapshot();

SELECT set_eq($$SELECT c.relname::text FROM pg_depend d JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid
                WHERE d.deptype = 'e' AND c.relnamespace = 'sicoop'::regnamespace$$,
              ARRAY['stage_associado', 'stage_conta', 'stage_cartao', 'stage_movimentacao_cartao', 'stage_key_checksum',
                    'stage_bucket', 'stage_key', 'stage_reject', 'stage_source_column', 'stage_day', 'source_day_total',
                    'deferred_index', 'stream_key', 'stage_unfit', 'stage_associado_state'],
              'the only relations the extension owns are the steps'' scratch tables');
SELECT is((SELECT count(*)::int FROM sicoop.stage_associado) + (SELECT count(*)::int FROM sicoop.stage_cartao)
          + (SELECT count(*)::int FROM sicoop.stage_movimentacao_cartao) + (SELECT count(*)::int FROM sicoop.stage_key), 0,
          'and they hold nothing after a run (no source row, no full card number)');
SELECT ok(NOT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_foreign_server s ON d.classid = 'pg_foreign_server'::regclass
                      AND s.oid = d.objid WHERE d.deptype = 'e'),
          'nor the source server');
SELECT is((SELECT count(*)::int FROM sicoop.dim_associado WHERE NOT registro_ativo_associado AND id_associado IS NOT NULL), 1,
          'the warehouse has SCD2 history');

-- DROP EXTENSION keeps the data.
DROP EXTENSION sicoop_etl;
SELECT ok(NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'sicoop_etl'), 'DROP EXTENSION sicoop_etl succeeds (nothing of the data depends on it)');
SELECT set_eq('SELECT * FROM pg_temp.snapshot()', 'SELECT * FROM pg_temp.kept', 'and every relation keeps every row');
SELECT ok(to_regclass('sicoop.src_associado') IS NOT NULL AND EXISTS (SELECT 1 FROM pg_user_mappings WHERE srvname = 'sicoop_source'),
          'the source server, user mapping and foreign tables stay too');

-- Re-created over it, the extension adopts it; the next run goes on incrementally.
CREATE EXTENSION sicoop_etl;
SELECT set_eq('SELECT * FROM pg_temp.snapshot()', 'SELECT * FROM pg_temp.kept', 'CREATE EXTENSION over the surviving data changes none of it');
SELECT lives_ok('CALL sicoop.run_pipeline()', 'the re-created extension runs on the adopted warehouse');
SELECT is((SELECT rows_inserted + rows_updated + rows_deleted FROM sicoop.run_log
           WHERE step = 'load_fato' ORDER BY run_id DESC LIMIT 1), 0::bigint,
          'incrementally: with no source change, no fact is written');
SELECT set_eq($$SELECT * FROM pg_temp.snapshot() WHERE rel NOT IN ('run_log', 'step_state', 'source_sync', 'dq_result', 'reconciliation')$$,
              $$SELECT * FROM pg_temp.kept WHERE rel NOT IN ('run_log', 'step_state', 'source_sync', 'dq_result', 'reconciliation')$$,
              'and every layer is as it was (only the run log, the data-quality results and the incremental state moved on)');
DELETE FROM pg_temp.kept;
INSERT INTO pg_temp.kept SELECT * FROM pg_temp.snapshot();

-- CASCADE changes nothing: no data object depends on the extension.
DROP EXTENSION sicoop_etl CASCADE;
SELECT set_eq('SELECT * FROM pg_temp.snapshot()', 'SELECT * FROM pg_temp.kept', 'DROP EXTENSION sicoop_etl CASCADE keeps every row too');

-- Nor does dropping postgres_fdw: the source's connection objects go, the data stays.
CREATE EXTENSION sicoop_etl;
SET client_min_messages = warning;
DROP EXTENSION postgres_fdw CASCADE;
RESET client_min_messages;
SELECT ok(NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname IN ('sicoop_etl', 'postgres_fdw'))
          AND to_regclass('sicoop.src_associado') IS NULL,
          'DROP EXTENSION postgres_fdw CASCADE drops sicoop_etl and the foreign server and tables');
SELECT set_eq('SELECT * FROM pg_temp.snapshot()', 'SELECT * FROM pg_temp.kept', 'but every row of the warehouse stays');
CREATE EXTENSION sicoop_etl CASCADE;
SELECT throws_ok('CALL sicoop.run_pipeline()', '55000', NULL,
                 'a run before reconnecting is refused (the warehouse is not connected to a source)');
SELECT lives_ok(format('SELECT sicoop.connect_source(%L, %s, %L, current_user)', 'localhost', :pgport, :'srcdb'),
                'connect_source() re-creates the server and foreign tables over the kept warehouse');
SELECT set_eq('SELECT * FROM pg_temp.snapshot() WHERE rel NOT IN (''source_sync'')',
              'SELECT * FROM pg_temp.kept WHERE rel NOT IN (''source_sync'')', 'and changes no data');
SELECT lives_ok('CALL sicoop.run_pipeline()', 'the pipeline runs again');
SELECT is((SELECT count(*)::int FROM sicoop.dim_associado WHERE NOT registro_ativo_associado AND id_associado IS NOT NULL), 1,
          'with the SCD2 history intact');
SELECT is((SELECT count(*)::int FROM (SELECT 1 FROM sicoop.fato_movimentacao_cartao GROUP BY id_movimentacao_cartao HAVING count(*) > 1) d), 0,
          'and no duplicated fact');
DELETE FROM pg_temp.kept;
INSERT INTO pg_temp.kept SELECT * FROM pg_temp.snapshot();

-- What cannot be adopted is refused before anything changes.
DROP EXTENSION sicoop_etl;
UPDATE sicoop.warehouse_info SET layout_version = '9.0';
SELECT throws_like('CREATE EXTENSION sicoop_etl', '%layout 9.0, which this version does not know%',
                   'a warehouse of a later layout is refused');
UPDATE sicoop.warehouse_info SET layout_version = '1.0';
SELECT throws_like('CREATE EXTENSION sicoop_etl', '%older layout 1.0%', 'a warehouse of an older layout is refused');
UPDATE sicoop.warehouse_info SET layout_version = '1.12';
ALTER TABLE sicoop.reject RENAME TO reject_moved;
SELECT throws_like('CREATE EXTENSION sicoop_etl', '%incomplete: reject missing%', 'an incomplete warehouse is refused, naming what is missing');
ALTER TABLE sicoop.reject_moved RENAME TO reject;
ALTER TABLE sicoop.warehouse_info RENAME TO warehouse_info_moved;
SELECT throws_like('CREATE EXTENSION sicoop_etl', '%not a sicoop_etl warehouse%',
                   'tables named like the warehouse''s but without its marker are refused');
ALTER TABLE sicoop.warehouse_info_moved RENAME TO warehouse_info;
SELECT set_eq('SELECT * FROM pg_temp.snapshot()', 'SELECT * FROM pg_temp.kept', 'the refusals changed no data');
SELECT lives_ok('CREATE EXTENSION sicoop_etl', 'once put right, the warehouse is adopted');
SELECT lives_ok('CALL sicoop.run_pipeline()', 'and runs');

SELECT * FROM finish();
