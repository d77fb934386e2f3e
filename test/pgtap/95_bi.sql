-- BI-ready: the analysts' views answer on the sample as the fact does, take a member's
-- attributes as they were at the movement, a reader reads them, and every table, view and
-- column of the star schema, the flat view and the analysts' views has a description (what BI
-- tools show through DatabaseMetaData and the catalog).
\ir helpers/reset.sql
SELECT plan(9);
\o /dev/null
CALL sicoop.run_pipeline();
\o

SELECT is((SELECT sum(valor_total) FROM sicoop.vw_gasto_bandeira_tipo_cartao),
          (SELECT sum(valor_movimentacao) FROM sicoop.fato_movimentacao_cartao),
          'spend by card brand and type adds up to the fact''s');
SELECT is((SELECT sum(movimentacoes)::int FROM sicoop.vw_gasto_tipo_conta_agencia), 12,
          'spend by account type and agency counts every movement');
SELECT results_eq(
  $$SELECT bandeira_cartao::text, tipo_cartao::text, movimentacoes::int FROM sicoop.vw_gasto_bandeira_tipo_cartao ORDER BY 1, 2$$,
  $$SELECT c.bandeira_cartao::text, c.tipo_cartao::text, count(*)::int FROM sicoop.fato_movimentacao_cartao f
    JOIN sicoop.dim_cartao c USING (sk_cartao) GROUP BY 1, 2 ORDER BY 1, 2$$,
  'spend by card brand and type, group by group');
SELECT is((SELECT sum(movimentacoes)::int FROM sicoop.vw_gasto_mensal_faixa_etaria WHERE faixa_etaria <> 'DESCONHECIDA'), 12,
          'spend by month and age band places every movement of a known member in a band');
SELECT is((SELECT associados_ativos::int FROM sicoop.vw_associados_ativos_mes WHERE mes = '2025-08-01'),
          (SELECT count(DISTINCT a.id_associado)::int FROM sicoop.fato_movimentacao_cartao f
           JOIN sicoop.dim_associado a USING (sk_associado) WHERE a.id_associado IS NOT NULL),
          'active members per month: those with a movement in the month');

-- Ana changes estado civil after her movements: the view keeps her old one for them.
\o /dev/null
SELECT dblink_exec(format('host=localhost port=%s dbname=%s user=%s', :'pgport', current_database() || '_src', current_user),
                   $$UPDATE associado SET estado_civil = 'Casada' WHERE id_associado = 'ASSOC-001'$$);
SET sicoop.as_of = '2025-08-20';
CALL sicoop.run_pipeline();
\o
SELECT is((SELECT count(*)::int FROM sicoop.vw_gasto_escolaridade_estado_civil WHERE estado_civil = 'CASADO(A)'
           AND escolaridade = 'ENSINO SUPERIOR COMPLETO'), 0,
          'spend by escolaridade and estado civil takes them as they were at the movement (Ana''s movements stay SOLTEIRO(A))');

SELECT is_empty($$
  SELECT c.relname || coalesce('.' || a.attname, '')
  FROM pg_class c LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  WHERE c.relnamespace = 'sicoop'::regnamespace
    AND c.relname IN ('dim_data', 'dim_conta', 'dim_cartao', 'dim_associado', 'fato_movimentacao_cartao', 'vw_movimentacao_flat',
                      'vw_gasto_mensal_faixa_etaria', 'vw_gasto_escolaridade_estado_civil', 'vw_gasto_bandeira_tipo_cartao',
                      'vw_gasto_tipo_conta_agencia', 'vw_associados_ativos_mes')
    AND (obj_description(c.oid, 'pg_class') IS NULL OR (a.attname IS NOT NULL AND col_description(c.oid, a.attnum) IS NULL))$$,
  'every table, view and column of the star schema, the flat view and the analysts'' views has a description');
SELECT is(col_description('sicoop.dim_cartao'::regclass, 4), 'Número do cartão mascarado: só os quatro últimos dígitos são visíveis.',
          'in the cooperative''s Portuguese');

\o /dev/null
\o
SELECT ok(sicoop._reader_relations() @> ARRAY['vw_gasto_mensal_faixa_etaria', 'vw_associados_ativos_mes'],
          'grant_reader gives readers the analysts'' views');

SELECT * FROM finish();
