-- pg_cron: the pipeline scheduled with pg_cron (which lives in SiCooperativeDW, the cluster's
-- cron.database_name) runs in this warehouse and succeeds, within about a minute.
\ir helpers/reset.sql
SELECT plan(5);

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

SELECT * FROM finish();
