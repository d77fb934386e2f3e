-- A first load copies a table straight into raw when the source's catalog says no row can be
-- refused or changed on the way (raw's very types, NOT NULL where raw needs a value, a unique
-- key), and runs the data-quality rules on raw: the rejects, the warnings, the counts and every
-- layer are the same as through the stage. A source that could hold a row raw refuses (a
-- nullable column raw requires) goes through the stage. Card numbers always go through the
-- stage, which masks them.
\ir helpers/reset.sql
SELECT plan(17);

\o /dev/null
-- Clean movements, and bad ones that the source's own types allow.
SELECT dblink_exec(:'srcconn', $$
  INSERT INTO movimentacao_cartao
  SELECT 'MOV-OK-' || i, 'CARTAO-2' || lpad((1 + i % 11)::text, 2, '0'), 'Compra ' || i, round((i * 3.17)::numeric, 2),
         timestamp '2025-07-01 08:00' + i * interval '117 minutes'
  FROM generate_series(1, 300) AS i;
  INSERT INTO movimentacao_cartao VALUES
    ('MOV-ESC', 'CARTAO-204', E'com \x1b[31m escape', 7.00, '2025-08-10 16:00'),
    ('MOV-ANCIENT', 'CARTAO-204', 'ano um', 8.00, '0001-01-01 00:00'),
    ('MOV-INF', 'CARTAO-205', 'infinito', 11.00, 'infinity'),
    ('MOV-NEG', 'CARTAO-206', 'estorno', -12.50, '2025-08-10 17:00');
  INSERT INTO associado VALUES ('ASSOC-FUTURE', 'Ainda Não', '2030-01-01', 'Solteiro', 'Ensino Medio');
  INSERT INTO cartao VALUES ('CARTAO-ESC', 'CONTA-101', '4000123412341234', E'nome \x01', 'Visa', 'Crédito', '2024-01-01');
$$);
\o
SELECT count(*) AS source_movements FROM dblink(:'srcconn', 'SELECT 1 FROM movimentacao_cartao') AS t(x int) \gset
SELECT count(*) AS source_members FROM dblink(:'srcconn', 'SELECT 1 FROM associado') AS t(x int) \gset
SELECT count(*) AS source_cards FROM dblink(:'srcconn', 'SELECT 1 FROM cartao') AS t(x int) \gset

-- Rows inserted into and deleted from a raw table since, from the statistics (flushed before
-- each read): a direct copy inserts every source row, and the rules then delete the rejected
-- ones; through the stage, only the accepted rows are inserted.
CREATE TEMP TABLE written_before AS SELECT relname, n_tup_ins, n_tup_del FROM pg_stat_user_tables WHERE schemaname = 'sicoop';
CREATE FUNCTION pg_temp.written_since(rel text) RETURNS text LANGUAGE sql AS $$
  SELECT format('inserted %s, deleted %s', s.n_tup_ins - coalesce(b.n_tup_ins, 0), s.n_tup_del - coalesce(b.n_tup_del, 0))
  FROM pg_stat_user_tables s LEFT JOIN written_before b USING (relname) WHERE s.schemaname = 'sicoop' AND s.relname = rel $$;

SELECT lives_ok('CALL sicoop.run_pipeline()', 'the first load succeeds');
\o /dev/null
SELECT pg_stat_force_next_flush();
\o
SELECT is(pg_temp.written_since('raw_movimentacao_cartao'), format('inserted %s, deleted 3', :source_movements),
          'every source movement was copied straight into raw (the source''s types are raw''s), and the 3 rejected left it');
SELECT is(pg_temp.written_since('raw_associado'), format('inserted %s, deleted 1', :source_members),
          'the members too');
SELECT is(pg_temp.written_since('raw_cartao'), format('inserted %s, deleted 0', :source_cards - 1),
          'the cards went through the stage, which masks their numbers: the rejected card never entered raw');
SELECT is((SELECT count(*) FROM sicoop.raw_cartao WHERE numero_cartao !~ '^\**.{0,4}$'), 0::bigint, 'no card number in clear');

SELECT results_eq(
  $$SELECT table_name, record_id, rule_name FROM sicoop.reject ORDER BY 1, 2$$,
  $$VALUES ('associado', 'ASSOC-FUTURE', 'associado_nascimento_range'),
           ('cartao', 'CARTAO-ESC', 'cartao_no_control_chars'),
           ('movimentacao_cartao', 'MOV-ANCIENT', 'movimentacao_data_range'),
           ('movimentacao_cartao', 'MOV-ESC', 'movimentacao_no_control_chars'),
           ('movimentacao_cartao', 'MOV-INF', 'movimentacao_data_range')$$,
  'the rules checked the rows in raw: each bad row is rejected with its rule');
SELECT is((SELECT count(*) FROM sicoop.raw_movimentacao_cartao WHERE id_movimentacao_cartao IN ('MOV-ANCIENT', 'MOV-ESC', 'MOV-INF')),
          0::bigint, 'and left raw');
SELECT is((SELECT count(*) FROM sicoop.raw_movimentacao_cartao), :source_movements - 3::bigint, 'raw holds the rest');
SELECT is((SELECT record->>'valor_movimentacao' FROM sicoop.reject WHERE record_id = 'MOV-ESC'), '7.00',
          'a reject keeps the row as the source had it');
SELECT results_eq(
  $$SELECT rows_checked, rows_failed, sample FROM sicoop.dq_result WHERE rule_name = 'movimentacao_valor_non_negative'$$,
  format($$VALUES (%s::bigint, 1::bigint, '["MOV-NEG"]'::jsonb)$$, :source_movements),
  'a warning counts every row checked and names the row it found');
SELECT results_eq(
  $$SELECT rows_read, rows_inserted, rows_rejected FROM sicoop.run_log WHERE step = 'load_raw'$$,
  $$SELECT (SELECT count(*) FROM sicoop.raw_associado) + (SELECT count(*) FROM sicoop.raw_conta)
           + (SELECT count(*) FROM sicoop.raw_cartao) + (SELECT count(*) FROM sicoop.raw_movimentacao_cartao) + 5,
           (SELECT count(*) FROM sicoop.raw_associado) + (SELECT count(*) FROM sicoop.raw_conta)
           + (SELECT count(*) FROM sicoop.raw_cartao) + (SELECT count(*) FROM sicoop.raw_movimentacao_cartao),
           5::bigint$$,
  'the run log counts what was read, what entered raw and what was rejected');
SELECT is((SELECT count(*) FROM sicoop.reconciliation WHERE NOT balanced), 0::bigint, 'every movement day balances');

-- Every layer, as text without the run's stamps (a function: the warehouse is re-created below).
CREATE FUNCTION pg_temp.layers() RETURNS TABLE (layer text, digest text) LANGUAGE plpgsql AS $fn$
BEGIN
RETURN QUERY
SELECT 'raw' AS layer, md5(string_agg((r.id_movimentacao_cartao, r.id_cartao, r.descricao_movimentacao, r.valor_movimentacao,
                                     r.data_movimentacao)::text, ',' ORDER BY r.id_movimentacao_cartao)) AS digest
FROM sicoop.raw_movimentacao_cartao r
UNION ALL
SELECT 'raw_associado', md5(string_agg((a.id_associado, a.nome, a.data_nascimento, a.estado_civil, a.escolaridade)::text, ','
                                       ORDER BY a.id_associado)) FROM sicoop.raw_associado a
UNION ALL
SELECT 'trusted', md5(string_agg((t.id_movimentacao_cartao, t.id_cartao, t.descricao_movimentacao, t.valor_movimentacao,
                                 t.data_movimentacao)::text, ',' ORDER BY t.id_movimentacao_cartao))
FROM sicoop.trusted_movimentacao_cartao t
UNION ALL
SELECT 'fato', md5(string_agg((f.id_movimentacao_cartao, f.sk_cartao, f.sk_conta, f.sk_data, f.valor_movimentacao,
                              f.descricao_movimentacao)::text, ',' ORDER BY f.id_movimentacao_cartao))
FROM sicoop.fato_movimentacao_cartao f
UNION ALL
SELECT 'reject', md5(string_agg((j.table_name, j.record_id, j.copy_no, j.rules, j.reason, j.record)::text, ','
                                ORDER BY j.table_name, j.record_id, j.copy_no)) FROM sicoop.reject j
UNION ALL
SELECT 'dq_result', md5(string_agg((q.rule_name, q.rows_checked, q.rows_failed, q.sample)::text, ',' ORDER BY q.rule_name))
FROM sicoop.dq_result q;
END
$fn$;
CREATE TEMP TABLE direct_layers AS SELECT * FROM pg_temp.layers();

-- The same source, but its valor_movimentacao may be NULL (none is) and its members' key is
-- no longer guaranteed unique: raw could refuse a row, so both go through the stage.
\o /dev/null
SELECT dblink_exec(:'srcconn', $$
  ALTER TABLE movimentacao_cartao ALTER COLUMN valor_movimentacao DROP NOT NULL;
  ALTER TABLE associado DROP CONSTRAINT associado_pkey CASCADE;
$$);
DROP EXTENSION sicoop_etl CASCADE;
DROP SCHEMA sicoop CASCADE;
DROP SERVER sicoop_source CASCADE;
CREATE EXTENSION sicoop_etl CASCADE;
SELECT sicoop.connect_source('localhost', :pgport, :'srcdb', current_user);
TRUNCATE written_before;
INSERT INTO written_before SELECT relname, n_tup_ins, n_tup_del FROM pg_stat_user_tables WHERE schemaname = 'sicoop';
\o
SELECT lives_ok('CALL sicoop.run_pipeline()', 'a first load from the source whose columns allow NULL succeeds');
\o /dev/null
SELECT pg_stat_force_next_flush();
\o
SELECT is(pg_temp.written_since('raw_movimentacao_cartao'), format('inserted %s, deleted 0', :source_movements - 3),
          'its movements went through the stage: raw requires valor_movimentacao, the source does not');
SELECT is(pg_temp.written_since('raw_associado'), format('inserted %s, deleted 0', :source_members - 1),
          'its members too: the source no longer guarantees their key');
SELECT results_eq('SELECT layer, digest FROM pg_temp.layers() ORDER BY layer', 'SELECT layer, digest FROM direct_layers ORDER BY layer',
                  'raw, trusted, the fact, the rejects and the rules'' results are the same either way');

-- The rules check the stage or raw, nothing else.
SELECT throws_ok($$SELECT sicoop._apply_row_rules('movimentacao_cartao', 0, current_date, 'sicoop.fato_movimentacao_cartao')$$,
                 '22023', NULL, 'the row rules refuse to delete from any other table');

SELECT * FROM finish();
