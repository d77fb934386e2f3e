-- A change the watermark cannot see, for the benchmark's full run (psql -v n=N), deterministic,
-- 0.2% of N in all: old movements (months back) edited in their description only (their day's
-- count and sum stay: only a full comparison finds them), old ones with a new amount, old
-- ones deleted, and movements inserted late into old days.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT greatest(:n / 1000, 1) AS described, greatest(:n / 5000, 1) AS amounts,
       greatest(:n / 5000, 1) AS deleted, greatest(:n / 5000, 1) AS late,
       greatest((:n / 25) * 6 / 5, 1) AS cards \gset
SELECT min(data_movimentacao) AS first_time, max(data_movimentacao) - interval '90 days' AS old_end
FROM movimentacao_cartao \gset
BEGIN;
UPDATE movimentacao_cartao SET descricao_movimentacao = descricao_movimentacao || ' (corrigido)'
WHERE id_movimentacao_cartao IN (SELECT 'MOV-' || lpad((1 + (i::bigint * 7919) % (:n / 2))::text, 10, '0')
                                 FROM generate_series(1, :described) AS i);
UPDATE movimentacao_cartao SET valor_movimentacao = valor_movimentacao + 0.01
WHERE id_movimentacao_cartao IN (SELECT 'MOV-' || lpad((2 + (i::bigint * 104729) % (:n / 2))::text, 10, '0')
                                 FROM generate_series(1, :amounts) AS i);
DELETE FROM movimentacao_cartao
WHERE id_movimentacao_cartao IN (SELECT 'MOV-' || lpad((3 + (i::bigint * 15485863) % (:n / 2))::text, 10, '0')
                                 FROM generate_series(1, :deleted) AS i);
INSERT INTO movimentacao_cartao
SELECT 'MOV-L' || lpad(i::text, 9, '0'), 'CARTAO-' || lpad((1 + (i::bigint * 31) % :cards)::text, 8, '0'),
       'Lançamento  tardio', (i % 5000) / 100.0, timestamp :'first_time' + (i * 3571 % 300) * interval '1 day'
FROM generate_series(1, :late) AS i;
COMMIT;
ANALYZE movimentacao_cartao;
