-- SCD type 2 of sicoop.dim_associado, through the real pipeline: historized attributes
-- (estado civil, escolaridade, idade) version the member, type 1 ones (nome) are corrected in
-- place, members leave and come back, facts pick the version valid at the movement's time,
-- and runs only go forward in time.
--
-- No BEGIN/ROLLBACK: the pipeline reads the source over its own libpq connection, so every
-- change to the source (sicoop.src_*, postgres_fdw) is committed before the run that reads it.
--
-- The timeline (America/Sao_Paulo, -03):
--   T0 2025-08-15 00:00  first load
--   T1 2025-08-16 10:00  Ana estado civil, Carlos estado civil, Ricardo escolaridade change
--   T2 2025-08-16 15:00  Ana escolaridade changes (second change that day), then, at the very
--                        same T2, Ana estado civil changes again
--   T3 2025-08-20 10:00  Lucas (ASSOC-010) deleted from the source
--      2025-09-11 23:00  nothing changes; Julia's birthday is tomorrow
--   T4 2025-09-12 10:00  Julia turns 36; Lucas is back; Ana's nome corrected
--      2025-09-12 18:00  nothing changes
\ir helpers/reset.sql
-- The versions are followed on the cleaned values themselves: no canonical mapping here
-- (20_cleaning and 90_quality test it).
\o /dev/null
DELETE FROM sicoop.canonical_value;
\o
SELECT plan(41);

-- The member versions and the facts with the version they point to, with comparable types.
CREATE TEMP VIEW versao AS
SELECT sk_associado AS sk, id_associado::text AS id, nome_associado::text AS nome,
       sobrenome_associado::text AS sobrenome, idade_atual_associado AS idade,
       estado_civil_associado::text AS estado, escolaridade_associado::text AS escolaridade,
       inicio_vigencia_registro_associado AS inicio, fim_vigencia_registro_associado AS fim,
       registro_ativo_associado AS ativo, data_hora_atualizacao_registro AS atualizado
FROM sicoop.dim_associado WHERE id_associado IS NOT NULL;

CREATE TEMP VIEW fato_versao AS
SELECT f.id_movimentacao_cartao::text AS mov, f.data_hora_movimentacao AS quando,
       f.data_hora_atualizacao_registro AS fato_atualizado, f.sk_associado,
       v.id, v.estado, v.escolaridade, v.idade, v.inicio
FROM sicoop.fato_movimentacao_cartao f LEFT JOIN versao v ON v.sk = f.sk_associado;

------------------------------------------------------------------------------------------
-- T0: the first load. Every member gets one version, valid from 1900 to 9999, current.
------------------------------------------------------------------------------------------
SET sicoop.as_of = '2025-08-15 00:00:00-03';
CALL sicoop.run_pipeline();

SELECT is((SELECT count(*)::int FROM versao), 10,
  'first load: one version per source member');
SELECT is((SELECT count(*)::int FROM versao WHERE inicio = '1900-01-01 00:00:00'), 10,
  'first load: every first version starts at 1900-01-01 00:00:00');
SELECT is((SELECT count(*)::int FROM versao
           WHERE fim = '9999-12-31 00:00:00' AND ativo), 10,
  'first load: every version is current (ends at 9999-12-31 (midnight in sicoop.timezone), registro_ativo true)');

------------------------------------------------------------------------------------------
-- T1: estado civil (Ana, Carlos) and escolaridade (Ricardo) change; nothing else does.
------------------------------------------------------------------------------------------
UPDATE sicoop.src_associado SET estado_civil = 'Casada' WHERE id_associado = 'ASSOC-001';
UPDATE sicoop.src_associado SET estado_civil = ' divorciado' WHERE id_associado = 'ASSOC-006';
UPDATE sicoop.src_associado SET escolaridade = 'Doutorado' WHERE id_associado = 'ASSOC-008';
SET sicoop.as_of = '2025-08-16 10:00:00-03';
CALL sicoop.run_pipeline();

-- Member <id>'s versions of <attr> (as text): <first> from the start until <closed>, then
-- <current> from <opened> on.
CREATE FUNCTION pg_temp.versions_are(id text, attr text, first text, closed text, current text, opened text,
                                     description text) RETURNS text LANGUAGE sql AS $f$
  SELECT results_eq(
    format('SELECT %s::text, inicio, fim, ativo FROM versao WHERE id = %L ORDER BY inicio', attr, id),
    format($$VALUES (%L, '1900-01-01 00:00:00'::timestamptz, %L::timestamptz, false),
                    (%L, %L, '9999-12-31 00:00:00', true)$$, first, closed, current, opened),
    description)
$f$;

SELECT pg_temp.versions_are('ASSOC-006', 'estado', 'CASADO', '2025-08-16 10:00:00-03', 'DIVORCIADO', '2025-08-16 10:00:00-03',
  'estado_civil change: the current version is closed at the reference time and a new one opens from it');
SELECT pg_temp.versions_are('ASSOC-008', 'escolaridade', 'POS-GRADUACAO', '2025-08-16 10:00:00-03', 'DOUTORADO', '2025-08-16 10:00:00-03',
  'escolaridade change: the current version is closed at the reference time and a new one opens from it');
-- Ana's (ASSOC-001) versions: the one she had until her first change (10:00), then `later`
-- (rows of a VALUES list).
CREATE FUNCTION pg_temp.ana_versions_are(later text, description text) RETURNS text LANGUAGE sql AS $f$
  SELECT results_eq(
    $$SELECT estado, escolaridade, inicio, fim, ativo FROM versao WHERE id = 'ASSOC-001' ORDER BY inicio$$,
    $$VALUES ('SOLTEIRA'::text, 'ENSINO SUPERIOR COMPLETO'::text, '1900-01-01 00:00:00'::timestamptz,
              '2025-08-16 10:00:00-03'::timestamptz, false), $$ || later,
    description)
$f$;

SELECT pg_temp.ana_versions_are(
  $$('CASADA', 'ENSINO SUPERIOR COMPLETO', '2025-08-16 10:00:00-03', '9999-12-31 00:00:00', true)$$,
  'Ana, first change of the day (10:00): old version closed, new one from 10:00');
SELECT is((SELECT count(*)::int FROM versao
           WHERE id NOT IN ('ASSOC-001', 'ASSOC-006', 'ASSOC-008')), 7,
  'members without a change keep their single version');
-- The movements loaded at T0 keep their version, and are not even touched.
SELECT results_eq(
  $$SELECT mov, id, estado, inicio, fato_atualizado FROM fato_versao
    WHERE mov IN ('MOV-301', 'MOV-312', 'MOV-307') ORDER BY mov$$,
  $$VALUES ('MOV-301'::text, 'ASSOC-001'::text, 'SOLTEIRA'::text, '1900-01-01 00:00:00'::timestamptz,
            '2025-08-15 00:00:00-03'::timestamptz),
           ('MOV-307', 'ASSOC-006', 'CASADO', '1900-01-01 00:00:00', '2025-08-15 00:00:00-03'),
           ('MOV-312', 'ASSOC-001', 'SOLTEIRA', '1900-01-01 00:00:00', '2025-08-15 00:00:00-03')$$,
  'facts dated before the change keep the old version (and are not re-stamped)');

-- A movement of Carlos after his change, arriving now.
INSERT INTO sicoop.src_movimentacao_cartao VALUES
  ('MOV-C01', 'CARTAO-207', 'Livraria Cultura', 42.00, '2025-08-18 12:00:00');

------------------------------------------------------------------------------------------
-- T2, same day: Ana's escolaridade changes (second new version of the day), then a second
-- change at the very same reference time is corrected in place.
------------------------------------------------------------------------------------------
UPDATE sicoop.src_associado SET escolaridade = 'Mestrado' WHERE id_associado = 'ASSOC-001';
SET sicoop.as_of = '2025-08-16 15:00:00-03';
CALL sicoop.run_pipeline();

SELECT pg_temp.ana_versions_are(
  $$('CASADA', 'ENSINO SUPERIOR COMPLETO', '2025-08-16 10:00:00-03', '2025-08-16 15:00:00-03', false),
    ('CASADA', 'MESTRADO', '2025-08-16 15:00:00-03', '9999-12-31 00:00:00', true)$$,
  'two changes on one day: two new versions, contiguous (10:00 to 15:00, then from 15:00)');

SELECT sk AS ana_t2_sk FROM versao WHERE id = 'ASSOC-001' AND ativo \gset
UPDATE sicoop.src_associado SET estado_civil = 'Divorciada' WHERE id_associado = 'ASSOC-001';
CALL sicoop.run_pipeline();

SELECT pg_temp.ana_versions_are(
  $$('CASADA', 'ENSINO SUPERIOR COMPLETO', '2025-08-16 10:00:00-03', '2025-08-16 15:00:00-03', false),
    ('DIVORCIADA', 'MESTRADO', '2025-08-16 15:00:00-03', '9999-12-31 00:00:00', true)$$,
  'a second change at the very same reference time is corrected in place: no new, no empty version');
SELECT is((SELECT sk FROM versao WHERE id = 'ASSOC-001' AND ativo), :ana_t2_sk,
  'the version corrected in place is the same row (same sk_associado)');

-- Ana's movements around both changes of the day (the boundaries are half-open: [inicio, fim)).
INSERT INTO sicoop.src_movimentacao_cartao VALUES
  ('MOV-A01', 'CARTAO-201', 'Padaria', 5.00, '2025-08-16 09:59:59'),
  ('MOV-A02', 'CARTAO-201', 'Padaria', 6.00, '2025-08-16 10:00:00'),
  ('MOV-A03', 'CARTAO-202', 'Posto', 7.00, '2025-08-16 14:59:59'),
  ('MOV-A04', 'CARTAO-202', 'Posto', 8.00, '2025-08-16 15:00:00'),
  ('MOV-A05', 'CARTAO-201', 'Mercado', 9.00, '2025-08-19 08:00:00');

------------------------------------------------------------------------------------------
-- T3: Lucas (ASSOC-010) leaves the source, with his account, card and movement.
------------------------------------------------------------------------------------------
DELETE FROM sicoop.src_movimentacao_cartao WHERE id_cartao = 'CARTAO-211';
DELETE FROM sicoop.src_cartao WHERE id_cartao = 'CARTAO-211';
DELETE FROM sicoop.src_conta WHERE id_conta = 'CONTA-110';
DELETE FROM sicoop.src_associado WHERE id_associado = 'ASSOC-010';
SET sicoop.as_of = '2025-08-20 10:00:00-03';
CALL sicoop.run_pipeline();

SELECT results_eq(
  $$SELECT inicio, fim, ativo FROM versao WHERE id = 'ASSOC-010' ORDER BY inicio$$,
  $$VALUES ('1900-01-01 00:00:00'::timestamptz, '2025-08-20 10:00:00-03'::timestamptz, false)$$,
  'a member gone from the source: its current version is closed at the reference time, none opened');
SELECT is_empty(
  $$SELECT sk FROM versao WHERE id = 'ASSOC-010' AND (ativo OR fim = '9999-12-31 00:00:00')$$,
  'a member gone from the source has no current row left');

SELECT results_eq(
  $$SELECT mov, id, estado, escolaridade, inicio FROM fato_versao
    WHERE mov IN ('MOV-301', 'MOV-312', 'MOV-A01', 'MOV-A02', 'MOV-A03', 'MOV-A04', 'MOV-A05')
    ORDER BY quando, mov$$,
  $$VALUES ('MOV-301'::text, 'ASSOC-001'::text, 'SOLTEIRA'::text, 'ENSINO SUPERIOR COMPLETO'::text,
            '1900-01-01 00:00:00'::timestamptz),
           ('MOV-312', 'ASSOC-001', 'SOLTEIRA', 'ENSINO SUPERIOR COMPLETO', '1900-01-01 00:00:00'),
           ('MOV-A01', 'ASSOC-001', 'SOLTEIRA', 'ENSINO SUPERIOR COMPLETO', '1900-01-01 00:00:00'),
           ('MOV-A02', 'ASSOC-001', 'CASADA', 'ENSINO SUPERIOR COMPLETO', '2025-08-16 10:00:00-03'),
           ('MOV-A03', 'ASSOC-001', 'CASADA', 'ENSINO SUPERIOR COMPLETO', '2025-08-16 10:00:00-03'),
           ('MOV-A04', 'ASSOC-001', 'DIVORCIADA', 'MESTRADO', '2025-08-16 15:00:00-03'),
           ('MOV-A05', 'ASSOC-001', 'DIVORCIADA', 'MESTRADO', '2025-08-16 15:00:00-03')$$,
  'each of Ana''s movements points to the version valid at its time (before 10:00, 10:00-15:00, from 15:00)');
SELECT results_eq(
  $$SELECT mov, estado FROM fato_versao WHERE id = 'ASSOC-006' ORDER BY quando$$,
  $$VALUES ('MOV-307'::text, 'CASADO'::text), ('MOV-C01', 'DIVORCIADO')$$,
  'Carlos: the old movement keeps the old version (CASADO), the new one takes the new (DIVORCIADO)');

------------------------------------------------------------------------------------------
-- The day before Julia's birthday (1989-09-12): a run changes nothing.
------------------------------------------------------------------------------------------
SET sicoop.as_of = '2025-09-11 23:00:00-03';
CALL sicoop.run_pipeline();

SELECT results_eq(
  $$SELECT idade, inicio, fim, ativo FROM versao WHERE id = 'ASSOC-005' ORDER BY inicio$$,
  $$VALUES (35, '1900-01-01 00:00:00'::timestamptz, '9999-12-31 00:00:00'::timestamptz, true)$$,
  'the day before a birthday, idade is unchanged and no version is made');
SELECT is((SELECT count(*)::int FROM versao), 14,
  'a run without any source change makes no version');

------------------------------------------------------------------------------------------
-- Lucas comes back (with his account, card, old movement and a new one).
------------------------------------------------------------------------------------------
INSERT INTO sicoop.src_associado VALUES ('ASSOC-010', 'Lucas Martins', '1983-12-15', 'Divorciado', 'Ensino superior');
INSERT INTO sicoop.src_conta VALUES ('CONTA-110', 'ASSOC-010', 'Corrente', '010-4', 'Ativa', '2019-05-26');
INSERT INTO sicoop.src_cartao VALUES ('CARTAO-211', 'CONTA-110', '000211', 'Nome 211', 'MasterCard', 'Crédito', '2024-01-08');
INSERT INTO sicoop.src_movimentacao_cartao VALUES
  ('MOV-311', 'CARTAO-211', 'Mercado Livre', 110.00, '2025-08-14 20:25:00'),
  ('MOV-L01', 'CARTAO-211', 'Mercado Livre', 99.00, '2025-09-12 11:00:00');

-- The latest version opened at T2 (2025-08-16 15:00), but Lucas's version was closed later,
-- at T3 (2025-08-20 10:00). A run between the two goes back in time just the same: it must
-- be refused with the clear error, not half-run into the exclusion constraint.
SET sicoop.as_of = '2025-08-18 12:00:00-03';
SELECT throws_ok('CALL sicoop.run_pipeline()', '22023', NULL,
  'a reference time earlier than the latest vigência boundary (a member closed at T3) is refused with 22023');

------------------------------------------------------------------------------------------
-- T4: Julia's birthday; Lucas is back; Ana's nome is corrected (type 1).
------------------------------------------------------------------------------------------
UPDATE sicoop.src_associado SET nome = 'Anna Silva' WHERE id_associado = 'ASSOC-001';
INSERT INTO sicoop.src_movimentacao_cartao VALUES
  ('MOV-J01', 'CARTAO-206', 'Ótica Visão', 300.00, '2025-09-13 08:00:00');
SET sicoop.as_of = '2025-09-12 10:00:00-03';
CALL sicoop.run_pipeline();

SELECT pg_temp.versions_are('ASSOC-005', 'idade', '35', '2025-09-12 10:00:00-03', '36', '2025-09-12 10:00:00-03',
  'a birthday between two runs (idade 35 -> 36) closes the version at the reference time and opens one from it');
SELECT pg_temp.versions_are('ASSOC-010', 'estado', 'DIVORCIADO', '2025-08-20 10:00:00-03', 'DIVORCIADO', '2025-09-12 10:00:00-03',
  'a member back in the source gets a new current version from the time it came back');
SELECT results_eq(
  $$SELECT nome, sobrenome, estado, inicio FROM versao WHERE id = 'ASSOC-001' ORDER BY inicio$$,
  $$VALUES ('ANNA'::text, 'SILVA'::text, 'SOLTEIRA'::text, '1900-01-01 00:00:00'::timestamptz),
           ('ANNA', 'SILVA', 'CASADA', '2025-08-16 10:00:00-03'),
           ('ANNA', 'SILVA', 'DIVORCIADA', '2025-08-16 15:00:00-03')$$,
  'a nome change makes no version: it is corrected in place on all versions');
SELECT is((SELECT sk FROM versao WHERE id = 'ASSOC-001' AND ativo), :ana_t2_sk,
  'after the nome correction Ana''s current version is still the same row');
SELECT results_eq(
  $$SELECT mov, id, inicio FROM fato_versao WHERE mov IN ('MOV-311', 'MOV-L01') ORDER BY quando$$,
  $$VALUES ('MOV-311'::text, 'ASSOC-010'::text, '1900-01-01 00:00:00'::timestamptz),
           ('MOV-L01', 'ASSOC-010', '2025-09-12 10:00:00-03')$$,
  'Lucas''s old movement finds his first version, the new one his version since coming back');
SELECT results_eq(
  $$SELECT mov, idade FROM fato_versao WHERE id = 'ASSOC-005' ORDER BY quando$$,
  $$VALUES ('MOV-306'::text, 35), ('MOV-J01', 36)$$,
  'Julia: the movement before her birthday points to idade 35, the one after to idade 36');
SELECT results_eq(
  $$SELECT nome_associado::text, idade_associado, des_transacao_movimento::text, data_movimentacao
    FROM sicoop.vw_movimentacao_flat WHERE nome_associado = 'JULIA' ORDER BY data_movimentacao$$,
  $$VALUES ('JULIA'::text, 35, 'FARMÁCIA SAÚDE'::text, '2025-08-14 15:15:00'::timestamp),
           ('JULIA', 36, 'ÓTICA VISÃO', '2025-09-13 08:00:00')$$,
  'vw_movimentacao_flat: idade_associado comes from the version each movement points to');
SELECT results_eq(
  $$SELECT f.nome_associado::text, f.idade_associado, f.data_movimentacao
    FROM sicoop.vw_movimentacao_flat f WHERE f.nome_associado = 'CARLOS' ORDER BY f.data_movimentacao$$,
  $$VALUES ('CARLOS'::text, 45, '2025-08-14 16:30:00'::timestamp), ('CARLOS', 45, '2025-08-18 12:00:00')$$,
  'vw_movimentacao_flat: Carlos''s movements before and after his change both reach his versions');

------------------------------------------------------------------------------------------
-- A rerun later the same day, without source change.
------------------------------------------------------------------------------------------
SET sicoop.as_of = '2025-09-12 18:00:00-03';
CALL sicoop.run_pipeline();

SELECT results_eq(
  $$SELECT id, count(*)::int FROM versao GROUP BY id ORDER BY id$$,
  $$VALUES ('ASSOC-001'::text, 3), ('ASSOC-002', 1), ('ASSOC-003', 1), ('ASSOC-004', 1), ('ASSOC-005', 2),
           ('ASSOC-006', 2), ('ASSOC-007', 1), ('ASSOC-008', 2), ('ASSOC-009', 1), ('ASSOC-010', 2)$$,
  'versions per member: one per change, none for a rerun, a nome change or an unchanged member');

------------------------------------------------------------------------------------------
-- Invariants after all that.
------------------------------------------------------------------------------------------
SELECT set_eq(
  $$SELECT id FROM versao WHERE ativo$$,
  $$SELECT id_associado::text FROM sicoop.src_associado$$,
  'the current rows are exactly the members present in the source');
SELECT is_empty(
  $$SELECT s.id_associado FROM sicoop.src_associado s
    WHERE (SELECT count(*) FROM versao v WHERE v.id = s.id_associado AND v.ativo) <> 1$$,
  'exactly one current row per member present in the source');
SELECT is_empty(
  $$SELECT sk FROM versao WHERE ativo <> (fim = '9999-12-31 00:00:00')$$,
  'current rows, and only they, end at 9999-12-31 00:00:00');
SELECT is_empty(
  $$SELECT id, min(inicio) FROM versao GROUP BY id HAVING min(inicio) <> '1900-01-01 00:00:00'$$,
  'every member''s first version starts at 1900-01-01 00:00:00');
SELECT is_empty(
  $$SELECT id, inicio, fim, proximo FROM (
      SELECT id, inicio, fim, lead(inicio) OVER (PARTITION BY id ORDER BY inicio) AS proximo
      FROM versao WHERE id <> 'ASSOC-010') v
    WHERE proximo IS NOT NULL AND fim <> proximo$$,
  'vigências are contiguous: each version ends where the next begins (members never deleted)');
SELECT is_empty(
  $$SELECT a.sk, b.sk FROM versao a JOIN versao b ON a.id = b.id AND a.sk < b.sk
    WHERE a.inicio < b.fim AND b.inicio < a.fim$$,
  'no two versions of a member overlap');
SELECT is_empty(
  $$SELECT f.mov FROM fato_versao f
    WHERE f.id IS NULL OR NOT (f.quando >= f.inicio
      AND f.quando < (SELECT v.fim FROM versao v WHERE v.sk = f.sk_associado))$$,
  'every fact points to a member version valid at the movement''s time');

------------------------------------------------------------------------------------------
-- Runs go forward in time: a reference time earlier than the latest version is refused.
------------------------------------------------------------------------------------------
CREATE TEMP TABLE dim_antes AS SELECT * FROM sicoop.dim_associado;
SET sicoop.as_of = '2025-08-20 10:00:00-03';
SELECT throws_ok('SELECT * FROM sicoop.scd2_associado()', '22023', NULL,
  'scd2_associado refuses a reference time earlier than the latest version (SQLSTATE 22023)');
SELECT throws_like('SELECT * FROM sicoop.scd2_associado()',
  '%sicoop.as_of%is earlier than the reference time of the latest successful run%',
  'the refusal says why: the reference time is earlier than the latest run''s');
SELECT throws_ok('CALL sicoop.run_pipeline()', '22023', NULL,
  'run_pipeline refuses it too (SQLSTATE 22023)');
SELECT results_eq(
  $$SELECT * FROM sicoop.dim_associado ORDER BY sk_associado$$,
  $$SELECT * FROM dim_antes ORDER BY sk_associado$$,
  'a refused run leaves dim_associado as it was');

SET sicoop.as_of = '2025-09-12 18:00:00-03';  -- the latest run's reference time again

-- The cooperative's time zone (sicoop.timezone), not the session's, decides which version a
-- naive movement time falls in: a UTC session keys the facts exactly as a São Paulo one.
CREATE TEMP TABLE keys_sao_paulo AS
  SELECT id_movimentacao_cartao, sk_associado FROM sicoop.fato_movimentacao_cartao;
\o /dev/null
SET timezone = 'UTC';
TRUNCATE sicoop.fato_movimentacao_cartao;
SELECT * FROM sicoop.load_fato();
SET timezone = 'America/Sao_Paulo';
\o
SELECT set_eq(
  'SELECT id_movimentacao_cartao, sk_associado FROM sicoop.fato_movimentacao_cartao',
  'SELECT id_movimentacao_cartao, sk_associado FROM keys_sao_paulo',
  'a UTC session picks the same member versions as a São Paulo one');

-- A member changed at T and then gone at the same T (a rerun at the same reference time): the
-- version opened at T never held, so it goes; the run succeeds and no current version remains.
SET sicoop.as_of = '2025-09-30 10:00:00-03';
UPDATE sicoop.src_associado SET escolaridade = 'Doutorado' WHERE id_associado = 'ASSOC-003';
CALL sicoop.run_pipeline();
DELETE FROM sicoop.src_movimentacao_cartao WHERE id_cartao = 'CARTAO-204';
DELETE FROM sicoop.src_cartao WHERE id_conta = 'CONTA-103';
DELETE FROM sicoop.src_conta WHERE id_associado = 'ASSOC-003';
DELETE FROM sicoop.src_associado WHERE id_associado = 'ASSOC-003';
SELECT lives_ok('CALL sicoop.run_pipeline()', 'a member gone at the instant its version opened does not fail the run');
SELECT results_eq(
  $$SELECT registro_ativo_associado, fim_vigencia_registro_associado FROM sicoop.dim_associado
    WHERE id_associado = 'ASSOC-003' ORDER BY inicio_vigencia_registro_associado$$,
  $$VALUES (false, '2025-09-30 10:00:00-03'::timestamptz)$$,
  'its version opened at that instant is gone, the previous one is closed then, none is current');

SELECT * FROM finish();
