-- The run log's readers and upkeep: alerts (NOTIFY sicoop_alerts), runs that died marked as
-- aborted, run_status(), and retention (_purge_logs). Its rows are written by src/run_log.cpp.

-- Tells whoever listens on channel sicoop_alerts (LISTEN sicoop_alerts) about a run's step: a
-- JSON payload of identifiers only -- the run, the step, its status, SQLSTATE and counts -- from
-- run_log: any role that may connect to the database may LISTEN, so the error's text (which
-- can quote keys and values) stays in run_log, for those who may read it. Sent when the
-- caller's transaction commits. Runs call it for a failed or aborted step, and for a skip
-- behind a run older than sicoop.max_run_time.
CREATE OR REPLACE FUNCTION _alert(run_id bigint, step text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
SELECT pg_notify('sicoop_alerts', json_build_object(
         'database', current_database(), 'run_id', l.run_id, 'step', l.step, 'status', l.status,
         'sqlstate', l.error_sqlstate, 'as_of', l.as_of,
         'started_at', l.started_at, 'finished_at', l.finished_at,
         'counts', json_build_object('read', l.rows_read, 'inserted', l.rows_inserted, 'updated', l.rows_updated,
                                     'deleted', l.rows_deleted, 'rejected', l.rows_rejected))::text)
FROM sicoop.run_log l WHERE l.run_id = $1 AND l.step = $2
$$;
REVOKE ALL ON FUNCTION sicoop._alert(bigint, text) FROM PUBLIC;  -- operator

-- Marks 'running' rows of runs whose backend no longer holds the pipeline's lock (a crash, a
-- shutdown, a terminated backend) as 'aborted', and alerts once per run (naming the step that
-- was running). Each run calls it once it holds the lock.
CREATE OR REPLACE FUNCTION _mark_aborted_runs() RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  runs bigint[];
BEGIN
  WITH aborted AS (
    UPDATE sicoop.run_log l
    SET status = 'aborted', finished_at = clock_timestamp(),
        error_message = format('the run''s backend (pid %s) ended before the run did: a server crash or shutdown, or a terminated backend', l.backend_pid)
    WHERE l.status = 'running'
      AND NOT EXISTS (SELECT 1 FROM pg_locks k
                      WHERE k.locktype = 'advisory' AND k.granted AND k.pid = l.backend_pid
                        AND k.classid = 1936286576::oid AND k.objid = 7338001::oid AND k.objsubid = 4
                        AND k.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database()))
    RETURNING l.run_id)
  SELECT array_agg(DISTINCT a.run_id) INTO runs FROM aborted a;
  PERFORM sicoop._alert(a.run_id, a.step)
  FROM (SELECT DISTINCT ON (l.run_id) l.run_id, l.step FROM sicoop.run_log l
        WHERE l.run_id = ANY (runs) AND l.status = 'aborted'
        ORDER BY l.run_id, l.step = 'run_pipeline', l.started_at DESC) a;
  RETURN coalesce(cardinality(runs), 0);
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._mark_aborted_runs() FROM PUBLIC;  -- operator

-- The runs in the log, as they are now: a run whose backend is gone (crash, shutdown,
-- terminated) is 'aborted' at once (the next run records it so); a run still going for longer
-- than sicoop.max_run_time is 'overdue' (its steps are as they are).
-- The stream's micro-batches (step 'stream', several a second: some 10,000 rows a day) would
-- bury the batch runs an operator reads this for: the ones that succeeded are summed up, one row
-- per hour they ran in -- run_id the hour's last batch, started_at its first batch's start,
-- finished_at its last one's end, rows_read and rows_rejected the hour's sums; an hour with no
-- row is an hour the stream applied nothing. Any other micro-batch row is shown as it is.
-- sicoop.stream_status() says how the stream is now, run_log holds every batch.
CREATE OR REPLACE FUNCTION run_status()
RETURNS TABLE (run_id bigint, step text, status text, as_of timestamptz, started_at timestamptz,
               finished_at timestamptz, rows_read bigint, rows_rejected bigint, error_sqlstate text,
               error_message text, error_context text, backend_pid int)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT * FROM (
  SELECT l.run_id, l.step,
         CASE WHEN l.status = 'running' AND NOT EXISTS (
                     SELECT 1 FROM pg_locks k
                     WHERE k.locktype = 'advisory' AND k.granted AND k.pid = l.backend_pid
                       AND k.classid = 1936286576::oid AND k.objid = 7338001::oid AND k.objsubid = 4
                       AND k.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database()))
              THEN 'aborted'
              WHEN l.status = 'running' AND l.step = 'run_pipeline'
                   AND nullif(current_setting('sicoop.max_run_time'), '0')::interval < clock_timestamp() - l.started_at
              THEN 'overdue'
              ELSE l.status END,
         l.as_of, l.started_at, l.finished_at, l.rows_read, l.rows_rejected, l.error_sqlstate,
         l.error_message, l.error_context, l.backend_pid
  FROM sicoop.run_log l
  WHERE l.step <> 'stream' OR l.status <> 'succeeded'
  UNION ALL
  SELECT max(l.run_id), 'stream', 'succeeded', max(l.as_of), min(l.started_at), max(l.finished_at),
         sum(l.rows_read)::bigint, sum(l.rows_rejected)::bigint, NULL, NULL, NULL,
         (array_agg(l.backend_pid ORDER BY l.run_id DESC))[1]
  FROM sicoop.run_log l
  WHERE l.step = 'stream' AND l.status = 'succeeded'
  GROUP BY date_trunc('hour', l.started_at)) s
ORDER BY s.run_id, s.started_at
$$;

-- Retention (sicoop.log_retention): deletes, in one batch of at most `batch` runs, the run log
-- and the data-quality results of runs that ended longer than `retention` ago. Never a run
-- still going, nor the latest successful run: the next runs read it (its reference time, its
-- figures, the tables' rows for sicoop.progress). Returns the runs deleted; the caller commits
-- between batches, so that no purge holds many rows locked or bloats one transaction.
CREATE OR REPLACE FUNCTION _purge_logs(retention interval, batch int DEFAULT 500) RETURNS int
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
WITH latest_success AS (
  SELECT max(l.run_id) AS run_id FROM sicoop.run_log l WHERE l.step = 'run_pipeline' AND l.status = 'succeeded'
),
old_runs AS (
  SELECT l.run_id FROM sicoop.run_log l
  WHERE l.run_id IS DISTINCT FROM (SELECT s.run_id FROM latest_success s)
  GROUP BY l.run_id
  HAVING bool_and(l.status <> 'running') AND max(coalesce(l.finished_at, l.started_at)) < now() - retention
  ORDER BY l.run_id
  LIMIT batch
),
results_gone AS (
  DELETE FROM sicoop.dq_result q USING old_runs o WHERE q.run_id = o.run_id
),
runs_gone AS (
  DELETE FROM sicoop.run_log l USING old_runs o WHERE l.run_id = o.run_id RETURNING l.run_id
)
SELECT count(DISTINCT g.run_id)::int FROM runs_gone g
$$;
REVOKE ALL ON FUNCTION sicoop._purge_logs(interval, integer) FROM PUBLIC;  -- operator
