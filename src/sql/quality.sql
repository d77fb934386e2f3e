-- The data-quality gate, whole: the rules' tables, the row rules every source row passes on its
-- way into raw (_row_rule_checks, _apply_row_rules), schema drift, canonical values, the
-- reconciliation of the movements with the source, and the run's verdict.

-- The data-quality tables: the rules, their results per run, the rejects, the canonical values
-- and the reconciliation of the movements with the source. Part of the warehouse (created by
-- _create_warehouse(), and by the 1.1 -> 1.2 upgrade), so the rules users edit are theirs.
CREATE OR REPLACE FUNCTION _create_quality_tables() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
-- What a source row must satisfy to enter the warehouse (checked as it enters raw, so a row is
-- either in every layer or in sicoop.reject), and the checks of whole tables and runs.
-- Users add, change and disable rules with INSERT and UPDATE; sicoop.dq_rule_kinds() says what
-- each kind does. Severity: 'reject' keeps the row out (in sicoop.reject, with the reason) and
-- loads the rest; 'warn' loads it and counts it in sicoop.dq_result; 'fail' stops the step.
CREATE TABLE sicoop.dq_rule (
    rule_name        text PRIMARY KEY,
    table_name       text NOT NULL CHECK (table_name IN ('associado', 'conta', 'cartao', 'movimentacao_cartao')),
    column_name      text,         -- NULL: every column the kind applies to (fits, no_control_chars)
    kind             text NOT NULL CHECK (kind IN ('not_null', 'not_blank', 'unique', 'references', 'accepted_values',
                                                   'range', 'no_control_chars', 'fits', 'source_drift', 'canonical',
                                                   'reconciliation', 'no_card_number', 'trimmed')),
    severity         text NOT NULL CHECK (severity IN ('reject', 'warn', 'fail')),
    min_value        text,         -- range: a literal of the column's type, or today[+-N] (days)
    max_value        text,
    accepted_values  text[],       -- accepted_values: the values, as cleaned (upper case)
    ref_table        text CHECK (ref_table IN ('associado', 'conta', 'cartao')),  -- references
    enabled          boolean NOT NULL DEFAULT true,
    description      text NOT NULL,
    -- Checks of a table or a run have no row to keep out.
    CHECK (severity <> 'reject' OR kind NOT IN ('source_drift', 'canonical', 'reconciliation')),
    CHECK ((kind = 'range') = (min_value IS NOT NULL OR max_value IS NOT NULL)),
    CHECK ((kind = 'accepted_values') = (accepted_values IS NOT NULL)),
    CHECK ((kind = 'references') = (ref_table IS NOT NULL)),
    CHECK (column_name IS NOT NULL OR kind IN ('fits', 'no_control_chars', 'source_drift', 'reconciliation'))
);
INSERT INTO sicoop.dq_rule (rule_name, table_name, column_name, kind, severity, min_value, max_value, accepted_values, ref_table, description) VALUES
  ('associado_id_not_null', 'associado', 'id_associado', 'not_null', 'reject', NULL, NULL, NULL, NULL, 'id_associado is missing'),
  ('associado_id_unique', 'associado', 'id_associado', 'unique', 'reject', NULL, NULL, NULL, NULL, 'id_associado is not unique in the source: every copy is kept out'),
  ('associado_fits', 'associado', NULL, 'fits', 'reject', NULL, NULL, NULL, NULL, 'a value is longer than the warehouse''s column'),
  ('associado_no_control_chars', 'associado', NULL, 'no_control_chars', 'reject', NULL, NULL, NULL, NULL, 'a text holds control characters'),
  ('associado_nome_not_blank', 'associado', 'nome', 'not_blank', 'reject', NULL, NULL, NULL, NULL, 'nome is blank'),
  ('associado_nascimento_range', 'associado', 'data_nascimento', 'range', 'reject', '1900-01-01', 'today', NULL, NULL, 'data_nascimento is before 1900 or after the run''s date'),
  ('associado_estado_civil_canonical', 'associado', 'estado_civil', 'canonical', 'warn', NULL, NULL, NULL, NULL, 'estado_civil has no canonical value in sicoop.canonical_value'),
  ('associado_escolaridade_canonical', 'associado', 'escolaridade', 'canonical', 'warn', NULL, NULL, NULL, NULL, 'escolaridade has no canonical value in sicoop.canonical_value'),
  ('associado_source_drift', 'associado', NULL, 'source_drift', 'warn', NULL, NULL, NULL, NULL, 'a source column''s type differs from the warehouse''s'),
  ('conta_id_not_null', 'conta', 'id_conta', 'not_null', 'reject', NULL, NULL, NULL, NULL, 'id_conta is missing'),
  ('conta_id_unique', 'conta', 'id_conta', 'unique', 'reject', NULL, NULL, NULL, NULL, 'id_conta is not unique in the source: every copy is kept out'),
  ('conta_fits', 'conta', NULL, 'fits', 'reject', NULL, NULL, NULL, NULL, 'a value is longer than the warehouse''s column'),
  ('conta_no_control_chars', 'conta', NULL, 'no_control_chars', 'reject', NULL, NULL, NULL, NULL, 'a text holds control characters'),
  ('conta_criacao_range', 'conta', 'data_criacao_conta', 'range', 'reject', '1900-01-01', 'today+31', NULL, NULL, 'data_criacao_conta is before 1900 or more than a month after the run''s date'),
  ('conta_associado_references', 'conta', 'id_associado', 'references', 'warn', NULL, NULL, NULL, 'associado', 'the account''s member is not (yet) in the source: its facts go to the unknown member'),
  ('conta_situacao_accepted', 'conta', 'situacao_conta', 'accepted_values', 'warn', NULL, NULL, '{ATIVA,INATIVA,ENCERRADA,BLOQUEADA}', NULL, 'situacao_conta is not one of the known states'),
  ('conta_tipo_canonical', 'conta', 'tipo_conta', 'canonical', 'warn', NULL, NULL, NULL, NULL, 'tipo_conta has no canonical value in sicoop.canonical_value'),
  ('conta_source_drift', 'conta', NULL, 'source_drift', 'warn', NULL, NULL, NULL, NULL, 'a source column''s type differs from the warehouse''s'),
  ('cartao_id_not_null', 'cartao', 'id_cartao', 'not_null', 'reject', NULL, NULL, NULL, NULL, 'id_cartao is missing'),
  ('cartao_id_unique', 'cartao', 'id_cartao', 'unique', 'reject', NULL, NULL, NULL, NULL, 'id_cartao is not unique in the source: every copy is kept out'),
  ('cartao_fits', 'cartao', NULL, 'fits', 'reject', NULL, NULL, NULL, NULL, 'a value is longer than the warehouse''s column'),
  ('cartao_no_control_chars', 'cartao', NULL, 'no_control_chars', 'reject', NULL, NULL, NULL, NULL, 'a text holds control characters'),
  ('cartao_emissao_range', 'cartao', 'data_emissao', 'range', 'reject', '1900-01-01', 'today+31', NULL, NULL, 'data_emissao is before 1900 or more than a month after the run''s date'),
  ('cartao_conta_references', 'cartao', 'id_conta', 'references', 'warn', NULL, NULL, NULL, 'conta', 'the card''s account is not (yet) in the source: its facts go to the unknown member'),
  ('cartao_bandeira_canonical', 'cartao', 'bandeira_cartao', 'canonical', 'warn', NULL, NULL, NULL, NULL, 'bandeira_cartao has no canonical value in sicoop.canonical_value'),
  ('cartao_source_drift', 'cartao', NULL, 'source_drift', 'warn', NULL, NULL, NULL, NULL, 'a source column''s type differs from the warehouse''s'),
  ('movimentacao_id_not_null', 'movimentacao_cartao', 'id_movimentacao_cartao', 'not_null', 'reject', NULL, NULL, NULL, NULL, 'id_movimentacao_cartao is missing'),
  ('movimentacao_id_unique', 'movimentacao_cartao', 'id_movimentacao_cartao', 'unique', 'reject', NULL, NULL, NULL, NULL, 'id_movimentacao_cartao is not unique in the source: every copy is kept out'),
  ('movimentacao_fits', 'movimentacao_cartao', NULL, 'fits', 'reject', NULL, NULL, NULL, NULL, 'a value does not fit the warehouse''s column (too long, too large, or more decimals than it keeps)'),
  ('movimentacao_no_control_chars', 'movimentacao_cartao', NULL, 'no_control_chars', 'reject', NULL, NULL, NULL, NULL, 'a text holds control characters'),
  ('movimentacao_valor_not_null', 'movimentacao_cartao', 'valor_movimentacao', 'not_null', 'reject', NULL, NULL, NULL, NULL, 'valor_movimentacao is missing'),
  ('movimentacao_data_not_null', 'movimentacao_cartao', 'data_movimentacao', 'not_null', 'reject', NULL, NULL, NULL, NULL, 'data_movimentacao is missing'),
  ('movimentacao_data_range', 'movimentacao_cartao', 'data_movimentacao', 'range', 'reject', '1990-01-01', 'today+31', NULL, NULL, 'data_movimentacao is outside the cooperative''s life (1990 to a month after the run''s date)'),
  ('movimentacao_valor_non_negative', 'movimentacao_cartao', 'valor_movimentacao', 'range', 'warn', '0', NULL, NULL, NULL, 'valor_movimentacao is negative (a refund or reversal?)'),
  ('movimentacao_cartao_references', 'movimentacao_cartao', 'id_cartao', 'references', 'warn', NULL, NULL, NULL, 'cartao', 'the movement''s card is not (yet) in the source: the fact goes to the unknown member'),
  ('movimentacao_source_drift', 'movimentacao_cartao', NULL, 'source_drift', 'warn', NULL, NULL, NULL, NULL, 'a source column''s type differs from the warehouse''s'),
  ('movimentacao_reconciliation', 'movimentacao_cartao', NULL, 'reconciliation', 'fail', NULL, NULL, NULL, NULL, 'per movement day, the source''s count and sum of valor_movimentacao differ from the fact''s plus the rejects''');
PERFORM sicoop._insert_key_rules();

-- Every rule's outcome, per run.
CREATE TABLE sicoop.dq_result (
    run_id        bigint NOT NULL,
    rule_name     text NOT NULL,
    table_name    text NOT NULL,
    severity      text NOT NULL,
    rows_checked  bigint NOT NULL,     -- rows (or columns, or days) the rule looked at
    rows_failed   bigint NOT NULL,
    sample        jsonb,               -- a few of the failing keys (or columns, values, days)
    checked_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, rule_name)
);

-- Source rows kept out of the warehouse: one row per source row (every copy of a duplicated
-- key), with the rules it breaks, why, and its values (card numbers masked). Rechecked by every
-- run: a row fixed at the source loads and leaves; one deleted there leaves.
CREATE TABLE sicoop.reject (
    table_name   text NOT NULL,
    record_id    text,                 -- NULL: the source row has no key
    copy_no      int NOT NULL,         -- 1, 2, ... for the copies of a duplicated key
    rule_name    text NOT NULL,        -- the first rule it breaks (rules: all of them)
    rules        text[] NOT NULL,
    reason       text NOT NULL,
    record       jsonb NOT NULL,
    run_id       bigint NOT NULL,      -- the run that first kept it out
    last_run_id  bigint NOT NULL,      -- the latest run that checked it again
    rejected_at  timestamptz NOT NULL,
    UNIQUE NULLS NOT DISTINCT (table_name, record_id, copy_no)
);
REVOKE ALL ON sicoop.reject FROM PUBLIC;

-- Canonical values of the descriptive columns (as cleaned: upper case, single spaces): a value
-- found in source_value is replaced by its canonical one in trusted and the star schema. A value
-- found nowhere (neither as a source_value nor as a canonical one) is kept as it is, and counted
-- by the column's 'canonical' rule. Editing this table re-labels every layer on the next run
-- (a full one).
CREATE TABLE sicoop.canonical_value (
    domain        text NOT NULL CHECK (domain IN ('estado_civil', 'escolaridade', 'tipo_conta', 'bandeira_cartao')),
    source_value  text NOT NULL,
    canonical     text NOT NULL,
    PRIMARY KEY (domain, source_value)
);
INSERT INTO sicoop.canonical_value (domain, source_value, canonical) VALUES
  ('estado_civil', 'SOLTEIRO', 'SOLTEIRO(A)'), ('estado_civil', 'SOLTEIRA', 'SOLTEIRO(A)'),
  ('estado_civil', 'CASADO', 'CASADO(A)'), ('estado_civil', 'CASADA', 'CASADO(A)'),
  ('estado_civil', 'DIVORCIADO', 'DIVORCIADO(A)'), ('estado_civil', 'DIVORCIADA', 'DIVORCIADO(A)'),
  ('estado_civil', 'SEPARADO', 'SEPARADO(A)'), ('estado_civil', 'SEPARADA', 'SEPARADO(A)'),
  ('estado_civil', 'VIÚVO', 'VIÚVO(A)'), ('estado_civil', 'VIÚVA', 'VIÚVO(A)'),
  ('estado_civil', 'VIUVO', 'VIÚVO(A)'), ('estado_civil', 'VIUVA', 'VIÚVO(A)'),
  ('estado_civil', 'UNIAO ESTAVEL', 'UNIÃO ESTÁVEL'),
  ('escolaridade', 'ENSINO FUNDAMENTAL', 'ENSINO FUNDAMENTAL'),
  ('escolaridade', 'ENSINO MEDIO', 'ENSINO MÉDIO'), ('escolaridade', 'ENSINO MEDIO COMPLETO', 'ENSINO MÉDIO COMPLETO'),
  ('escolaridade', 'ENSINO MÉDIO INCOMPLETO', 'ENSINO MÉDIO INCOMPLETO'), ('escolaridade', 'ENSINO MEDIO INCOMPLETO', 'ENSINO MÉDIO INCOMPLETO'),
  ('escolaridade', 'ENSINO SUPERIOR INCOMPLETO', 'ENSINO SUPERIOR INCOMPLETO'),
  ('escolaridade', 'POS-GRADUACAO', 'PÓS-GRADUAÇÃO'), ('escolaridade', 'POS GRADUACAO', 'PÓS-GRADUAÇÃO'),
  ('escolaridade', 'PÓS GRADUAÇÃO', 'PÓS-GRADUAÇÃO'),
  ('tipo_conta', 'CONTA CORRENTE', 'CORRENTE'), ('tipo_conta', 'POUPANCA', 'POUPANÇA'),
  ('tipo_conta', 'CONTA POUPANÇA', 'POUPANÇA'), ('tipo_conta', 'CONTA POUPANCA', 'POUPANÇA'),
  ('tipo_conta', 'SALARIO', 'SALÁRIO'), ('tipo_conta', 'CONTA SALÁRIO', 'SALÁRIO'),
  ('bandeira_cartao', 'MASTER', 'MASTERCARD'), ('bandeira_cartao', 'MASTER CARD', 'MASTERCARD'),
  ('bandeira_cartao', 'AMEX', 'AMERICAN EXPRESS');
UPDATE ONLY sicoop.warehouse_info SET rules_signature = sicoop._rules_signature(), canonical_labels = sicoop._canonical_labels();

-- The latest reconciliation of the movements, per movement day (local): the source's count and
-- sum of valor_movimentacao, in the snapshot the load read, against the fact's plus the rejects'.
CREATE TABLE sicoop.reconciliation (
    run_id        bigint NOT NULL,
    dia           date,                -- NULL: movements without a date
    source_rows   bigint NOT NULL,
    source_valor  numeric NOT NULL,
    fato_rows     bigint NOT NULL,
    fato_valor    numeric NOT NULL,
    reject_rows   bigint NOT NULL,
    reject_valor  numeric NOT NULL,
    balanced      boolean NOT NULL
);

END
$fn$;
REVOKE ALL ON FUNCTION sicoop._create_quality_tables() FROM PUBLIC;

-- Keys (1.4): no card number, no padding. A key is never cleaned: '  MOV-1 ' cleaned would
-- become a second copy of 'MOV-1', so a key that is not clean is kept out, with its reason.
-- (Called by _create_quality_tables() and by the 1.3 -> 1.4 update.)
CREATE OR REPLACE FUNCTION _insert_key_rules() RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
INSERT INTO sicoop.dq_rule (rule_name, table_name, column_name, kind, severity, min_value, max_value, accepted_values, ref_table, description) VALUES
  ('associado_id_no_card_number', 'associado', 'id_associado', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_associado holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
  ('associado_id_trimmed', 'associado', 'id_associado', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_associado has white space or invisible characters at its ends or inside: a key is taken as it is or not at all'),
  ('conta_id_no_card_number', 'conta', 'id_conta', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_conta holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
  ('conta_id_trimmed', 'conta', 'id_conta', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_conta has white space or invisible characters at its ends or inside: a key is taken as it is or not at all'),
  ('conta_associado_no_card_number', 'conta', 'id_associado', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_associado holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
  ('conta_associado_trimmed', 'conta', 'id_associado', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_associado has white space or invisible characters at its ends or inside: a key is taken as it is or not at all'),
  ('cartao_id_no_card_number', 'cartao', 'id_cartao', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_cartao holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
  ('cartao_id_trimmed', 'cartao', 'id_cartao', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_cartao has white space or invisible characters at its ends or inside: a key is taken as it is or not at all'),
  ('cartao_conta_no_card_number', 'cartao', 'id_conta', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_conta holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
  ('cartao_conta_trimmed', 'cartao', 'id_conta', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_conta has white space or invisible characters at its ends or inside: a key is taken as it is or not at all'),
  ('movimentacao_id_no_card_number', 'movimentacao_cartao', 'id_movimentacao_cartao', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_movimentacao_cartao holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
  ('movimentacao_id_trimmed', 'movimentacao_cartao', 'id_movimentacao_cartao', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_movimentacao_cartao has white space or invisible characters at its ends or inside: a key is taken as it is or not at all'),
  ('movimentacao_cartao_no_card_number', 'movimentacao_cartao', 'id_cartao', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_cartao holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
  ('movimentacao_cartao_trimmed', 'movimentacao_cartao', 'id_cartao', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_cartao has white space or invisible characters at its ends or inside: a key is taken as it is or not at all');
$$;
REVOKE ALL ON FUNCTION sicoop._insert_key_rules() FROM PUBLIC;

------------------------------------------------------------------------------------------
-- Data quality: the rules of sicoop.dq_rule, applied to the source rows as they enter raw
-- (src/steps/raw.cpp calls _apply_row_rules for each table once its rows are in the stage).
------------------------------------------------------------------------------------------
-- The key column of a source table.
CREATE OR REPLACE FUNCTION _source_key(tbl text) RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS
$$ SELECT CASE tbl WHEN 'associado' THEN 'id_associado' WHEN 'conta' THEN 'id_conta'
                   WHEN 'cartao' THEN 'id_cartao' WHEN 'movimentacao_cartao' THEN 'id_movimentacao_cartao' END $$;

-- A range rule's bound as a SQL expression of type typ ('date' or 'numeric'): a literal, or
-- today[+-N], the run's date plus or minus N days. NULL: no bound.
CREATE OR REPLACE FUNCTION _rule_bound(rule text, bound text, typ text, ref_date date) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  m text[];
BEGIN
  IF typ NOT IN ('date', 'numeric') THEN
    RAISE EXCEPTION 'sicoop: range bounds are dates or numbers, not %', typ USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF bound IS NULL THEN
    RETURN NULL;
  END IF;
  m := regexp_match(bound, '^\s*today\s*(?:([+-])\s*([0-9]{1,5}))?\s*$', 'i');
  IF m IS NOT NULL AND typ = 'date' THEN
    RETURN format('(%L::date %s %s)', ref_date, coalesce(m[1], '+'), coalesce(m[2], '0'));
  END IF;
  BEGIN
    EXECUTE format('SELECT %L::%s', bound, typ);
  EXCEPTION WHEN data_exception THEN
    RAISE EXCEPTION 'sicoop: data-quality rule %: bound ''%'' is not a %', rule, bound, typ
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A range bound is a literal of the column''s type, or today, today+N, today-N (days) for dates.';
  END;
  RETURN format('%L::%s', bound, typ);
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._rule_bound(text, text, text, date) FROM PUBLIC;  -- operator

-- The checks of the enabled row rules of a source table, as predicates on its row s in
-- `rows_in` (the stage, or raw after a first load's direct copy; the stage if NULL): one per
-- rule, or one per column for the rules of every column (part names the column). Column
-- types are the stage's, which the rules are written against.
CREATE OR REPLACE FUNCTION _row_rule_checks(tbl text, ref_date date, rows_in regclass DEFAULT NULL)
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
    WHEN 'no_card_number' THEN
      predicate := format('sicoop.contains_card_number(s.%I::text)', r.column_name);
      RETURN NEXT;
    WHEN 'trimmed' THEN
      -- white space (Unicode's too) or an invisible format character anywhere but between words
      -- (1.9: the expression runs only where sicoop._may_need_trimming says it could match.)
      predicate := format('sicoop._may_need_trimming(s.%1$I::text) AND s.%1$I::text ~ %2$L', r.column_name,
                          '^[[:space:]\u00a0\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ufeff]|[[:space:]\u00a0\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ufeff]$|[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]');
      RETURN NEXT;
    WHEN 'no_control_chars' THEN
      -- C0 controls but tab, newline and carriage return (white space the cleaning collapses),
      -- DEL and the C1 controls.
      FOR c IN SELECT a.attname::text AS name FROM pg_attribute a
               WHERE a.attrelid = stage AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid = 'text'::regtype
                 AND (r.column_name IS NULL OR a.attname = r.column_name)
               ORDER BY a.attnum LOOP
        part := c.name;
        -- (1.9: '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]' in C++, without a regular expression.)
        predicate := format('sicoop._has_control_characters(s.%I)', c.name);
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
      -- A stream's value that is not even of the stage column's type (the source changed the
      -- column's type: words in an amount, an impossible date): the stage holds NULL there, and
      -- sicoop.stage_unfit names the row and column (src/stream_rows.cpp). Only a micro-batch
      -- writes it: a batch run's checks are unchanged.
      FOR c IN SELECT DISTINCT u.column_name AS name, format_type(a.atttypid, NULL) AS typ
               FROM sicoop.stage_unfit u
               JOIN pg_attribute a ON a.attrelid = stage AND a.attname = u.column_name AND a.attnum > 0 AND NOT a.attisdropped
               WHERE u.table_name = tbl AND (r.column_name IS NULL OR u.column_name = r.column_name)
               ORDER BY 1 LOOP
        part := format('%s is not a valid %s', c.name, c.typ);
        predicate := format('s.%I::text IN (SELECT u.record_id FROM sicoop.stage_unfit u WHERE u.table_name = %L AND u.column_name = %L)',
                            sicoop._source_key(tbl), tbl, c.name);
        RETURN NEXT;
      END LOOP;
    END CASE;
  END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._row_rule_checks(text, date, regclass) FROM PUBLIC;  -- operator

-- Applies the row rules of a source table to its rows in `rows_in` -- the stage
-- (sicoop.stage_<tbl>, if NULL), or raw_<tbl> when a first load copied the source straight into
-- it: counts every rule's failures in sicoop.dq_result; stops the step on a failing 'fail'
-- rule; moves the rows that break a 'reject' rule out of `rows_in` into sicoop.reject (card
-- numbers masked), which then holds exactly the rejects of this check (what was fixed or
-- deleted at the source leaves). `rows_in` holds every row the run looks at again, rejected
-- keys included (src/steps/raw.cpp). rows_checked: the rows it held before.
-- `partial`: the stage holds only some keys (a stream's micro-batch): only the rejects of those
-- keys are replaced, and only the rules that found something are recorded in dq_result (a
-- micro-batch every second would otherwise write every rule's zero every second).
CREATE OR REPLACE FUNCTION _apply_row_rules(tbl text, run_id bigint, ref_date date, rows_in regclass DEFAULT NULL,
                                 partial boolean DEFAULT false,
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
    IF NOT partial OR counts[i + 1] > 0 THEN
      INSERT INTO sicoop.dq_result (run_id, rule_name, table_name, severity, rows_checked, rows_failed, sample)
      VALUES (_apply_row_rules.run_id, rules[i], tbl, severities[i], counts[1], counts[i + 1], sample);
    END IF;
    IF severities[i] = 'fail' AND counts[i + 1] > 0 THEN
      RAISE EXCEPTION 'sicoop: data-quality rule % failed for % of % rows of source table % (keys %)',
                      rules[i], counts[i + 1], counts[1], tbl, sample
        USING ERRCODE = 'check_violation',
              HINT = 'Fix the rows at the source, or make the rule reject or warn: UPDATE sicoop.dq_rule SET severity = ... WHERE rule_name = ...';
    END IF;
  END LOOP;

  -- The rejected rows leave `checked` for sicoop.reject, with every rule they break. (A
  -- micro-batch's few rows: DELETE, cheaper than the new files a TRUNCATE makes.)
  IF partial THEN
    DELETE FROM sicoop.stage_reject;
  ELSE
    TRUNCATE sicoop.stage_reject;
  END IF;
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
                    SELECT sicoop._redact_card_numbers(b.%4$I::text), b.broken, jsonb_build_object(%5$s) FROM bad b',
                   checked, reject_pred, reject_labels, key, record_expr);
  END IF;

  IF partial THEN
    -- A micro-batch checked only its own keys: those that passed (still in `checked`) leave the
    -- rejects; those rejected again are replaced below.
    EXECUTE format('DELETE FROM sicoop.reject j WHERE j.table_name = %L AND j.record_id IN (SELECT s.%I::text FROM %s s)',
                   tbl, key, checked);
  ELSE
    -- Keys compare as (coalesce(key, ''), key IS NULL): equalities a hash join can use. (IS NOT
    -- DISTINCT FROM cannot be hashed: with tens of thousands of rejects the anti-join compared
    -- every pair, 690 million comparisons and 48 s in the soak.)
    WITH found AS (
      SELECT n.record_id, row_number() OVER (PARTITION BY n.record_id ORDER BY n.record::text) AS copy_no
      FROM sicoop.stage_reject n)
    DELETE FROM sicoop.reject j
    WHERE j.table_name = tbl
      AND NOT EXISTS (SELECT 1 FROM found f
                      WHERE coalesce(f.record_id, '') = coalesce(j.record_id, '') AND (f.record_id IS NULL) = (j.record_id IS NULL)
                        AND f.copy_no = j.copy_no);
  END IF;
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
REVOKE ALL ON FUNCTION sicoop._apply_row_rules(text, bigint, date, regclass, boolean) FROM PUBLIC;  -- operator

-- The source's column types against the warehouse's (the stage_source_column rows the load
-- read from the source's catalog), for the table's enabled source_drift rules.
CREATE OR REPLACE FUNCTION _check_source_drift(tbl text, run_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  r record;
  checked bigint;
  drifted bigint;
  sample jsonb;
BEGIN
  SELECT count(*), count(*) FILTER (WHERE d.differs),
         jsonb_agg(d.column_name || ': source ' || d.source_type || ', warehouse ' || d.warehouse_type) FILTER (WHERE d.differs)
  INTO checked, drifted, sample
  FROM (SELECT k.column_name, k.source_type, format_type(a.atttypid, a.atttypmod) AS warehouse_type,
               k.source_type IS DISTINCT FROM format_type(a.atttypid, a.atttypmod) AS differs
        FROM sicoop.stage_source_column k
        JOIN pg_attribute a ON a.attrelid = format('sicoop.%I', 'raw_' || tbl)::regclass AND a.attname = k.column_name
                           AND a.attnum > 0 AND NOT a.attisdropped
        WHERE k.table_name = tbl
          AND EXISTS (SELECT 1 FROM pg_attribute b WHERE b.attrelid = format('sicoop.%I', 'stage_' || tbl)::regclass
                                                     AND b.attname = k.column_name)) d;
  FOR r IN SELECT q.rule_name, q.severity FROM ONLY sicoop.dq_rule q
           WHERE q.table_name = tbl AND q.kind = 'source_drift' AND q.enabled LOOP
    INSERT INTO sicoop.dq_result (run_id, rule_name, table_name, severity, rows_checked, rows_failed, sample)
    VALUES (_check_source_drift.run_id, r.rule_name, tbl, r.severity, checked, drifted, sample);
    IF r.severity = 'fail' AND drifted > 0 THEN
      RAISE EXCEPTION 'sicoop: data-quality rule %: the source''s column types differ from the warehouse''s: %', r.rule_name, sample
        USING ERRCODE = 'check_violation';
    END IF;
  END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._check_source_drift(text, bigint) FROM PUBLIC;  -- operator

-- A descriptive value's canonical form (sicoop.canonical_value), or the value itself.
CREATE OR REPLACE FUNCTION _canonical(domain text, value text) RETURNS text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS
$$ SELECT coalesce((SELECT c.canonical FROM sicoop.canonical_value c
                    WHERE c.domain OPERATOR(pg_catalog.=) $1 AND c.source_value OPERATOR(pg_catalog.=) $2), $2) $$;

-- The canonical values as they are now, as sicoop.warehouse_info.canonical_labels keeps them
-- (the labels dim_associado's versions were written with): [domain, source_value, canonical]
-- rows, byte-wise ordered.
CREATE OR REPLACE FUNCTION _canonical_labels() RETURNS jsonb LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT coalesce(jsonb_agg(jsonb_build_array(c.domain, c.source_value, c.canonical)
                          ORDER BY c.domain COLLATE "C", c.source_value COLLATE "C"), '[]'::jsonb)
FROM ONLY sicoop.canonical_value c
$$;
REVOKE ALL ON FUNCTION sicoop._canonical_labels() FROM PUBLIC;  -- operator

-- What an edit of sicoop.canonical_value makes of each label dim_associado's versions were
-- written with (sicoop.warehouse_info.canonical_labels), for the labels it changes:
--   relabel: the new label when every mapped value that gave the old one gives that one now
--     (CASADO and CASADA both CASADO/CASADA instead of CASADO(A)); a label that is a
--     canonical value is read as that canonical value. NULL when they now give different
--     ones (a split): which value a closed version came from is not kept.
--   candidates: every label the old one may stand for now, the same text typed at the source
--     (unmapped, kept as it is) included: a current version takes trusted's label in place
--     when it is one of them.
-- A value kept as it was (no mapping gave it, none mapped it) takes its new mapping. With no
-- record of the labels applied (NULL) only such values are relabelled.
CREATE OR REPLACE FUNCTION _canonical_relabels() RETURNS TABLE (domain text, label text, relabel text, candidates text[])
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
WITH applied AS (
  SELECT x.v ->> 0 AS domain, x.v ->> 1 AS source_value, x.v ->> 2 AS canonical
  FROM ONLY sicoop.warehouse_info w,
       jsonb_array_elements(coalesce(w.canonical_labels, sicoop._canonical_labels())) AS x(v)),
gives AS (
  -- every label a mapped value gave, with what that value gives now
  SELECT a.domain, a.canonical AS label, coalesce(c.canonical, a.source_value) AS relabel, true AS mapped
  FROM applied a
  LEFT JOIN ONLY sicoop.canonical_value c ON c.domain = a.domain AND c.source_value = a.source_value
  UNION
  -- every label as typed at the source: what it gives now (not a mapped value's label, unless
  -- nothing mapped gave it)
  SELECT l.domain, l.label, coalesce(c.canonical, l.label),
         NOT EXISTS (SELECT 1 FROM applied a WHERE a.domain = l.domain AND a.canonical = l.label)
  FROM (SELECT a.domain, a.canonical AS label FROM applied a
        UNION SELECT c.domain, c.source_value FROM ONLY sicoop.canonical_value c) l
  LEFT JOIN ONLY sicoop.canonical_value c ON c.domain = l.domain AND c.source_value = l.label
  WHERE NOT EXISTS (SELECT 1 FROM applied a WHERE a.domain = l.domain AND a.source_value = l.label))
SELECT g.domain, g.label,
       CASE WHEN count(DISTINCT g.relabel) FILTER (WHERE g.mapped) = 1 THEN min(g.relabel COLLATE "C") FILTER (WHERE g.mapped) END,
       array_agg(DISTINCT g.relabel)
FROM gives g
GROUP BY g.domain, g.label
HAVING bool_or(g.relabel <> g.label)
$$;
REVOKE ALL ON FUNCTION sicoop._canonical_relabels() FROM PUBLIC;  -- operator

-- The table's 'canonical' rules: trusted values that are neither a mapped source value nor a
-- canonical one, counted (with a few of them) in sicoop.dq_result.
CREATE OR REPLACE FUNCTION _check_canonical(tbl text, run_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  r record;
  checked bigint;
  unmapped bigint;
  sample jsonb;
BEGIN
  FOR r IN SELECT q.rule_name, q.column_name, q.severity FROM ONLY sicoop.dq_rule q
           WHERE q.table_name = tbl AND q.kind = 'canonical' AND q.enabled LOOP
    IF r.column_name NOT IN ('estado_civil', 'escolaridade', 'tipo_conta', 'bandeira_cartao')
       OR NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = format('sicoop.%I', 'trusted_' || tbl)::regclass
                                                     AND a.attname = r.column_name) THEN
      RAISE EXCEPTION 'sicoop: data-quality rule %: canonical values exist for estado_civil, escolaridade, tipo_conta and bandeira_cartao, not for %.%',
                      r.rule_name, tbl, r.column_name
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Each distinct value is looked up once (a descriptive column has few of them).
    EXECUTE format($q$
      WITH d AS (
        SELECT g.v, g.n,
               g.v IS NULL OR EXISTS (SELECT 1 FROM sicoop.canonical_value c
                                      WHERE c.domain = %3$L AND (c.source_value = g.v OR c.canonical = g.v)) AS known
        FROM (SELECT t.%1$I AS v, count(*) AS n FROM sicoop.%2$I t GROUP BY 1) g)
      SELECT coalesce(sum(d.n), 0)::bigint, coalesce(sum(d.n) FILTER (WHERE NOT d.known), 0)::bigint,
             (SELECT jsonb_agg(x.v ORDER BY x.v) FROM (SELECT u.v FROM d u WHERE NOT u.known ORDER BY u.v LIMIT 5) x)
      FROM d$q$, r.column_name, 'trusted_' || tbl, r.column_name)
    INTO checked, unmapped, sample;
    INSERT INTO sicoop.dq_result (run_id, rule_name, table_name, severity, rows_checked, rows_failed, sample)
    VALUES (_check_canonical.run_id, r.rule_name, tbl, r.severity, checked, unmapped, sample);
    IF r.severity = 'fail' AND unmapped > 0 THEN
      RAISE EXCEPTION 'sicoop: data-quality rule %: % rows of %.% have no canonical value (%)', r.rule_name, unmapped, tbl, r.column_name, sample
        USING ERRCODE = 'check_violation',
              HINT = 'Map them in sicoop.canonical_value, or make the rule warn.';
    END IF;
  END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._check_canonical(text, bigint) FROM PUBLIC;  -- operator

-- The fact's rows and sum of finite amounts per movement day, for _reconcile. (1.11) Grouped
-- by sk_data, the movement's day as yyyymmdd, written from the same time as
-- data_hora_movimentacao (one value per day: year * 10000 + month * 100 + day), whose
-- statistics tell the planner how few days there are: it sizes a hash aggregate for them and,
-- the groups few, runs it in parallel workers (1.10 grouped the day computed in a subquery that
-- OFFSET 0 kept apart, which sized the aggregate but kept it on one core: 0.38-0.41 s against
-- 0.29-0.30 s for the reconciliation at a million movements). The day is the group's own
-- (every row of a group has it). On Citus the fact is distributed and the aggregate is pushed
-- down to the shards as it is.
CREATE OR REPLACE FUNCTION _fato_day_totals() RETURNS TABLE (dia date, fato_rows bigint, fato_valor numeric)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF sicoop._is_citus_table('sicoop.fato_movimentacao_cartao') THEN
    RETURN QUERY
    SELECT f.data_hora_movimentacao::date, count(*),
           coalesce(sum(f.valor_movimentacao) FILTER (WHERE f.valor_movimentacao < 'Infinity'::numeric AND f.valor_movimentacao > '-Infinity'::numeric), 0)
    FROM sicoop.fato_movimentacao_cartao f GROUP BY 1;
  ELSE
    RETURN QUERY
    SELECT min(f.data_hora_movimentacao)::date, count(*),
           coalesce(sum(f.valor_movimentacao) FILTER (WHERE f.valor_movimentacao < 'Infinity'::numeric AND f.valor_movimentacao > '-Infinity'::numeric), 0)
    FROM sicoop.fato_movimentacao_cartao f GROUP BY f.sk_data;
  END IF;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._fato_day_totals() FROM PUBLIC;  -- operator

-- Reconciles the movements, per movement day, with the source: its count and sum of
-- valor_movimentacao (sicoop.source_day_total, read by the load in the snapshot it copied)
-- against the fact's plus the rejects'. The comparison of every day is in
-- sicoop.reconciliation, the outcome in sicoop.dq_result. Unbalanced days under a 'fail' rule
-- make the next run a full one (the run itself then fails: src/pipeline.cpp).
CREATE OR REPLACE FUNCTION _reconcile(run_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  rows_unbalanced bigint := 0;
  r record;
  days bigint;
  sample jsonb;
BEGIN
  SELECT q.rule_name, q.severity INTO r FROM ONLY sicoop.dq_rule q
  WHERE q.table_name = 'movimentacao_cartao' AND q.kind = 'reconciliation' AND q.enabled ORDER BY q.rule_name LIMIT 1;
  IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM sicoop.source_day_total) THEN
    RETURN;  -- disabled, or no load has read the source's totals yet
  END IF;
  -- Only the days whose figures changed are written (their run_id is the run that changed
  -- them): an incremental run rewrites a handful of rows, not the whole history's days. (Which
  -- run reconciled last is in sicoop.dq_result, with this rule's result.)
  -- Sums of finite amounts only, on every side: NaN = NaN is true for numeric, so one NaN in a
  -- day's sum would make any fact amount of that day look balanced (a NaN row still counts in
  -- the day's rows, and the source's totals leave it out of the sum the same way). NaN sorts
  -- above every number, Infinity included: two comparisons leave out NaN and both infinities.
  -- Days compare as (coalesce(dia, '-infinity'), dia IS NULL), equalities a hash join can use
  -- (dia is NULL for movements without a date, and -infinity is a day of its own).
  WITH computed AS (
    SELECT dia, sum(source_rows) AS source_rows, sum(source_valor) AS source_valor,
           sum(fato_rows) AS fato_rows, sum(fato_valor) AS fato_valor,
           sum(reject_rows) AS reject_rows, sum(reject_valor) AS reject_valor,
           sum(source_rows) = sum(fato_rows) + sum(reject_rows) AND sum(source_valor) = sum(fato_valor) + sum(reject_valor) AS balanced
    FROM (SELECT s.dia, s.source_rows, s.source_valor, 0 AS fato_rows, 0 AS fato_valor, 0 AS reject_rows, 0 AS reject_valor
          FROM sicoop.source_day_total s
          UNION ALL
          SELECT f.dia, 0, 0, f.fato_rows, f.fato_valor, 0, 0 FROM sicoop._fato_day_totals() f
          UNION ALL
          SELECT (j.record->>'data_movimentacao')::timestamp::date, 0, 0, 0, 0, count(*),
                 coalesce(sum(v.valor) FILTER (WHERE v.valor < 'Infinity'::numeric AND v.valor > '-Infinity'::numeric), 0)
          FROM sicoop.reject j, LATERAL (SELECT (j.record->>'valor_movimentacao')::numeric AS valor) v
          WHERE j.table_name = 'movimentacao_cartao' GROUP BY 1) d
    GROUP BY dia),
  gone AS (
    DELETE FROM sicoop.reconciliation c
    WHERE NOT EXISTS (SELECT 1 FROM computed n WHERE coalesce(n.dia, '-infinity'::date) = coalesce(c.dia, '-infinity'::date) AND (n.dia IS NULL) = (c.dia IS NULL))),
  changed AS (
    UPDATE sicoop.reconciliation c
    SET run_id = _reconcile.run_id, source_rows = n.source_rows, source_valor = n.source_valor,
        fato_rows = n.fato_rows, fato_valor = n.fato_valor, reject_rows = n.reject_rows,
        reject_valor = n.reject_valor, balanced = n.balanced
    FROM computed n
    WHERE coalesce(n.dia, '-infinity'::date) = coalesce(c.dia, '-infinity'::date) AND (n.dia IS NULL) = (c.dia IS NULL)
      AND (c.source_rows, c.source_valor, c.fato_rows, c.fato_valor, c.reject_rows, c.reject_valor, c.balanced)
          IS DISTINCT FROM (n.source_rows, n.source_valor, n.fato_rows, n.fato_valor, n.reject_rows, n.reject_valor, n.balanced))
  INSERT INTO sicoop.reconciliation (run_id, dia, source_rows, source_valor, fato_rows, fato_valor, reject_rows, reject_valor, balanced)
  SELECT _reconcile.run_id, n.dia, n.source_rows, n.source_valor, n.fato_rows, n.fato_valor, n.reject_rows, n.reject_valor, n.balanced
  FROM computed n
  WHERE NOT EXISTS (SELECT 1 FROM sicoop.reconciliation c
                    WHERE coalesce(c.dia, '-infinity'::date) = coalesce(n.dia, '-infinity'::date) AND (c.dia IS NULL) = (n.dia IS NULL));
  SELECT count(*), count(*) FILTER (WHERE NOT balanced),
         (SELECT jsonb_agg(x) FROM (SELECT coalesce(c.dia::text, 'no date') AS x FROM sicoop.reconciliation c
                                    WHERE NOT c.balanced ORDER BY c.dia LIMIT 5) y)
  INTO days, rows_unbalanced, sample FROM sicoop.reconciliation;
  INSERT INTO sicoop.dq_result (run_id, rule_name, table_name, severity, rows_checked, rows_failed, sample)
  VALUES (_reconcile.run_id, r.rule_name, 'movimentacao_cartao', r.severity, days, rows_unbalanced, sample);
  IF r.severity = 'fail' AND rows_unbalanced > 0 THEN
    UPDATE ONLY sicoop.warehouse_info SET full_run_owed_by = coalesce(full_run_owed_by, _reconcile.run_id);
  END IF;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._reconcile(bigint) FROM PUBLIC;  -- operator

-- Raises if a 'fail' rule failed in the run (what is left to raise once the steps committed:
-- the reconciliation).
CREATE OR REPLACE FUNCTION _check_run_quality(run_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  r record;
BEGIN
  SELECT d.rule_name, d.rows_failed, d.rows_checked, d.sample INTO r FROM sicoop.dq_result d
  WHERE d.run_id = _check_run_quality.run_id AND d.severity = 'fail' AND d.rows_failed > 0 ORDER BY d.rule_name LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'sicoop: data-quality rule % failed: % of % movement days do not balance with the source (%)',
                    r.rule_name, r.rows_failed, r.rows_checked, r.sample
      USING ERRCODE = 'check_violation',
            DETAIL = 'SELECT * FROM sicoop.reconciliation WHERE NOT balanced shows them.',
            HINT = 'The next run is a full one (full => true), which re-reads and compares the whole source.';
  END IF;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._check_run_quality(bigint) FROM PUBLIC;  -- operator

-- The row rules and the canonical values as they are now: what every row is checked against
-- as it enters raw, and labelled with in trusted. Ordered byte-wise (COLLATE "C"), so that the
-- same rules give the same signature in a database of another collation (a restore into libc
-- C.UTF-8, an ICU or glibc upgrade): only a real change owes the full run that checks every row.
CREATE OR REPLACE FUNCTION _rules_signature() RETURNS text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT md5(coalesce((SELECT string_agg(q::text, ',' ORDER BY q.rule_name COLLATE "C") FROM ONLY sicoop.dq_rule q
                     WHERE q.enabled AND q.kind NOT IN ('source_drift', 'canonical', 'reconciliation')), '')
           || '|' ||
           coalesce((SELECT string_agg(c::text, ',' ORDER BY c.domain COLLATE "C", c.source_value COLLATE "C")
                     FROM ONLY sicoop.canonical_value c), ''))
$$;

-- Why the next run must be a full one, or NULL: a full run started or asked for (by a failed
-- reconciliation, or by the upgrade to 1.2) has not completed, or the row rules or the
-- canonical values changed since every row was last checked and labelled by them.
CREATE OR REPLACE FUNCTION _full_run_owed() RETURNS text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT CASE WHEN w.full_run_owed_by IS NOT NULL
              THEN format('the full run that run %s started or asked for has not completed', w.full_run_owed_by)
            WHEN w.rules_signature IS DISTINCT FROM sicoop._rules_signature()
                 AND EXISTS (SELECT 1 FROM sicoop.run_log l WHERE l.step = 'run_pipeline' AND l.status = 'succeeded')
              THEN 'the data-quality rules or the canonical values changed since every row was last checked and labelled by them'
       END
FROM ONLY sicoop.warehouse_info w
$$;
