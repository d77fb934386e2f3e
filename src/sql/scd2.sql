-- The SCD2 dimension's invariants (its statements are src/steps/scd2.cpp): no overlapping
-- versions, and runs that go forward in time. Callable from psql by a DBA too.

-- No two versions of a member overlap: checked by every SCD2 run, set-based, for the members
-- whose versions it changed (all of them when since_run_id is 0), and the run fails with
-- SQLSTATE 23P01 otherwise. (An exclusion constraint would say the same, but maintaining its
-- GiST index cost more than the rest of the SCD2 step.)
CREATE OR REPLACE FUNCTION check_vigencia(since_run_id bigint DEFAULT 0) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  bad record;
BEGIN
  SELECT id_associado, inicio, fim, next_inicio INTO bad
  FROM (SELECT id_associado, inicio_vigencia_registro_associado AS inicio, fim_vigencia_registro_associado AS fim,
               lead(inicio_vigencia_registro_associado) OVER (PARTITION BY id_associado
                                                              ORDER BY inicio_vigencia_registro_associado) AS next_inicio
        FROM sicoop.dim_associado
        WHERE id_associado IN (SELECT id_associado FROM sicoop.dim_associado
                               WHERE since_run_id = 0 OR run_id > since_run_id)) v
  WHERE next_inicio < fim
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'sicoop: versions of member % overlap: [%, %) and one from %', bad.id_associado, bad.inicio, bad.fim, bad.next_inicio
      USING ERRCODE = 'exclusion_violation';
  END IF;
END
$fn$;

-- SCD2 runs go forward in time: a reference time before the latest version's start is refused.
CREATE OR REPLACE FUNCTION _check_scd2_reference_time(ref timestamptz) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  latest timestamptz;
BEGIN
  -- The latest boundary of any kind: a version's start, or the close of a deleted member.
  SELECT max(greatest(inicio_vigencia_registro_associado,
                      CASE WHEN NOT registro_ativo_associado THEN fim_vigencia_registro_associado END))
  INTO latest
  FROM sicoop.dim_associado WHERE id_associado IS NOT NULL;
  IF latest > ref THEN
    RAISE EXCEPTION 'sicoop: reference time % is earlier than the latest member version change (%)', ref, latest
      USING HINT = 'Runs cannot go back in time: set sicoop.as_of to a later time, or leave it empty for now().',
            ERRCODE = 'invalid_parameter_value';
  END IF;
END
$fn$;
