-- pg_cron: the pipeline scheduled with pg_cron (which lives in SiCooperativeDW, the cluster's
-- cron.database_name) runs in this warehouse and succeeds, within about a minute; and a job
-- that fires while a run has gone on for longer than sicoop.max_run_time fails in
-- cron.job_run_details (a hung run does not hide behind quiet skips); sicoop.schedule(),
-- schedule_status() and unschedule() in pg_cron's database.
\ir helpers/reset.sql
SELECT plan(25);

SELECT format('host=localhost port=%s dbname=sicooperativedw user=%s', :'pgport', current_user) AS cronconn \gset

\ir helpers/cron.sql
\ir helpers/error_of.sql
\o /dev/null
SELECT format('host=localhost port=%s dbname=sicooperativedb user=%s', :'pgport', current_user) AS demosrc \gset
-- Undoes what the password-authentication block below does to the demo warehouse and its source, also after an interrupted
-- run of this test: the warehouse back to its owner first, then the role's grants and the role.
CREATE FUNCTION pg_temp.forget_cron_operator(cronconn text, demosrc text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sicoop_test_cron_operator') THEN
    PERFORM dblink_exec(cronconn, $q$DO $d$
      BEGIN
        IF (SELECT c.relowner::regrole::text FROM pg_class c WHERE c.oid = to_regclass('sicoop.warehouse_info')) = 'sicoop_test_cron_operator' THEN
          PERFORM sicoop.unschedule();
          PERFORM sicoop.revoke_operator('sicoop_test_cron_operator');
        END IF;
      END $d$$q$);
    PERFORM dblink_exec(cronconn, 'DROP OWNED BY sicoop_test_cron_operator');
    PERFORM dblink_exec(demosrc, 'DROP OWNED BY sicoop_test_cron_operator');
    DROP OWNED BY sicoop_test_cron_operator;
    DROP ROLE sicoop_test_cron_operator;
  END IF;
END
$f$;
SELECT pg_temp.forget_cron_operator(:'cronconn', :'demosrc');
COPY (SELECT 1) TO PROGRAM 'rm -f sicoop_pgpass';
\o

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
-- (A run that waits without end: with no lock timeout of its own either.)
SELECT dblink_exec('runner', 'SET sicoop.lock_timeout = 0');
SELECT dblink_send_query('runner', 'CALL sicoop.run_pipeline(full => true)');
SELECT dblink_connect('listener', :'selfconn');
SELECT dblink_exec('listener', 'LISTEN sicoop_alerts');
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
-- The watchdog, a pg_cron job of its own (sicoop.schedule() makes it): the hung run is seen
-- without any other run of the pipeline starting, as pg_cron only queues a job behind itself.
SELECT job AS watchjob FROM dblink(:'cronconn', format(
  $$SELECT cron.schedule_in_database('sicoop_watchdog_test_%s', '* * * * *', 'SELECT sicoop.watchdog()', %L)$$,
  current_database(), current_database())) AS t(job bigint) \gset
SELECT is(pg_temp.wait_for_job(:'cronconn', :watchjob), 'succeeded: 1 row', 'pg_cron runs the watchdog');
SELECT ok(done, 'the watchdog job is unscheduled')
FROM dblink(:'cronconn', format('SELECT cron.unschedule(%s)', :watchjob)) AS t(done boolean);
-- (This session started before the database's setting: it takes it too.)
SET sicoop.max_run_time = 1;
SELECT is((SELECT status FROM sicoop.run_status() WHERE step = 'run_pipeline' AND status NOT IN ('succeeded', 'skipped', 'failed')),
          'overdue', 'run_status() shows the hung run as overdue');
\o /dev/null
SELECT * FROM dblink('listener', 'SELECT 1') AS t(x int);
CREATE TEMP TABLE heard AS SELECT * FROM dblink_get_notify('listener');
\o
SELECT is((SELECT count(*)::int FROM heard WHERE extra::jsonb ->> 'status' = 'overdue' AND extra::jsonb ->> 'sqlstate' = '55P03'
                                             AND extra::jsonb ->> 'step' = 'load_fato'), 1,
          'a listening client hears it once: overdue, 55P03, at load_fato');
SELECT is(sicoop.watchdog(), 1, 'the watchdog run again still counts it');
\o /dev/null
SELECT * FROM dblink('listener', 'SELECT 1') AS t(x int);
\o
SELECT is((SELECT count(*)::int FROM dblink_get_notify('listener')), 0, 'but alerts only once');
RESET sicoop.max_run_time;
ALTER DATABASE :"thisdb" RESET sicoop.max_run_time;
\o /dev/null
SELECT dblink_exec('blocker', 'ROLLBACK');
SELECT * FROM dblink_get_result('runner') AS t(r text);
SELECT dblink_disconnect('runner'), dblink_disconnect('blocker'), dblink_disconnect('listener');
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
  $$VALUES ('sicoop_watchdog@sicooperativedw', '* * * * *', 'SELECT sicoop.watchdog()'),
           ('sicoop_pipeline@sicooperativedw', '* * * * *', 'CALL sicoop.run_pipeline()'),
           ('sicoop_full@sicooperativedw', '0 3 * * 0', 'CALL sicoop.run_pipeline(full => true)')$$,
  'sicoop.schedule(cron, full_cron) schedules an incremental and a full run with pg_cron, and the watchdog');
SELECT jobid AS pipejob FROM dblink('cronwh', $$SELECT jobid FROM cron.job WHERE jobname = 'sicoop_pipeline@sicooperativedw'$$)
  AS t(jobid bigint) \gset
SELECT is(pg_temp.wait_for_job(:'cronconn', :pipejob), 'succeeded: CALL', 'the scheduled incremental run succeeds');
SELECT results_eq(
  $$SELECT jobname, cron_status, run_status FROM dblink('cronwh',
      'SELECT jobname, cron_status, run_status FROM sicoop.schedule_status()') AS t(jobname text, cron_status text, run_status text)
    WHERE jobname <> 'sicoop_watchdog@sicooperativedw'$$,
  $$VALUES ('sicoop_pipeline@sicooperativedw', 'succeeded', 'succeeded'), ('sicoop_full@sicooperativedw', NULL, 'succeeded')$$,
  'sicoop.schedule_status() shows the jobs, their latest run in pg_cron and the latest run in run_log');
SELECT is((SELECT n FROM dblink('cronwh', 'SELECT sicoop.unschedule()') AS t(n int)), 3, 'sicoop.unschedule() removes the three jobs');
\o /dev/null
SELECT dblink_disconnect('cronwh');
\o

-- Under password authentication: the operator's role has scram-sha-256 in pg_hba.conf
-- (test/env.sh), and this cluster runs pg_cron without background workers, so pg_cron starts
-- each job over a connection that has no password. sicoop.schedule() refuses such jobs with
-- the fix; once the server's password file (PGPASSFILE, test/env.sh) has the role's line, it
-- schedules them, and they run.
\o /dev/null
CREATE ROLE sicoop_test_cron_operator LOGIN PASSWORD 'cron-pw';
SELECT dblink_exec(:'demosrc', 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO sicoop_test_cron_operator');
SELECT dblink_connect('cronwh', :'cronconn');
SELECT * FROM dblink('cronwh', $$SELECT sicoop.grant_operator('sicoop_test_cron_operator')$$) AS t(x text);
SELECT dblink_connect('cronop', format('host=localhost port=%s dbname=sicooperativedw user=sicoop_test_cron_operator password=cron-pw', :'pgport'));
SELECT * FROM dblink('cronop', format($$SELECT sicoop.connect_source('localhost', %s, 'sicooperativedb', 'sicoop_test_cron_operator', 'cron-pw')$$, :'pgport')) AS t(x text);
\o
SELECT is((SELECT x FROM dblink('cronwh', 'SHOW cron.use_background_workers') AS t(x text)), 'off',
          '(this cluster runs pg_cron''s jobs over libpq connections, its default)');
SELECT (pg_temp.error_of($$SELECT * FROM dblink('cronop', 'SELECT jobname FROM sicoop.schedule(''* * * * *'')') AS t(j text)$$)) AS refusal \gset
SELECT alike((:'refusal'::text[])[2], '%pg_cron could not start the jobs: its connection for sicoop_test_cron_operator fails%',
             'sicoop.schedule() refuses jobs pg_cron could not start under password authentication');
SELECT alike((:'refusal'::text[])[4], '%cron.use_background_workers = on%localhost:' || :'pgport' || ':sicooperativedw:sicoop_test_cron_operator:<password>%',
             'and says the fix: background workers, or the exact line for the server''s password file');
\o /dev/null
SELECT format('COPY (SELECT %L) TO %L', format('localhost:%s:sicooperativedw:sicoop_test_cron_operator:cron-pw', :'pgport'),
              current_setting('data_directory') || '/sicoop_pgpass') \gexec
-- (libpq reads no password file that others may read; COPY writes files mode 0644.)
COPY (SELECT 1) TO PROGRAM 'chmod 600 sicoop_pgpass';
\o
SELECT results_eq($$SELECT j FROM dblink('cronop', 'SELECT jobname FROM sicoop.schedule(''* * * * *'')') AS t(j text)$$,
                  $$VALUES ('sicoop_watchdog@sicooperativedw'), ('sicoop_pipeline@sicooperativedw')$$,
                  'with the password file''s line, the operator schedules the pipeline');
SELECT jobid AS opjob FROM dblink('cronwh', $$SELECT jobid FROM cron.job WHERE jobname = 'sicoop_pipeline@sicooperativedw'$$)
  AS t(jobid bigint) \gset
SELECT is(pg_temp.wait_for_job(:'cronconn', :opjob), 'succeeded: CALL',
          'and the job, run by pg_cron as the operator under scram-sha-256, succeeds in cron.job_run_details');
SELECT is((SELECT n FROM dblink('cronop', 'SELECT sicoop.unschedule()') AS t(n int)), 2, 'the operator unschedules it (and the watchdog)');
\o /dev/null
COPY (SELECT 1) TO PROGRAM 'rm -f sicoop_pgpass';
SELECT dblink_disconnect('cronop');
SELECT dblink_disconnect('cronwh');
SELECT pg_temp.forget_cron_operator(:'cronconn', :'demosrc');
\o

SELECT * FROM finish();
