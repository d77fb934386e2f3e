-- The handover check: the warehouse as the catalog has it, compared with sicoop's own
-- definition of it (warehouse_definition.sql), on every superuser path (grant_*, revoke_*,
-- adoption on CREATE EXTENSION, ALTER EXTENSION UPDATE); and what puts sicoop's own
-- definitions back (defaults, statistics targets).

-- Refuses a warehouse whose relations could run code of their owner's when another role reads
-- or writes them: a table turned into a view or given rules, triggers, row-level security or
-- inheritance children; a flat view with rules of its own. (The extension's own code never
-- needs any of these. A superuser may add triggers to a warehouse a superuser owns.)
CREATE OR REPLACE FUNCTION _check_warehouse_shape() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET citus.show_shards_for_app_name_prefixes = '*' AS $fn$
DECLARE
  odd text[];
  views text[] := ARRAY['vw_movimentacao_flat', 'progress'] || sicoop._analyst_views();
BEGIN
  SELECT array_agg(format('%s (%s)', c.relname, why) ORDER BY c.relname) INTO odd
  FROM pg_class c
  CROSS JOIN LATERAL (
    SELECT CASE
      WHEN c.relname = ANY (views) AND c.relkind <> 'v' THEN 'not a view'
      WHEN c.relname = 'run_id_seq' AND c.relkind <> 'S' THEN 'not a sequence'
      WHEN c.relname <> ALL (views) AND c.relkind NOT IN ('r', 'S') THEN 'not a plain table'
      WHEN EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = c.oid AND NOT (c.relkind = 'v' AND r.rulename = '_RETURN'))
        THEN 'has rules'
      WHEN c.relrowsecurity THEN 'has row-level security'
      WHEN EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid OR i.inhrelid = c.oid) THEN 'has inheritance'
      WHEN EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal)
           AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = c.relowner) THEN 'has triggers'
      -- (reading a column of a type someone else defined can run its casts and functions)
      WHEN EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                     AND t.typnamespace <> 'pg_catalog'::regnamespace) THEN 'has a column of a type outside pg_catalog'
    END AS why) w
  WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relname NOT LIKE 'src\_%' AND c.relkind <> 'i'
    AND (c.relname = ANY (sicoop._warehouse_relations()) OR c.relkind IN ('r', 'v', 'S'))
    AND w.why IS NOT NULL;
  IF odd IS NOT NULL THEN
    RAISE EXCEPTION 'sicoop: the warehouse has been altered so that reading or writing it could run its owner''s code: %',
                    array_to_string(odd, ', ')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Nothing was read. A superuser reviews these objects and drops what sicoop did not create.';
  END IF;
END
$fn$;

-- The warehouse's definition as the catalog has it: one line per object of schema sicoop's
-- relations (the extension's own scratch tables and the source's foreign tables included) --
-- relation, column (type, collation, default or generation, statistics target), constraint
-- (its own or another table's pointing at it), index, extended statistics, trigger, rule
-- (a view's query included), policy, inheritance and publication -- and per object of schema
-- sicoop that is no extension member. Each line comes with the statement that removes it
-- when it is not sicoop's. Everything here could run code, or change what a read returns,
-- when a role other than its maker reads or writes the table.
-- (Time zone and date style pinned: a default or CHECK with a timestamptz reads in them.)
-- `relids` (NULL: all) restricts it to some of schema sicoop's relations, and `schema_objects`
-- says whether the objects of the schema come too (the guard, below, checks what a command
-- touched).
CREATE OR REPLACE FUNCTION _warehouse_objects_of(relids oid[], schema_objects boolean) RETURNS TABLE (relation name, line text, removal text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD'
  SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET citus.show_shards_for_app_name_prefixes = '*' AS $fn$
#variable_conflict use_column
BEGIN
-- (PL/pgSQL, so that its plan is made once per session: the guard calls it after every DDL command.)
RETURN QUERY
WITH rels AS (
  -- (a Citus shard is its table's copy: its objects are compared with the table's, under the
  -- table's names; see sicoop._citus_shards())
  SELECT c.oid, coalesce(sh.table_name, c.relname) AS relname, c.relkind, c.oid::regclass AS qualified, sh.suffix
  FROM pg_class c LEFT JOIN sicoop._citus_shards() sh ON sh.shard = c.oid
  WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relkind NOT IN ('i', 'I', 't', 'c')
    AND (relids IS NULL OR c.oid = ANY (relids))
), objects AS (
SELECT r.suffix, r.relname, format('relation %s kind=%s persistence=%s am=%s of=%s rls=%s force_rls=%s partition=%s',
                         r.relname, c.relkind, c.relpersistence, coalesce(a.amname, '-'), c.reloftype::regtype,
                         c.relrowsecurity, c.relforcerowsecurity, c.relispartition), NULL
FROM rels r JOIN pg_class c ON c.oid = r.oid LEFT JOIN pg_am a ON a.oid = c.relam
UNION ALL
SELECT r.suffix, r.relname,
       format('column %s.%s %s collation=%s notnull=%s identity=%s %s=%s statistics=%s', r.relname, a.attname,
              format_type(a.atttypid, a.atttypmod),
              coalesce((SELECT format('%I.%I', n.nspname, o.collname) FROM pg_collation o
                        JOIN pg_namespace n ON n.oid = o.collnamespace WHERE o.oid = a.attcollation), '-'),
              a.attnotnull,
              -- (a shard's keys come from its table's identity, on the coordinator)
              a.attidentity <> '' OR (r.suffix IS NOT NULL AND EXISTS (
                SELECT 1 FROM pg_attribute t WHERE t.attrelid = to_regclass('sicoop.' || r.relname)
                                              AND t.attname = a.attname AND t.attidentity <> '')),
              CASE a.attgenerated WHEN 's' THEN 'generated' ELSE 'default' END,
              pg_get_expr(d.adbin, d.adrelid), a.attstattarget),
       CASE WHEN a.attgenerated = 's' THEN format('ALTER TABLE %s ALTER COLUMN %I DROP EXPRESSION', r.qualified, a.attname)
            WHEN d.adbin IS NOT NULL THEN format('ALTER TABLE %s ALTER COLUMN %I DROP DEFAULT', r.qualified, a.attname)
            ELSE format('ALTER TABLE %s DROP COLUMN %I', r.qualified, a.attname) END
FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
UNION ALL
SELECT r.suffix, r.relname, format('constraint %s.%s %s', k.conrelid::regclass, k.conname, pg_get_constraintdef(k.oid)),
       format('ALTER TABLE %s DROP CONSTRAINT %I', k.conrelid::regclass, k.conname)
FROM rels r JOIN pg_constraint k ON k.conrelid = r.oid OR (k.confrelid = r.oid AND k.conrelid <> r.oid)
UNION ALL
SELECT r.suffix, r.relname, format('index %s', pg_get_indexdef(i.indexrelid)), format('DROP INDEX %s', i.indexrelid::regclass)
FROM rels r JOIN pg_index i ON i.indrelid = r.oid
UNION ALL
SELECT r.suffix, r.relname, format('statistics %s target=%s', pg_get_statisticsobjdef(s.oid), s.stxstattarget),
       format('DROP STATISTICS %I.%I', s.stxnamespace::regnamespace, s.stxname)
FROM rels r JOIN pg_statistic_ext s ON s.stxrelid = r.oid
UNION ALL
SELECT r.suffix, r.relname, format('trigger %s enabled=%s', pg_get_triggerdef(t.oid), t.tgenabled),
       format('DROP TRIGGER %I ON %s', t.tgname, t.tgrelid::regclass)
FROM rels r JOIN pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
UNION ALL
SELECT r.suffix, r.relname, format('rule %s enabled=%s', pg_get_ruledef(w.oid), w.ev_enabled),
       CASE WHEN w.rulename = '_RETURN' THEN 'SELECT sicoop._create_flat_view(), sicoop._create_bi_views()'
            ELSE format('DROP RULE %I ON %s', w.rulename, r.qualified) END
FROM rels r JOIN pg_rewrite w ON w.ev_class = r.oid
UNION ALL
SELECT r.suffix, r.relname, format('policy %s.%s %s permissive=%s roles=%s using=%s check=%s', r.relname, p.polname, p.polcmd,
                         p.polpermissive, p.polroles::regrole[], pg_get_expr(p.polqual, p.polrelid),
                         pg_get_expr(p.polwithcheck, p.polrelid)),
       format('DROP POLICY %I ON %s', p.polname, r.qualified)
FROM rels r JOIN pg_policy p ON p.polrelid = r.oid
UNION ALL
SELECT r.suffix, r.relname, format('inherits %s from %s', i.inhrelid::regclass, i.inhparent::regclass),
       format('ALTER TABLE %s NO INHERIT %s', i.inhrelid::regclass, i.inhparent::regclass)
FROM rels r JOIN pg_inherits i ON i.inhparent = r.oid OR i.inhrelid = r.oid
UNION ALL
SELECT r.suffix, r.relname, format('publication %s of %s where=%s', p.pubname, r.relname, pg_get_expr(pr.prqual, pr.prrelid)),
       format('ALTER PUBLICATION %I DROP TABLE %s', p.pubname, r.qualified)
FROM rels r JOIN pg_publication_rel pr ON pr.prrelid = r.oid JOIN pg_publication p ON p.oid = pr.prpubid
UNION ALL
SELECT NULL::text, NULL, format('publication %s of schema sicoop', p.pubname),
       format('ALTER PUBLICATION %I DROP TABLES IN SCHEMA sicoop', p.pubname)
FROM pg_publication_namespace pn JOIN pg_publication p ON p.oid = pn.pnpubid
WHERE pn.pnnspid = 'sicoop'::regnamespace AND schema_objects
UNION ALL
-- Objects of schema sicoop the extension did not make: a function there can outbid sicoop's
-- own in a call (an overload on an exact argument type), a type or operator can change a read.
SELECT NULL::text, NULL, format('%s %s in schema sicoop', kind, name), format('DROP %s %s', kind, name)
FROM (SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END,
             p.oid::regprocedure::text, 'pg_proc'::regclass, p.oid
      FROM pg_proc p WHERE p.pronamespace = 'sicoop'::regnamespace
      UNION ALL
      SELECT 'OPERATOR', o.oid::regoperator::text, 'pg_operator'::regclass, o.oid
      FROM pg_operator o WHERE o.oprnamespace = 'sicoop'::regnamespace
      UNION ALL
      SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype::text, 'pg_type'::regclass, t.oid
      FROM pg_type t WHERE t.typnamespace = 'sicoop'::regnamespace AND t.typrelid = 0 AND t.typelem = 0
      UNION ALL
      SELECT 'COLLATION', format('sicoop.%I', o.collname), 'pg_collation'::regclass, o.oid
      FROM pg_collation o WHERE o.collnamespace = 'sicoop'::regnamespace) obj(kind, name, catalog, oid)
WHERE schema_objects
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = obj.catalog AND d.objid = obj.oid AND d.deptype = 'e')
)
SELECT o.relname, CASE WHEN o.suffix IS NULL THEN o.line ELSE replace(o.line, o.suffix, '') END, o.removal
FROM objects o(suffix, relname, line, removal);
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._warehouse_objects_of(oid[], boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION _warehouse_objects() RETURNS TABLE (relation name, line text, removal text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT o.relation, o.line, o.removal FROM sicoop._warehouse_objects_of(NULL, true) o
$$;
REVOKE ALL ON FUNCTION sicoop._warehouse_objects() FROM PUBLIC;

-- The same, one line per object, "<relation>: <object>" (or "-: <object>" for an object of the
-- schema), white space collapsed (a view's query is multi-line): what
-- sicoop._warehouse_definition() holds for a warehouse as sicoop makes it.
CREATE OR REPLACE FUNCTION _warehouse_signature() RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT array_agg(l.line ORDER BY l.line COLLATE "C")
FROM sicoop._warehouse_objects() o,
     LATERAL (SELECT format('%s: %s', coalesce(o.relation, '-'), regexp_replace(o.line, '\s+', ' ', 'g')) AS line) l
$$;

-- The dimensions' "no update yet" default, 1900-01-01 at midnight UTC: 1.0 to 1.3 wrote it as
-- '1900-01-01', which PostgreSQL fixes in the time zone of the session that created the table
-- (1900-01-01 03:06:28+00 in America/Sao_Paulo). The same instant everywhere, so that the
-- warehouse's definition does not depend on where it was created. Changes nothing (and takes
-- no lock) where it already is so.
CREATE OR REPLACE FUNCTION _remake_sicoop_defaults() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' AS $fn$
DECLARE
  col record;
BEGIN
  FOR col IN SELECT a.attrelid::regclass AS tbl, a.attname
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relkind = 'r'
               AND c.relname IN ('dim_associado', 'dim_cartao', 'dim_conta') AND a.attname = 'data_hora_atualizacao_registro'
               AND pg_get_expr(d.adbin, d.adrelid) <> '''1900-01-01 00:00:00+00''::timestamp with time zone'
  LOOP
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT %L::timestamptz', col.tbl, col.attname, '1900-01-01 00:00:00+00');
  END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._remake_sicoop_defaults() FROM PUBLIC;

-- Puts back, without reading a row, what sicoop can re-make of the warehouse by itself: its
-- views (the flat view, the BI views, progress) as it defines them, whatever an owner made of
-- them, and no statistics of the columns that may hold a card number as the source sent it
-- (the stage's text, raw's descriptions: see the stage tables), dropping any already
-- gathered. A superuser's: only a superuser may delete from pg_statistic.
CREATE OR REPLACE FUNCTION _remake_sicoop_definitions(in_extension_script boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  col record;
BEGIN
  PERFORM sicoop._check_warehouse_shape();  -- first: a table made a view, rules, RLS, children
  PERFORM sicoop._remake_views(in_extension_script);
  PERFORM sicoop._remake_sicoop_defaults();
  FOR col IN SELECT a.attrelid, a.attrelid::regclass AS tbl, a.attname, a.attnum, a.attstattarget
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
             WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
               AND ((c.relname IN ('stage_associado', 'stage_conta', 'stage_cartao', 'stage_movimentacao_cartao',
                                   'stage_reject', 'stage_key') AND a.atttypid IN ('text'::regtype, 'jsonb'::regtype))
                    OR (c.relname = 'raw_movimentacao_cartao' AND a.attname = 'descricao_movimentacao'))
  LOOP
    IF col.attstattarget <> 0 THEN
      EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET STATISTICS 0', col.tbl, col.attname);
    END IF;
    DELETE FROM pg_statistic s WHERE s.starelid = col.attrelid AND s.staattnum = col.attnum;
  END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._remake_sicoop_definitions(boolean) FROM PUBLIC;

-- Refuses a warehouse whose definition is not sicoop's own: every object a role added to its
-- relations (or to schema sicoop) is named with the statement that removes it, and whatever
-- was changed or removed too. Called first by every superuser path that hands the warehouse
-- to a role or takes it back, adopts it or updates the extension: what another role added --
-- an expression in an index or extended statistics, a CHECK, a default, a trigger, a view --
-- would run with the rights of whoever reads or writes the table next.
CREATE OR REPLACE FUNCTION _check_warehouse_definition(action text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  expected text[] := sicoop._warehouse_definition();
  actual text[] := sicoop._warehouse_signature();
  extra text[];
  missing text[];
BEGIN
  SELECT array_agg(format('%s -- remove it with: %s;', o.line, o.removal) ORDER BY o.line COLLATE "C") INTO extra
  FROM sicoop._warehouse_objects() o
  WHERE format('%s: %s', coalesce(o.relation, '-'), regexp_replace(o.line, '\s+', ' ', 'g')) <> ALL (expected);
  SELECT array_agg(e ORDER BY e COLLATE "C") INTO missing
  FROM unnest(expected) e
  WHERE e <> ALL (actual)
    -- the source's foreign tables before connect_source() made them
    AND NOT (split_part(e, ':', 1) LIKE 'src\_%' AND to_regclass('sicoop.' || split_part(e, ':', 1)) IS NULL)
    -- a first load's secondary indexes, dropped until its insert is done
    AND NOT EXISTS (SELECT 1 FROM sicoop.deferred_index d
                    WHERE e = format('%s: index %s', split_part(d.table_name, '.', 2), d.definition));
  IF extra IS NOT NULL THEN
    RAISE EXCEPTION 'sicoop.%: % object(s) of the warehouse are not as sicoop defines them: %', action, cardinality(extra),
                    array_to_string(extra[1:10], ' ')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = CASE WHEN missing IS NOT NULL
                          THEN format('Changed or missing: %s', array_to_string(missing[1:10], '; '))
                          ELSE 'Nothing sicoop defines is changed or missing.' END,
            HINT = 'Nothing was changed, nothing of the warehouse was read. A superuser reviews these objects and runs the statements given (they remove only what sicoop did not create), then calls this again.';
  END IF;
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'sicoop.%: the warehouse''s definition is not sicoop''s: % object(s) changed or missing: %', action,
                    cardinality(missing), array_to_string(missing[1:10], '; ')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Nothing was changed. Put these objects back as sicoop defines them (or restore the warehouse from a backup), then call this again.';
  END IF;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._check_warehouse_definition(text) FROM PUBLIC;

-- Whether schema sicoop holds a warehouse this version can use as it is: true if it does,
-- false if it holds none; an error saying what is wrong and what to do otherwise (another
-- layout, a partial warehouse, foreign tables in the way). Nothing is ever changed here.
CREATE OR REPLACE FUNCTION _adopt_warehouse() RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  layout text;
  present text[];
  missing text[];
BEGIN
  SELECT array_agg(r ORDER BY r) FILTER (WHERE to_regclass('sicoop.' || r) IS NOT NULL),
         array_agg(r ORDER BY r) FILTER (WHERE to_regclass('sicoop.' || r) IS NULL)
  INTO present, missing
  FROM unnest(sicoop._warehouse_relations()) AS r;
  -- A Citus worker holds the coordinator's tables (their metadata and shards), never a
  -- warehouse of its own: nothing to adopt or create there.
  IF sicoop._citus_role() = 'worker' THEN
    RETURN false;
  END IF;
  IF to_regclass('sicoop.warehouse_info') IS NULL THEN
    IF present IS NULL THEN
      RETURN false;
    END IF;
    RAISE EXCEPTION 'sicoop_etl: schema sicoop holds % but no sicoop.warehouse_info: it is not a sicoop_etl warehouse of layout 1.1 or later',
                    array_to_string(present, ', ')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Nothing was changed. Move these relations out of schema sicoop (ALTER TABLE ... SET SCHEMA), or drop them if their data is not needed.';
  END IF;
  -- Whoever owns the warehouse could have made this table run code when read (a _RETURN rule
  -- makes it a view; a child table adds rows): a superuser reads it only as a plain table.
  PERFORM sicoop._check_warehouse_shape();
  SELECT w.layout_version INTO layout FROM ONLY sicoop.warehouse_info w;
  IF layout IS DISTINCT FROM sicoop._layout_version() THEN
    IF layout IS NOT NULL AND string_to_array(layout, '.')::int[] < string_to_array(sicoop._layout_version(), '.')::int[] THEN
      RAISE EXCEPTION 'sicoop_etl %: the warehouse in schema sicoop has the older layout %', sicoop._layout_version(), layout
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = format('Nothing was changed. Install the version that wrote it and update from there, which migrates the data: DROP EXTENSION sicoop_etl; CREATE EXTENSION sicoop_etl VERSION %L; ALTER EXTENSION sicoop_etl UPDATE;', layout);
    END IF;
    RAISE EXCEPTION 'sicoop_etl %: the warehouse in schema sicoop has layout %, which this version does not know', sicoop._layout_version(), coalesce(layout, 'NULL')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Nothing was changed. Install sicoop_etl ' || coalesce(layout, '') || ' or later to use this warehouse.';
  END IF;
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'sicoop_etl: the warehouse in schema sicoop is incomplete: % missing', array_to_string(missing, ', ')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Nothing was changed. Restore the warehouse from a backup (pg_restore), or, to start afresh and lose its data, DROP SCHEMA sicoop CASCADE and re-create the extension.';
  END IF;
  RETURN true;
END
$fn$;

------------------------------------------------------------------------------------------
-- The guard: the warehouse takes no code (1.6). ARCHITECTURE.md, "One rule for every
-- superuser path".
------------------------------------------------------------------------------------------

-- What a role added to the warehouse that sicoop does not define, each with the statement that
-- removes it: every line of _warehouse_objects() that is not in the definition, but for what a
-- table lacks for a moment while it is being made or restored (a column's NOT NULL, identity,
-- statistics target, or a default not set yet: pg_dump sets them after CREATE TABLE). So a
-- trigger, rule, policy, CHECK, foreign key, index, extended statistics, inheritance, changed
-- default or generation, changed type, a view's new query, a table made a view, row-level
-- security or an object of schema sicoop the extension did not make is an addition; a missing
-- object is not one (the handover check sees those).
CREATE OR REPLACE FUNCTION _warehouse_additions(relids oid[], schema_objects boolean) RETURNS TABLE (line text, removal text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  -- (PL/pgSQL, so that the plan is made once per session: the guard calls this after every DDL
  -- command. A line that is not the definition's exactly is rare; only then is it compared, as
  -- a column, with the definition's lines of the same column.)
  RETURN QUERY
  SELECT o.line, o.removal
  FROM sicoop._warehouse_objects_of(relids, schema_objects) o,
       LATERAL (SELECT format('%s: %s', coalesce(o.relation, '-'), regexp_replace(o.line, '\s+', ' ', 'g')) AS line) a
  WHERE a.line <> ALL (sicoop._warehouse_definition())
    AND NOT EXISTS (
      SELECT 1
      FROM unnest(sicoop._warehouse_definition()) e,
           LATERAL (SELECT regexp_replace(a.line, ' notnull=\S+ identity=\S+ (default|generated)=(.*) statistics=-?\d+$', ' \1=\2') AS got,
                           regexp_replace(e, ' notnull=\S+ identity=\S+ (default|generated)=(.*) statistics=-?\d+$', ' \1=\2') AS want) n
      WHERE a.line ~ '^\S+: column \S+ ' AND e LIKE split_part(a.line, ' ', 1) || ' column ' || split_part(a.line, ' ', 3) || ' %'
        AND (n.got = n.want
             -- a column with no default yet: compared without it
             OR (n.got ~ ' default=$' AND regexp_replace(n.got, ' default=$', '') = regexp_replace(n.want, ' default=.*$', ''))));
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._warehouse_additions(oid[], boolean) FROM PUBLIC;

-- The event trigger sicoop_guard calls this at the end of every DDL command in the database,
-- whoever runs it: a command that leaves an addition (above) on the warehouse fails, and with it
-- its transaction, so that nothing an owner could plant -- a trigger, a rule, a CHECK, a default,
-- an index or statistics expression, a child table, a type -- is ever there for a superuser's
-- call, a read-only one included, or for the stream's worker to run. One mechanism for every
-- path, in place of a check in each function (which 1.0 to 1.5 had, and missed doors of).
-- SECURITY DEFINER: any role's DDL fires it, and it reads only the catalog (deparsing an
-- expression runs none of it). Our own extension script's commands are not checked here:
-- the install's adoption and the update's last step run the handover check on the whole.
CREATE OR REPLACE FUNCTION _guard_warehouse() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  SET citus.show_shards_for_app_name_prefixes = '*' AS $fn$
DECLARE
  touched oid[];
  schema_objects boolean;
  additions text[];
BEGIN
  IF to_regnamespace('sicoop') IS NULL THEN
    RETURN;
  END IF;
  -- The relations of schema sicoop the commands touched: made or altered, or given a trigger,
  -- rule, index, constraint, default, statistics, policy or publication; and those another
  -- relation the commands made or altered hangs off (a child, a foreign key).
  WITH cmd AS (
    SELECT c.classid, c.objid, c.schema_name FROM pg_event_trigger_ddl_commands() c WHERE NOT c.in_extension
  ), direct AS (
    SELECT c.objid AS rel FROM cmd c WHERE c.classid = 'pg_class'::regclass
    UNION ALL SELECT i.indrelid FROM cmd c JOIN pg_index i ON i.indexrelid = c.objid WHERE c.classid = 'pg_class'::regclass
    UNION ALL SELECT t.tgrelid FROM cmd c JOIN pg_trigger t ON t.oid = c.objid WHERE c.classid = 'pg_trigger'::regclass
    UNION ALL SELECT r.ev_class FROM cmd c JOIN pg_rewrite r ON r.oid = c.objid WHERE c.classid = 'pg_rewrite'::regclass
    UNION ALL SELECT k.conrelid FROM cmd c JOIN pg_constraint k ON k.oid = c.objid WHERE c.classid = 'pg_constraint'::regclass
    UNION ALL SELECT k.confrelid FROM cmd c JOIN pg_constraint k ON k.oid = c.objid WHERE c.classid = 'pg_constraint'::regclass
    UNION ALL SELECT d.adrelid FROM cmd c JOIN pg_attrdef d ON d.oid = c.objid WHERE c.classid = 'pg_attrdef'::regclass
    UNION ALL SELECT s.stxrelid FROM cmd c JOIN pg_statistic_ext s ON s.oid = c.objid WHERE c.classid = 'pg_statistic_ext'::regclass
    UNION ALL SELECT p.polrelid FROM cmd c JOIN pg_policy p ON p.oid = c.objid WHERE c.classid = 'pg_policy'::regclass
    UNION ALL SELECT pr.prrelid FROM cmd c JOIN pg_publication_rel pr ON pr.oid = c.objid WHERE c.classid = 'pg_publication_rel'::regclass
    UNION ALL SELECT pr.prrelid FROM cmd c JOIN pg_publication_rel pr ON pr.prpubid = c.objid WHERE c.classid = 'pg_publication'::regclass
  ), related AS (
    SELECT d.rel FROM direct d
    UNION SELECT i.inhparent FROM direct d JOIN pg_inherits i ON i.inhrelid = d.rel
    UNION SELECT i.inhrelid FROM direct d JOIN pg_inherits i ON i.inhparent = d.rel
    UNION SELECT k.confrelid FROM direct d JOIN pg_constraint k ON k.conrelid = d.rel AND k.confrelid <> 0
  )
  SELECT array_agg(DISTINCT r.rel) FILTER (WHERE c.relnamespace = 'sicoop'::regnamespace),
         -- anything else in schema sicoop (a function, a type...), or a publication of the schema
         EXISTS (SELECT 1 FROM cmd c WHERE c.schema_name = 'sicoop' AND c.classid <> ALL (ARRAY['pg_class', 'pg_trigger',
                   'pg_rewrite', 'pg_constraint', 'pg_attrdef', 'pg_statistic_ext', 'pg_policy']::regclass[]))
         OR EXISTS (SELECT 1 FROM cmd c WHERE c.classid = 'pg_publication'::regclass)
  INTO touched, schema_objects
  FROM related r LEFT JOIN pg_class c ON c.oid = r.rel;
  IF touched IS NULL AND NOT schema_objects THEN
    RETURN;
  END IF;
  SELECT array_agg(format('%s -- %s', a.line, coalesce('remove it with: ' || a.removal || ';', 'not as sicoop defines it'))
                   ORDER BY a.line COLLATE "C")
  INTO additions FROM sicoop._warehouse_additions(coalesce(touched, '{}'), schema_objects) a;
  IF additions IS NOT NULL THEN
    RAISE EXCEPTION 'sicoop: the warehouse takes nothing sicoop does not define: % would add %', tg_tag,
                    array_to_string(additions[1:5], ' ')
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'Code on the warehouse''s relations (triggers, rules, CHECKs, defaults, index or statistics expressions, policies, child tables, other types) would run with the rights of whoever reads or writes them next, a superuser included.',
            HINT = 'Nothing was changed. Build on the warehouse in a schema of your own (views, tables, indexes there).';
  END IF;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._guard_warehouse() FROM PUBLIC;
