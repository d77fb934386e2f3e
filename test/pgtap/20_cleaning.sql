-- Cleaning: raw -> trusted_* by every rule of the domain, through the real pipeline.
--   text trimmed, inner runs of white space collapsed, upper-cased with accents kept, blank -> NULL;
--   ids carried unchanged; nome split at the first space; idade in whole years on sicoop.as_of;
--   card numbers masked to their last four characters, in trusted, dim_cartao and the flat view.
-- The source is changed through the foreign tables sicoop.src_* (autocommit: the pipeline reads
-- the source over its own connection, so no BEGIN/ROLLBACK here).
\ir helpers/reset.sql
SELECT plan(66);

------------------------------------------------------------------------------------------
-- 1. The sample, through the whole pipeline (sicoop.as_of = 2025-08-15).
------------------------------------------------------------------------------------------
\o /dev/null
CALL sicoop.run_pipeline();
\o

SELECT results_eq(
  $$SELECT nome::text, sobrenome::text FROM sicoop.trusted_associado WHERE id_associado = 'ASSOC-001'$$,
  $$VALUES ('ANA', 'SILVA')$$,
  '''Ana Silva'' is split into ANA / SILVA');
SELECT is((SELECT nome::text FROM sicoop.trusted_associado WHERE id_associado = 'ASSOC-002'), 'JOÃO',
  '''João'' is upper-cased with its accent kept: JOÃO');
SELECT is((SELECT escolaridade::text FROM sicoop.trusted_associado WHERE id_associado = 'ASSOC-001'),
  'ENSINO SUPERIOR COMPLETO', ''' Ensino superior Completo'' -> ''ENSINO SUPERIOR COMPLETO'' (leading space trimmed)');
SELECT is((SELECT estado_civil::text FROM sicoop.trusted_associado WHERE id_associado = 'ASSOC-002'),
  'CASADO(A)', '''Casado '' -> ''CASADO'' (trailing space trimmed), canonical ''CASADO(A)''');
SELECT is((SELECT estado_civil::text FROM sicoop.trusted_associado WHERE id_associado = 'ASSOC-005'),
  'VIÚVO(A)', '''viúvo'' -> ''VIÚVO'', canonical ''VIÚVO(A)''');
SELECT is((SELECT tipo_conta::text FROM sicoop.trusted_conta WHERE id_conta = 'CONTA-102'),
  'POUPANÇA', '''Poupança'' -> ''POUPANÇA''');
SELECT is((SELECT numero_cartao::text FROM sicoop.trusted_cartao WHERE id_cartao = 'CARTAO-211'),
  '**0211', '''000211'' is masked to ''**0211''');

SELECT results_eq(
  $$SELECT id_associado::text, nome::text, sobrenome::text, data_nascimento, idade_atual_associado,
           estado_civil::text, escolaridade::text
    FROM sicoop.trusted_associado ORDER BY id_associado$$,
  $$VALUES ('ASSOC-001', 'ANA', 'SILVA', date '1985-05-10', 40, 'SOLTEIRO(A)', 'ENSINO SUPERIOR COMPLETO'),
           ('ASSOC-002', 'JOÃO', 'OLIVEIRA', '1992-11-25', 32, 'CASADO(A)', 'ENSINO SUPERIOR'),
           ('ASSOC-003', 'MARIA', 'SOUZA', '1978-02-18', 47, 'DIVORCIADO(A)', 'ENSINO MÉDIO'),
           ('ASSOC-004', 'PEDRO', 'SANTOS', '1995-07-03', 30, 'SOLTEIRO(A)', 'ENSINO SUPERIOR'),
           ('ASSOC-005', 'JULIA', 'LIMA', '1989-09-12', 35, 'VIÚVO(A)', 'ENSINO MÉDIO COMPLETO'),
           ('ASSOC-006', 'CARLOS', 'MENDES', '1980-04-20', 45, 'CASADO(A)', 'ENSINO SUPERIOR'),
           ('ASSOC-007', 'MARIANA', 'COSTA', '1998-08-05', 27, 'SOLTEIRO(A)', 'ENSINO SUPERIOR COMPLETO'),
           ('ASSOC-008', 'RICARDO', 'PEREIRA', '1975-01-30', 50, 'CASADO(A)', 'PÓS-GRADUAÇÃO'),
           ('ASSOC-009', 'FERNANDA', 'ALVES', '1990-06-22', 35, 'SOLTEIRO(A)', 'ENSINO SUPERIOR'),
           ('ASSOC-010', 'LUCAS', 'MARTINS', '1983-12-15', 41, 'DIVORCIADO(A)', 'ENSINO SUPERIOR')$$,
  'trusted_associado: the sample members cleaned, split and aged on 2025-08-15');

SELECT results_eq(
  $$SELECT id_conta::text, id_associado::text, tipo_conta::text, agencia::text, situacao_conta::text,
           data_criacao_conta
    FROM sicoop.trusted_conta ORDER BY id_conta$$,
  $$VALUES ('CONTA-101', 'ASSOC-001', 'CORRENTE', '001-3', 'ATIVA', date '2019-02-20'),
           ('CONTA-102', 'ASSOC-002', 'POUPANÇA', '002-5', 'ATIVA', '2020-01-21'),
           ('CONTA-103', 'ASSOC-003', 'CORRENTE', '001-3', 'ATIVA', '2018-02-17'),
           ('CONTA-104', 'ASSOC-004', 'CORRENTE', '004-7', 'ATIVA', '2022-08-10'),
           ('CONTA-105', 'ASSOC-005', 'CORRENTE', '005-9', 'ATIVA', '2017-09-30'),
           ('CONTA-106', 'ASSOC-006', 'POUPANÇA', '002-5', 'ATIVA', '2018-07-15'),
           ('CONTA-107', 'ASSOC-007', 'CORRENTE', '007-1', 'ATIVA', '2019-12-02'),
           ('CONTA-108', 'ASSOC-008', 'CORRENTE', '008-2', 'INATIVA', '2024-06-20'),
           ('CONTA-109', 'ASSOC-009', 'CORRENTE', '004-7', 'ATIVA', '2023-01-17'),
           ('CONTA-110', 'ASSOC-010', 'CORRENTE', '010-4', 'ATIVA', '2019-05-26')$$,
  'trusted_conta: the sample accounts cleaned');

SELECT results_eq(
  $$SELECT id_cartao::text, id_conta::text, numero_cartao::text, nome_impresso_cartao::text,
           bandeira_cartao::text, tipo_cartao::text, data_emissao
    FROM sicoop.trusted_cartao ORDER BY id_cartao$$,
  $$VALUES ('CARTAO-201', 'CONTA-101', '**0201', 'NOME 201', 'MASTERCARD', 'CRÉDITO', date '2023-01-15'),
           ('CARTAO-202', 'CONTA-101', '**0202', 'NOME 202', 'VISA', 'DÉBITO', '2023-01-15'),
           ('CARTAO-203', 'CONTA-102', '**0203', 'NOME 203', 'VISA', 'CRÉDITO', '2022-05-20'),
           ('CARTAO-204', 'CONTA-103', '**0204', 'NOME 204', 'ELO', 'DÉBITO', '2023-03-10'),
           ('CARTAO-205', 'CONTA-104', '**0205', 'NOME 205', 'MASTERCARD', 'CRÉDITO', '2024-06-01'),
           ('CARTAO-206', 'CONTA-105', '**0206', 'NOME 206', 'VISA', 'CRÉDITO', '2021-08-05'),
           ('CARTAO-207', 'CONTA-106', '**0207', 'NOME 207', 'ELO', 'DÉBITO', '2022-09-18'),
           ('CARTAO-208', 'CONTA-107', '**0208', 'NOME 208', 'MASTERCARD', 'CRÉDITO', '2023-11-25'),
           ('CARTAO-209', 'CONTA-108', '**0209', 'NOME 209', 'VISA', 'CRÉDITO', '2020-02-14'),
           ('CARTAO-210', 'CONTA-109', '**0210', 'NOME 210', 'ELO', 'DÉBITO', '2023-07-30'),
           ('CARTAO-211', 'CONTA-110', '**0211', 'NOME 211', 'MASTERCARD', 'CRÉDITO', '2024-01-08')$$,
  'trusted_cartao: the sample cards cleaned and masked');

SELECT results_eq(
  $$SELECT id_movimentacao_cartao::text, id_cartao::text, descricao_movimentacao::text,
           valor_movimentacao, data_movimentacao
    FROM sicoop.trusted_movimentacao_cartao ORDER BY id_movimentacao_cartao$$,
  $$VALUES ('MOV-301', 'CARTAO-201', 'SUPERMERCADO BOM PREÇO', 55.75, timestamp '2025-08-14 10:30:00'),
           ('MOV-302', 'CARTAO-202', 'POSTO IPIRANGA', 120.00, '2025-08-14 11:45:00'),
           ('MOV-303', 'CARTAO-203', 'PADARIA PÃO QUENTE', 25.50, '2025-08-14 12:10:00'),
           ('MOV-304', 'CARTAO-204', 'LOJA DE MÓVEIS', 350.00, '2025-08-14 13:20:00'),
           ('MOV-305', 'CARTAO-205', 'RESTAURANTE SABOR', 89.90, '2025-08-14 14:05:00'),
           ('MOV-306', 'CARTAO-206', 'FARMÁCIA SAÚDE', 75.00, '2025-08-14 15:15:00'),
           ('MOV-307', 'CARTAO-207', 'LIVRARIA CULTURA', 200.00, '2025-08-14 16:30:00'),
           ('MOV-308', 'CARTAO-208', 'CINEMA CENTER', 150.25, '2025-08-14 17:00:00'),
           ('MOV-309', 'CARTAO-209', 'UBER *TRIP', 45.00, '2025-08-14 18:40:00'),
           ('MOV-310', 'CARTAO-210', 'CAFETERIA GRÃO', 30.50, '2025-08-14 19:10:00'),
           ('MOV-311', 'CARTAO-211', 'MERCADO LIVRE', 110.00, '2025-08-14 20:25:00'),
           ('MOV-312', 'CARTAO-201', 'PADARIA PÃO QUENTE', 10.99, '2025-08-15 09:30:00')$$,
  'trusted_movimentacao_cartao: the sample movements cleaned, amounts and naive times unchanged');

-- The flat view: its columns in the order of the original CSV header, and its rows.
SELECT results_eq(
  $$SELECT attname::text COLLATE "default" FROM pg_attribute
    WHERE attrelid = 'sicoop.vw_movimentacao_flat'::regclass AND attnum > 0 AND NOT attisdropped
    ORDER BY attnum$$,
  ARRAY['nome_associado', 'sobrenome_associado', 'idade_associado', 'vlr_transacao_movimento',
        'des_transacao_movimento', 'data_movimentacao', 'numero_cartao', 'nome_impresso_cartao',
        'data_criacao_cartao', 'tipo_conta', 'data_criacao_conta'],
  'vw_movimentacao_flat has the CSV header''s columns, in its order');

SELECT results_eq(
  $$SELECT concat_ws(';', nome_associado, sobrenome_associado, idade_associado, vlr_transacao_movimento,
                   des_transacao_movimento, data_movimentacao, numero_cartao, nome_impresso_cartao,
                   data_criacao_cartao, tipo_conta, data_criacao_conta)
    FROM sicoop.vw_movimentacao_flat LIMIT 2$$,
  ARRAY['ANA;SILVA;40;55.75;SUPERMERCADO BOM PREÇO;2025-08-14 10:30:00;**0201;NOME 201;2023-01-15;CORRENTE;2019-02-20',
        'ANA;SILVA;40;120.00;POSTO IPIRANGA;2025-08-14 11:45:00;**0202;NOME 202;2023-01-15;CORRENTE;2019-02-20'],
  'the flat view''s first rows read as in domain.md');

SELECT results_eq(
  $$SELECT nome_associado::text, sobrenome_associado::text, idade_associado, vlr_transacao_movimento,
           des_transacao_movimento::text, data_movimentacao, numero_cartao::text,
           nome_impresso_cartao::text, data_criacao_cartao, tipo_conta::text, data_criacao_conta
    FROM sicoop.vw_movimentacao_flat$$,
  $$VALUES
    ('ANA', 'SILVA', 40, 55.75, 'SUPERMERCADO BOM PREÇO', timestamp '2025-08-14 10:30:00', '**0201', 'NOME 201', date '2023-01-15', 'CORRENTE', date '2019-02-20'),
    ('ANA', 'SILVA', 40, 120.00, 'POSTO IPIRANGA', '2025-08-14 11:45:00', '**0202', 'NOME 202', '2023-01-15', 'CORRENTE', '2019-02-20'),
    ('JOÃO', 'OLIVEIRA', 32, 25.50, 'PADARIA PÃO QUENTE', '2025-08-14 12:10:00', '**0203', 'NOME 203', '2022-05-20', 'POUPANÇA', '2020-01-21'),
    ('MARIA', 'SOUZA', 47, 350.00, 'LOJA DE MÓVEIS', '2025-08-14 13:20:00', '**0204', 'NOME 204', '2023-03-10', 'CORRENTE', '2018-02-17'),
    ('PEDRO', 'SANTOS', 30, 89.90, 'RESTAURANTE SABOR', '2025-08-14 14:05:00', '**0205', 'NOME 205', '2024-06-01', 'CORRENTE', '2022-08-10'),
    ('JULIA', 'LIMA', 35, 75.00, 'FARMÁCIA SAÚDE', '2025-08-14 15:15:00', '**0206', 'NOME 206', '2021-08-05', 'CORRENTE', '2017-09-30'),
    ('CARLOS', 'MENDES', 45, 200.00, 'LIVRARIA CULTURA', '2025-08-14 16:30:00', '**0207', 'NOME 207', '2022-09-18', 'POUPANÇA', '2018-07-15'),
    ('MARIANA', 'COSTA', 27, 150.25, 'CINEMA CENTER', '2025-08-14 17:00:00', '**0208', 'NOME 208', '2023-11-25', 'CORRENTE', '2019-12-02'),
    ('RICARDO', 'PEREIRA', 50, 45.00, 'UBER *TRIP', '2025-08-14 18:40:00', '**0209', 'NOME 209', '2020-02-14', 'CORRENTE', '2024-06-20'),
    ('FERNANDA', 'ALVES', 35, 30.50, 'CAFETERIA GRÃO', '2025-08-14 19:10:00', '**0210', 'NOME 210', '2023-07-30', 'CORRENTE', '2023-01-17'),
    ('LUCAS', 'MARTINS', 41, 110.00, 'MERCADO LIVRE', '2025-08-14 20:25:00', '**0211', 'NOME 211', '2024-01-08', 'CORRENTE', '2019-05-26'),
    ('ANA', 'SILVA', 40, 10.99, 'PADARIA PÃO QUENTE', '2025-08-15 09:30:00', '**0201', 'NOME 201', '2023-01-15', 'CORRENTE', '2019-02-20')$$,
  'the flat view on the sample: every row and column, ordered by data_movimentacao then id');

------------------------------------------------------------------------------------------
-- 2. Messy rows added to the source (spaces, tabs, case, accents, blanks, odd ids, card
--    numbers of every length), then the whole pipeline again at the same reference time.
------------------------------------------------------------------------------------------
INSERT INTO sicoop.src_associado VALUES
  ('T-NOME3', 'maria  da silva', '1990-01-01', E'\tcasada\t\tcom  separação ', ' pós-graduação   completa'),
  ('T-NOME1', 'joão', NULL, '   ', E'\t'),
  ('T-PAD2', '   ana   beatriz  ', '1991-01-01', 'solteira', 'ensino médio'),
  ('T-PAD1', '  zé  ', '1992-01-01', 'solteiro', 'ensino médio'),
  ('t-Id  Mixé', E'lúcia\tventura', '1960-02-29', 'viúva', 'doutorado'),
  ('T-AGE-BEFORE', 'Dia Antes', '2000-08-16', NULL, NULL),
  ('T-AGE-ON', 'Dia Certo', '2000-08-15', NULL, NULL),
  ('T-AGE-AFTER', 'Dia Depois', '2000-08-14', NULL, NULL),
  ('T-AGE-LEAP', 'Bissexto', '2000-02-29', NULL, NULL),
  ('T-AGE-FEB28', 'Fevereiro', '2000-02-28', NULL, NULL),
  ('T-AGE-MAR01', 'Março', '2000-03-01', NULL, NULL),
  ('T-AGE-FUTURE', 'Futuro', '2025-08-16', NULL, NULL);
INSERT INTO sicoop.src_conta VALUES
  ('conta  t1', 't-Id  Mixé', '  conta  poupança ', E'agência  sé\t1', 'em   análise', '2024-02-29'),
  ('T-CONTA-2', 'T-NOME1', '', '   ', E'\t \t', '2024-05-05');
INSERT INTO sicoop.src_cartao VALUES
  ('cartão-t1', 'conta  t1', '5502093412345678', ' joão  da   silva ', E'máster\tcard', ' crédito  internacional', '2024-03-01'),
  ('T-CARTAO-2', 'T-CONTA-2', '9876', '', ' ', E'\t', '2024-05-06'),
  ('T-CARTAO-3', 'T-CONTA-2', '123', 'três', 'elo', 'débito', '2024-05-07'),
  ('T-CARTAO-4', 'T-CONTA-2', '12345', 'quatro', 'elo', 'débito', '2024-05-08'),
  ('T-CARTAO-5', 'T-CONTA-2', '4111 1111 1111 1111', 'cinco', 'visa', 'crédito', '2024-05-09');
INSERT INTO sicoop.src_movimentacao_cartao VALUES
  ('mov  t1', 'cartão-t1', E'  compra\t\tonline   açaí  ', 99.99, '2025-08-15 10:00:00'),
  ('T-MOV-2', 'T-CARTAO-2', '   ', 1.00, '2025-08-15 10:05:00'),
  ('T-MOV-3', 'T-CARTAO-3', 'pão de queijo', 2.00, '2025-08-15 10:10:00'),
  ('T-MOV-4', 'T-CARTAO-4', 'café', 3.00, '2025-08-15 10:15:00'),
  ('T-MOV-5', 'T-CARTAO-5', 'açougue', 4.00, '2025-08-15 10:20:00');

\o /dev/null
CALL sicoop.run_pipeline();
\o

-- nome / sobrenome
SELECT results_eq(format('SELECT nome::text, sobrenome::text FROM sicoop.trusted_associado WHERE id_associado = %L', id),
                  'VALUES ' || expected, description)
FROM (VALUES
  (1, 'T-NOME3', $$('MARIA', 'DA SILVA')$$,
       '''maria  da silva'' -> MARIA / ''DA SILVA'' (the rest of a three-word name, inner spaces collapsed)'),
  (2, 'T-NOME1', $$('JOÃO', NULL::text)$$,
       'a single-word name ''joão'' -> JOÃO, sobrenome NULL'),
  (3, 'T-PAD2', $$('ANA', 'BEATRIZ')$$,
       '''   ana   beatriz  '' -> ANA / BEATRIZ: leading and trailing spaces make no empty name'),
  (4, 'T-PAD1', $$('ZÉ', NULL::text)$$,
       '''  zé  '' -> ZÉ, sobrenome NULL (not an empty string)'),
  (5, 't-Id  Mixé', $$('LÚCIA', 'VENTURA')$$,
       'a tab separates first and last name too: LÚCIA / VENTURA')
) AS t(n, id, expected, description)
ORDER BY n;
SELECT is(
  (SELECT count(*)::int FROM sicoop.trusted_associado
   WHERE nome = '' OR nome ~ '\s' OR nome <> upper(nome)
      OR sobrenome = '' OR sobrenome ~ '^\s|\s$|\s\s|[^ [:graph:]]' OR sobrenome <> upper(sobrenome)),
  0, 'no trusted name is empty, padded, holds a space (nome) or a run of spaces (sobrenome), or is lower case');

-- every cleaned text column: trimmed, collapsed, upper-cased with accents, blank -> NULL
-- (One row of a trusted table each: the table, its key, the columns read, what they must hold.)
SELECT results_eq(format('SELECT %s FROM sicoop.%I WHERE %I = %L', columns, layer, key_column, key), expected, description)
FROM (VALUES
  (1, 'trusted_associado', 'id_associado', 'T-NOME3', 'estado_civil::text, escolaridade::text',
       $$VALUES ('CASADA COM SEPARAÇÃO', 'PÓS-GRADUAÇÃO COMPLETA')$$,
       'estado_civil and escolaridade: tabs and runs of spaces collapsed, trimmed, upper-cased with accents'),
  (2, 'trusted_associado', 'id_associado', 'T-NOME1', 'estado_civil::text, escolaridade::text',
       $$VALUES (NULL::text, NULL::text)$$,
       'estado_civil and escolaridade: blank (spaces, a tab) -> NULL'),
  (3, 'trusted_conta', 'id_conta', 'conta  t1', 'tipo_conta::text, agencia::text, situacao_conta::text',
       $$VALUES ('POUPANÇA', 'AGÊNCIA SÉ 1', 'EM ANÁLISE')$$,
       'tipo_conta, agencia and situacao_conta cleaned, accents kept'),
  (4, 'trusted_conta', 'id_conta', 'T-CONTA-2', 'tipo_conta::text, agencia::text, situacao_conta::text',
       $$VALUES (NULL::text, NULL::text, NULL::text)$$,
       'tipo_conta, agencia and situacao_conta: empty / blank -> NULL'),
  (5, 'trusted_cartao', 'id_cartao', 'cartão-t1', 'nome_impresso_cartao::text, bandeira_cartao::text, tipo_cartao::text',
       $$VALUES ('JOÃO DA SILVA', 'MÁSTER CARD', 'CRÉDITO INTERNACIONAL')$$,
       'nome_impresso_cartao, bandeira_cartao and tipo_cartao cleaned, accents kept'),
  (6, 'trusted_cartao', 'id_cartao', 'T-CARTAO-2', 'nome_impresso_cartao::text, bandeira_cartao::text, tipo_cartao::text',
       $$VALUES (NULL::text, NULL::text, NULL::text)$$,
       'nome_impresso_cartao, bandeira_cartao and tipo_cartao: empty / blank -> NULL')
) AS t(n, layer, key_column, key, columns, expected, description)
ORDER BY n;
SELECT is((SELECT descricao_movimentacao::text FROM sicoop.trusted_movimentacao_cartao WHERE id_movimentacao_cartao = 'mov  t1'),
  'COMPRA ONLINE AÇAÍ', 'descricao_movimentacao cleaned, accents kept');
SELECT is((SELECT descricao_movimentacao::text FROM sicoop.trusted_movimentacao_cartao WHERE id_movimentacao_cartao = 'T-MOV-2'),
  NULL, 'descricao_movimentacao: blank -> NULL');
SELECT is(
  (SELECT count(*)::int FROM (
     SELECT estado_civil FROM sicoop.trusted_associado UNION ALL
     SELECT escolaridade FROM sicoop.trusted_associado UNION ALL
     SELECT tipo_conta FROM sicoop.trusted_conta UNION ALL
     SELECT agencia FROM sicoop.trusted_conta UNION ALL
     SELECT situacao_conta FROM sicoop.trusted_conta UNION ALL
     SELECT nome_impresso_cartao FROM sicoop.trusted_cartao UNION ALL
     SELECT bandeira_cartao FROM sicoop.trusted_cartao UNION ALL
     SELECT tipo_cartao FROM sicoop.trusted_cartao UNION ALL
     SELECT descricao_movimentacao FROM sicoop.trusted_movimentacao_cartao) v(t)
   WHERE t = '' OR t ~ '^\s|\s$|\s\s|[^ [:graph:]]' OR t <> upper(t)),
  0, 'every cleaned text column of every trusted table: no empty, padded, doubly spaced, tabbed or lower-case value');

-- ids, natural and foreign, are carried unchanged (spaces, case and accents included)
SELECT set_eq(
  'SELECT id_associado::text FROM sicoop.trusted_associado',
  'SELECT id_associado::text FROM sicoop.src_associado EXCEPT SELECT record_id FROM sicoop.reject',
  'trusted_associado ids are the source''s, unchanged');
SELECT set_eq(
  'SELECT id_conta::text, id_associado::text FROM sicoop.trusted_conta',
  'SELECT id_conta::text, id_associado::text FROM sicoop.src_conta',
  'trusted_conta ids (and member ids) are the source''s, unchanged');
SELECT set_eq(
  'SELECT id_cartao::text, id_conta::text FROM sicoop.trusted_cartao',
  'SELECT id_cartao::text, id_conta::text FROM sicoop.src_cartao',
  'trusted_cartao ids (and account ids) are the source''s, unchanged');
SELECT set_eq(
  'SELECT id_movimentacao_cartao::text, id_cartao::text FROM sicoop.trusted_movimentacao_cartao',
  'SELECT id_movimentacao_cartao::text, id_cartao::text FROM sicoop.src_movimentacao_cartao',
  'trusted_movimentacao_cartao ids (and card ids) are the source''s, unchanged');

-- card numbers
-- The same masked numbers in each layer that holds cards, in that order.
SELECT results_eq(
  format($$SELECT id_cartao::text, numero_cartao::text FROM sicoop.%I
           WHERE id_cartao IN ('cartão-t1', 'T-CARTAO-2', 'T-CARTAO-3', 'T-CARTAO-4', 'T-CARTAO-5') ORDER BY id_cartao$$,
         layer),
  $$VALUES ('cartão-t1', '************5678'), ('T-CARTAO-2', '9876'), ('T-CARTAO-3', '123'),
           ('T-CARTAO-4', '*2345'), ('T-CARTAO-5', '***************1111')$$,
  description)
FROM (VALUES (1, 'raw_cartao', 'raw_cartao keeps card numbers masked to their last four characters, never in clear (PCI DSS 3)'),
             (2, 'trusted_cartao', 'trusted_cartao: all but the last four characters masked; numbers of 4 characters or fewer unchanged'),
             (3, 'dim_cartao', 'dim_cartao carries the masked numbers')) AS t(n, layer, description)
ORDER BY n;
-- How many source card numbers longer than 4 appear in full in a row of sicoop.<layer>.
CREATE FUNCTION pg_temp.full_numbers_in(layer text) RETURNS int LANGUAGE plpgsql AS $$
DECLARE n int;
BEGIN
  EXECUTE format($q$SELECT count(*)::int FROM sicoop.src_cartao r JOIN sicoop.%I t ON strpos(t::text, btrim(r.numero_cartao)) > 0
                    WHERE length(btrim(r.numero_cartao)) > 4$q$, layer) INTO n;
  RETURN n;
END $$;
SELECT is(pg_temp.full_numbers_in(layer), 0, format('no full card number (longer than 4) appears anywhere in %s', layer))
FROM (VALUES (1, 'trusted_cartao'), (2, 'dim_cartao')) AS t(n, layer) ORDER BY n;
-- Every table and view of schema sicoop, raw, stage, rejects and the run log included.
CREATE FUNCTION pg_temp.tables_holding(needles text[]) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
  rel regclass;
  found boolean;
  holding text[] := '{}';
BEGIN
  FOR rel IN SELECT c.oid::regclass FROM pg_class c
             WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relkind IN ('r', 'v') LOOP
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s t, unnest($1) n WHERE strpos(t::text, n) > 0)', rel) USING needles INTO found;
    IF found THEN holding := holding || rel::text; END IF;
  END LOOP;
  RETURN holding;
END
$$;
SELECT is(
  pg_temp.tables_holding(ARRAY(SELECT btrim(numero_cartao) FROM sicoop.src_cartao WHERE length(btrim(numero_cartao)) > 4)),
  '{}'::text[], 'no table or view of the warehouse, raw and stage included, holds a full card number');
SELECT results_eq(
  $$SELECT nome_associado::text, sobrenome_associado::text, idade_associado, vlr_transacao_movimento,
           des_transacao_movimento::text, numero_cartao::text, nome_impresso_cartao::text,
           data_criacao_cartao, tipo_conta::text, data_criacao_conta
    FROM sicoop.vw_movimentacao_flat WHERE data_movimentacao >= '2025-08-15 10:00'$$,
  $$VALUES ('LÚCIA', 'VENTURA', 65, 99.99, 'COMPRA ONLINE AÇAÍ', '************5678', 'JOÃO DA SILVA', date '2024-03-01', 'POUPANÇA', date '2024-02-29'),
           ('JOÃO', NULL, NULL, 1.00, NULL, '9876', NULL, '2024-05-06', NULL, '2024-05-05'),
           ('JOÃO', NULL, NULL, 2.00, 'PÃO DE QUEIJO', '123', 'TRÊS', '2024-05-07', NULL, '2024-05-05'),
           ('JOÃO', NULL, NULL, 3.00, 'CAFÉ', '*2345', 'QUATRO', '2024-05-08', NULL, '2024-05-05'),
           ('JOÃO', NULL, NULL, 4.00, 'AÇOUGUE', '***************1111', 'CINCO', '2024-05-09', NULL, '2024-05-05')$$,
  'the flat view shows the new movements cleaned, with masked card numbers');

-- idade_atual_associado on sicoop.as_of = 2025-08-15
SELECT is((SELECT idade_atual_associado FROM sicoop.trusted_associado WHERE id_associado = 'T-AGE-BEFORE'), 24,
  'born 2000-08-16: 24 on 2025-08-15, the day before the birthday');
SELECT is((SELECT idade_atual_associado FROM sicoop.trusted_associado WHERE id_associado = 'T-AGE-ON'), 25,
  'born 2000-08-15: 25 on 2025-08-15, the birthday');
SELECT is((SELECT idade_atual_associado FROM sicoop.trusted_associado WHERE id_associado = 'T-AGE-AFTER'), 25,
  'born 2000-08-14: 25 on 2025-08-15, the day after the birthday');
SELECT is((SELECT idade_atual_associado FROM sicoop.trusted_associado WHERE id_associado = 'T-NOME1'), NULL,
  'no birth date: idade NULL');
SELECT results_eq(
  $$SELECT rule_name, record->>'data_nascimento' FROM sicoop.reject WHERE record_id = 'T-AGE-FUTURE'$$,
  $$VALUES ('associado_nascimento_range', '2025-08-16')$$,
  'a birth date after the reference date is rejected (rule associado_nascimento_range), not loaded with no age');
SELECT is((SELECT idade_atual_associado FROM sicoop.dim_associado
           WHERE id_associado = 'T-AGE-BEFORE' AND registro_ativo_associado), 24,
  'dim_associado takes the trusted age (24 the day before the birthday)');

-- Re-running the trusted step on unchanged data changes nothing: cleaning is idempotent.
SELECT results_eq(
  'SELECT rows_inserted, rows_updated, rows_deleted FROM sicoop.load_trusted()',
  $$VALUES (0::bigint, 0::bigint, 0::bigint)$$,
  'load_trusted again with no source change: nothing inserted, updated or deleted');

------------------------------------------------------------------------------------------
-- 3. Other reference dates. Runs go forward in time (sicoop.as_of is checked), so leap-day
--    ages are checked on sicoop.age_years itself, which the trusted step uses.
------------------------------------------------------------------------------------------
SELECT is(sicoop.age_years('2000-02-29', '2025-02-28'), 24,
  'born 29 Feb 2000: 24 on 28 Feb 2025 (common year, birthday not yet reached)');
SELECT is(sicoop.age_years('2000-02-28', '2025-02-28'), 25,
  'born 28 Feb 2000: 25 on 28 Feb 2025 (the birthday)');
SELECT is(sicoop.age_years('2000-02-29', '2025-03-01'), 25,
  'born 29 Feb 2000: 25 on 1 Mar 2025 (common year)');
SELECT is(sicoop.age_years('2000-03-01', '2025-03-01'), 25,
  'born 1 Mar 2000: 25 on 1 Mar 2025 (the birthday)');
SELECT is(sicoop.age_years('2000-02-29', '2028-02-28'), 27,
  'born 29 Feb 2000: 27 on 28 Feb 2028 (leap year, the day before the birthday)');
SELECT results_eq(
  $$SELECT sicoop.age_years(birth, '2028-02-29') FROM (VALUES (date '2000-02-28'), ('2000-02-29'), ('2000-03-01')) b(birth)$$,
  $$VALUES (28), (28), (27)$$,
  'on 29 Feb 2028: born 28 Feb 2000 is 28 (day after), born 29 Feb 28 (birthday), born 1 Mar 27 (day before)');

-- As the reference date moves on, the trusted step re-ages every member.
SET sicoop.as_of = '2025-08-16';
\o /dev/null
SELECT * FROM sicoop.load_trusted();
\o
SELECT results_eq(
  $$SELECT id_associado::text, idade_atual_associado FROM sicoop.trusted_associado
    WHERE id_associado IN ('T-AGE-AFTER', 'T-AGE-BEFORE', 'T-AGE-LEAP', 'T-AGE-ON') ORDER BY id_associado$$,
  $$VALUES ('T-AGE-AFTER', 25), ('T-AGE-BEFORE', 25), ('T-AGE-LEAP', 25), ('T-AGE-ON', 25)$$,
  'on 2025-08-16 the member born 2000-08-16 turns 25 in trusted; the others keep their ages');
SET sicoop.as_of = '2025-08-15';
SELECT throws_ok('SELECT * FROM sicoop.load_trusted()', '22023', NULL,
  'a reference time earlier than the latest successful run''s is refused');
SET sicoop.as_of = '2025-08-16';

-- A row that cannot be cleaned is rejected with a reason, never silently lost, and does not
-- stop the others; once fixed in the source it loads and leaves sicoop.reject.
INSERT INTO sicoop.src_associado (id_associado, nome) VALUES ('T-BLANK', '   '), ('T-OK', 'Zeca Baleiro');
\o /dev/null
SELECT * FROM sicoop.load_raw();
\o
SELECT results_eq(
  $$SELECT rows_rejected FROM sicoop.load_raw()$$, ARRAY[1::bigint],
  'load_raw succeeds and counts the member whose nome is blank as rejected (the future-born member now loads: 2025-08-16 is no longer after the run''s date)');
\o /dev/null
SELECT * FROM sicoop.load_trusted();
\o
SELECT results_eq(
  $$SELECT table_name, record_id, rule_name, reason, record->>'nome' FROM sicoop.reject$$,
  $$VALUES ('associado', 'T-BLANK', 'associado_nome_not_blank', 'nome is blank', '   ')$$,
  'sicoop.reject holds the rejected row, its rule, its reason and its source values');
SELECT is((SELECT count(*)::int FROM sicoop.trusted_associado WHERE id_associado IN ('T-BLANK', 'T-OK', 'T-AGE-FUTURE')), 2,
  'the other new member, and the one born on the run''s date, load; the rejected one is not in raw nor trusted');
SELECT is((SELECT count(*)::int FROM sicoop.raw_associado WHERE id_associado = 'T-BLANK'), 0, 'nor in raw');
SELECT results_eq(
  $$SELECT rows_rejected FROM sicoop.load_raw()$$, ARRAY[1::bigint],
  'a rerun checks the reject again (still rejected)');
UPDATE sicoop.src_associado SET nome = ' zé  ninguém' WHERE id_associado = 'T-BLANK';
\o /dev/null
SELECT * FROM sicoop.load_raw();
SELECT * FROM sicoop.load_trusted();
\o
SELECT results_eq(
  $$SELECT nome, sobrenome FROM sicoop.trusted_associado WHERE id_associado = 'T-BLANK'$$,
  $$VALUES ('ZÉ'::varchar, 'NINGUÉM'::varchar)$$,
  'once fixed in the source the member loads');
SELECT is_empty('SELECT 1 FROM sicoop.reject', 'and leaves sicoop.reject');

-- 1.6 (issue 24, finding 8): digit groups separated by any run of up to four non-alphanumeric
-- characters are a card number when they pass the Luhn check.
SELECT is(
  (SELECT array_agg(sicoop._redact_card_numbers(format('PAGTO %s LOJA', array_to_string(ARRAY['4111', '1111', '1111', '1111'], sep))) ORDER BY o)
   FROM unnest(ARRAY[';', '|', '+', '~', '#', ' ; ', ')(', '] [', '*']) WITH ORDINALITY u(sep, o)),
  (SELECT array_agg(format('PAGTO %s LOJA', array_to_string(ARRAY['****', '****', '****', '1111'], sep)) ORDER BY o)
   FROM unnest(ARRAY[';', '|', '+', '~', '#', ' ; ', ')(', '] [', '*']) WITH ORDINALITY u(sep, o)),
  '_redact_card_numbers: groups separated by ; | + ~ # ) ( [ ] * are masked');
SELECT is(sicoop.clean_text('compra (4111)(1111)(1111)(1111) ok'), 'COMPRA (****)(****)(****)(1111) OK',
          'clean_text: a card number in parentheses is masked in trusted');
SELECT is(sicoop._redact_card_numbers('ids 4111;1111;1111;1112 e 4111;;;;;1111;;;;;1111;;;;;1111'),
          'ids 4111;1111;1111;1112 e 4111;;;;;1111;;;;;1111;;;;;1111',
          'a list that fails the Luhn check, or more than four separators, stays readable');
SELECT ok(sicoop.contains_card_number('************1111') AND sicoop.contains_card_number('CHAVE-****;****;****;1111')
          AND NOT sicoop.contains_card_number('MOV-****-1'),
          'contains_card_number reads a masked number as a card number (a masked key is rejected by the key rule)');

SELECT * FROM finish();
