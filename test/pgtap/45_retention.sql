-- Retention: with sicoop.log_retention set, every successful run deletes the run log and the
-- data-quality results of the runs that ended longer ago, in batches, keeping the latest
-- successful run; 200 runs in a row keep both tables bounded. An invalid setting is refused
-- before a run reads anything; empty keeps everything.
\ir helpers/reset.sql
SELECT plan(8);

SET sicoop.as_of = '';
SET sicoop.log_retention = 'two weeks';
SELECT throws_like('CALL sicoop.run_pipeline()', '%sicoop.log_retention is not an interval%',
                   'a retention that is no interval is refused before the run reads anything');
SET sicoop.log_retention = '-1 day';
SELECT throws_like('CALL sicoop.run_pipeline()', '%sicoop.log_retention must be a positive interval%',
                   'nor a negative one');
SELECT is((SELECT count(*)::int FROM sicoop.run_log), 0, '(neither run logged anything)');

-- Kept forever (empty): 20 runs, 20 runs' rows.
SET sicoop.log_retention = '';
\o /dev/null
DO $$ BEGIN FOR i IN 1..20 LOOP CALL sicoop.run_pipeline(); END LOOP; END $$;
\o
SELECT is((SELECT count(DISTINCT run_id)::int FROM sicoop.run_log), 20, 'with an empty retention, every run is kept');
SELECT (SELECT count(*) FROM sicoop.run_log) / 20 AS log_rows_per_run,
       (SELECT count(*) FROM sicoop.dq_result) / 20 AS result_rows_per_run \gset

-- One second: 200 more runs, each purging what ended more than a second before it.
SET sicoop.log_retention = '1 second';
\o /dev/null
DO $$ BEGIN FOR i IN 1..200 LOOP CALL sicoop.run_pipeline(); END LOOP; END $$;
\o
SELECT cmp_ok((SELECT count(DISTINCT run_id)::int FROM sicoop.run_log), '<', 60,
              format('after 200 runs with a 1-second retention, run_log holds the last few runs only (%s rows a run)', :log_rows_per_run));
SELECT cmp_ok((SELECT count(DISTINCT run_id)::int FROM sicoop.dq_result), '<', 60,
              format('and so does dq_result (%s rows a run)', :result_rows_per_run));
SELECT is((SELECT max(run_id) FROM sicoop.run_log WHERE step = 'run_pipeline' AND status = 'succeeded'),
          (SELECT max(run_id) FROM sicoop.run_log), 'the latest successful run is kept');
-- Even when it is older than the retention: the next run reads it (runs go forward from it).
SELECT pg_sleep(1.2);
SELECT is((SELECT sicoop._purge_logs('1 second') >= 0 AND EXISTS (SELECT 1 FROM sicoop.run_log WHERE step = 'run_pipeline'
                                                                  AND status = 'succeeded')), true,
          'a purge never deletes the latest successful run, however old');

SELECT * FROM finish();
