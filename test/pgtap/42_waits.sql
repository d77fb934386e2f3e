-- Every wait a run makes in the warehouse is bounded: a step held behind a lock fails after
-- sicoop.lock_timeout with SQLSTATE 55P03, logged with its step, instead of waiting for as long
-- as the lock is held (lock_timeout and statement_timeout of the session both 0). And with no
-- lock bound at all, sicoop.step_timeout still ends the step, with SQLSTATE 57014.
\ir helpers/reset.sql
SELECT plan(9);

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

-- No lock bound (sicoop.lock_timeout 0): the step's own time bound ends it.
\o /dev/null
SET sicoop.lock_timeout = 0;
SET sicoop.step_timeout = '1s';
SET sicoop.as_of = '2025-08-15 12:05:00-03';
SELECT clock_timestamp() AS started \gset
\o
-- (not throws_like: PL/pgSQL's WHEN OTHERS does not catch a cancel, 57014)
\set ON_ERROR_STOP 0
CALL sicoop.run_pipeline();
\set ON_ERROR_STOP 1
SELECT is((SELECT error_message FROM sicoop.run_log WHERE run_id = (SELECT max(run_id) FROM sicoop.run_log) AND step = 'load_fato'),
          'canceling statement due to statement timeout',
          'a step held with no lock bound is cancelled by sicoop.step_timeout');
SELECT cmp_ok(extract(epoch FROM clock_timestamp() - :'started'::timestamptz)::numeric, '<', 30::numeric,
              'within seconds of the bound');
SELECT results_eq($$SELECT step, status, error_sqlstate, error_detail LIKE '%sicoop.step_timeout%' FROM sicoop.run_log
                    WHERE run_id = (SELECT max(run_id) FROM sicoop.run_log) AND step IN ('load_fato', 'run_pipeline') ORDER BY step$$,
                  $$VALUES ('load_fato', 'failed', '57014', true), ('run_pipeline', 'failed', '57014', true)$$,
                  'logged as 57014 with the step, and the detail names sicoop.step_timeout');
\o /dev/null
RESET sicoop.step_timeout;
SET sicoop.lock_timeout = '500ms';
SELECT dblink_exec('blocker', 'ROLLBACK');
SELECT dblink_disconnect('blocker');
SET sicoop.as_of = '2025-08-15 12:10:00-03';
RESET sicoop.lock_timeout;
\o
SELECT lives_ok('CALL sicoop.run_pipeline()', 'once the lock is gone, the next run succeeds');
SELECT is((SELECT count(*)::int FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-WAIT'), 1,
          'and loads what the held run could not');

-- A run that fails before its first step (here an index definition a failed first load left
-- behind that cannot be built) releases the pipeline lock: the session's next run is not
-- skipped, and no other session is kept out.
INSERT INTO sicoop.deferred_index VALUES ('sicoop.fato_movimentacao_cartao', 'sicoop_waits_bogus', 'SELECT 1/0');
SET sicoop.as_of = '2025-08-15 12:20:00-03';
SELECT throws_ok('CALL sicoop.run_pipeline()', '22012', NULL, 'a run fails while it prepares');
SELECT is((SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), 0,
          'and holds no pipeline lock afterwards');
DELETE FROM sicoop.deferred_index WHERE index_name = 'sicoop_waits_bogus';

SELECT * FROM finish();
