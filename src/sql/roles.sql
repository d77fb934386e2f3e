-- Roles and privileges: the operator (owns and runs the warehouse) and the readers (query the
-- star schema), granted and revoked by a superuser.

------------------------------------------------------------------------------------------
-- Roles. A superuser installs the extension, names the operator and the readers.
------------------------------------------------------------------------------------------
-- The operator's functions, what grant_operator grants and revoke_operator takes back, are
-- those whose REVOKE line is marked "-- operator": src/sql/assemble.sh writes
-- sicoop._operator_functions() from them.

-- Gives every relation of schema sicoop owned by `from_owner` (all of them if NULL) to
-- `new_owner`, and the source server too (sequences owned by a table follow it).
CREATE OR REPLACE FUNCTION _set_warehouse_owner(new_owner regrole, from_owner regrole DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  rel record;
BEGIN
  FOR rel IN SELECT c.oid::regclass AS name, c.relkind
             FROM pg_class c
             WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'f', 'S')
               AND (from_owner IS NULL OR c.relowner = from_owner)
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                               AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
             ORDER BY c.relname
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO %s',
                   CASE rel.relkind WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
                   rel.name, new_owner);
  END LOOP;
  IF EXISTS (SELECT 1 FROM pg_foreign_server s WHERE s.srvname = 'sicoop_source'
             AND (from_owner IS NULL OR s.srvowner = from_owner)) THEN
    EXECUTE format('ALTER SERVER sicoop_source OWNER TO %s', new_owner);
  END IF;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._set_warehouse_owner(regrole, regrole) FROM PUBLIC;

-- What every grant_* and revoke_* checks first: a superuser calls it, for a role.
CREATE OR REPLACE FUNCTION _check_grantor(fn text, target regrole) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) THEN
    RAISE EXCEPTION 'sicoop.%: only a superuser calls it', fn USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF target IS NULL THEN
    RAISE EXCEPTION 'sicoop.%: a role is required', fn USING ERRCODE = 'null_value_not_allowed';
  END IF;
END
$fn$;

-- What an operator is given besides the warehouse, taken back: its user mapping (its source
-- password), the operator's functions and USAGE on schema sicoop.
CREATE OR REPLACE FUNCTION _revoke_operator_rights(operator regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_user_mappings m WHERE m.srvname = 'sicoop_source' AND m.umuser = operator) THEN
    EXECUTE format('DROP USER MAPPING FOR %s SERVER sicoop_source', operator);
  END IF;
  EXECUTE format('REVOKE EXECUTE ON %s FROM %s', sicoop._operator_functions(), operator);
  EXECUTE format('REVOKE EXECUTE ON PROCEDURE sicoop.run_pipeline(boolean) FROM %s', operator);
  EXECUTE format('REVOKE USAGE ON SCHEMA sicoop FROM %s', operator);
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._revoke_operator_rights(regrole) FROM PUBLIC;

-- The operator: a role, not a superuser, that owns the warehouse (created here if needed) and
-- may point it at the source (with a password, as postgres_fdw requires), run and schedule
-- the pipeline, read the run log and export the flat file into sicoop.export_directory. The
-- operator is the warehouse's owner, so there is one at a time: to let several people
-- operate, name a group role and grant it to them.
CREATE OR REPLACE FUNCTION grant_operator(operator regrole) RETURNS text
-- (On Citus: ALTER SERVER, which Citus propagates, refuses to follow commands run over
-- parallel connections in one transaction; sequential mode keeps to one per node.)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET citus.multi_shard_modify_mode = 'sequential' AS $fn$
DECLARE
  previous oid;
BEGIN
  PERFORM sicoop._check_grantor('grant_operator', operator);
  -- The stream worker holds this lock through each transaction it runs as the owner (src/stream.cpp):
  -- taken first, the owner changes between its transactions, never inside one, and in no deadlock.
  IF to_regclass('sicoop.warehouse_info') IS NOT NULL THEN
    LOCK TABLE sicoop.warehouse_info IN ACCESS EXCLUSIVE MODE;
  END IF;
  IF NOT sicoop._adopt_warehouse() THEN
    PERFORM sicoop._create_warehouse();
  END IF;
  PERFORM sicoop._create_source_objects();
  PERFORM sicoop._remake_sicoop_definitions(false);
  PERFORM sicoop._check_warehouse_definition('grant_operator');
  SELECT c.relowner INTO previous FROM pg_class c WHERE c.oid = 'sicoop.warehouse_info'::regclass;
  PERFORM sicoop._keep_sicoop_deferred_indexes();
  -- The warehouse, its source objects and the extension's own tables become the operator's.
  PERFORM sicoop._set_warehouse_owner(operator);
  -- The previous operator keeps nothing: not its source password (its user mapping), not the
  -- operator's functions. (The extension's owner, a superuser, keeps what it had.)
  IF previous <> operator::oid AND previous <> (SELECT e.extowner FROM pg_extension e WHERE e.extname = 'sicoop_etl') THEN
    PERFORM sicoop._revoke_operator_rights(previous::regrole);
  END IF;
  EXECUTE format('GRANT USAGE ON SCHEMA sicoop TO %s', operator);
  EXECUTE format('GRANT EXECUTE ON %s TO %s', sicoop._operator_functions(), operator);
  EXECUTE format('GRANT EXECUTE ON PROCEDURE sicoop.run_pipeline(boolean) TO %s', operator);
  -- pg_cron lets a role schedule its own jobs once it may use schema cron.
  IF to_regnamespace('cron') IS NOT NULL THEN
    EXECUTE format('GRANT USAGE ON SCHEMA cron TO %s', operator);
  END IF;
  RETURN format('%s operates the warehouse: it owns it%s', operator,
                CASE WHEN previous <> operator::oid THEN format(' (taken over from %s)', previous::regrole) ELSE '' END);
END
$fn$;
REVOKE ALL ON FUNCTION sicoop.grant_operator(regrole) FROM PUBLIC;

-- Takes the operator's rights back: the warehouse goes to the extension's owner, the
-- operator's user mapping (its source password) is dropped. (USAGE on schema cron, which
-- grant_operator gave if pg_cron was there, stays: other things may need it.)
CREATE OR REPLACE FUNCTION revoke_operator(operator regrole) RETURNS text
-- (On Citus: ALTER SERVER, which Citus propagates, refuses to follow commands run over
-- parallel connections in one transaction; sequential mode keeps to one per node.)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET citus.multi_shard_modify_mode = 'sequential' AS $fn$
DECLARE
  owner regrole;
BEGIN
  PERFORM sicoop._check_grantor('revoke_operator', operator);
  IF to_regclass('sicoop.warehouse_info') IS NOT NULL THEN
    LOCK TABLE sicoop.warehouse_info IN ACCESS EXCLUSIVE MODE;  -- (as grant_operator)
  END IF;
  SELECT e.extowner::regrole INTO owner FROM pg_extension e WHERE e.extname = 'sicoop_etl';
  -- Nothing the operator added (defaults, constraints, statistics, triggers, rules...) may
  -- come along to a superuser: the definition must be sicoop's.
  PERFORM sicoop._remake_sicoop_definitions(false);
  PERFORM sicoop._check_warehouse_definition('revoke_operator');
  PERFORM sicoop._keep_sicoop_deferred_indexes();
  PERFORM sicoop._set_warehouse_owner(owner, operator);
  PERFORM sicoop._revoke_operator_rights(operator);
  RETURN format('%s no longer operates the warehouse; %s owns it', operator, owner);
END
$fn$;
REVOKE ALL ON FUNCTION sicoop.revoke_operator(regrole) FROM PUBLIC;

-- The star schema a reader (a BI tool, an analyst) may query: the dimensions, the fact and
-- the flat view, nothing else -- no raw or stage (source values), no rejects, no source
-- tables, no run control.
CREATE OR REPLACE FUNCTION _reader_relations() RETURNS text[] LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT ARRAY['dim_data', 'dim_conta', 'dim_cartao', 'dim_associado', 'fato_movimentacao_cartao', 'vw_movimentacao_flat']
       || sicoop._analyst_views()
$$;

CREATE OR REPLACE FUNCTION grant_reader(reader regrole) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  r text;
BEGIN
  PERFORM sicoop._check_grantor('grant_reader', reader);
  IF NOT sicoop._adopt_warehouse() THEN
    RAISE EXCEPTION 'sicoop.grant_reader: there is no warehouse yet' USING ERRCODE = 'object_not_in_prerequisite_state',
      HINT = 'sicoop.grant_operator(role) or sicoop.connect_source(...) creates it.';
  END IF;
  PERFORM sicoop._remake_sicoop_definitions(false);
  PERFORM sicoop._check_warehouse_definition('grant_reader');
  EXECUTE format('GRANT USAGE ON SCHEMA sicoop TO %s', reader);
  FOREACH r IN ARRAY sicoop._reader_relations() LOOP
    EXECUTE format('GRANT SELECT ON sicoop.%I TO %s', r, reader);
  END LOOP;
  RETURN format('%s may read %s', reader, array_to_string(sicoop._reader_relations(), ', '));
END
$fn$;
REVOKE ALL ON FUNCTION sicoop.grant_reader(regrole) FROM PUBLIC;

CREATE OR REPLACE FUNCTION revoke_reader(reader regrole) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  r text;
BEGIN
  PERFORM sicoop._check_grantor('revoke_reader', reader);
  FOREACH r IN ARRAY sicoop._reader_relations() LOOP
    IF to_regclass('sicoop.' || r) IS NOT NULL THEN
      EXECUTE format('REVOKE SELECT ON sicoop.%I FROM %s', r, reader);
    END IF;
  END LOOP;
  EXECUTE format('REVOKE USAGE ON SCHEMA sicoop FROM %s', reader);
  RETURN format('%s no longer reads the warehouse', reader);
END
$fn$;
REVOKE ALL ON FUNCTION sicoop.revoke_reader(regrole) FROM PUBLIC;
