-- Data quality: a source with every kind of bad row the cooperative has met, among a clean
-- majority. The run succeeds; each bad row is in sicoop.reject with its rule and reason (card
-- numbers masked), or loads with a warning when it is only odd; the reconciliation balances
-- to the cent; a 'fail' rule stops its step; fixed at the source, the rows load and the
-- rejects empty.
\ir helpers/reset.sql
SELECT plan(38);
SELECT current_database() || '_src' AS srcdb \gset
SELECT format('host=localhost port=%s dbname=%s user=%s', :'pgport', :'srcdb', current_user) AS srcconn \gset

\o /dev/null
-- The source as a real OLTP database drifts: keys no longer enforced, columns widened.
SELECT dblink_exec(:'srcconn', $$
  ALTER TABLE movimentacao_cartao DROP CONSTRAINT movimentacao_cartao_pkey CASCADE;
  ALTER TABLE movimentacao_cartao ALTER COLUMN valor_movimentacao TYPE numeric(16,3),
                                  ALTER COLUMN valor_movimentacao DROP NOT NULL,
                                  ALTER COLUMN descricao_movimentacao TYPE text;
  ALTER TABLE cartao DROP CONSTRAINT cartao_pkey CASCADE;
  -- A clean majority: 500 movements on the sample's cards.
  INSERT INTO movimentacao_cartao
  SELECT 'MOV-OK-' || i, 'CARTAO-2' || lpad((1 + i % 11)::text, 2, '0'), 'Compra ' || i, round((i * 3.17)::numeric, 2),
         timestamp '2025-07-01 08:00' + i * interval '117 minutes'
  FROM generate_series(1, 500) AS i;
  -- Every bad row of the table in the issue.
  INSERT INTO movimentacao_cartao VALUES
    ('MOV-DUP', 'CARTAO-201', 'primeira cópia', 10.00, '2025-08-10 10:00'),
    ('MOV-DUP', 'CARTAO-201', 'segunda cópia', 20.00, '2025-08-10 11:00'),
    ('MOV-NULL-VALOR', 'CARTAO-202', 'sem valor', NULL, '2025-08-10 12:00'),
    ('MOV-HUGE', 'CARTAO-202', 'valor largo demais', 123456789012.34, '2025-08-10 13:00'),
    ('MOV-LONG', 'CARTAO-203', repeat('descrição longa ', 375) || 'fim', 5.00, '2025-08-10 14:00'),
    ('MOV-ROUND', 'CARTAO-203', 'meio centavo', 1.005, '2025-08-10 15:00'),
    ('MOV-ESC', 'CARTAO-204', E'com \x1b[31m escape', 7.00, '2025-08-10 16:00'),
    ('MOV-ANCIENT', 'CARTAO-204', 'ano um', 8.00, '0001-01-01 00:00'),
    ('MOV-FAR', 'CARTAO-205', 'ano 9999', 9.00, '9999-12-31 00:00'),
    ('MOV-INF', 'CARTAO-205', 'infinito', 11.00, 'infinity'),
    ('MOV-NEG', 'CARTAO-206', 'estorno', -12.50, '2025-08-10 17:00');
  INSERT INTO cartao VALUES
    ('CARTAO-DUP', 'CONTA-101', '4000123412341234', 'primeiro', 'Visa', 'Crédito', '2024-01-01'),
    ('CARTAO-DUP', 'CONTA-101', '4000123412345678', 'segundo', 'Visa', 'Crédito', '2024-01-01');
  INSERT INTO associado VALUES
    ('ASSOC-FUTURE', 'Ainda Não', '2030-01-01', 'Solteiro', 'Ensino Medio'),
    ('ASSOC-ANCIENT', 'Matusalém', '0001-01-01', 'Solteiro', 'Ensino Medio'),
    ('ASSOC-AMASIADO', 'Zé Amasiado', '1980-01-01', 'Amasiado', 'Ensino Medio');
$$);
\o
SELECT count(*) AS source_movements FROM dblink(:'srcconn', 'SELECT 1 FROM movimentacao_cartao') AS t(x int) \gset

SELECT lives_ok('CALL sicoop.run_pipeline()', 'the run succeeds with every bad row in the source');

SELECT results_eq(
  $$SELECT table_name, record_id, copy_no, rule_name FROM sicoop.reject ORDER BY 1, 2, 3$$,
  $$VALUES ('associado', 'ASSOC-ANCIENT', 1, 'associado_nascimento_range'),
           ('associado', 'ASSOC-FUTURE', 1, 'associado_nascimento_range'),
           ('cartao', 'CARTAO-DUP', 1, 'cartao_id_unique'),
           ('cartao', 'CARTAO-DUP', 2, 'cartao_id_unique'),
           ('movimentacao_cartao', 'MOV-ANCIENT', 1, 'movimentacao_data_range'),
           ('movimentacao_cartao', 'MOV-DUP', 1, 'movimentacao_id_unique'),
           ('movimentacao_cartao', 'MOV-DUP', 2, 'movimentacao_id_unique'),
           ('movimentacao_cartao', 'MOV-ESC', 1, 'movimentacao_no_control_chars'),
           ('movimentacao_cartao', 'MOV-FAR', 1, 'movimentacao_data_range'),
           ('movimentacao_cartao', 'MOV-HUGE', 1, 'movimentacao_fits'),
           ('movimentacao_cartao', 'MOV-INF', 1, 'movimentacao_data_range'),
           ('movimentacao_cartao', 'MOV-LONG', 1, 'movimentacao_fits'),
           ('movimentacao_cartao', 'MOV-NULL-VALOR', 1, 'movimentacao_valor_not_null'),
           ('movimentacao_cartao', 'MOV-ROUND', 1, 'movimentacao_fits')$$,
  'each bad row is in sicoop.reject, once per source row (both copies of a duplicated key), with its rule');
SELECT results_eq(
  $$SELECT record_id, reason FROM sicoop.reject WHERE record_id IN ('MOV-HUGE', 'MOV-LONG', 'MOV-ROUND', 'MOV-ESC') ORDER BY 1$$,
  $$VALUES ('MOV-ESC', 'a text holds control characters: descricao_movimentacao'),
           ('MOV-HUGE', 'a value does not fit the warehouse''s column (too long, too large, or more decimals than it keeps): valor_movimentacao'),
           ('MOV-LONG', 'a value does not fit the warehouse''s column (too long, too large, or more decimals than it keeps): descricao_movimentacao'),
           ('MOV-ROUND', 'a value does not fit the warehouse''s column (too long, too large, or more decimals than it keeps): valor_movimentacao')$$,
  'the reason names the rule''s description and the column');
SELECT results_eq(
  $$SELECT r1.record->>'valor_movimentacao', length(r2.record->>'descricao_movimentacao')
    FROM sicoop.reject r1, sicoop.reject r2 WHERE r1.record_id = 'MOV-ROUND' AND r2.record_id = 'MOV-LONG'$$,
  $$VALUES ('1.005', 6003)$$,
  'the reject keeps the values as the source had them: nothing rounded, nothing cut');
SELECT results_eq(
  $$SELECT record->>'numero_cartao' FROM sicoop.reject WHERE table_name = 'cartao' ORDER BY copy_no$$,
  $$VALUES ('************1234'), ('************5678')$$,
  'card numbers in rejects are masked');
SELECT is((SELECT count(*)::int FROM sicoop.reject WHERE record::text ~ '4000123412'), 0, 'no full card number in any reject');
SELECT is((SELECT count(*)::int FROM sicoop.raw_movimentacao_cartao
           WHERE id_movimentacao_cartao IN (SELECT record_id FROM sicoop.reject)), 0, 'no rejected row is in raw');
SELECT is((SELECT count(*)::int FROM sicoop.fato_movimentacao_cartao
           WHERE id_movimentacao_cartao IN (SELECT record_id FROM sicoop.reject)), 0, 'nor in the fact');

-- Odd but possible rows load, and are counted.
SELECT ok(EXISTS (SELECT 1 FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-NEG' AND valor_movimentacao = -12.50),
          'a negative amount loads');
SELECT results_eq(
  $$SELECT severity, rows_failed, sample FROM sicoop.dq_result
    WHERE rule_name = 'movimentacao_valor_non_negative' AND run_id = (SELECT max(run_id) FROM sicoop.dq_result)$$,
  $$VALUES ('warn', 1::bigint, '["MOV-NEG"]'::jsonb)$$,
  'and is counted by its warning rule in sicoop.dq_result');
SELECT results_eq(
  $$SELECT rows_failed, sample FROM sicoop.dq_result
    WHERE rule_name = 'movimentacao_source_drift' AND run_id = (SELECT max(run_id) FROM sicoop.dq_result)$$,
  $$VALUES (2::bigint, '["descricao_movimentacao: source text, warehouse character varying(150)", "valor_movimentacao: source numeric(16,3), warehouse numeric(10,2)"]'::jsonb)$$,
  'the source''s widened columns are reported as schema drift');
SELECT ok((SELECT sample ? 'AMASIADO' FROM sicoop.dq_result
           WHERE rule_name = 'associado_estado_civil_canonical' AND run_id = (SELECT max(run_id) FROM sicoop.dq_result)),
          'an estado civil with no canonical value is reported (sample AMASIADO)');
SELECT is((SELECT count(*)::int FROM sicoop.dq_result WHERE run_id = (SELECT max(run_id) FROM sicoop.dq_result)),
          (SELECT count(*)::int FROM sicoop.dq_rule WHERE enabled), 'every enabled rule has its result for the run');
SELECT is((SELECT max(data) FROM sicoop.dim_data WHERE sk_data <> -1) < date '2026-01-01', true,
          'dim_data does not grow to year 9999 (nor fail on infinity)');

-- The books balance: every source movement is in the fact or in the rejects, to the cent.
SELECT is((SELECT count(*)::int FROM sicoop.fato_movimentacao_cartao)
          + (SELECT count(*)::int FROM sicoop.reject WHERE table_name = 'movimentacao_cartao'), :source_movements,
          'every source movement is in exactly one place: the fact or sicoop.reject');
SELECT is((SELECT sum(valor_movimentacao) FROM sicoop.fato_movimentacao_cartao)
          + (SELECT sum((record->>'valor_movimentacao')::numeric) FROM sicoop.reject WHERE table_name = 'movimentacao_cartao'),
          (SELECT s FROM dblink(:'srcconn', 'SELECT sum(valor_movimentacao) FROM movimentacao_cartao') AS t(s numeric)),
          'and the fact''s sum plus the rejects'' equals the source''s, to the cent');
SELECT is_empty('SELECT 1 FROM sicoop.reconciliation WHERE NOT balanced', 'the reconciliation balances every day');
SELECT results_eq(
  $$SELECT severity, rows_failed FROM sicoop.dq_result WHERE rule_name = 'movimentacao_reconciliation'
    AND run_id = (SELECT max(run_id) FROM sicoop.dq_result)$$,
  $$VALUES ('fail', 0::bigint)$$, 'and says so in sicoop.dq_result');
-- A run that changes nothing rewrites no day of the reconciliation (only changed days are written).
SELECT string_agg(xmin::text, ',' ORDER BY dia) AS recon_versions FROM sicoop.reconciliation \gset
SET sicoop.as_of = '2025-08-15 11:00:00-03';
\o /dev/null
CALL sicoop.run_pipeline();
\o
SELECT is((SELECT string_agg(xmin::text, ',' ORDER BY dia) FROM sicoop.reconciliation), :'recon_versions',
          'a run with nothing new rewrites no row of sicoop.reconciliation');

-- A full run works with the duplicates present, and a rerun changes nothing.
SET sicoop.as_of = '2025-08-15 12:00:00-03';
SELECT lives_ok('CALL sicoop.run_pipeline(full => true)', 'a full run succeeds with duplicated keys in the source');
SELECT is((SELECT count(*)::int FROM sicoop.reject), 14, 'the same rows are rejected');
-- A row without a key that appears after the first load: a full run (which compares row
-- checksums per bucket of keys) reads it all the same -- its bucket, -1, is one raw never
-- has -- and rejects it; deleted at the source, it leaves the rejects.
\o /dev/null
SELECT dblink_exec(:'srcconn', $$ALTER TABLE movimentacao_cartao ALTER COLUMN id_movimentacao_cartao DROP NOT NULL$$);
SELECT dblink_exec(:'srcconn', $$INSERT INTO movimentacao_cartao VALUES (NULL, 'CARTAO-201', 'sem chave', 3.00, '2025-08-14 09:00')$$);
\o
SET sicoop.as_of = '2025-08-15 12:10:00-03';
CALL sicoop.run_pipeline(full => true);
SELECT ok(EXISTS (SELECT 1 FROM sicoop.reject WHERE table_name = 'movimentacao_cartao' AND record_id IS NULL
                  AND rule_name = 'movimentacao_id_not_null'),
          'a keyless movement added after the first load is read by a full run and rejected');
\o /dev/null
SELECT dblink_exec(:'srcconn', $$DELETE FROM movimentacao_cartao WHERE id_movimentacao_cartao IS NULL$$);
\o
SET sicoop.as_of = '2025-08-15 12:20:00-03';
CALL sicoop.run_pipeline(full => true);
SELECT is((SELECT count(*)::int FROM sicoop.reject), 14, 'deleted at the source, it leaves the rejects');

-- A 'fail' rule stops its step, which leaves nothing; the run log says why and where. (A
-- changed rule makes the next run a full one: every row is checked by the rules as they are.)
UPDATE sicoop.dq_rule SET severity = 'fail' WHERE rule_name = 'movimentacao_valor_non_negative';
SET sicoop.as_of = '2025-08-15 13:00:00-03';
\set ON_ERROR_STOP 0
\o /dev/null
CALL sicoop.run_pipeline();
\o
\set ON_ERROR_STOP 1
SELECT results_eq(
  $$SELECT status, error_sqlstate FROM sicoop.run_log WHERE step = 'run_pipeline' AND run_id = (SELECT max(run_id) FROM sicoop.run_log)$$,
  $$VALUES ('failed', '23514')$$, 'a failing ''fail'' rule fails the run (check_violation)');
SELECT results_eq(
  $$SELECT step, status, error_message LIKE '%movimentacao_valor_non_negative failed for 1 of % (keys ["MOV-NEG"])%',
           error_context LIKE '%sicoop step load_raw, table movimentacao_cartao%'
    FROM sicoop.run_log WHERE run_id = (SELECT max(run_id) FROM sicoop.run_log) AND step = 'load_raw'$$,
  $$VALUES ('load_raw', 'failed', true, true)$$,
  'run_log says which rule, which rows, and where (error_context)');
UPDATE sicoop.dq_rule SET severity = 'warn' WHERE rule_name = 'movimentacao_valor_non_negative';
-- The rules the tables rely on cannot be turned into warnings.
UPDATE sicoop.dq_rule SET severity = 'warn' WHERE rule_name = 'movimentacao_id_unique';
SELECT throws_like('SELECT * FROM sicoop.load_raw()', '%needs these data-quality rules enabled, as reject or fail: movimentacao_cartao: unique%',
                   'making the key''s uniqueness a warning is refused, saying why');
UPDATE sicoop.dq_rule SET severity = 'reject' WHERE rule_name = 'movimentacao_id_unique';
-- A user's rule, without code: amounts above 1000 are rejected.
INSERT INTO sicoop.dq_rule (rule_name, table_name, column_name, kind, severity, max_value, description)
VALUES ('movimentacao_valor_limite', 'movimentacao_cartao', 'valor_movimentacao', 'range', 'reject', '1000', 'valor above the limit');
SET sicoop.as_of = '2025-08-15 14:00:00-03';
CALL sicoop.run_pipeline();
SELECT is((SELECT count(*)::int FROM sicoop.reject WHERE rule_name = 'movimentacao_valor_limite'),
          (SELECT count(*)::int FROM dblink(:'srcconn', 'SELECT 1 FROM movimentacao_cartao WHERE valor_movimentacao > 1000
                                                         AND valor_movimentacao < 1e8 AND round(valor_movimentacao, 2) = valor_movimentacao
                                                         AND id_movimentacao_cartao LIKE ''MOV-OK-%''') AS t(x int)),
          'a rule added with INSERT applies on the next run');
DELETE FROM sicoop.dq_rule WHERE rule_name = 'movimentacao_valor_limite';

-- Canonical values are data too: a mapping added relabels trusted and the member's version in
-- place, on the next run (a full one).
INSERT INTO sicoop.canonical_value VALUES ('estado_civil', 'AMASIADO', 'UNIÃO ESTÁVEL');
SET sicoop.as_of = '2025-08-15 14:30:00-03';
CALL sicoop.run_pipeline();
SELECT results_eq(
  $$SELECT t.estado_civil::text,
           (SELECT count(*)::int FROM sicoop.dim_associado d WHERE d.id_associado = 'ASSOC-AMASIADO'),
           (SELECT d.estado_civil_associado::text FROM sicoop.dim_associado d
            WHERE d.id_associado = 'ASSOC-AMASIADO' AND d.registro_ativo_associado)
    FROM sicoop.trusted_associado t WHERE t.id_associado = 'ASSOC-AMASIADO'$$,
  $$VALUES ('UNIÃO ESTÁVEL', 1, 'UNIÃO ESTÁVEL')$$,
  'a canonical value added relabels trusted and the member''s version in place (no new version)');

-- Fixed at the source, the rows load on the next run and leave the rejects.
\o /dev/null
SELECT dblink_exec(:'srcconn', $$
  DELETE FROM movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-DUP' AND descricao_movimentacao = 'segunda cópia';
  UPDATE movimentacao_cartao SET valor_movimentacao = 3.00 WHERE id_movimentacao_cartao = 'MOV-NULL-VALOR';
  UPDATE movimentacao_cartao SET valor_movimentacao = 12345.67 WHERE id_movimentacao_cartao = 'MOV-HUGE';
  UPDATE movimentacao_cartao SET descricao_movimentacao = 'descrição curta' WHERE id_movimentacao_cartao = 'MOV-LONG';
  UPDATE movimentacao_cartao SET valor_movimentacao = 1.01 WHERE id_movimentacao_cartao = 'MOV-ROUND';
  UPDATE movimentacao_cartao SET descricao_movimentacao = 'sem escape' WHERE id_movimentacao_cartao = 'MOV-ESC';
  UPDATE movimentacao_cartao SET data_movimentacao = '2025-08-11 10:00' WHERE id_movimentacao_cartao IN ('MOV-ANCIENT', 'MOV-FAR', 'MOV-INF');
  DELETE FROM cartao WHERE id_cartao = 'CARTAO-DUP' AND nome_impresso_cartao = 'segundo';
  UPDATE associado SET data_nascimento = '1990-01-01' WHERE id_associado IN ('ASSOC-FUTURE', 'ASSOC-ANCIENT');
$$);
\o
SET sicoop.as_of = '2025-08-15 15:00:00-03';
SELECT lives_ok('CALL sicoop.run_pipeline()', 'the run after the fixes succeeds');
SELECT is_empty('SELECT table_name, record_id FROM sicoop.reject', 'the rejects are empty');
SELECT results_eq(
  $$SELECT id_movimentacao_cartao::text, valor_movimentacao FROM sicoop.fato_movimentacao_cartao
    WHERE id_movimentacao_cartao IN ('MOV-DUP', 'MOV-NULL-VALOR', 'MOV-HUGE', 'MOV-ROUND') ORDER BY 1$$,
  $$VALUES ('MOV-DUP', 10.00), ('MOV-HUGE', 12345.67), ('MOV-NULL-VALOR', 3.00), ('MOV-ROUND', 1.01)$$,
  'the fixed movements are in the fact');
SELECT ok(EXISTS (SELECT 1 FROM sicoop.dim_cartao WHERE id_cartao = 'CARTAO-DUP' AND numero_cartao = '************1234')
          AND EXISTS (SELECT 1 FROM sicoop.dim_associado WHERE id_associado = 'ASSOC-FUTURE' AND registro_ativo_associado),
          'and the fixed card and member in their dimensions');
SELECT is((SELECT count(*)::int FROM sicoop.fato_movimentacao_cartao), :source_movements - 1,
          'every source movement is in the fact now (one duplicate copy was deleted at the source)');
SELECT is_empty('SELECT 1 FROM sicoop.reconciliation WHERE NOT balanced', 'and the books still balance');

-- A movement without a date and one at -infinity are two days of the reconciliation, not one
-- (both rejected, each balancing with the source's own day).
\o /dev/null
SELECT dblink_exec(:'srcconn', $$
  ALTER TABLE movimentacao_cartao ALTER COLUMN data_movimentacao DROP NOT NULL;
  INSERT INTO movimentacao_cartao VALUES ('MOV-NO-DATE', 'CARTAO-205', 'sem data', 4.00, NULL),
                                         ('MOV-NEG-INF', 'CARTAO-205', 'menos infinito', 6.00, '-infinity');
$$);
\o
SET sicoop.as_of = '2025-08-15 15:10:00-03';
SELECT lives_ok('CALL sicoop.run_pipeline()', 'a run with a movement without a date and one at -infinity');
SELECT results_eq($$SELECT coalesce(dia::text, 'no date'), source_rows, reject_rows, balanced FROM sicoop.reconciliation
                    WHERE dia IS NULL OR dia = '-infinity' ORDER BY dia NULLS FIRST$$,
                  $$VALUES ('no date', 1::bigint, 1::bigint, true), ('-infinity', 1::bigint, 1::bigint, true)$$,
                  'reconciles them as two days of their own');
\o /dev/null
SELECT dblink_exec(:'srcconn', $$UPDATE movimentacao_cartao SET valor_movimentacao = 5.00 WHERE id_movimentacao_cartao = 'MOV-NO-DATE'$$);
SET sicoop.as_of = '2025-08-15 15:20:00-03';
CALL sicoop.run_pipeline();
\o
SELECT results_eq($$SELECT coalesce(dia::text, 'no date'), source_valor, reject_valor, balanced FROM sicoop.reconciliation
                    WHERE dia IS NULL OR dia = '-infinity' ORDER BY dia NULLS FIRST$$,
                  $$VALUES ('no date', 5.00, 5.00, true), ('-infinity', 6.00, 6.00, true)$$,
                  'and the next run updates each of them alone');

-- The fact's day totals the reconciliation reads (1.10: summed apart from the fact's scan) are
-- the fact's own, days without a date and infinite amounts included.
SELECT results_eq($$SELECT dia, fato_rows, fato_valor FROM sicoop._fato_day_totals() ORDER BY dia NULLS FIRST$$,
                  $$SELECT f.data_hora_movimentacao::date, count(*),
                           coalesce(sum(f.valor_movimentacao) FILTER (WHERE f.valor_movimentacao < 'Infinity'::numeric
                                                                        AND f.valor_movimentacao > '-Infinity'::numeric), 0)
                    FROM sicoop.fato_movimentacao_cartao f GROUP BY 1 ORDER BY 1 NULLS FIRST$$,
                  'the fact''s day totals are its rows and finite amounts per day');

SELECT * FROM finish();
