-- The stream's SQL interface, without a replication stream (test/lifecycle/60_stream.sh runs
-- the stream itself on real logical replication): what start_stream() refuses, what
-- stop_stream(), resync_stream() and stream_status() say with no stream and with one that is
-- not running, the watchdog's part with the library's settings shown in their units, that a
-- batch run goes on as usual when no stream is wanted, and skips while one is, running or not,
-- and run_status() summing the stream's micro-batches up per hour.
\ir helpers/reset.sql
SELECT plan(38);

SELECT is((SELECT count(*)::int FROM sicoop.stream_status()), 0, 'no stream: stream_status() returns no row');
SELECT is(sicoop.stop_stream(), 'no stream was started', 'no stream: stop_stream() says so');
SELECT is(sicoop._watch_stream(), NULL, 'no stream: the watchdog has nothing to do');

SELECT throws_like($$SELECT sicoop.start_stream('Bad Slot')$$, '%is not a replication slot name%',
                   'a slot name the source would refuse is refused first');
SELECT throws_like($$SELECT sicoop.start_stream('ok_slot', 'pub"; DROP TABLE x; --')$$, '%is not a publication name%',
                   'so is a publication name that is no plain identifier');
SELECT throws_like($$SELECT sicoop.start_stream(NULL, NULL)$$, '%NULL is not a publication name%', 'and a NULL publication');
-- The default slot is this warehouse's own: its cluster's system identifier (in letters, base 26)
-- and database OID.
SELECT is(sicoop._warehouse_id(),
          (WITH RECURSIVE d(n, s) AS (SELECT system_identifier::numeric, '' FROM pg_control_system()
                                      UNION ALL SELECT div(n, 26), chr(97 + mod(n, 26)::int) || s FROM d WHERE n > 0)
           SELECT s FROM d WHERE n = 0) || '_' || (SELECT oid::text FROM pg_database WHERE datname = current_database()),
          'the warehouse is named by system (in letters) and database');
SELECT is(sicoop.contains_card_number('sicoop_' || sicoop._warehouse_id()), false, 'its default slot name never reads as a card number');
SELECT matches('sicoop_' || sicoop._warehouse_id(), '^[a-z0-9_]{1,63}$', 'and its default slot name is one the source accepts');
-- No worker: _stream_worker_pid() (read from pg_locks) sees none, and signals nothing.
SELECT is(sicoop._stream_worker_pid(), NULL, 'no worker: _stream_worker_pid() is NULL');
SELECT is(sicoop._signal_stream_worker(pg_backend_pid()), false, '_signal_stream_worker() signals no process but a stream worker');
SELECT is((SELECT count(*)::int FROM sicoop.stream_state), 0, 'the refusals wrote nothing');

-- A stream that was started and whose worker is gone (as after a server restart), set up by hand.
INSERT INTO sicoop.stream_state (slot_name, publication, wanted, state, applied_lsn)
VALUES ('sicoop_stream', 'sicoop_stream', true, 'streaming', '0/1');
SELECT is((SELECT state FROM sicoop.stream_status()), 'not running',
          'a stream wanted whose worker is gone shows as not running');
SELECT throws_like($$SELECT sicoop.start_stream('other_slot')$$, '%the stream follows slot sicoop_stream%',
                   'start_stream() refuses another slot while the stream has a position in this one');
SELECT is(sicoop.resync_stream(), 'the next sicoop.start_stream() takes a fresh snapshot',
          'resync_stream() (no worker running) forgets the position');
SELECT is((SELECT applied_lsn FROM sicoop.stream_state), NULL, 'and the position is gone');

-- The lag alert's setting is shown with its unit ('1min'): the watchdog reads it as an interval.
SET sicoop.stream_lag_alert = '90s';
UPDATE sicoop.stream_state SET wanted = false, state = 'failed', error_sqlstate = '55000';
SELECT is(sicoop._watch_stream(), 'alerted: failed', 'a failed stream is alerted by the watchdog, once');
SELECT is(sicoop._watch_stream(), NULL, '(not twice)');

-- 1.7 (issue 25): the source's side, read now; every state visible; each condition alerted once.
UPDATE sicoop.stream_state SET wanted = true, state = 'reconnecting', stopped_at = clock_timestamp(),
                               applied_lsn = '0/1', error_message = 'the source ended the stream';
SELECT is((SELECT state FROM sicoop.stream_status()), 'reconnecting',
          'a worker that ended to connect again shows as reconnecting (the postmaster starts it within 5 s)');
SELECT ok((SELECT source_lsn > '0/1' AND lag_bytes > 0 AND source_error IS NULL FROM sicoop.stream_status()),
          'stream_status() reads the source''s WAL position now: the lag in bytes is from the source''s side');
SELECT is((SELECT slot_wal_status FROM sicoop.stream_status()), NULL, 'no slot at the source: no slot status');
UPDATE sicoop.stream_state SET state = 'stalled', stopped_at = clock_timestamp();
SELECT is((SELECT state FROM sicoop.stream_status()), 'stalled', 'a stalled stream says so');
SELECT is(sicoop._watch_stream(), 'alerted: stalled', 'the watchdog alerts a stalled stream, once');
SELECT is(sicoop._watch_stream(), NULL, '(not twice)');
UPDATE sicoop.stream_state SET stopped_at = clock_timestamp() - interval '1 minute', current_at = clock_timestamp() - interval '2 minutes';
SELECT is((SELECT state FROM sicoop.stream_status()), 'not running',
          'a stream wanted whose worker has not come back for 30 s is not running');
SELECT ok((SELECT lag_seconds >= 120 FROM sicoop.stream_status()),
          'its lag in seconds counts from when the warehouse last held all the source had');
SELECT alike(sicoop._watch_stream(), '%alerted: lagging, not running',
             'the watchdog starts it again and alerts what began: not running, lagging');
-- (The worker it started finds no publication at this source and fails; waited for.)
SELECT sicoop.stop_stream();
SELECT sicoop.resync_stream();
ALTER SERVER sicoop_source OPTIONS (SET port '1');
UPDATE sicoop.stream_state SET wanted = true, state = 'reconnecting', stopped_at = clock_timestamp(), alerted = NULL;
SELECT alike((SELECT source_error FROM sicoop.stream_status()), '%cannot%',
            'a source that cannot be read: stream_status() says why, the source''s columns empty');
SELECT alike(sicoop._watch_stream(), '%source unreadable%', 'and the watchdog alerts it: a check that cannot see fails');
ALTER SERVER sicoop_source OPTIONS (SET port :'pgport');

-- No stream running: a batch run goes on as always.
DELETE FROM sicoop.stream_state;
SET client_min_messages = warning;
CALL sicoop.run_pipeline();
RESET client_min_messages;
SELECT is((SELECT status FROM sicoop.run_log WHERE step = 'run_pipeline' ORDER BY run_id DESC LIMIT 1), 'succeeded',
          'with no stream running, a batch run runs');

-- A stream wanted owns the warehouse even while its worker is not running (a server restart
-- before the watchdog's minute, a reconnection, a stall): an incremental batch run would read
-- the source's current state and collapse the member history the stream will replay, so it
-- skips, logged, and loads nothing. A stream stopped (wanted = false) lets batch runs load.
\o /dev/null
SELECT dblink_exec(:'srcconn', $$INSERT INTO movimentacao_cartao VALUES ('MOV-STREAM-OWNED', 'CARTAO-201', 'stream', 3.00, '2025-08-15 10:00')$$);
SELECT dblink_exec(:'srcconn', $$UPDATE associado SET estado_civil = 'Divorciado' WHERE id_associado = 'ASSOC-001'$$);
\o
INSERT INTO sicoop.stream_state (slot_name, publication, wanted, state, applied_lsn)
VALUES ('sicoop_stream', 'sicoop_stream', true, 'reconnecting', '0/1');
SET sicoop.as_of = '2025-08-15 11:00:00-03';
SET client_min_messages = warning;
CALL sicoop.run_pipeline();
RESET client_min_messages;
SELECT results_eq($$SELECT step, status, error_message LIKE '%the stream keeps the warehouse current%' FROM sicoop.run_log
                    WHERE run_id = (SELECT max(run_id) FROM sicoop.run_log)$$,
                  $$VALUES ('run_pipeline', 'skipped', true)$$,
                  'a stream wanted whose worker is not running: an incremental batch run skips, logged as such');
SELECT ok(NOT EXISTS (SELECT 1 FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-STREAM-OWNED')
          AND (SELECT count(*) FROM sicoop.dim_associado WHERE id_associado = 'ASSOC-001') = 1,
          'and loads nothing: no movement, no member version');
UPDATE sicoop.stream_state SET state = 'stalled';
SET sicoop.as_of = '2025-08-15 11:05:00-03';
SET client_min_messages = warning;
CALL sicoop.run_pipeline();
RESET client_min_messages;
SELECT is((SELECT string_agg(step || ' ' || status, ', ') FROM sicoop.run_log WHERE run_id = (SELECT max(run_id) FROM sicoop.run_log)),
          'run_pipeline skipped', 'the same for a stalled stream');
UPDATE sicoop.stream_state SET wanted = false, state = 'stopped';
SET sicoop.as_of = '2025-08-15 11:10:00-03';
SET client_min_messages = warning;
CALL sicoop.run_pipeline();
RESET client_min_messages;
SELECT ok((SELECT status FROM sicoop.run_log WHERE step = 'run_pipeline' AND run_id = (SELECT max(run_id) FROM sicoop.run_log)) = 'succeeded'
          AND EXISTS (SELECT 1 FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-STREAM-OWNED'),
          'a stream stopped (wanted = false): batch runs load again');

-- run_status() with a day of streaming would list every micro-batch (some 10,000 a day): the
-- batch runs stay as they are, the stream's succeeded micro-batches are summed up per hour.
-- Two hours of them here, one every 30 s, and one failed micro-batch row.
INSERT INTO sicoop.run_log (run_id, step, status, as_of, started_at, finished_at, rows_read, rows_rejected, backend_pid)
SELECT nextval('sicoop.run_id_seq'), 'stream', 'succeeded', t, t, t + interval '50 ms', 3, i % 2, 4242
FROM generate_series(0, 239) i, LATERAL (SELECT timestamptz '2025-08-15 10:00:00-03' + i * interval '30 s' AS t) x
ORDER BY i;
INSERT INTO sicoop.run_log (run_id, step, status, as_of, started_at, finished_at, error_sqlstate, error_message, backend_pid)
VALUES (nextval('sicoop.run_id_seq'), 'stream', 'failed', '2025-08-15 12:00:10-03', '2025-08-15 12:00:10-03',
        '2025-08-15 12:00:11-03', '40001', 'a failed micro-batch', 4242);
SELECT results_eq($$SELECT status, started_at, finished_at, rows_read, rows_rejected, backend_pid, error_message
                    FROM sicoop.run_status() WHERE step = 'stream' ORDER BY started_at$$,
                  $$VALUES ('succeeded', '2025-08-15 10:00:00-03'::timestamptz, '2025-08-15 10:59:30.05-03'::timestamptz, 360::bigint, 60::bigint, 4242, NULL::text),
                           ('succeeded', '2025-08-15 11:00:00-03', '2025-08-15 11:59:30.05-03', 360, 60, 4242, NULL),
                           ('failed', '2025-08-15 12:00:10-03', '2025-08-15 12:00:11-03', NULL, NULL, 4242, 'a failed micro-batch')$$,
                  'run_status(): the stream''s micro-batches one row per hour (first start, last end, sums), a failed one as it is');
SELECT results_eq($$SELECT run_id FROM sicoop.run_status() WHERE step = 'stream' AND status = 'succeeded' ORDER BY run_id$$,
                  $$SELECT max(run_id) FROM sicoop.run_log WHERE step = 'stream' AND status = 'succeeded'
                    GROUP BY date_trunc('hour', started_at) ORDER BY 1$$,
                  'an hour''s row carries the run id of its last micro-batch');
SELECT set_eq($$SELECT * FROM sicoop.run_status() WHERE step <> 'stream'$$,
              $$SELECT run_id, step, status, as_of, started_at, finished_at, rows_read, rows_rejected, error_sqlstate,
                       error_message, error_context, backend_pid FROM sicoop.run_log WHERE step <> 'stream'$$,
              'the batch runs are listed as they are, every step');
SELECT is((SELECT count(*)::int FROM sicoop.run_status()), (SELECT count(*)::int FROM sicoop.run_log WHERE step <> 'stream') + 3,
          'and nothing else');

SELECT * FROM finish();
