-- pg_cron: the pipeline scheduled with pg_cron (which lives in SiCooperativeDW, the cluster's
-- cron.database_name) runs in this warehouse and succeeds, within about a minute; and a job
-- that fires while a run has gone on for longer than sicoop.max_run_time fails in
-- cron.job_run_details (a hung run does not hide behind quiet skips); sicoop.schedule(),
-- schedule_status() and unschedule() in pg_cron's database.
\ir helpers/reset.sql
SELECT plan(13);

SELECT format('host=localhost port=%s dbname=sicooperativedw user=%s', :'pgport', current_user) AS cronconn \gset

\ir helpers/cron.sql

SELECT job AS jobid FROM dblink(:'cronconn', format(
  $$SELECT cron.schedule_in_database('sicoop_pipeline_test_%s', '* * * * *', 'CALL sicoop.run_pipeline()', %L)$$,
  current_database(), current_database())) AS t(job bigint) \gset

SELECT ok(:jobid > 0, 'CALL sicoop.run_pipeline() is scheduled with pg_cron');
SELECT is(pg_temp.wait_for_job(:'cronconn', :jobid), 'succeeded: CALL', 'pg_cron ran the pipeline and it succeeded');
SELECT ok(done, 'the job is unscheduled')
FROM dblink(:'cronconn', format('SELECT cron.unschedule(%s)', :jobid)) AS t(done boolean);

SELECT is((SELECT status FROM sicoop.run_log WHERE step = 'run_pipeline' ORDER BY run_id DESC LIMIT 1),
          'succeeded', 'the scheduled run is in run_log as succeeded');
SELECT is((SELECT count(*)::int FROM sicoop.fato_movimentacao_cartao), 12,
          'the scheduled run loaded the sample''s twelve movements');

-- A run that hangs (held by a lock at load_fato, holding the pipeline's lock), and a job
-- firing behind it past sicoop.max_run_time.
\o /dev/null
SELECT format('host=localhost port=%s dbname=%s user=%s', :'pgport', current_database(), current_user) AS selfconn \gset
SELECT dblink_connect('blocker', :'selfconn');
SELECT dblink_exec('blocker', 'BEGIN');
SELECT dblink_exec('blocker', 'LOCK TABLE sicoop.fato_movimentacao_cartao IN EXCLUSIVE MODE');
SELECT dblink_connect('runner', :'selfconn');
SELECT dblink_send_query('runner', 'CALL sicoop.run_pipeline(full => true)');
\o
-- (Settings for scheduled runs go on the database or role: a job's command of several
-- statements runs as one transaction, in which the steps cannot commit on their own.)
SELECT current_database() AS thisdb \gset
ALTER DATABASE :"thisdb" SET sicoop.max_run_time = 1;
SELECT job AS jobid FROM dblink(:'cronconn', format(
  $$SELECT cron.schedule_in_database('sicoop_pipeline_hung_%s', '* * * * *', 'CALL sicoop.run_pipeline()', %L)$$,
  current_database(), current_database())) AS t(job bigint) \gset
SELECT alike(pg_temp.wait_for_job(:'cronconn', :jobid), 'failed: %longer than sicoop.max_run_time%',
            'behind a run going on for longer than sicoop.max_run_time, the scheduled run fails in cron.job_run_details');
SELECT ok(done, 'the job is unscheduled')
FROM dblink(:'cronconn', format('SELECT cron.unschedule(%s)', :jobid)) AS t(done boolean);
SELECT alike((SELECT error_message FROM sicoop.run_log WHERE status = 'skipped' ORDER BY run_id DESC LIMIT 1),
            'skipped: another run holds the pipeline lock (backend pid %), running for % s, longer than sicoop.max_run_time (1 s)',
            'run_log records the skip and why');
ALTER DATABASE :"thisdb" RESET sicoop.max_run_time;
\o /dev/null
SELECT dblink_exec('blocker', 'ROLLBACK');
SELECT * FROM dblink_get_result('runner') AS t(r text);
SELECT dblink_disconnect('runner'), dblink_disconnect('blocker');
\o

-- sicoop.schedule(): one call, in the database pg_cron lives in (here the demo warehouse,
-- sicooperativedw, connected to the sample); elsewhere it says what to run where.
SELECT throws_like($$SELECT * FROM sicoop.schedule()$$, '%pg_cron is not installed in database%',
                   'sicoop.schedule() outside pg_cron''s database says so (the hint gives the call to run there)');
\o /dev/null
SELECT dblink_connect('cronwh', :'cronconn');
\o
SELECT results_eq(
  $$SELECT jobname, schedule, command FROM dblink('cronwh',
      'SELECT jobname, schedule, command FROM sicoop.schedule(''* * * * *'', ''0 3 * * 0'')')
      AS t(jobname text, schedule text, command text)$$,
  $$VALUES ('sicoop_pipeline@sicooperativedw', '* * * * *', 'CALL sicoop.run_pipeline()'),
           ('sicoop_full@sicooperativedw', '0 3 * * 0', 'CALL sicoop.run_pipeline(full => true)')$$,
  'sicoop.schedule(cron, full_cron) schedules an incremental and a full run with pg_cron');
SELECT jobid AS pipejob FROM dblink('cronwh', $$SELECT jobid FROM cron.job WHERE jobname = 'sicoop_pipeline@sicooperativedw'$$)
  AS t(jobid bigint) \gset
SELECT is(pg_temp.wait_for_job(:'cronconn', :pipejob), 'succeeded: CALL', 'the scheduled incremental run succeeds');
SELECT results_eq(
  $$SELECT jobname, cron_status, run_status FROM dblink('cronwh',
      'SELECT jobname, cron_status, run_status FROM sicoop.schedule_status()') AS t(jobname text, cron_status text, run_status text)$$,
  $$VALUES ('sicoop_pipeline@sicooperativedw', 'succeeded', 'succeeded'), ('sicoop_full@sicooperativedw', NULL, 'succeeded')$$,
  'sicoop.schedule_status() shows the jobs, their latest run in pg_cron and the latest run in run_log');
SELECT is((SELECT n FROM dblink('cronwh', 'SELECT sicoop.unschedule()') AS t(n int)), 2, 'sicoop.unschedule() removes both jobs');
\o /dev/null
SELECT dblink_disconnect('cronwh');
\o

SELECT * FROM finish();
