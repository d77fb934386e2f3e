-- The sample end to end: connect, run, check every layer and the flat file, rerun.
\getenv pgport PGPORT
SET datestyle = 'ISO, YMD';
SET timezone = 'America/Sao_Paulo';
CREATE EXTENSION sicoop_etl CASCADE;
SELECT sicoop.connect_source('localhost', :pgport, 'sicooperativedb', current_user) LIKE 'sicoop_source -> %' AS connected;

SET sicoop.as_of = '2025-08-15';
-- (each step's NOTICE has its timing: not compared)
SET client_min_messages = warning;
CALL sicoop.run_pipeline();

-- One row per step, in order, all succeeded.
SELECT step, status, rows_read, rows_inserted, rows_updated, rows_deleted, rows_unchanged, rows_unknown
FROM sicoop.run_log WHERE run_id = (SELECT min(run_id) FROM sicoop.run_log) ORDER BY started_at;

-- Trusted: cleaned.
SELECT id_associado, nome, sobrenome, data_nascimento, idade_atual_associado, estado_civil, escolaridade
FROM sicoop.trusted_associado ORDER BY id_associado;
SELECT id_conta, id_associado, tipo_conta, agencia, situacao_conta, data_criacao_conta
FROM sicoop.trusted_conta ORDER BY id_conta;
SELECT id_cartao, id_conta, numero_cartao, nome_impresso_cartao, bandeira_cartao, tipo_cartao, data_emissao
FROM sicoop.trusted_cartao ORDER BY id_cartao;

-- Star schema.
SELECT sk_associado, id_associado, nome_associado, sobrenome_associado, idade_atual_associado,
       estado_civil_associado, escolaridade_associado, inicio_vigencia_registro_associado,
       fim_vigencia_registro_associado, registro_ativo_associado
FROM sicoop.dim_associado ORDER BY sk_associado;
SELECT * FROM sicoop.dim_data ORDER BY sk_data;
SELECT sk_conta, id_conta, tipo_conta, agencia_conta, situacao_conta, data_criacao_conta FROM sicoop.dim_conta ORDER BY sk_conta;
SELECT sk_cartao, id_cartao, numero_cartao, nome_impresso_cartao, bandeira_cartao, tipo_cartao, data_emissao_cartao
FROM sicoop.dim_cartao ORDER BY sk_cartao;
SELECT f.id_movimentacao_cartao, a.id_associado, c.id_cartao, co.id_conta, f.sk_data, f.valor_movimentacao,
       f.data_hora_movimentacao, f.data_hora_atualizacao_registro
FROM sicoop.fato_movimentacao_cartao f
JOIN sicoop.dim_associado a USING (sk_associado)
JOIN sicoop.dim_cartao c USING (sk_cartao)
JOIN sicoop.dim_conta co USING (sk_conta)
ORDER BY f.id_movimentacao_cartao;

-- The flat file, written server-side (into the data directory here) and read back.
SELECT current_setting('data_directory') || '/sicoop_regress_flat.csv' AS flat_path \gset
SELECT sicoop.export_flat(:'flat_path') AS movements_written;
SELECT line FROM regexp_split_to_table(rtrim(pg_read_file(:'flat_path'), E'\n'), E'\n') AS line;
-- A file name goes into sicoop.export_directory, which no superuser has set here: refused;
-- and a relative path is never taken.
SELECT sicoop.export_flat('flat.csv');
SELECT sicoop.export_flat('../flat.csv');

-- A rerun with no source change changes nothing.
CALL sicoop.run_pipeline();
SELECT step, status, rows_read, rows_inserted, rows_updated, rows_deleted, rows_unchanged, rows_unknown
FROM sicoop.run_log WHERE run_id = (SELECT max(run_id) FROM sicoop.run_log) ORDER BY started_at;
SELECT count(*) AS facts_restamped FROM sicoop.fato_movimentacao_cartao
WHERE data_hora_atualizacao_registro <> '2025-08-15';

-- A single step can be run alone and says what it did.
SELECT step, rows_read, rows_inserted, rows_updated, rows_deleted, rows_unchanged, rows_unknown, seconds >= 0 AS timed
FROM sicoop.load_fato();
