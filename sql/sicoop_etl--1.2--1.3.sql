-- sicoop_etl 1.2 -> 1.3: a first load copies the movements straight into raw.
--
-- What it does, in place (the warehouse's data is untouched; its layout stays 1.2):
--   - the source catalog the load reads (stage_source_column) also says whether a column is
--     NOT NULL there, which tells the load whether raw's constraints can refuse a source row;
--   - the row rules can check the rows where a first load put them, raw_<table>, rather than
--     only the stage: _row_rule_checks and _apply_row_rules take the relation to check
--     (and _apply_row_rules also returns the rows it checked);
--   - pg_dump keeps sicoop.deferred_index's rows (the definitions of the indexes a first load
--     has dropped until its insert is done), so a dump taken then restores them;
--   - an operator's warehouse stays handed over, and its operator may run the new functions.
\echo Use "ALTER EXTENSION sicoop_etl UPDATE TO '1.3'" to load this file. \quit

-- Whether an operator's warehouse is still as it was handed over (read before anything here
-- changes it): if so, it is handed over again below with 1.3's definition.
CREATE TEMP TABLE sicoop_1_3_handover_unchanged AS
SELECT h.role_name FROM sicoop.operator_handover h
WHERE to_regclass('sicoop.warehouse_info') IS NOT NULL AND h.signature = sicoop._warehouse_signature();

ALTER TABLE sicoop.stage_source_column ADD COLUMN not_null boolean;

-- pg_dump keeps the definitions of the indexes a first load has dropped for the time of its
-- insert: a dump taken in that window restores with them, and the next run builds them.
SELECT pg_catalog.pg_extension_config_dump('sicoop.deferred_index', '');

DROP FUNCTION sicoop._apply_row_rules(text, bigint, date);
DROP FUNCTION sicoop._row_rule_checks(text, date);

-- The checks of the enabled row rules of a source table, as predicates on its row s in
-- `rows_in` (the stage, or raw after a first load's direct copy; the stage if NULL): one per
-- rule, or one per column for the rules of every column (part names the column). Column
-- types are the stage's, which the rules are written against.
CREATE FUNCTION _row_rule_checks(tbl text, ref_date date, rows_in regclass DEFAULT NULL)
RETURNS TABLE (rule_name text, part text, severity text, predicate text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  r record;
  c record;
  stage regclass := format('sicoop.%I', 'stage_' || tbl)::regclass;
  raw regclass := format('sicoop.%I', 'raw_' || tbl)::regclass;
  checked regclass := coalesce(rows_in, stage);
  col_type text;
  expr text;
  lo text;
  hi text;
BEGIN
  FOR r IN SELECT q.rule_name, q.column_name, q.kind, q.severity, q.min_value, q.max_value, q.accepted_values, q.ref_table
           FROM ONLY sicoop.dq_rule q
           WHERE q.table_name = tbl AND q.enabled AND q.kind NOT IN ('source_drift', 'canonical', 'reconciliation')
           ORDER BY q.rule_name LOOP
    col_type := NULL;
    IF r.column_name IS NOT NULL THEN
      SELECT format_type(a.atttypid, a.atttypmod) INTO col_type FROM pg_attribute a
      WHERE a.attrelid = stage AND a.attname = r.column_name AND a.attnum > 0 AND NOT a.attisdropped;
      IF col_type IS NULL THEN
        RAISE EXCEPTION 'sicoop: data-quality rule % names column %, which the pipeline does not read from source table %',
                        r.rule_name, r.column_name, tbl
          USING ERRCODE = 'invalid_parameter_value',
                HINT = 'Fix the rule, or disable it: UPDATE sicoop.dq_rule SET enabled = false WHERE rule_name = ...';
      END IF;
    END IF;
    rule_name := r.rule_name;
    severity := r.severity;
    part := NULL;
    CASE r.kind
    WHEN 'not_null' THEN
      predicate := format('s.%I IS NULL', r.column_name);
      RETURN NEXT;
    WHEN 'not_blank' THEN
      predicate := format('coalesce(sicoop.clean_text(s.%I::text), '''') = ''''', r.column_name);
      RETURN NEXT;
    WHEN 'unique' THEN
      IF EXISTS (SELECT 1 FROM sicoop.stage_source_column k
                 WHERE k.table_name = tbl AND k.column_name = r.column_name AND k.unique_key) THEN
        predicate := 'false';  -- a unique index of the source guarantees it
      ELSE
        predicate := format('s.%1$I IN (SELECT d.%1$I FROM %2$s d GROUP BY 1 HAVING count(*) > 1)', r.column_name, checked);
      END IF;
      RETURN NEXT;
    WHEN 'references' THEN
      predicate := format('s.%I IS NOT NULL AND NOT EXISTS (SELECT 1 FROM sicoop.%I p WHERE p.%I = s.%I)',
                          r.column_name, 'raw_' || r.ref_table, sicoop._source_key(r.ref_table), r.column_name);
      RETURN NEXT;
    WHEN 'accepted_values' THEN
      predicate := format('sicoop.clean_text(s.%I::text) <> ALL (%L::text[])', r.column_name, r.accepted_values);
      RETURN NEXT;
    WHEN 'range' THEN
      IF col_type IN ('date', 'timestamp without time zone', 'timestamp with time zone') THEN
        expr := format('s.%I::date', r.column_name);
        lo := sicoop._rule_bound(r.rule_name, r.min_value, 'date', ref_date);
        hi := sicoop._rule_bound(r.rule_name, r.max_value, 'date', ref_date);
      ELSIF col_type = 'numeric' THEN
        expr := format('s.%I', r.column_name);
        lo := sicoop._rule_bound(r.rule_name, r.min_value, 'numeric', ref_date);
        hi := sicoop._rule_bound(r.rule_name, r.max_value, 'numeric', ref_date);
      ELSE
        RAISE EXCEPTION 'sicoop: data-quality rule %: range rules apply to dates, times and amounts, not to % (%)',
                        r.rule_name, r.column_name, col_type
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      predicate := concat_ws(' OR ', CASE WHEN lo IS NOT NULL THEN format('%s < %s', expr, lo) END,
                                      CASE WHEN hi IS NOT NULL THEN format('%s > %s', expr, hi) END);
      RETURN NEXT;
    WHEN 'no_control_chars' THEN
      -- C0 controls but tab, newline and carriage return (white space the cleaning collapses),
      -- DEL and the C1 controls.
      FOR c IN SELECT a.attname::text AS name FROM pg_attribute a
               WHERE a.attrelid = stage AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid = 'text'::regtype
                 AND (r.column_name IS NULL OR a.attname = r.column_name)
               ORDER BY a.attnum LOOP
        part := c.name;
        predicate := format('s.%I ~ %L', c.name, '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]');
        RETURN NEXT;
      END LOOP;
    WHEN 'fits' THEN
      -- The raw table's length and precision: nothing is cut or rounded on the way in.
      FOR c IN SELECT a.attname::text AS name, a.atttypid, a.atttypmod - 4 AS typmod FROM pg_attribute a
               WHERE a.attrelid = raw AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypmod >= 4
                 AND a.atttypid IN ('varchar'::regtype, 'numeric'::regtype)
                 AND (r.column_name IS NULL OR a.attname = r.column_name)
                 AND EXISTS (SELECT 1 FROM pg_attribute b WHERE b.attrelid = stage AND b.attname = a.attname)
               ORDER BY a.attnum LOOP
        part := c.name;
        IF c.atttypid = 'varchar'::regtype THEN
          predicate := format('length(s.%I) > %s', c.name, c.typmod);
        ELSE
          predicate := format('(s.%1$I <> round(s.%1$I, %2$s) OR abs(s.%1$I) >= 1e%3$s)',
                              c.name, c.typmod & 65535, (c.typmod >> 16) - (c.typmod & 65535));
        END IF;
        RETURN NEXT;
      END LOOP;
    END CASE;
  END LOOP;
END
$fn$;

-- Applies the row rules of a source table to its rows in `rows_in` -- the stage
-- (sicoop.stage_<tbl>, if NULL), or raw_<tbl> when a first load copied the source straight into
-- it: counts every rule's failures in sicoop.dq_result; stops the step on a failing 'fail'
-- rule; moves the rows that break a 'reject' rule out of `rows_in` into sicoop.reject (card
-- numbers masked), which then holds exactly the rejects of this check (what was fixed or
-- deleted at the source leaves). `rows_in` holds every row the run looks at again, rejected
-- keys included (src/steps/raw.cpp). rows_checked: the rows it held before.
CREATE FUNCTION _apply_row_rules(tbl text, run_id bigint, ref_date date, rows_in regclass DEFAULT NULL,
                                 OUT rows_rejected bigint, OUT rows_checked bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  stage regclass := format('sicoop.%I', 'stage_' || tbl)::regclass;
  checked regclass := coalesce(rows_in, stage);
  key text := sicoop._source_key(tbl);
  rules text[];
  severities text[];
  rule_preds text[];
  counts bigint[];
  sample jsonb;
  reject_pred text;
  reject_labels text;
  record_expr text;
  missing text;
  found bigint;
  any_rejected boolean := false;
BEGIN
  IF checked NOT IN (stage, format('sicoop.%I', 'raw_' || tbl)::regclass) THEN
    RAISE EXCEPTION 'sicoop: the row rules of % apply to sicoop.stage_% or sicoop.raw_%, not to %', tbl, tbl, tbl, checked
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- The rules the warehouse's tables rely on (a key, unique, and values that fit) cannot be
  -- disabled or made warnings: the rows would fail the load or be cut.
  SELECT string_agg(needed, ', ') INTO missing
  FROM (VALUES (tbl || ': not_null on ' || key, 'not_null', key), (tbl || ': unique on ' || key, 'unique', key),
               (tbl || ': fits on every column', 'fits', NULL)) AS n(needed, kind, col)
  WHERE NOT EXISTS (SELECT 1 FROM ONLY sicoop.dq_rule q
                    WHERE q.table_name = tbl AND q.kind = n.kind AND q.column_name IS NOT DISTINCT FROM n.col
                      AND q.enabled AND q.severity IN ('reject', 'fail'));
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'sicoop: the warehouse needs these data-quality rules enabled, as reject or fail: %', missing
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'The tables cannot hold rows without a key, with a duplicated key, or with values longer or more precise than their columns. Re-enable the rules in sicoop.dq_rule.';
  END IF;

  -- One pass over the rows counts the rows examined and what the plain rules find; a rule
  -- that reads another table (references, unique) counts in a query of its own, where the
  -- planner makes it a join rather than a lookup per row.
  SELECT array_agg(c.rule_name ORDER BY c.rule_name), array_agg(c.severity ORDER BY c.rule_name),
         array_agg(c.predicate ORDER BY c.rule_name)
  INTO rules, severities, rule_preds
  FROM (SELECT x.rule_name, min(x.severity) AS severity, '(' || string_agg(x.predicate, ') OR (') || ')' AS predicate
        FROM sicoop._row_rule_checks(tbl, ref_date, checked) x GROUP BY x.rule_name) c;
  EXECUTE format('SELECT ARRAY[count(*)%s] FROM %s s',
                 (SELECT string_agg(CASE WHEN p ~* '\mSELECT\M' THEN ', 0::bigint'
                                         ELSE format(', count(*) FILTER (WHERE %s)', p) END, '' ORDER BY o)
                  FROM unnest(rule_preds) WITH ORDINALITY u(p, o)), checked)
  INTO counts;
  rows_checked := counts[1];
  FOR i IN 1 .. coalesce(array_length(rules, 1), 0) LOOP
    IF rule_preds[i] ~* '\mSELECT\M' THEN
      EXECUTE format('SELECT count(*) FROM %s s WHERE %s', checked, rule_preds[i]) INTO found;
      counts[i + 1] := found;
    END IF;
    any_rejected := any_rejected OR (severities[i] = 'reject' AND counts[i + 1] > 0);
  END LOOP;
  FOR i IN 1 .. coalesce(array_length(rules, 1), 0) LOOP
    sample := NULL;
    IF counts[i + 1] > 0 THEN
      EXECUTE format('SELECT jsonb_agg(k) FROM (SELECT sicoop._redact_card_numbers(s.%I::text) AS k FROM %s s WHERE %s LIMIT 5) x',
                     key, checked, rule_preds[i])
      INTO sample;
    END IF;
    INSERT INTO sicoop.dq_result (run_id, rule_name, table_name, severity, rows_checked, rows_failed, sample)
    VALUES (_apply_row_rules.run_id, rules[i], tbl, severities[i], counts[1], counts[i + 1], sample);
    IF severities[i] = 'fail' AND counts[i + 1] > 0 THEN
      RAISE EXCEPTION 'sicoop: data-quality rule % failed for % of % rows of source table % (keys %)',
                      rules[i], counts[i + 1], counts[1], tbl, sample
        USING ERRCODE = 'check_violation',
              HINT = 'Fix the rows at the source, or make the rule reject or warn: UPDATE sicoop.dq_rule SET severity = ... WHERE rule_name = ...';
    END IF;
  END LOOP;

  -- The rejected rows leave `checked` for sicoop.reject, with every rule they break.
  TRUNCATE sicoop.stage_reject;
  SELECT string_agg('(' || x.predicate || ')', ' OR '),
         string_agg(format('CASE WHEN %s THEN %L END', x.predicate, x.rule_name || coalesce('(' || x.part || ')', '')), ', ')
  INTO reject_pred, reject_labels
  FROM sicoop._row_rule_checks(tbl, ref_date, checked) x WHERE x.severity = 'reject';
  IF reject_pred IS NOT NULL AND any_rejected THEN
    SELECT string_agg(format('%L, %s', a.attname,
                             CASE WHEN a.attname = 'numero_cartao' THEN format('sicoop.mask_card(b.%I)', a.attname)
                                  WHEN a.atttypid = 'text'::regtype THEN format('sicoop._redact_card_numbers(b.%I)', a.attname)
                                  ELSE format('b.%I', a.attname) END), ', ' ORDER BY a.attnum)
    INTO record_expr
    FROM pg_attribute a WHERE a.attrelid = stage AND a.attnum > 0 AND NOT a.attisdropped;
    EXECUTE format('WITH bad AS (DELETE FROM %1$s s WHERE %2$s RETURNING s.*, array_remove(ARRAY[%3$s], NULL) AS broken)
                    INSERT INTO sicoop.stage_reject (record_id, rules, record)
                    SELECT b.%4$I::text, b.broken, jsonb_build_object(%5$s) FROM bad b',
                   checked, reject_pred, reject_labels, key, record_expr);
  END IF;

  WITH found AS (
    SELECT n.record_id, row_number() OVER (PARTITION BY n.record_id ORDER BY n.record::text) AS copy_no
    FROM sicoop.stage_reject n)
  DELETE FROM sicoop.reject j
  WHERE j.table_name = tbl
    AND NOT EXISTS (SELECT 1 FROM found f WHERE f.record_id IS NOT DISTINCT FROM j.record_id AND f.copy_no = j.copy_no);
  INSERT INTO sicoop.reject AS j (table_name, record_id, copy_no, rule_name, rules, reason, record, run_id, last_run_id, rejected_at)
  SELECT tbl, n.record_id, row_number() OVER (PARTITION BY n.record_id ORDER BY n.record::text),
         regexp_replace(n.rules[1], '\(.*$', ''), n.rules,
         (SELECT string_agg(q.description || coalesce(': ' || substring(l FROM '\((.*)\)$'), ''), '; ' ORDER BY o)
          FROM unnest(n.rules) WITH ORDINALITY u(l, o)
          JOIN ONLY sicoop.dq_rule q ON q.rule_name = regexp_replace(l, '\(.*$', '')),
         n.record, _apply_row_rules.run_id, _apply_row_rules.run_id, clock_timestamp()
  FROM sicoop.stage_reject n
  ON CONFLICT (table_name, record_id, copy_no) DO UPDATE
  SET rule_name = EXCLUDED.rule_name, rules = EXCLUDED.rules, reason = EXCLUDED.reason, record = EXCLUDED.record,
      last_run_id = EXCLUDED.last_run_id;
  SELECT count(*) INTO rows_rejected FROM sicoop.stage_reject;
END
$fn$;

-- The operator's functions: what grant_operator grants and revoke_operator takes back.
CREATE OR REPLACE FUNCTION _operator_functions() RETURNS text LANGUAGE sql IMMUTABLE AS $$
SELECT 'FUNCTION sicoop.connect_source(text, integer, text, text, text, text),
                 sicoop._connect_source(text, integer, text, text, text, text),
                 sicoop._check_source(text, integer, text, text, text, text),
                 sicoop.run_step(text, boolean), sicoop.load_raw(), sicoop.load_trusted(), sicoop.load_dims(),
                 sicoop.scd2_associado(), sicoop.load_fato(), sicoop.export_flat(text),
                 sicoop._defer_indexes(regclass), sicoop._restore_indexes(regclass), sicoop._summarize(regclass),
                 sicoop._empty_tables(text[]), sicoop._create_source_objects(),
                 sicoop._apply_row_rules(text, bigint, date, regclass), sicoop._check_source_drift(text, bigint),
                 sicoop._check_canonical(text, bigint), sicoop._reconcile(bigint), sicoop._check_run_quality(bigint),
                 sicoop._mark_aborted_runs(), sicoop._row_rule_checks(text, date, regclass), sicoop._rule_bound(text, text, text, date),
                 sicoop._alert(bigint, text), sicoop.schedule(text, text), sicoop.unschedule(),
                 sicoop.schedule_status()'::text
$$;

-- 1.3's new signatures are the operator's (grant_operator), never PUBLIC's.
REVOKE ALL ON FUNCTION sicoop._apply_row_rules(text, bigint, date, regclass), sicoop._row_rule_checks(text, date, regclass)
  FROM PUBLIC;

DO $migrate$
DECLARE
  owner regrole;
BEGIN
  IF to_regclass('sicoop.warehouse_info') IS NULL THEN
    RETURN;
  END IF;
  SELECT c.relowner::regrole INTO owner FROM pg_class c WHERE c.oid = 'sicoop.warehouse_info'::regclass;
  IF owner::oid <> (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user) THEN
    -- The operator's warehouse: it may run the functions of the new signatures.
    EXECUTE format('GRANT EXECUTE ON %s TO %s', sicoop._operator_functions(), owner);
    IF EXISTS (SELECT 1 FROM sicoop_1_3_handover_unchanged u WHERE u.role_name = owner::text) THEN
      UPDATE sicoop.operator_handover SET signature = sicoop._warehouse_signature() WHERE role_name = owner::text;
    END IF;
  END IF;
END
$migrate$;
-- (A table made by an extension script is the extension's, a temporary one too.)
ALTER EXTENSION sicoop_etl DROP TABLE pg_temp.sicoop_1_3_handover_unchanged;
DROP TABLE pg_temp.sicoop_1_3_handover_unchanged;
