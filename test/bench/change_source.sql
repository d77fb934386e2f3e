-- A 1% change to a generated source (psql -v n=N [-v round=R] -f change_source.sql), deterministic;
-- each round (the soak, test/bench/soak.sh, applies one per run) adds rows of its own keys:
--   new movements: 0.5% of N, dated after the last one;
--   edited movements: 0.25% of N among the last three days' (amount and description);
--   deleted movements: 0.05% of N among the last three days';
--   member changes: 1% of members (estado civil), and 0.1% new members with an account and a card.
\set ON_ERROR_STOP 1
\if :{?round}
\else
  \set round 0
\endif
SET client_min_messages = warning;
SELECT greatest(:n / 25, 1) AS members, greatest((:n / 25) * 6 / 5, 1) AS cards,
       greatest(:n / 200, 1) AS new_movements, greatest(:n / 400, 1) AS edited,
       greatest(:n / 2000, 1) AS deleted, greatest(:n / 2500, 1) AS changed_members,
       greatest(:n / 25000, 1) AS new_members,
       CASE WHEN :round = 0 THEN 'N' ELSE 'N' || :round || '-' END AS tag \gset
SELECT max(data_movimentacao) AS last_time FROM movimentacao_cartao \gset

BEGIN;
INSERT INTO associado
SELECT 'ASSOC-' || :'tag' || lpad(i::text, 7, '0'), ' nova  Associada ' || i, date '1990-01-01' + i % 9000, 'Solteira ', 'ensino médio'
FROM generate_series(1, :new_members) AS i;
INSERT INTO conta
SELECT 'CONTA-' || :'tag' || lpad(i::text, 7, '0'), 'ASSOC-' || :'tag' || lpad(i::text, 7, '0'), 'poupança', '001-1', 'Ativa', date '2025-08-15'
FROM generate_series(1, :new_members) AS i;
INSERT INTO cartao
SELECT 'CARTAO-' || :'tag' || lpad(i::text, 7, '0'), 'CONTA-' || :'tag' || lpad(i::text, 7, '0'), '55550000' || lpad(i::text, 8, '0'),
       'nova ' || i, 'Visa', 'Débito', date '2025-08-15'
FROM generate_series(1, :new_members) AS i;

UPDATE associado SET estado_civil = CASE WHEN estado_civil ILIKE '%casad%' THEN 'Divorciado ' ELSE ' casado' END
WHERE id_associado IN (SELECT 'ASSOC-' || lpad((1 + (i::bigint * 7919 + :round::bigint * 104729) % :members)::text, 8, '0')
                       FROM generate_series(1, :changed_members) AS i);

-- Recent movements are corrected or cancelled; older ones stay as they were.
WITH recent AS (
  SELECT id_movimentacao_cartao, row_number() OVER (ORDER BY id_movimentacao_cartao) AS k
  FROM movimentacao_cartao WHERE data_movimentacao > timestamp :'last_time' - interval '3 days')
UPDATE movimentacao_cartao m SET valor_movimentacao = valor_movimentacao + 1,
       descricao_movimentacao = CASE WHEN descricao_movimentacao LIKE '% (estorno parcial)'  -- (a soak's rounds: no growth)
                                     THEN left(descricao_movimentacao, -18)
                                     ELSE descricao_movimentacao || ' (estorno parcial)' END
FROM recent WHERE recent.id_movimentacao_cartao = m.id_movimentacao_cartao AND recent.k % 7 = 1 AND recent.k <= :edited * 7;
WITH recent AS (
  SELECT id_movimentacao_cartao, row_number() OVER (ORDER BY id_movimentacao_cartao DESC) AS k
  FROM movimentacao_cartao WHERE data_movimentacao > timestamp :'last_time' - interval '3 days')
DELETE FROM movimentacao_cartao m USING recent
WHERE recent.id_movimentacao_cartao = m.id_movimentacao_cartao AND recent.k % 11 = 3 AND recent.k <= :deleted * 11;

INSERT INTO movimentacao_cartao
SELECT 'MOV-' || :'tag' || lpad(i::text, 9, '0'),
       CASE WHEN i % 50 = 0 THEN 'CARTAO-' || :'tag' || lpad((1 + i % :new_members)::text, 7, '0')
            ELSE 'CARTAO-' || lpad((1 + (i::bigint * 104729) % :cards)::text, 8, '0') END,
       (ARRAY['Supermercado Bom Preço', ' posto ipiranga', 'Farmácia  Saúde'])[1 + i % 3],
       (i % 100000) / 100.0,
       -- (a soak's round is a day of the source's time, so that the lookback window holds as
       -- many movements after 200 rounds as after a few, and 200 rounds end before today)
       timestamp :'last_time' + i * CASE WHEN :round = 0 THEN interval '1 second' ELSE interval '1 day' / :new_movements END
FROM generate_series(1, :new_movements) AS i;
COMMIT;
ANALYZE movimentacao_cartao;
