-- Every wait a run makes in the warehouse is bounded: a step held behind a lock fails after
-- sicoop.lock_timeout with SQLSTATE 55P03, logged with its step, instead of waiting for as long
-- as the lock is held (lock_timeout and statement_timeout of the session both 0).
\ir helpers/reset.sql
SELECT plan(4);

\o /dev/null
CALL sicoop.run_pipeline();
SELECT dblink_exec(:'srcconn', $$INSERT INTO movimentacao_cartao VALUES ('MOV-WAIT', 'CARTAO-201', 'espera', 1.00, '2025-08-15 09:30')$$);
SELECT format('host=localhost port=%s dbname=%s user=%s', :'pgport', current_database(), current_user) AS selfconn \gset
SELECT dblink_connect('blocker', :'selfconn');
SELECT dblink_exec('blocker', 'BEGIN');
SELECT dblink_exec('blocker', 'LOCK TABLE sicoop.fato_movimentacao_cartao IN EXCLUSIVE MODE');
SET lock_timeout = 0;
SET statement_timeout = 0;
SET sicoop.lock_timeout = '500ms';
SET sicoop.as_of = '2025-08-15 12:00:00-03';
SELECT clock_timestamp() AS started \gset
\o
\set ON_ERROR_STOP 0
CALL sicoop.run_pipeline();
\set ON_ERROR_STOP 1
SELECT cmp_ok(extract(epoch FROM clock_timestamp() - :'started'::timestamptz)::numeric, '<', 30::numeric,
              'a run behind a lock held without end, with no timeout of the session''s, ends on its own');
SELECT results_eq($$SELECT step, status, error_sqlstate FROM sicoop.run_log
                    WHERE run_id = (SELECT max(run_id) FROM sicoop.run_log) AND step IN ('load_fato', 'run_pipeline') ORDER BY step$$,
                  $$VALUES ('load_fato', 'failed', '55P03'), ('run_pipeline', 'failed', '55P03')$$,
                  'the step held behind the lock fails with 55P03 after sicoop.lock_timeout, in run_log');
\o /dev/null
SELECT dblink_exec('blocker', 'ROLLBACK');
SELECT dblink_disconnect('blocker');
SET sicoop.as_of = '2025-08-15 12:10:00-03';
\o
SELECT lives_ok('CALL sicoop.run_pipeline()', 'once the lock is gone, the next run succeeds');
SELECT is((SELECT count(*)::int FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-WAIT'), 1,
          'and loads what the held run could not');

SELECT * FROM finish();
