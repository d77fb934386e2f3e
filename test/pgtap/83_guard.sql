-- 1.6's guard (issue 24, finding 1): no sicoop call runs code the warehouse's owner planted.
-- The operator owns the warehouse's tables, so it could hang code off them -- a trigger, a
-- rule, a CHECK, a default, an index expression -- that would run as whoever reads or writes
-- them next: a superuser's stop_stream(), run_status() or watchdog() in 1.5. The event trigger
-- sicoop_guard refuses every such statement, whoever runs it. This suite takes the attack as
-- the reviewer did, for every table the operator owns and every function and view of the
-- extension (read from the catalog, not a hand list):
--   1. the operator tries each kind of code on each of its tables: all refused, none left;
--   2. a superuser calls every function (typed arguments, and NULLs) and reads every view;
--   3. no planted code ran as a superuser (nor at all): its mark is a session advisory lock,
--      which survives the rollback of the call that took it.
\ir helpers/reset.sql
SELECT plan(13);

\o /dev/null
SET client_min_messages = warning;
\ir helpers/test_roles.sql
SELECT pg_temp.drop_test_roles(ARRAY['sicoop_test_g_operator']);
CREATE ROLE sicoop_test_g_operator LOGIN;
SELECT sicoop.grant_operator('sicoop_test_g_operator');
DROP SCHEMA IF EXISTS sicoop_test_g CASCADE;
CREATE SCHEMA sicoop_test_g AUTHORIZATION sicoop_test_g_operator;
SET ROLE sicoop_test_g_operator;
-- The mark: (4242, 1) when it runs as a superuser, (4242, 2) otherwise.
CREATE FUNCTION sicoop_test_g.mark() RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  PERFORM pg_advisory_lock(4242, CASE WHEN (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) THEN 1 ELSE 2 END);
  RETURN true;
END
$$;
CREATE FUNCTION sicoop_test_g.evil(anyelement) RETURNS anyelement LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  PERFORM sicoop_test_g.mark();
  RETURN $1;
END
$$;
CREATE FUNCTION sicoop_test_g.evil_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM sicoop_test_g.mark();
  RETURN coalesce(NEW, OLD);
END
$$;
RESET ROLE;
RESET client_min_messages;

-- Runs a statement; true if it succeeded (and then keeps its effect).
CREATE FUNCTION pg_temp.try(statement text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE statement;
  RETURN true;
EXCEPTION WHEN OTHERS THEN
  RETURN false;
END
$$;
\o

------------------------------------------------------------------------------------------
-- 1. Every kind of code, on every table the operator owns.
------------------------------------------------------------------------------------------
CREATE TEMP TABLE operator_tables AS
SELECT c.oid::regclass AS tbl, c.relkind,
       (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum LIMIT 1) AS first_column,
       (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
          AND NOT a.attisdropped ORDER BY a.attnum LIMIT 1) AS first_type
FROM pg_class c
WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relkind IN ('r', 'f', 'p')
  AND c.relowner = 'sicoop_test_g_operator'::regrole;
CREATE TEMP TABLE plants AS
SELECT t.tbl, kind, statement
FROM operator_tables t, LATERAL (VALUES
  ('trigger', format('CREATE TRIGGER sicoop_test_g_trigger BEFORE INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION sicoop_test_g.evil_trigger()', t.tbl)),
  ('statement trigger', format('CREATE TRIGGER sicoop_test_g_strigger AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION sicoop_test_g.evil_trigger()', t.tbl)),
  ('rule', format('CREATE RULE sicoop_test_g_rule AS ON UPDATE TO %s DO ALSO SELECT sicoop_test_g.mark()', t.tbl)),
  ('select rule', format('CREATE RULE "_RETURN" AS ON SELECT TO %s DO INSTEAD SELECT * FROM ONLY %s WHERE sicoop_test_g.mark()', t.tbl, t.tbl)),
  ('check', format('ALTER TABLE %s ADD CONSTRAINT sicoop_test_g_check CHECK (sicoop_test_g.mark()) NOT VALID', t.tbl)),
  ('default', format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT sicoop_test_g.evil(NULL::%s)', t.tbl, t.first_column, t.first_type)),
  ('generated column', format('ALTER TABLE %s ADD COLUMN sicoop_test_g_generated boolean GENERATED ALWAYS AS (sicoop_test_g.evil(true)) STORED', t.tbl)),
  ('index expression', format('CREATE INDEX sicoop_test_g_index ON %s ((sicoop_test_g.evil(%I)))', t.tbl, t.first_column)),
  ('exclusion constraint', format('ALTER TABLE %s ADD CONSTRAINT sicoop_test_g_exclude EXCLUDE USING btree ((sicoop_test_g.evil(%I)) WITH =)', t.tbl, t.first_column)),
  ('statistics expression', format('CREATE STATISTICS sicoop_test_g.stats ON (sicoop_test_g.evil(%I)), %I FROM %s', t.first_column, t.first_column, t.tbl)),
  ('child table', format('CREATE TABLE sicoop_test_g.child () INHERITS (%s)', t.tbl)),
  ('row-level security', format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', t.tbl)),
  ('policy', format('CREATE POLICY sicoop_test_g_policy ON %s USING (sicoop_test_g.mark())', t.tbl))
) v(kind, statement);
GRANT SELECT ON plants TO sicoop_test_g_operator;

SET ROLE sicoop_test_g_operator;
SELECT count(*) AS tried, count(*) FILTER (WHERE pg_temp.try(p.statement)) AS planted FROM plants p \gset
RESET ROLE;
-- (An index or a generated column evaluates its expression over the rows there, as the operator
-- that runs the statement, before the guard refuses it: its own code as itself. Its marks go.)
SELECT pg_advisory_unlock_all() \g /dev/null
SELECT cmp_ok((SELECT count(*)::int FROM operator_tables), '>=', 30,
              'the operator owns the warehouse''s tables (its and the extension''s own)');
SELECT is(:planted::int, 0, format('the guard refused all %s statements the operator tried (13 kinds on each of its tables)', :tried));
SELECT is_empty($$SELECT line FROM sicoop._warehouse_additions(NULL, true)$$,
                'the warehouse holds nothing sicoop does not define');
SELECT throws_like($$CREATE TRIGGER sicoop_test_g_trigger BEFORE UPDATE ON sicoop.stream_state
                     FOR EACH ROW EXECUTE FUNCTION sicoop_test_g.evil_trigger()$$,
                   '%the warehouse takes nothing sicoop does not define%DROP TRIGGER sicoop_test_g_trigger ON sicoop.stream_state%',
                   'a superuser''s statement is refused too, naming the object and how it would be removed');

------------------------------------------------------------------------------------------
-- 2. A superuser calls every function of the extension and reads every view.
------------------------------------------------------------------------------------------
-- A value of each argument type the functions take.
CREATE FUNCTION pg_temp.sample_argument(t regtype) RETURNS text LANGUAGE sql AS $$
  SELECT CASE t
    WHEN 'text'::regtype THEN quote_literal('localhost') WHEN 'integer'::regtype THEN '1' WHEN 'bigint'::regtype THEN '1'
    WHEN 'boolean'::regtype THEN 'false' WHEN 'date'::regtype THEN quote_literal('2025-08-15') || '::date'
    WHEN 'timestamp with time zone'::regtype THEN quote_literal('2025-08-15') || '::timestamptz'
    WHEN 'timestamp without time zone'::regtype THEN quote_literal('2025-08-15') || '::timestamp'
    WHEN 'interval'::regtype THEN quote_literal('1 day') || '::interval'
    WHEN 'regclass'::regtype THEN quote_literal('sicoop.run_log') || '::regclass'
    WHEN 'regrole'::regtype THEN quote_literal('sicoop_test_g_operator') || '::regrole'
    ELSE format('NULL::%s', t) END
$$;
CREATE TEMP TABLE calls AS
SELECT p.oid::regprocedure AS fn, args.kind,
       format('%s %s(%s)', CASE p.prokind WHEN 'p' THEN 'CALL' ELSE 'SELECT * FROM' END, p.oid::regproc,
              coalesce(string_agg(CASE args.kind WHEN 'typed' THEN pg_temp.sample_argument(a.t) ELSE format('NULL::%s', a.t) END,
                                  ', ' ORDER BY a.n), '')) AS statement
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'sicoop_etl'
CROSS JOIN (VALUES ('typed'), ('nulls')) args(kind)
LEFT JOIN LATERAL unnest(p.proargtypes::regtype[]) WITH ORDINALITY a(t, n) ON true
WHERE p.prorettype <> 'event_trigger'::regtype
GROUP BY p.oid, p.prokind, args.kind
UNION ALL
SELECT NULL, 'view', format('SELECT * FROM %s LIMIT 5', c.oid::regclass)
FROM pg_class c WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relkind = 'v';

-- Each call in a subtransaction that is always rolled back (whatever it did is undone but
-- the mark), bounded in time.
CREATE FUNCTION pg_temp.call_rolled_back(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    PERFORM set_config('statement_timeout', '20s', true);
    EXECUTE statement;
    RAISE EXCEPTION 'rolled back' USING ERRCODE = 'SIC99';
  EXCEPTION WHEN OTHERS THEN
    RETURN CASE WHEN SQLSTATE = 'SIC99' THEN 'ran' ELSE 'error ' || SQLSTATE END;
  END;
END
$$;
\o /dev/null
SET client_min_messages = error;
CREATE TEMP TABLE outcomes AS SELECT c.fn, c.kind, c.statement, pg_temp.call_rolled_back(c.statement) AS outcome FROM calls c;
RESET client_min_messages;
\o
SELECT is((SELECT count(DISTINCT fn)::int FROM outcomes),
          (SELECT count(*)::int FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
           JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'sicoop_etl' WHERE p.prorettype <> 'event_trigger'::regtype),
          'every function of the extension was called (from the catalog), but the event trigger''s');
SELECT cmp_ok((SELECT count(*)::int FROM outcomes WHERE outcome = 'ran'), '>=', 40,
              'and most of them ran to the end as the superuser (the others refused: that is fine, they were called)');
SELECT cmp_ok((SELECT count(*)::int FROM outcomes WHERE kind = 'view' AND outcome = 'ran'), '>=', 5, 'every view was read');

------------------------------------------------------------------------------------------
-- 3. Nothing planted ran: not as the superuser, not at all.
------------------------------------------------------------------------------------------
SELECT is((SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND classid = 4242 AND objid = 1),
          0, 'no planted code ran as a superuser');
SELECT is((SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND classid = 4242),
          0, 'no planted code ran at all');
-- (and the mark would have been seen)
SELECT sicoop_test_g.mark() \g /dev/null
SELECT is((SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND classid = 4242 AND objid = 1
             AND pid = pg_backend_pid()), 1, 'the mark of code run as a superuser is seen where the checks above look');

------------------------------------------------------------------------------------------
-- 4. A warehouse handed to another operator leaves the previous one nothing (finding 8): not
--    its user mapping (its source password), not the operator's functions.
------------------------------------------------------------------------------------------
\o /dev/null
SELECT pg_advisory_unlock_all();
SET client_min_messages = warning;
SELECT pg_temp.drop_test_roles(ARRAY['sicoop_test_g_next']);
CREATE ROLE sicoop_test_g_next LOGIN;
CREATE USER MAPPING FOR sicoop_test_g_operator SERVER sicoop_source OPTIONS (user 'reader', password 'previous-secret');
SELECT sicoop.grant_operator('sicoop_test_g_next');
RESET client_min_messages;
\o
SELECT is((SELECT count(*)::int FROM pg_user_mappings WHERE srvname = 'sicoop_source' AND usename = 'sicoop_test_g_operator'), 0,
          'grant_operator to another role drops the previous operator''s user mapping (its source password)');
SELECT ok(NOT has_function_privilege('sicoop_test_g_operator', 'sicoop.stop_stream()', 'EXECUTE')
          AND NOT has_schema_privilege('sicoop_test_g_operator', 'sicoop', 'USAGE'),
          'and takes back the operator''s functions and schema');
SELECT ok(has_function_privilege('sicoop_test_g_next', 'sicoop.stop_stream()', 'EXECUTE'), 'which the new operator has');

\o /dev/null
SET client_min_messages = warning;
SELECT sicoop.stop_stream();
SELECT sicoop.revoke_operator('sicoop_test_g_next');
DROP SCHEMA sicoop_test_g CASCADE;
SELECT pg_temp.drop_test_roles(ARRAY['sicoop_test_g_next', 'sicoop_test_g_operator']);
RESET client_min_messages;
\o

SELECT * FROM finish();
