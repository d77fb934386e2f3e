-- Synthetic SiCooperativeDB at any size: psql -v n=1000000 [-v start=2023-08-15] -f generate_source.sql
-- N movements, N/25 members with one account each, about 1.2 cards per account, movements over
-- the two years from `start` (default: up to 2025-08-15), as messy as the sample (stray spaces, mixed case, accents).
-- Deterministic for a given N: every "random" choice is hashint8 of the row number.
\set ON_ERROR_STOP 1
\if :{?n}
\else
  \set n 100000
\endif
\if :{?start}
\else
  \set start 2023-08-15
\endif
SET client_min_messages = warning;
DROP TABLE IF EXISTS movimentacao_cartao, cartao, conta, associado CASCADE;

\ir source_schema.sql

-- pick(i, salt, n): a deterministic pseudo-random integer in [0, n).
CREATE OR REPLACE FUNCTION pg_temp.pick(i bigint, salt int, n int) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (abs(hashint8(i * 1000 + salt)::bigint) % n)::int $$;
-- mess(s, i): the same text as people type it: case and stray spaces vary.
CREATE OR REPLACE FUNCTION pg_temp.mess(s text, i bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT (ARRAY['', ' ', '  ', ''])[pg_temp.pick(i, 91, 4) + 1]
      || CASE pg_temp.pick(i, 92, 4) WHEN 0 THEN lower(s) WHEN 1 THEN upper(s) WHEN 2 THEN initcap(s) ELSE s END
      || (ARRAY['', ' ', '', ''])[pg_temp.pick(i, 93, 4) + 1] $$;

SELECT greatest(:n / 25, 1) AS members, greatest((:n / 25) * 6 / 5, 1) AS cards \gset

INSERT INTO associado
SELECT 'ASSOC-' || lpad(i::text, 8, '0'),
       pg_temp.mess((ARRAY['Ana', 'João', 'Maria', 'José', 'Conceição', 'Antônio', 'Júlia', 'Luís', 'Fernanda', 'Sérgio',
                           'Mônica', 'Cláudio', 'Beatriz', 'Ângela', 'Raimundo'])[pg_temp.pick(i, 1, 15) + 1]
                    || ' ' || (ARRAY['Silva', 'Gonçalves', 'Araújo', 'Souza', 'Conceição', 'Lima', 'Pereira', 'Simões',
                                     'Assunção', 'Brandão', 'Oliveira', 'da Silva', 'dos Santos'])[pg_temp.pick(i, 2, 13) + 1]
                    || CASE WHEN pg_temp.pick(i, 3, 4) = 0 THEN '  Júnior' ELSE '' END, i),
       CASE WHEN pg_temp.pick(i, 4, 50) = 0 THEN NULL ELSE date '1950-01-01' + pg_temp.pick(i, 5, 20000) END,
       (ARRAY['solteira', 'Casado ', 'DIVORCIADO', 'viúvo', ' Casada', 'Solteiro', 'união estável'])[pg_temp.pick(i, 6, 7) + 1],
       (ARRAY[' Ensino superior Completo', 'Ensino Medio', 'ensino médio completo', 'Pós-Graduação', 'Ensino Fundamental',
              'ENSINO SUPERIOR', 'Mestrado  '])[pg_temp.pick(i, 7, 7) + 1]
FROM generate_series(1, :members) AS i;

INSERT INTO conta
SELECT 'CONTA-' || lpad(i::text, 8, '0'), 'ASSOC-' || lpad(i::text, 8, '0'),
       (ARRAY['Corrente', 'Poupança', ' poupança ', 'CORRENTE', 'Salário'])[pg_temp.pick(i, 11, 5) + 1],
       lpad(pg_temp.pick(i, 12, 999)::text, 3, '0') || '-' || pg_temp.pick(i, 13, 10),
       (ARRAY['Ativa', 'Ativa', 'ativa ', 'Inativa', 'Encerrada'])[pg_temp.pick(i, 14, 5) + 1],
       date '2010-01-01' + pg_temp.pick(i, 15, 5000)
FROM generate_series(1, :members) AS i;

INSERT INTO cartao
SELECT 'CARTAO-' || lpad(j::text, 8, '0'),
       'CONTA-' || lpad((((j - 1) % :members) + 1)::text, 8, '0'),
       lpad(pg_temp.pick(j, 21, 100000000)::text, 8, '0') || lpad(pg_temp.pick(j, 22, 100000000)::text, 8, '0'),
       pg_temp.mess('Nome ' || j, j),
       (ARRAY['MasterCard', 'Visa', 'Elo', 'visa ', 'Hipercard'])[pg_temp.pick(j, 23, 5) + 1],
       (ARRAY['Crédito', 'Débito', 'crédito', 'Múltiplo'])[pg_temp.pick(j, 24, 4) + 1],
       date '2018-01-01' + pg_temp.pick(j, 25, 2500)
FROM generate_series(1, :cards) AS j;

-- Movements spread evenly over two years (ids roughly follow time, as real ones do).
INSERT INTO movimentacao_cartao
SELECT 'MOV-' || lpad(i::text, 10, '0'),
       'CARTAO-' || lpad((pg_temp.pick(i, 31, :cards) + 1)::text, 8, '0'),
       pg_temp.mess((ARRAY['Supermercado Bom Preço', 'Posto Ipiranga', 'padaria pão quente', 'Loja de Móveis',
                           'Restaurante Sabor', 'Farmácia Saúde', 'Livraria Cultura', 'Cinema Center', 'Uber *Trip',
                           'Cafeteria Grão', 'Mercado Livre', 'Açougue São João'])[pg_temp.pick(i, 32, 12) + 1], i),
       (pg_temp.pick(i, 33, 500000) / 100.0)::numeric(10, 2),
       timestamp :'start' + (i::float8 / :n) * interval '730 days' + pg_temp.pick(i, 34, 3600) * interval '1 second'
FROM generate_series(1, :n) AS i;

-- What an incremental warehouse needs of the source: an index on the movement time.
CREATE INDEX movimentacao_cartao_data ON movimentacao_cartao (data_movimentacao);
ALTER TABLE conta ADD FOREIGN KEY (id_associado) REFERENCES associado;
ALTER TABLE cartao ADD FOREIGN KEY (id_conta) REFERENCES conta;
ALTER TABLE movimentacao_cartao ADD FOREIGN KEY (id_cartao) REFERENCES cartao;
VACUUM ANALYZE associado, conta, cartao, movimentacao_cartao;
