-- Scheduling with pg_cron: schedule(), unschedule(), schedule_status(), and the watchdog that
-- sees a run going on for too long.

------------------------------------------------------------------------------------------
-- Scheduling with pg_cron, in one call. pg_cron lives in the database cron.database_name
-- names; with the warehouse there (the usual setup), the jobs run the pipeline here as the
-- role that scheduled them (the operator).
------------------------------------------------------------------------------------------
-- The names of this warehouse's jobs: incremental runs, the optional full run, and the watchdog.
CREATE OR REPLACE FUNCTION _job_names() RETURNS text[] LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS
$$ SELECT ARRAY['sicoop_pipeline@' || current_database(), 'sicoop_full@' || current_database(),
                'sicoop_watchdog@' || current_database()] $$;

-- Refuses when pg_cron is not in this database, saying what to run where it is.
CREATE OR REPLACE FUNCTION _check_cron(what text, cron text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF to_regprocedure('cron.schedule(text, text, text)') IS NULL THEN
    RAISE EXCEPTION 'sicoop.%: pg_cron is not installed in database %', what, current_database()
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = format('pg_cron runs jobs from the database cron.database_name names (%s). There, a superuser runs: SELECT cron.schedule_in_database(%L, %L, %L, %L);',
                          coalesce(current_setting('cron.database_name', true), 'postgres'), (sicoop._job_names())[1],
                          coalesce(cron, '*/15 * * * *'), 'CALL sicoop.run_pipeline()', current_database());
  END IF;
END
$fn$;

-- The watchdog, a pg_cron job of its own that sicoop.schedule() makes (every minute): pg_cron
-- queues a job's next run behind one still going, so a hung run would stop the schedule in
-- silence, with no later run to notice it. This looks for runs going on for longer than
-- sicoop.max_run_time ('overdue' in sicoop.run_status() and schedule_status()) and alerts once
-- for each (NOTIFY sicoop_alerts: status 'overdue', SQLSTATE 55P03, the step it is at),
-- recording the alert in the run's run_log detail (overdue_alerted_at). Returns how many runs
-- are overdue.
CREATE OR REPLACE FUNCTION watchdog() RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  r record;
  overdue int := 0;
BEGIN
  PERFORM sicoop._watch_stream();  -- a stream whose worker is gone starts again (src/sql/stream.sql)
  FOR r IN SELECT s.run_id, s.started_at, l.detail ? 'overdue_alerted_at' AS alerted,
                  (SELECT x.step FROM sicoop.run_log x WHERE x.run_id = s.run_id AND x.step <> 'run_pipeline'
                   ORDER BY x.started_at DESC LIMIT 1) AS current_step
           FROM sicoop.run_status() s
           JOIN sicoop.run_log l ON l.run_id = s.run_id AND l.step = s.step
           WHERE s.step = 'run_pipeline' AND s.status = 'overdue'
  LOOP
    overdue := overdue + 1;
    CONTINUE WHEN r.alerted;
    UPDATE sicoop.run_log l SET detail = coalesce(l.detail, '{}') || jsonb_build_object('overdue_alerted_at', clock_timestamp())
    WHERE l.run_id = r.run_id AND l.step = 'run_pipeline';
    PERFORM pg_notify('sicoop_alerts', json_build_object(
              'database', current_database(), 'run_id', r.run_id, 'step', coalesce(r.current_step, 'run_pipeline'),
              'status', 'overdue', 'sqlstate', '55P03', 'started_at', r.started_at,
              'running_seconds', round(extract(epoch FROM clock_timestamp() - r.started_at)),
              'max_run_time', current_setting('sicoop.max_run_time'))::text);
  END LOOP;
  RETURN overdue;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop.watchdog() FROM PUBLIC;  -- operator

-- Whether pg_cron could start this role's jobs here (C++, src/schedule.cpp): with background
-- workers (cron.use_background_workers) it can; else it starts each job over a connection to
-- cron.host as the job's role with no password, and only the server's environment (its
-- password file, a trust or peer rule) can make that work: `error` says why that very
-- connection, made from this server, fails (NULL: it works). pg_cron's settings are
-- superuser-only to read in SQL; this reads these two for the caller.
CREATE OR REPLACE FUNCTION _cron_connection_error(OUT background_workers boolean, OUT host text, OUT port int, OUT error text)
LANGUAGE c VOLATILE SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'sicoop_cron_connection_error';
REVOKE ALL ON FUNCTION sicoop._cron_connection_error() FROM PUBLIC;  -- operator

-- Schedules the pipeline: CALL sicoop.run_pipeline() on `cron` (pg_cron's syntax), and, if
-- full_cron is given, CALL sicoop.run_pipeline(full => true) on it, and the watchdog every
-- minute (sicoop.watchdog()). Replaces this warehouse's earlier jobs. Returns the jobs.
-- Refuses jobs pg_cron could not start: with pg_cron's background workers off, its connection
-- for the caller must work (see sicoop._cron_connection_error()); the error says what to change.
CREATE OR REPLACE FUNCTION schedule(cron text DEFAULT '*/15 * * * *', full_cron text DEFAULT NULL)
RETURNS TABLE (jobid bigint, jobname text, schedule text, command text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  pg_cron record;
BEGIN
  PERFORM sicoop._check_cron('schedule', cron);
  IF cron IS NULL THEN
    RAISE EXCEPTION 'sicoop.schedule: a schedule is required' USING ERRCODE = 'null_value_not_allowed',
      HINT = 'pg_cron''s syntax, such as ''*/15 * * * *'' (every 15 minutes); sicoop.unschedule() removes the jobs.';
  END IF;
  SELECT * INTO pg_cron FROM sicoop._cron_connection_error();
  IF pg_cron.error IS NOT NULL THEN
    RAISE EXCEPTION 'sicoop.schedule: pg_cron could not start the jobs: its connection for % fails', current_user
      USING ERRCODE = 'sqlclient_unable_to_establish_sqlconnection',
            DETAIL = format('pg_cron (without background workers) connects with host=%s port=%s dbname=%s user=%s and no password: %s',
                            pg_cron.host, pg_cron.port, current_database(), current_user, pg_cron.error),
            HINT = format('Either run the jobs in background workers: as a superuser, ALTER SYSTEM SET cron.use_background_workers = on; '
                          'ALTER SYSTEM SET max_worker_processes = 20; then restart PostgreSQL. Or let pg_cron''s connection '
                          'authenticate: a line "%s:%s:%s:%s:<password>" in the password file of the server''s operating-system '
                          'user (~/.pgpass, mode 0600, or the file PGPASSFILE names in the server''s environment), or a pg_hba.conf '
                          'rule for it. Then call sicoop.schedule() again.',
                          pg_cron.host, pg_cron.port, current_database(), current_user);
  END IF;
  PERFORM sicoop.unschedule();
  PERFORM cron.schedule((sicoop._job_names())[1], cron, 'CALL sicoop.run_pipeline()');
  IF full_cron IS NOT NULL THEN
    PERFORM cron.schedule((sicoop._job_names())[2], full_cron, 'CALL sicoop.run_pipeline(full => true)');
  END IF;
  PERFORM cron.schedule((sicoop._job_names())[3], '* * * * *', 'SELECT sicoop.watchdog()');
  RETURN QUERY SELECT j.jobid, j.jobname::text, j.schedule, j.command FROM cron.job j
               WHERE j.jobname = ANY (sicoop._job_names()) ORDER BY j.jobname DESC;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop.schedule(text, text) FROM PUBLIC;  -- operator

-- Removes this warehouse's jobs (those its caller may see); returns how many.
CREATE OR REPLACE FUNCTION unschedule() RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  n int := 0;
  j record;
BEGIN
  PERFORM sicoop._check_cron('unschedule', NULL);
  FOR j IN SELECT c.jobid FROM cron.job c WHERE c.jobname = ANY (sicoop._job_names()) LOOP
    PERFORM cron.unschedule(j.jobid);
    n := n + 1;
  END LOOP;
  RETURN n;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop.unschedule() FROM PUBLIC;  -- operator

-- This warehouse's jobs, their latest run in pg_cron (cron.job_run_details), and the latest run
-- in the run log (aborted runs shown so at once). A function, not a view: a view of pg_cron's
-- tables would be data that DROP EXTENSION pg_cron must drop or be refused by.
CREATE OR REPLACE FUNCTION schedule_status()
RETURNS TABLE (jobname text, schedule text, command text, active boolean, cron_status text, cron_started timestamptz,
               cron_finished timestamptz, cron_message text, run_id bigint, run_status text, run_started timestamptz,
               run_finished timestamptz, run_error text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM sicoop._check_cron('schedule_status', NULL);
  RETURN QUERY
  SELECT j.jobname::text, j.schedule, j.command, j.active, d.status, d.start_time, d.end_time, d.return_message,
         r.run_id, r.status, r.started_at, r.finished_at, r.error_message
  FROM cron.job j
  LEFT JOIN LATERAL (SELECT x.status, x.start_time, x.end_time, x.return_message FROM cron.job_run_details x
                     WHERE x.jobid = j.jobid ORDER BY x.runid DESC LIMIT 1) d ON true
  LEFT JOIN LATERAL (SELECT s.run_id, s.status, s.started_at, s.finished_at, s.error_message FROM sicoop.run_status() s
                     WHERE s.step = 'run_pipeline' ORDER BY s.run_id DESC LIMIT 1) r ON true
  WHERE j.jobname = ANY (sicoop._job_names())
  ORDER BY j.jobname DESC;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop.schedule_status() FROM PUBLIC;  -- operator
