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

-- A stream's micro-batch (issue 25): the earlier states of its members, those before each
-- member's last (sicoop.stage_associado_state; the last went through the stage and
-- sicoop._apply_row_rules), meet associado's row rules as separate batches would have them
-- meet: a state a 'reject' rule refuses is marked rejected -- its member is gone from its
-- commit until its next accepted state, as a batch of its own would leave it (raw and trusted
-- drop a refused row) -- and a failing 'fail' rule stops the batch. Each rule that finds
-- something is counted in the batch's sicoop.dq_result (added to its last states' count).
-- sicoop.reject keeps the verdict on each key's last state only: a reject of an earlier state
-- is what the next batch would have replaced (or removed, the row fixed). Left out: the
-- 'unique' rules (the states of one key are not copies of it; the stream's replica identity is
-- the key). A 'references' rule reads raw as the batch leaves it.
CREATE OR REPLACE FUNCTION _check_member_states(batch_run bigint, ref_date date,
                                                OUT rows_read bigint, OUT rows_rejected bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  c record;
  found bigint;
  sample jsonb;
  refused text[] := '{}';
BEGIN
  SELECT count(*) INTO rows_read FROM sicoop.stage_associado_state;
  rows_rejected := 0;
  FOR c IN
    WITH checks AS (
      SELECT x.rule_name, x.severity, x.predicate
      FROM sicoop._row_rule_checks('associado', ref_date, 'sicoop.stage_associado_state'::regclass) x
      WHERE NOT EXISTS (SELECT 1 FROM ONLY sicoop.dq_rule q WHERE q.rule_name = x.rule_name AND q.kind = 'unique')
        AND coalesce(x.part, '') NOT LIKE '% is not a valid %'  -- (the last states' values: below, the earlier ones')
      UNION ALL
      -- A value not of its column's type (src/stream_rows.cpp laid it as NULL and named it).
      SELECT q.rule_name, q.severity,
             format('s.state_no::text IN (SELECT u.record_id FROM sicoop.stage_unfit u WHERE u.table_name = %L%s)',
                    'associado_state', CASE WHEN q.column_name IS NOT NULL THEN format(' AND u.column_name = %L', q.column_name) ELSE '' END)
      FROM ONLY sicoop.dq_rule q
      WHERE q.table_name = 'associado' AND q.kind = 'fits' AND q.enabled
        AND EXISTS (SELECT 1 FROM sicoop.stage_unfit u WHERE u.table_name = 'associado_state'))
    SELECT k.rule_name, min(k.severity) AS severity, '(' || string_agg(k.predicate, ') OR (') || ')' AS predicate
    FROM checks k GROUP BY k.rule_name ORDER BY k.rule_name
  LOOP
    EXECUTE format('SELECT count(*), to_jsonb((array_agg(sicoop._redact_card_numbers(s.id_associado)))[1:5])
                    FROM sicoop.stage_associado_state s WHERE NOT s.deleted AND (%s)', c.predicate)
    INTO found, sample;
    CONTINUE WHEN found = 0;
    INSERT INTO sicoop.dq_result AS r (run_id, rule_name, table_name, severity, rows_checked, rows_failed, sample)
    VALUES (batch_run, c.rule_name, 'associado', c.severity, rows_read, found, sample)
    ON CONFLICT (run_id, rule_name) DO UPDATE
    SET rows_checked = r.rows_checked + EXCLUDED.rows_checked, rows_failed = r.rows_failed + EXCLUDED.rows_failed,
        sample = coalesce(r.sample, EXCLUDED.sample);
    IF c.severity = 'fail' THEN
      RAISE EXCEPTION 'sicoop: data-quality rule % failed for % earlier states of source table associado (keys %)',
                      c.rule_name, found, sample
        USING ERRCODE = 'check_violation',
              HINT = 'Fix the rows at the source, or make the rule reject or warn: UPDATE sicoop.dq_rule SET severity = ... WHERE rule_name = ...';
    END IF;
    IF c.severity = 'reject' THEN
      refused := refused || c.predicate;
    END IF;
  END LOOP;
  IF cardinality(refused) > 0 THEN
    EXECUTE format('UPDATE sicoop.stage_associado_state s SET rejected = true WHERE NOT s.deleted AND (%s)',
                   array_to_string(refused, ' OR '));
    GET DIAGNOSTICS rows_rejected = ROW_COUNT;
  END IF;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._check_member_states(bigint, date) FROM PUBLIC;  -- operator
