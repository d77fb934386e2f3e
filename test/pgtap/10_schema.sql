-- Schema: the tables of every layer, their keys and constraints, and the unknown members.
\ir helpers/reset.sql
SELECT plan(40);

SELECT has_schema('sicoop');
SELECT tables_are('sicoop', ARRAY[
  'warehouse_info', 'run_log', 'reject', 'step_state', 'raw_tombstone', 'deferred_index', 'source_sync', 'stream_state', 'stream_key', 'stage_unfit', 'stage_associado_state',
  'stage_key_checksum', 'stage_bucket', 'stage_key', 'stage_reject', 'stage_source_column', 'stage_day', 'source_day_total',
  'dq_rule', 'dq_result', 'canonical_value', 'reconciliation',
  'raw_associado', 'raw_conta', 'raw_cartao', 'raw_movimentacao_cartao',
  'stage_associado', 'stage_conta', 'stage_cartao', 'stage_movimentacao_cartao',
  'trusted_associado', 'trusted_conta', 'trusted_cartao', 'trusted_movimentacao_cartao',
  'dim_data', 'dim_conta', 'dim_cartao', 'dim_associado', 'fato_movimentacao_cartao']);
SELECT foreign_tables_are('sicoop', ARRAY['src_associado', 'src_conta', 'src_cartao', 'src_movimentacao_cartao']);
SELECT views_are('sicoop', ARRAY['vw_movimentacao_flat', 'progress', 'vw_gasto_mensal_faixa_etaria', 'vw_gasto_escolaridade_estado_civil',
                                 'vw_gasto_bandeira_tipo_cartao', 'vw_gasto_tipo_conta_agencia', 'vw_associados_ativos_mes']);

-- Primary keys
-- (raw and trusted: each source table's own key)
SELECT col_is_pk('sicoop', layer || '_' || entity, 'id_' || entity,
                 CASE entity WHEN 'movimentacao_cartao' THEN layer || ' movements' ELSE layer || '_' || entity END || ' keyed by id')
FROM unnest(ARRAY['raw', 'trusted']) WITH ORDINALITY AS l(layer, i),
     unnest(ARRAY['associado', 'conta', 'cartao', 'movimentacao_cartao']) WITH ORDINALITY AS e(entity, j)
ORDER BY i, j;
SELECT col_is_pk('sicoop', tbl, col, description)
FROM (VALUES (1, 'dim_data', 'sk_data', 'dim_data keyed by sk_data'), (2, 'dim_conta', 'sk_conta', 'dim_conta keyed by surrogate'),
             (3, 'dim_cartao', 'sk_cartao', 'dim_cartao keyed by surrogate'),
             (4, 'dim_associado', 'sk_associado', 'dim_associado keyed by surrogate'),
             (5, 'fato_movimentacao_cartao', 'id_movimentacao_cartao', 'one fact per movement')) AS t(n, tbl, col, description)
ORDER BY n;
SELECT col_is_pk('sicoop', 'run_log', ARRAY['run_id', 'step'], 'one run_log row per run and step');

-- Natural keys of type 1 dimensions are unique
SELECT col_is_unique('sicoop', 'dim_conta', ARRAY['id_conta'], 'dim_conta.id_conta is unique');
SELECT col_is_unique('sicoop', 'dim_cartao', ARRAY['id_cartao'], 'dim_cartao.id_cartao is unique');
SELECT col_is_unique('sicoop', 'dim_data', ARRAY['data'], 'dim_data.data is unique');

-- SCD2 columns and guarantees
SELECT columns_are('sicoop', 'dim_associado', ARRAY[
  'sk_associado', 'id_associado', 'nome_associado', 'sobrenome_associado', 'data_nascimento_associado',
  'idade_atual_associado', 'estado_civil_associado', 'escolaridade_associado',
  'inicio_vigencia_registro_associado', 'fim_vigencia_registro_associado', 'registro_ativo_associado',
  'data_hora_atualizacao_registro', 'run_id']);
SELECT col_type_is('sicoop', 'dim_associado', 'inicio_vigencia_registro_associado', 'timestamp with time zone', 'vigência is timestamptz');
SELECT col_type_is('sicoop', 'fato_movimentacao_cartao', 'data_hora_movimentacao', 'timestamp without time zone', 'movement times stay naive');
SELECT col_type_is('sicoop', 'fato_movimentacao_cartao', 'data_hora_atualizacao_registro', 'timestamp with time zone', 'update stamps are timestamptz');
SELECT index_is_unique('sicoop', 'dim_associado', 'dim_associado_one_current', 'at most one current version per member');
INSERT INTO sicoop.dim_associado (id_associado, inicio_vigencia_registro_associado, fim_vigencia_registro_associado, registro_ativo_associado, run_id)
VALUES ('X', '2020-01-01', '2021-01-01', false, 1), ('X', '2020-06-01', '2022-01-01', false, 1);
SELECT throws_ok('SELECT sicoop.check_vigencia()', '23P01', NULL,
  'overlapping versions of one member are refused by the check every SCD2 run makes');
DELETE FROM sicoop.dim_associado WHERE id_associado = 'X';
SELECT throws_ok(
  $$INSERT INTO sicoop.dim_associado (id_associado, inicio_vigencia_registro_associado, fim_vigencia_registro_associado, registro_ativo_associado)
    VALUES ('Y', '2021-01-01', '2020-01-01', false)$$,
  '23514', NULL, 'a version cannot end before it starts');
SELECT throws_ok(
  $$INSERT INTO sicoop.dim_cartao (id_cartao, numero_cartao) VALUES ('C', '1234567812345678')$$,
  '23514', NULL, 'an unmasked card number cannot enter dim_cartao');
SELECT throws_ok(
  $$INSERT INTO sicoop.trusted_cartao (id_cartao, numero_cartao, run_id, updated_at) VALUES ('C', '000211', 1, now())$$,
  '23514', NULL, 'an unmasked card number cannot enter trusted_cartao');

-- Unknown members
SELECT results_eq('SELECT sk_data FROM sicoop.dim_data WHERE sk_data = -1', ARRAY[-1], 'dim_data has its unknown member');
SELECT results_eq('SELECT sk_conta FROM sicoop.dim_conta WHERE sk_conta = -1', ARRAY[-1], 'dim_conta has its unknown member');
SELECT results_eq('SELECT sk_cartao FROM sicoop.dim_cartao WHERE sk_cartao = -1', ARRAY[-1], 'dim_cartao has its unknown member');
SELECT results_eq('SELECT sk_associado FROM sicoop.dim_associado WHERE sk_associado = -1', ARRAY[-1], 'dim_associado has its unknown member');

-- Interface
SELECT has_function('sicoop', 'connect_source', ARRAY['text', 'integer', 'text', 'text', 'text', 'text']);
SELECT has_function('sicoop', 'load_raw', '{}'::text[]);
SELECT has_function('sicoop', 'export_flat', ARRAY['text']);
SELECT columns_are('sicoop', 'vw_movimentacao_flat', ARRAY[
  'nome_associado', 'sobrenome_associado', 'idade_associado', 'vlr_transacao_movimento',
  'des_transacao_movimento', 'data_movimentacao', 'numero_cartao', 'nome_impresso_cartao',
  'data_criacao_cartao', 'tipo_conta', 'data_criacao_conta']);
-- Raw holds the full card numbers: nobody but the owner may read it.
SELECT is((SELECT count(*)::int FROM information_schema.role_table_grants
           WHERE table_schema = 'sicoop' AND table_name LIKE 'raw\_%' AND grantee = 'PUBLIC'), 0,
          'raw tables grant nothing to PUBLIC');
SELECT is((SELECT setting FROM pg_settings WHERE name = 'server_encoding'), 'UTF8', 'the warehouse is UTF-8');

SELECT * FROM finish();
