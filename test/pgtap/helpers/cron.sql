-- pg_temp.wait_for_job(conn, job): the outcome of pg_cron job `job`'s latest run, read over
-- dblink connection `conn` (the database pg_cron lives in). pg_cron's smallest period is a
-- minute: its run history is polled for up to 100 seconds.
CREATE FUNCTION pg_temp.wait_for_job(conn text, job bigint) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  outcome text;
BEGIN
  FOR i IN 1..100 LOOP
    SELECT s INTO outcome FROM dblink(conn, format(
      'SELECT status || coalesce('': '' || return_message, '''') FROM cron.job_run_details
       WHERE jobid = %s AND status IN (''succeeded'', ''failed'') ORDER BY runid DESC LIMIT 1', job)) AS t(s text);
    IF outcome IS NOT NULL THEN
      RETURN outcome;
    END IF;
    PERFORM pg_sleep(1);
  END LOOP;
  RETURN 'no run within 100 seconds';
END
$$;
