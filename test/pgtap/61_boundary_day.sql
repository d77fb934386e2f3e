-- The boundary day of the movements' window (issue 25, finding 7). An incremental run reads the
-- source's movements from the window start (the watermark minus sicoop.lookback) and, whole,
-- the days before it whose count or sum changed. Up to 1.6 the window started at a time of day
-- (watermark 2025-08-18 01:19 minus 3 days: 2025-08-15 01:19) while the days re-read whole were
-- only those before 2025-08-15: a change between 00:00 and 01:19 of the boundary day was in
-- neither, so the run failed its reconciliation (23514) and the fact kept the old rows until
-- the next full run. The window now starts at the start of its day.
\ir helpers/reset.sql
SELECT plan(8);

\o /dev/null
-- Two movements early on the boundary day, and the latest movement (the watermark) at 01:19.
SELECT dblink_exec(:'srcconn', $$INSERT INTO movimentacao_cartao VALUES
  ('MOV-BD-0000', 'CARTAO-201', 'meia-noite', 40.00, '2025-08-15 00:00'),
  ('MOV-BD-0045', 'CARTAO-202', 'madrugada', 60.00, '2025-08-15 00:45'),
  ('MOV-WM', 'CARTAO-203', 'marca', 5.00, '2025-08-18 01:19')$$);
SET sicoop.as_of = '2025-08-18 12:00:00-03';
CALL sicoop.run_pipeline();
\o
SELECT is((SELECT count(*)::int FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao LIKE 'MOV-BD-%'), 2,
          'the first load has both movements of the boundary day');

-- The reviewer's reproduction: the 00:00 movement deleted at the source and an amount edited,
-- both before 01:19 of the boundary day.
\o /dev/null
SELECT dblink_exec(:'srcconn', $$DELETE FROM movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-BD-0000'$$);
SELECT dblink_exec(:'srcconn', $$UPDATE movimentacao_cartao SET valor_movimentacao = 61.00 WHERE id_movimentacao_cartao = 'MOV-BD-0045'$$);
\o
SET sicoop.as_of = '2025-08-18 13:00:00-03';
SELECT is(sicoop.movement_window_start('2025-08-18 13:00'), '2025-08-15 00:00'::timestamp,
          'the window starts at the start of the day of watermark minus lookback (2025-08-15 01:19)');
-- (A CALL of its own, not inside lives_ok: the steps commit one by one, as a scheduled run's.)
\set ON_ERROR_STOP 0
CALL sicoop.run_pipeline();
\set ON_ERROR_STOP 1
SELECT is((SELECT status || coalesce(' ' || error_sqlstate, '') FROM sicoop.run_log WHERE step = 'run_pipeline'
           ORDER BY run_id DESC LIMIT 1), 'succeeded',
          'an incremental run after changes early on the boundary day succeeds');
SELECT is((SELECT count(*)::int FROM sicoop.run_log WHERE step = 'run_pipeline' AND status = 'succeeded'), 2,
          'both runs succeeded');
SELECT ok(NOT EXISTS (SELECT 1 FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-BD-0000'),
          'the movement deleted at 00:00 of the boundary day leaves the fact');
SELECT is((SELECT valor_movimentacao FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-BD-0045'), 61.00,
          'the amount edited at 00:45 of the boundary day is loaded');
SELECT is_empty('SELECT 1 FROM sicoop.reconciliation WHERE NOT balanced', 'every movement day balances with the source');

-- An edit that keeps the day's count and sum (a description) is in the window too: the whole
-- boundary day is read, not only the days before it whose totals changed.
\o /dev/null
SELECT dblink_exec(:'srcconn', $$UPDATE movimentacao_cartao SET descricao_movimentacao = 'editado cedo' WHERE id_movimentacao_cartao = 'MOV-BD-0045'$$);
\o
SET sicoop.as_of = '2025-08-18 14:00:00-03';
-- (No full run is owed: this one is incremental.)
SELECT (sicoop._full_run_owed() IS NULL)::text AS incremental \gset
CALL sicoop.run_pipeline();
SELECT is((SELECT :'incremental' || ' ' || descricao_movimentacao FROM sicoop.fato_movimentacao_cartao
           WHERE id_movimentacao_cartao = 'MOV-BD-0045'),
          'true EDITADO CEDO', 'a description edited early on the boundary day is loaded by an incremental run');

SELECT * FROM finish();
