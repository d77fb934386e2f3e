-- Every wait a run makes in the warehouse is bounded: a step held behind a lock fails after
-- sicoop.lock_timeout with SQLSTATE 55P03, logged with its step, instead of waiting for as long
-- as the lock is held (lock_timeout and statement_timeout of the session both 0). And with no
-- lock bound at all, sicoop.step_timeout still ends the step, with SQLSTATE 57014. The bounds
-- hold from a run's first statement: an ACCESS EXCLUSIVE lock (VACUUM FULL, ALTER, REINDEX) on
-- any table a run reads before or while it plans a step ends the run with 55P03 too (up to 1.6
-- such a run waited without end: the step's bounds were armed after it read the fact).
\ir helpers/reset.sql
SELECT plan(14);
\ir helpers/error_of.sql

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
\ir helpers/failing_run.sql
SELECT cmp_ok(extract(epoch FROM clock_timestamp() - :'started'::timestamptz)::numeric, '<', 30::numeric,
              'a run behind a lock held without end, with no timeout of the session''s, ends on its own');
SELECT results_eq($$SELECT step, status, error_sqlstate FROM sicoop.run_log
                    WHERE run_id = (SELECT max(run_id) FROM sicoop.run_log) AND step IN ('load_fato', 'run_pipeline') ORDER BY step$$,
                  $$VALUES ('load_fato', 'failed', '55P03'), ('run_pipeline', 'failed', '55P03')$$,
                  'the step held behind the lock fails with 55P03 after sicoop.lock_timeout, in run_log');

-- No lock bound (sicoop.lock_timeout 0): the step's own time bound ends it.
\o /dev/null
SET sicoop.lock_timeout = 0;
-- (3 s: every step on the sample takes about 1 s on a busy two-core machine; only the one held
-- behind the lock may reach the bound.)
SET sicoop.step_timeout = '3s';
SET sicoop.as_of = '2025-08-15 12:05:00-03';
-- (not throws_like: PL/pgSQL's WHEN OTHERS does not catch a cancel, 57014)
\ir helpers/failing_run.sql
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

-- ACCESS EXCLUSIVE on the fact: a run reads it before its last step starts (is it empty?), and
-- fails there after sicoop.lock_timeout, logged with the step.
\o /dev/null
SELECT dblink_connect('blocker', :'selfconn');
SELECT dblink_exec('blocker', 'BEGIN');
SELECT dblink_exec('blocker', 'LOCK TABLE sicoop.fato_movimentacao_cartao IN ACCESS EXCLUSIVE MODE');
SET sicoop.lock_timeout = '500ms';
-- (Only so that a run waiting without bound fails this test instead of hanging it.)
SET statement_timeout = '5s';
SET sicoop.as_of = '2025-08-15 12:12:00-03';
\ir helpers/failing_run.sql
SELECT results_eq($$SELECT step, status, error_sqlstate FROM sicoop.run_log
                    WHERE run_id = (SELECT max(run_id) FROM sicoop.run_log) AND step IN ('load_fato', 'run_pipeline') ORDER BY step$$,
                  $$VALUES ('load_fato', 'failed', '55P03'), ('run_pipeline', 'failed', '55P03')$$,
                  'a run behind an ACCESS EXCLUSIVE lock on the fact fails with 55P03 after sicoop.lock_timeout, in the step that reads it');
SELECT ok((SELECT error_context LIKE '%sicoop step load_fato%' FROM sicoop.run_log
           WHERE run_id = (SELECT max(run_id) FROM sicoop.run_log) AND step = 'load_fato'),
          'and its error says where: the step and what it was doing');
\o /dev/null
SELECT dblink_exec('blocker', 'ROLLBACK');
\o
-- The same before the first step: the run log (the run's settings), the warehouse's state
-- (a full run owed?), indexes left to build, and the first step's tables.
CREATE FUNCTION pg_temp.run_behind(tbl regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  e text[];
BEGIN
  PERFORM dblink_exec('blocker', 'BEGIN');
  PERFORM dblink_exec('blocker', format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', tbl));
  e := pg_temp.error_of('CALL sicoop.run_pipeline()');
  PERFORM dblink_exec('blocker', 'ROLLBACK');
  RETURN coalesce(e[1], 'no error');
END
$$;
SELECT results_eq($$SELECT t, pg_temp.run_behind(t::regclass)
                    FROM unnest(ARRAY['sicoop.run_log', 'sicoop.warehouse_info', 'sicoop.deferred_index', 'sicoop.raw_associado']) t$$,
                  $$VALUES ('sicoop.run_log', '55P03'), ('sicoop.warehouse_info', '55P03'), ('sicoop.deferred_index', '55P03'),
                           ('sicoop.raw_associado', '55P03')$$,
                  'behind an ACCESS EXCLUSIVE lock on any table a run reads before its first step, the run fails with 55P03');
-- A single step plans behind the same lock (as the stream's worker does for each micro-batch):
-- bounded too, and the error says it was planning.
CREATE FUNCTION pg_temp.step_behind(tbl regclass, step text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
  e text[];
BEGIN
  PERFORM dblink_exec('blocker', 'BEGIN');
  PERFORM dblink_exec('blocker', format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', tbl));
  e := pg_temp.error_of(format('SELECT * FROM sicoop.run_step(%L)', step));
  PERFORM dblink_exec('blocker', 'ROLLBACK');
  RETURN e;
END
$$;
SELECT ok((SELECT e[1] = '55P03' AND e[5] LIKE '%sicoop step load_fato: planning%'
           FROM pg_temp.step_behind('sicoop.fato_movimentacao_cartao', 'load_fato') e),
          'a step planning behind an ACCESS EXCLUSIVE lock on its table fails with 55P03, saying it was planning');
-- With no lock bound at all, sicoop.step_timeout bounds what a run does before its first step.
SET sicoop.lock_timeout = 0;
SET sicoop.step_timeout = '2s';
SELECT ok((SELECT e[1] = '57014' AND e[3] LIKE '%preparation%sicoop.step_timeout%'
           FROM (SELECT pg_temp.error_of('CALL sicoop.run_pipeline()') AS e
                 FROM (SELECT dblink_exec('blocker', 'BEGIN'),
                              dblink_exec('blocker', 'LOCK TABLE sicoop.deferred_index IN ACCESS EXCLUSIVE MODE')) l) r),
          'with no lock bound, a run held before its first step is cancelled by sicoop.step_timeout, which its detail names');
\o /dev/null
SELECT dblink_exec('blocker', 'ROLLBACK');
RESET sicoop.step_timeout;
SET sicoop.lock_timeout = '500ms';
SELECT dblink_disconnect('blocker');
RESET statement_timeout;
\o

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
