-- Canonical values relabel in place (README, "Canonical values"; issue 24, finding 9): an edit
-- of sicoop.canonical_value is a label, not a change in any member's life. On a generated
-- source (2,000 members, 50,000 movements) with history -- a first load and two runs with
-- estado civil and escolaridade changes, so that many members have closed versions -- an edit
-- of canonical labels and a run (a full one) relabel every version of dim_associado, current
-- and closed, in place: no version opened or closed, every vigência as it was, trusted and
-- the type 1 dimensions relabelled too, the fact untouched. A real change in the same run as
-- a relabel still opens its version, and only that one.
\ir helpers/reset.sql
SELECT plan(24);

\o /dev/null
\set generated `psql -X -q -h localhost -p :pgport -U :USER -d :srcdb -v n=50000 -f ../bench/generate_source.sql 2>&1`
\o
SELECT is(:'generated'::text, ''::text, 'the generated source is made (50,000 movements)');
SET client_min_messages = warning;

-- The source's members change: estado civil and escolaridade, picked by a hash of the id
-- (some picks keep the member's label: then no version, as it should be).
CREATE FUNCTION pg_temp.change_members(salt text, every int) RETURNS void LANGUAGE sql AS $$
  SELECT dblink_exec(current_setting('sicoop_test.srcconn'), format($q$
    UPDATE associado SET
      estado_civil = (ARRAY['solteira', 'Casado ', 'DIVORCIADO', 'viúvo', ' Casada', 'Solteiro', 'união estável'])
                     [1 + abs(hashtext(id_associado || %1$L)) %% 7],
      escolaridade = CASE WHEN abs(hashtext(id_associado || %1$L || 'e')) %% 3 = 0
                          THEN (ARRAY['Ensino Medio', 'Pós-Graduação', 'Ensino Fundamental', 'ENSINO SUPERIOR'])
                               [1 + abs(hashtext(id_associado || %1$L || 'f')) %% 4]
                          ELSE escolaridade END
    WHERE abs(hashtext(id_associado || %1$L || 'w')) %% %2$s = 0$q$, salt, every))
$$;
SELECT set_config('sicoop_test.srcconn', :'srcconn', false) \gset
\o /dev/null

CALL sicoop.run_pipeline();
SET sicoop.as_of = '2025-09-01';
SELECT pg_temp.change_members('round 1', 3);
CALL sicoop.run_pipeline();
SET sicoop.as_of = '2025-10-01';
SELECT pg_temp.change_members('round 2', 3);
CALL sicoop.run_pipeline();
\o

-- The world before the edit.
CREATE TEMP TABLE before AS
SELECT sk_associado, id_associado, inicio_vigencia_registro_associado AS inicio, fim_vigencia_registro_associado AS fim,
       registro_ativo_associado AS ativo, run_id, estado_civil_associado AS civil, escolaridade_associado AS school
FROM sicoop.dim_associado;
CREATE TEMP TABLE fact_before AS
SELECT f.*::text AS r FROM sicoop.fato_movimentacao_cartao f;
SELECT count(*) AS versions_before FROM before \gset

SELECT cmp_ok((SELECT count(DISTINCT id_associado)::int FROM before WHERE id_associado IS NOT NULL), '>=', 2000,
              'thousands of members');
SELECT cmp_ok((SELECT count(*)::int FROM before WHERE NOT ativo AND civil = 'CASADO(A)'), '>', 100,
              'with history: many closed versions carry CASADO(A)');
SELECT cmp_ok((SELECT count(*)::int FROM before b WHERE b.civil = 'CASADO(A)' AND EXISTS
                 (SELECT 1 FROM before o WHERE o.id_associado = b.id_associado AND o.civil <> 'CASADO(A)')), '>', 100,
              'and many members have versions with other labels too');

-- The edit: an estado civil and an escolaridade label, a label the source also types as it
-- is (união estável: unmapped, kept as it is in trusted), and a type 1 dimension's. The run is
-- on the last run's date: ages (historized too) stay as they were.
UPDATE sicoop.canonical_value SET canonical = 'CASADO/CASADA' WHERE canonical = 'CASADO(A)';
UPDATE sicoop.canonical_value SET canonical = 'ENSINO MÉDIO (2º GRAU)' WHERE canonical = 'ENSINO MÉDIO';
UPDATE sicoop.canonical_value SET canonical = 'UNIÃO ESTÁVEL (CONVIVENTE)' WHERE canonical = 'UNIÃO ESTÁVEL';
UPDATE sicoop.canonical_value SET canonical = 'CONTA POUPANÇA' WHERE canonical = 'POUPANÇA';
INSERT INTO sicoop.canonical_value VALUES ('tipo_conta', 'POUPANÇA', 'CONTA POUPANÇA');
SET sicoop.as_of = '2025-10-01 06:00';
\o /dev/null
CALL sicoop.run_pipeline();
\o
CREATE TEMP VIEW after AS
SELECT sk_associado, id_associado, inicio_vigencia_registro_associado AS inicio, fim_vigencia_registro_associado AS fim,
       registro_ativo_associado AS ativo, run_id, estado_civil_associado AS civil, escolaridade_associado AS school
FROM sicoop.dim_associado;
SELECT max(run_id) AS relabel_run FROM sicoop.run_log \gset

SELECT is((SELECT status FROM sicoop.run_log WHERE run_id = :relabel_run AND step = 'run_pipeline'), 'succeeded',
          'the run after the edit succeeds');
SELECT is((SELECT rows_inserted FROM sicoop.run_log WHERE run_id = :relabel_run AND step = 'scd2_associado'), 0::bigint,
          'scd2_associado inserts no version for a relabel');
SELECT is((SELECT count(*) FROM after), :versions_before::bigint, 'as many versions as before');
SELECT is((SELECT count(*) FROM (SELECT sk_associado, id_associado, inicio, fim, ativo, run_id FROM before
                                  EXCEPT SELECT sk_associado, id_associado, inicio, fim, ativo, run_id FROM after) x), 0::bigint,
          'every version keeps its vigência, its current flag and its run (none opened or closed)');
SELECT is((SELECT count(*) FROM after WHERE civil = 'CASADO(A)' OR school = 'ENSINO MÉDIO'), 0::bigint,
          'no version carries an old label');
SELECT is((SELECT count(*) FROM before b JOIN after a USING (sk_associado)
           WHERE (a.civil, a.school) IS DISTINCT FROM
                 (CASE WHEN b.civil = 'CASADO(A)' THEN 'CASADO/CASADA'
                       WHEN b.civil = 'UNIÃO ESTÁVEL' AND (NOT b.ativo OR a.civil = 'UNIÃO ESTÁVEL (CONVIVENTE)') THEN a.civil
                       ELSE b.civil END,
                  CASE WHEN b.school = 'ENSINO MÉDIO' THEN 'ENSINO MÉDIO (2º GRAU)' ELSE b.school END)), 0::bigint,
          'every version, current or closed, carries the new labels and nothing else changed');
SELECT is((SELECT count(*) FROM after WHERE NOT ativo AND civil = 'CASADO/CASADA'),
          (SELECT count(*) FROM before WHERE NOT ativo AND civil = 'CASADO(A)'),
          'closed versions are relabelled too');
SELECT is((SELECT count(*) FROM after a JOIN sicoop.trusted_associado s USING (id_associado)
           WHERE a.ativo AND (a.civil, a.school) IS DISTINCT FROM (s.estado_civil, s.escolaridade)), 0::bigint,
          'every current version carries trusted''s labels (união estável as typed stays: trusted keeps it)');
SELECT lives_ok('SELECT sicoop.check_vigencia()', 'the SCD2 invariants hold (no overlapping versions)');
SELECT is((SELECT count(*) FROM (SELECT id_associado FROM after WHERE ativo GROUP BY 1 HAVING count(*) > 1) x), 0::bigint,
          'at most one current version per member');
SELECT is((SELECT count(*) FROM sicoop.trusted_associado WHERE estado_civil = 'CASADO(A)' OR escolaridade = 'ENSINO MÉDIO'), 0::bigint,
          'trusted is relabelled');
SELECT cmp_ok((SELECT count(*)::int FROM sicoop.trusted_associado WHERE estado_civil = 'CASADO/CASADA'), '>', 0,
              'trusted carries the new label');
SELECT is((SELECT count(*) FROM sicoop.dim_conta WHERE tipo_conta = 'POUPANÇA'), 0::bigint,
          'a type 1 dimension is relabelled in place');
SELECT cmp_ok((SELECT count(*)::int FROM sicoop.dim_conta WHERE tipo_conta = 'CONTA POUPANÇA'), '>', 0, '(with the new label)');
SELECT is((SELECT count(*) FROM ((SELECT r FROM fact_before EXCEPT ALL SELECT f.*::text FROM sicoop.fato_movimentacao_cartao f)
                                  UNION ALL
                                  (SELECT f.*::text FROM sicoop.fato_movimentacao_cartao f EXCEPT ALL SELECT r FROM fact_before)) x),
          0::bigint, 'the fact is untouched');

-- A relabel and a real change in the same run: the changed member gets exactly one version,
-- nobody else any. The member: one with closed versions, now married.
SELECT id_associado AS changed FROM after
WHERE ativo AND civil = 'CASADO/CASADA' AND id_associado IN (SELECT id_associado FROM after WHERE NOT ativo)
ORDER BY id_associado LIMIT 1 \gset
SELECT count(*) AS versions_before FROM after \gset
DROP TABLE before;
CREATE TEMP TABLE before AS SELECT * FROM after;
UPDATE sicoop.canonical_value SET canonical = 'CASADO OU CASADA' WHERE canonical = 'CASADO/CASADA';
\o /dev/null
SELECT dblink_exec(:'srcconn', format($$UPDATE associado SET estado_civil = 'Divorciada' WHERE id_associado = %L$$, :'changed'));
SET sicoop.as_of = '2025-10-01 12:00';
CALL sicoop.run_pipeline();
\o
SELECT max(run_id) AS both_run FROM sicoop.run_log \gset
SELECT is((SELECT rows_inserted FROM sicoop.run_log WHERE run_id = :both_run AND step = 'scd2_associado'), 1::bigint,
          'relabel and a real change together: scd2_associado inserts one version');
SELECT is((SELECT count(*) FROM after), :versions_before::bigint + 1, 'one version more');
SELECT is((SELECT array_agg(civil || ' ' || ativo || ' ' || to_char(fim AT TIME ZONE 'America/Sao_Paulo', 'YYYY-MM-DD HH24:MI') ORDER BY inicio)
           FROM (SELECT * FROM after WHERE id_associado = :'changed' ORDER BY inicio DESC LIMIT 2) x),
          ARRAY['CASADO OU CASADA false 2025-10-01 12:00', 'DIVORCIADO(A) true 9999-12-31 00:00'],
          'the changed member: its married version relabelled and closed at the run, a new one opened then');
SELECT is((SELECT count(*) FROM (SELECT sk_associado, id_associado, inicio, fim, ativo FROM before WHERE id_associado <> :'changed'
                                  EXCEPT SELECT sk_associado, id_associado, inicio, fim, ativo FROM after) x), 0::bigint,
          'every other member''s versions keep their vigência');
SELECT is((SELECT count(*) FROM after WHERE civil = 'CASADO/CASADA'), 0::bigint, 'and carry the new label');

SELECT * FROM finish();
