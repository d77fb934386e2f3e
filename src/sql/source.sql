-- The source: its foreign server and tables (postgres_fdw), connect_source(), and the checks a
-- run makes before it reads anything (_check_ready).

-- The source's foreign server and tables (postgres_fdw): created by connect_source() when
-- missing (a first connection, or after DROP EXTENSION postgres_fdw CASCADE removed them).
CREATE OR REPLACE FUNCTION _create_source_objects() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_foreign_server WHERE srvname = 'sicoop_source') THEN
    CREATE SERVER sicoop_source FOREIGN DATA WRAPPER postgres_fdw;
  END IF;
  IF to_regclass('sicoop.src_associado') IS NULL THEN
    CREATE FOREIGN TABLE sicoop.src_associado (
        id_associado varchar(50) NOT NULL,
        nome varchar(255) NOT NULL,
        data_nascimento date,
        estado_civil varchar(50),
        escolaridade varchar(100)
    ) SERVER sicoop_source OPTIONS (schema_name 'public', table_name 'associado');
  END IF;
  IF to_regclass('sicoop.src_conta') IS NULL THEN
    CREATE FOREIGN TABLE sicoop.src_conta (
        id_conta varchar(50) NOT NULL,
        id_associado varchar(50),
        tipo_conta varchar(50),
        agencia varchar(20),
        situacao_conta varchar(50),
        data_criacao_conta date
    ) SERVER sicoop_source OPTIONS (schema_name 'public', table_name 'conta');
  END IF;
  IF to_regclass('sicoop.src_cartao') IS NULL THEN
    CREATE FOREIGN TABLE sicoop.src_cartao (
        id_cartao varchar(50) NOT NULL,
        id_conta varchar(50),
        numero_cartao varchar(50),
        nome_impresso_cartao varchar(150),
        bandeira_cartao varchar(50),
        tipo_cartao varchar(50),
        data_emissao date
    ) SERVER sicoop_source OPTIONS (schema_name 'public', table_name 'cartao');
  END IF;
  IF to_regclass('sicoop.src_movimentacao_cartao') IS NULL THEN
    CREATE FOREIGN TABLE sicoop.src_movimentacao_cartao (
        id_movimentacao_cartao varchar(50) NOT NULL,
        id_cartao varchar(50),
        descricao_movimentacao varchar(150),
        valor_movimentacao numeric(10,2) NOT NULL,
        data_movimentacao timestamp NOT NULL
    ) SERVER sicoop_source OPTIONS (schema_name 'public', table_name 'movimentacao_cartao');
  END IF;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._create_source_objects() FROM PUBLIC;  -- operator

-- Raises a clear error unless a run can start: a warehouse this version can use, and a source.
-- Runs are made by the warehouse's owner (the operator, sicoop.grant_operator()) or a member
-- of it. Not by a superuser when the owner is not one: the owner's triggers and functions on
-- its tables would then run with superuser rights.
CREATE OR REPLACE FUNCTION _check_ready() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  missing text[];
  owner oid;
BEGIN
  -- Who may run is decided from the catalog alone, before anything of the warehouse is read.
  SELECT c.relowner INTO owner FROM pg_class c WHERE c.oid = to_regclass('sicoop.warehouse_info');
  IF owner IS NULL THEN
    PERFORM sicoop._adopt_warehouse();  -- says what is wrong with what is there, if anything
    RAISE EXCEPTION 'sicoop: there is no warehouse in schema sicoop yet'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Call sicoop.connect_source(host, port, dbname, username, password): it creates the warehouse and points it at the source.';
  END IF;
  -- The owner itself: a member of it with more rights of its own (CREATEROLE, other roles)
  -- would lend them to what the owner put in its tables.
  IF current_user::regrole::oid <> owner AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = owner) THEN
    RAISE EXCEPTION 'sicoop: only the warehouse''s owner (%) runs the pipeline, not %', owner::regrole, current_user
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('SET ROLE %s first, or have a superuser make your role the operator with sicoop.grant_operator(role).', owner::regrole);
  END IF;
  IF NOT pg_has_role(current_user, owner, 'USAGE') THEN
    RAISE EXCEPTION 'sicoop: only the warehouse''s owner (%) runs the pipeline, not %', owner::regrole, current_user
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'A superuser makes a role the operator with sicoop.grant_operator(role).';
  END IF;
  IF (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user)
     AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = owner) THEN
    RAISE EXCEPTION 'sicoop: the warehouse belongs to %; a superuser does not run its pipeline', owner::regrole
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('SET ROLE %I first: the owner''s triggers and functions must not run with superuser rights.', owner::regrole);
  END IF;
  PERFORM sicoop._adopt_warehouse();
  -- The extension's own tables (scratch, card hash key) are the operator's too; a re-created
  -- or restored extension makes them anew, owned by whoever ran CREATE EXTENSION.
  IF NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = owner) AND EXISTS (
      SELECT 1 FROM pg_class c JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
      WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relowner <> owner) THEN
    RAISE EXCEPTION 'sicoop: the extension''s own tables do not belong to the warehouse''s owner (%)', owner::regrole
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = format('A superuser runs SELECT sicoop.grant_operator(%L) again (the extension was re-created or restored).', owner::regrole::text);
  END IF;
  SELECT array_agg(r) INTO missing
  FROM unnest(ARRAY['src_associado', 'src_conta', 'src_cartao', 'src_movimentacao_cartao']) AS r
  WHERE to_regclass('sicoop.' || r) IS NULL;
  IF missing IS NOT NULL OR NOT EXISTS (SELECT 1 FROM pg_foreign_server WHERE srvname = 'sicoop_source') THEN
    RAISE EXCEPTION 'sicoop: the warehouse is not connected to a source (foreign server sicoop_source or tables % missing)',
                    coalesce(array_to_string(missing, ', '), 'none')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Call sicoop.connect_source(host, port, dbname, username, password) again; the warehouse data is kept.';
  END IF;
END
$fn$;

-- Whether the foreign server and tables already point at this source (same host, port,
-- database and schema): then its incremental state still holds.
CREATE OR REPLACE FUNCTION _is_current_source(host text, port int, dbname text, source_schema text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT coalesce((SELECT o.host = _is_current_source.host AND o.port = _is_current_source.port::text
                        AND o.dbname = _is_current_source.dbname
                 FROM (SELECT max(v) FILTER (WHERE k = 'host') AS host, max(v) FILTER (WHERE k = 'port') AS port,
                              max(v) FILTER (WHERE k = 'dbname') AS dbname
                       FROM pg_foreign_server s, unnest(s.srvoptions) AS opt,
                            LATERAL (SELECT split_part(opt, '=', 1) AS k, substr(opt, strpos(opt, '=') + 1) AS v) kv
                       WHERE s.srvname = 'sicoop_source') o), false)
   AND coalesce((SELECT bool_and(substr(opt, strpos(opt, '=') + 1) = _is_current_source.source_schema)
                 FROM pg_foreign_table ft, unnest(ft.ftoptions) AS opt
                 WHERE ft.ftrelid IN (SELECT to_regclass('sicoop.' || r)
                                      FROM unnest(ARRAY['src_associado', 'src_conta', 'src_cartao', 'src_movimentacao_cartao']) AS r)
                   AND split_part(opt, '=', 1) = 'schema_name'
                 HAVING count(*) = 4), false)
$$;

------------------------------------------------------------------------------------------
-- The source: one postgres_fdw server; connect_source() sets its options and user mapping.
------------------------------------------------------------------------------------------
-- Checks the source over libpq (it answers; the four tables and their columns exist).
CREATE OR REPLACE FUNCTION _check_source(host text, port int, dbname text, username text, password text, source_schema text)
RETURNS void LANGUAGE c SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'sicoop_check_source';
REVOKE ALL ON FUNCTION sicoop._check_source(text, integer, text, text, text, text) FROM PUBLIC;  -- operator

-- Points the warehouse at the source (C++, src/source.cpp, over _connect_source() below):
-- its errors never show the password, and the server log leaves out the statement that
-- carried it.
CREATE OR REPLACE FUNCTION connect_source(host text, port int, dbname text, username text,
                               password text DEFAULT NULL, source_schema text DEFAULT 'public')
RETURNS text LANGUAGE c SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'sicoop_connect_source';
REVOKE ALL ON FUNCTION sicoop.connect_source(text, integer, text, text, text, text) FROM PUBLIC;  -- operator

-- The catalog work of connect_source(): creates the warehouse first if schema sicoop has
-- none; given the source it already points at (a password re-entered after a restore), the
-- incremental state is kept; another source is read whole by the next run.
CREATE OR REPLACE FUNCTION _connect_source(host text, port int, dbname text, username text, password text, source_schema text)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  opt record;
  t text;
  same_source boolean;
BEGIN
  PERFORM sicoop._check_source(host, port, dbname, username, password, source_schema);
  IF NOT sicoop._adopt_warehouse() THEN
    PERFORM sicoop._create_warehouse();
  END IF;
  same_source := sicoop._is_current_source(host, port, dbname, source_schema);
  PERFORM sicoop._create_source_objects();

  -- Replace the server's connection options wholesale, so stale ones never linger.
  FOR opt IN SELECT split_part(o, '=', 1) AS name
             FROM pg_foreign_server s, unnest(s.srvoptions) o WHERE s.srvname = 'sicoop_source'
  LOOP
    EXECUTE format('ALTER SERVER sicoop_source OPTIONS (DROP %I)', opt.name);
  END LOOP;
  EXECUTE format('ALTER SERVER sicoop_source OPTIONS (ADD host %L, ADD port %L, ADD dbname %L, ADD fetch_size %L)',
                 host, port::text, dbname, '10000');

  IF EXISTS (SELECT 1 FROM pg_user_mappings WHERE srvname = 'sicoop_source' AND usename = current_user) THEN
    EXECUTE 'DROP USER MAPPING FOR CURRENT_USER SERVER sicoop_source';
  END IF;
  IF password IS NULL THEN
    EXECUTE format('CREATE USER MAPPING FOR CURRENT_USER SERVER sicoop_source OPTIONS (user %L)', username);
  ELSE
    EXECUTE format('CREATE USER MAPPING FOR CURRENT_USER SERVER sicoop_source OPTIONS (user %L, password %L)',
                   username, password);
  END IF;

  -- Snapshots and watermarks belong to the source they were read from.
  IF NOT same_source THEN
    DELETE FROM sicoop.source_sync;
  END IF;
  FOREACH t IN ARRAY ARRAY['associado', 'conta', 'cartao', 'movimentacao_cartao'] LOOP
    EXECUTE format('ALTER FOREIGN TABLE sicoop.%I OPTIONS (SET schema_name %L)', 'src_' || t, source_schema);
  END LOOP;
  RETURN format('sicoop_source -> %s@%s:%s/%s (schema %s)', username, host, port, dbname, source_schema);
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._connect_source(text, integer, text, text, text, text) FROM PUBLIC;  -- operator
