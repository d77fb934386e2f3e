-- A second change to a generated source (after test/bench/change_source.sql), deterministic:
-- new movements after the last one, a recent one edited and one deleted, two members'
-- escolaridade changed (new SCD2 versions), a card reprinted and a new member with an account.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT max(data_movimentacao) AS last_time FROM movimentacao_cartao \gset
BEGIN;
UPDATE associado SET escolaridade = ' Mestrado  completo' WHERE id_associado IN ('ASSOC-00000010', 'ASSOC-00000020');
UPDATE cartao SET nome_impresso_cartao = 'reimpresso ' || id_cartao WHERE id_cartao = 'CARTAO-00000005';
INSERT INTO associado VALUES ('ASSOC-R0000001', 'Nova  Pessoa', '1991-03-04', 'solteira', 'Ensino Medio');
INSERT INTO conta VALUES ('CONTA-R0000001', 'ASSOC-R0000001', 'Corrente', '001-9', 'Ativa', '2025-08-16');
INSERT INTO cartao VALUES ('CARTAO-R0000001', 'CONTA-R0000001', '4111000011112222', 'nova pessoa', 'Visa', 'Débito', '2025-08-16');
INSERT INTO movimentacao_cartao
SELECT 'MOV-R' || lpad(i::text, 6, '0'),
       CASE WHEN i % 10 = 0 THEN 'CARTAO-R0000001' ELSE 'CARTAO-' || lpad((1 + i * 37 % 900)::text, 8, '0') END,
       'Padaria  pão quente', i * 1.25, timestamp :'last_time' + i * interval '1 minute'
FROM generate_series(1, 60) AS i;
UPDATE movimentacao_cartao SET valor_movimentacao = valor_movimentacao + 7
WHERE id_movimentacao_cartao = (SELECT id_movimentacao_cartao FROM movimentacao_cartao
                                WHERE data_movimentacao < timestamp :'last_time'
                                ORDER BY data_movimentacao DESC, id_movimentacao_cartao LIMIT 1);
DELETE FROM movimentacao_cartao
WHERE id_movimentacao_cartao = (SELECT id_movimentacao_cartao FROM movimentacao_cartao
                                WHERE data_movimentacao < timestamp :'last_time'
                                ORDER BY data_movimentacao DESC, id_movimentacao_cartao OFFSET 3 LIMIT 1);
COMMIT;
