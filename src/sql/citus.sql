-- The warehouse on a Citus cluster (issue 27, 1.8). ARCHITECTURE.md, "On Citus", says why
-- this layout: the movements' three tables (raw, trusted, fact) hash-distributed by
-- id_movimentacao_cartao and co-located, so that ingestion, cleaning and the fact load of a
-- movement run on the worker that holds it; the dimensions as reference tables (a copy on
-- every node), so that the fact joins them on the workers; everything else (the small
-- layers, the run log, rejects, the incremental state, the stage) local to the coordinator,
-- where the run's orchestration reads it.

-- The movements' tables, distributed by their key, in co-location order (the first one's
-- shards place the others').
CREATE OR REPLACE FUNCTION _citus_distributed_tables() RETURNS text[] LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT ARRAY['raw_movimentacao_cartao', 'trusted_movimentacao_cartao', 'fato_movimentacao_cartao']
$$;
CREATE OR REPLACE FUNCTION _citus_reference_tables() RETURNS text[] LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT ARRAY['dim_associado', 'dim_conta', 'dim_cartao', 'dim_data']
$$;

-- This database's part in a Citus cluster: 'none' (Citus is not installed here),
-- 'coordinator' (group 0, where the metadata is made) or 'worker'.
CREATE OR REPLACE FUNCTION _citus_role() RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension e WHERE e.extname = 'citus') THEN
    RETURN 'none';
  END IF;
  RETURN CASE WHEN (SELECT g.groupid FROM pg_dist_local_group g) OPERATOR(pg_catalog.=) 0 THEN 'coordinator' ELSE 'worker' END;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._citus_role() FROM PUBLIC;  -- operator

-- The Citus shards among schema sicoop's relations: each shard, the warehouse table it is a
-- copy of, and the suffix Citus gives its names ("_<shard id>", on the table and on its
-- indexes and constraints). From Citus's metadata (pg_dist_shard). On a worker, a shard Citus
-- is creating is not in the worker's metadata yet (the coordinator sends it after the shards):
-- there a relation named <warehouse table>_<digits> is taken for one. Either way a shard's
-- objects are then compared with its table's definition (sicoop._warehouse_objects_of): what
-- the guard and the handover check refuse on a table they refuse on each shard of it.
CREATE OR REPLACE FUNCTION _citus_shards() RETURNS TABLE (shard oid, table_name name, suffix text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET citus.show_shards_for_app_name_prefixes = '*' AS $fn$
DECLARE
  role text := sicoop._citus_role();
BEGIN
  IF role OPERATOR(pg_catalog.=) 'none' THEN
    RETURN;
  END IF;
  RETURN QUERY
  SELECT c.oid, t.relname, '_' || s.shardid
  FROM pg_dist_shard s
  JOIN pg_class t ON t.oid OPERATOR(pg_catalog.=) s.logicalrelid AND t.relnamespace OPERATOR(pg_catalog.=) 'sicoop'::regnamespace
  JOIN pg_class c ON c.relnamespace OPERATOR(pg_catalog.=) t.relnamespace
                 AND c.relname OPERATOR(pg_catalog.=) (t.relname || '_' || s.shardid)::name
  UNION
  SELECT c.oid, m[1]::name, '_' || m[2]
  FROM pg_class c, LATERAL regexp_match(c.relname, '^(.+)(?:_)([0-9]+)$') m
  WHERE role OPERATOR(pg_catalog.=) 'worker' AND c.relnamespace OPERATOR(pg_catalog.=) 'sicoop'::regnamespace
    AND m[1] OPERATOR(pg_catalog.=) ANY (sicoop._citus_distributed_tables() || sicoop._citus_reference_tables());
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._citus_shards() FROM PUBLIC;

-- Whether the warehouse's table `relation` is a Citus table (distributed or reference).
CREATE OR REPLACE FUNCTION _is_citus_table(relation regclass) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF sicoop._citus_role() OPERATOR(pg_catalog.=) 'none' THEN
    RETURN false;
  END IF;
  RETURN EXISTS (SELECT 1 FROM pg_dist_partition p WHERE p.logicalrelid OPERATOR(pg_catalog.=) relation);
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._is_citus_table(regclass) FROM PUBLIC;  -- operator

-- ANALYZE of the warehouse's tables that are not Citus's: Citus gathers no statistics for
-- its tables on the coordinator (the workers keep their shards' own), and ANALYZE of a
-- reference table fails in a transaction that wrote it by local execution.
-- (1.9) A run's statements need the statistics of keys, dates, amounts and flags, not of free
-- text: sorting the sample's names, descriptions and ids in the database's ICU collation was
-- most of every ANALYZE. So a run analyzes every column but the collatable ones that are
-- neither indexed nor an id (id_*: a parent's key), nor a text key unique on its own: the
-- planner counts such a key's distinct values from its unique index. An ANALYZE of some columns leaves the table's
-- count of changes since its last ANALYZE as it was, so autovacuum still analyzes the whole
-- table soon after, for the readers' queries, outside the run.
CREATE OR REPLACE FUNCTION _analyze(VARIADIC relations regclass[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  targets text;
BEGIN
  SELECT string_agg(CASE WHEN c.columns IS NULL THEN c.r::text ELSE format('%s (%s)', c.r, c.columns) END, ', ') INTO targets
  FROM (SELECT r, (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
                   FROM pg_attribute a
                   WHERE a.attrelid OPERATOR(pg_catalog.=) r AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
                     AND (a.attcollation OPERATOR(pg_catalog.=) 0
                          OR ((a.attname LIKE 'id\_%'
                               OR EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) r
                                                                   AND a.attnum OPERATOR(pg_catalog.=) ANY (i.indkey)))
                              AND NOT EXISTS (SELECT 1 FROM pg_index u WHERE u.indrelid OPERATOR(pg_catalog.=) r AND u.indisunique
                                                                       AND u.indnkeyatts OPERATOR(pg_catalog.=) 1 AND u.indpred IS NULL
                                                                       AND u.indkey[0] OPERATOR(pg_catalog.=) a.attnum)))) AS columns
        FROM unnest(relations) r
        WHERE NOT sicoop._is_citus_table(r)) c;
  IF targets IS NOT NULL THEN
    EXECUTE 'ANALYZE ' || targets;
  END IF;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._analyze(regclass[]) FROM PUBLIC;  -- operator

-- Makes this warehouse a Citus one (on the coordinator, with its workers added): the
-- movements' tables distributed and co-located, the dimensions reference tables. Their rows
-- are moved to the workers by Citus (create_distributed_table / create_reference_table), which
-- blocks writes to each table while it copies it; runs and the stream wait for the whole
-- call (it locks warehouse_info first, as grant_operator does). Readers keep reading. Tables
-- already distributed are left as they are, so a call that was interrupted can be repeated.
CREATE OR REPLACE FUNCTION distribute(shard_count int DEFAULT 32) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  t text;
  made text[] := '{}';
BEGIN
  IF sicoop._citus_role() OPERATOR(pg_catalog.<>) 'coordinator' THEN
    RAISE EXCEPTION 'sicoop.distribute: this database is not a Citus coordinator'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Nothing was changed. Load citus (shared_preload_libraries), CREATE EXTENSION citus, then SELECT citus_set_coordinator_host(...) and citus_add_node(...) for each worker.';
  END IF;
  IF to_regclass('sicoop.warehouse_info') IS NULL THEN
    RAISE EXCEPTION 'sicoop.distribute: there is no warehouse yet'
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Nothing was changed. Call sicoop.connect_source() first: it creates the warehouse.';
  END IF;
  LOCK TABLE sicoop.warehouse_info IN ACCESS EXCLUSIVE MODE;
  PERFORM sicoop._check_warehouse_definition('distribute');
  FOREACH t IN ARRAY sicoop._citus_distributed_tables() LOOP
    CONTINUE WHEN sicoop._is_citus_table(format('sicoop.%I', t)::regclass);
    IF t OPERATOR(pg_catalog.=) 'raw_movimentacao_cartao' THEN
      PERFORM create_distributed_table(format('sicoop.%I', t), 'id_movimentacao_cartao', shard_count => shard_count);
    ELSE
      PERFORM create_distributed_table(format('sicoop.%I', t), 'id_movimentacao_cartao', colocate_with => 'sicoop.raw_movimentacao_cartao');
    END IF;
    made := made || t;
  END LOOP;
  FOREACH t IN ARRAY sicoop._citus_reference_tables() LOOP
    CONTINUE WHEN sicoop._is_citus_table(format('sicoop.%I', t)::regclass);
    PERFORM create_reference_table(format('sicoop.%I', t));
    made := made || t;
  END LOOP;
  -- The rows Citus copied out stay in the coordinator's own files until truncated: gone now.
  FOREACH t IN ARRAY made LOOP
    PERFORM truncate_local_data_after_distributing_table(format('sicoop.%I', t));
  END LOOP;
  PERFORM sicoop._check_warehouse_definition('distribute');
  RETURN format('sicoop: %s of the warehouse''s tables made Citus tables (%s)', cardinality(made),
                coalesce(nullif(array_to_string(made, ', '), ''), 'they already were'));
END
$fn$;
REVOKE ALL ON FUNCTION sicoop.distribute(int) FROM PUBLIC;

-- The way back: every Citus table of the warehouse made a local table again, its rows brought
-- back from the workers (undistribute_table), under the same lock as distribute().
-- Citus makes each table anew under a name of its own and swaps it in, which the guard would
-- refuse as an addition: the guard is off for this transaction only (no other session ever
-- sees it off), and the handover check at the end compares the whole warehouse with its
-- definition.
CREATE OR REPLACE FUNCTION undistribute() RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  t text;
  made text[] := '{}';
BEGIN
  IF sicoop._citus_role() OPERATOR(pg_catalog.<>) 'coordinator' OR to_regclass('sicoop.warehouse_info') IS NULL THEN
    RETURN 'sicoop: no Citus table in the warehouse';
  END IF;
  LOCK TABLE sicoop.warehouse_info IN ACCESS EXCLUSIVE MODE;
  PERFORM sicoop._check_warehouse_definition('undistribute');
  ALTER EVENT TRIGGER sicoop_guard DISABLE;
  FOREACH t IN ARRAY sicoop._citus_reference_tables() || sicoop._citus_distributed_tables() LOOP
    CONTINUE WHEN NOT sicoop._is_citus_table(format('sicoop.%I', t)::regclass);
    PERFORM sicoop._undistribute_table(format('sicoop.%I', t));
    made := made || t;
  END LOOP;
  ALTER EVENT TRIGGER sicoop_guard ENABLE;
  PERFORM sicoop._check_warehouse_definition('undistribute');
  RETURN format('sicoop: %s of the warehouse''s tables made local again (%s)', cardinality(made),
                coalesce(nullif(array_to_string(made, ', '), ''), 'none was a Citus table'));
END
$fn$;
REVOKE ALL ON FUNCTION sicoop.undistribute() FROM PUBLIC;

-- One table back from Citus. undistribute_table refuses a table with an identity column (the
-- dimensions' surrogate keys), and Citus cannot propagate DROP IDENTITY: the identity is dropped
-- on the coordinator alone (the workers' copies go with the table's metadata), the table
-- brought back, and the identity made again at its sequence's position. (By name: the table
-- that comes back is a new relation.)
CREATE OR REPLACE FUNCTION _undistribute_table(tbl text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  c record;
  names name[] := '{}';
  kinds text[] := '{}';
  lasts bigint[] := '{}';
  calleds boolean[] := '{}';
  last bigint;
  called boolean;
  propagation text := current_setting('citus.enable_ddl_propagation');
BEGIN
  FOR c IN SELECT a.attname, a.attidentity::text AS kind, pg_get_serial_sequence(tbl, a.attname) AS seq
           FROM pg_attribute a
           WHERE a.attrelid OPERATOR(pg_catalog.=) tbl::regclass AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
             AND a.attidentity OPERATOR(pg_catalog.<>) '' LOOP
    EXECUTE format('SELECT last_value, is_called FROM %s', c.seq) INTO last, called;
    names := names || c.attname;
    kinds := kinds || c.kind;
    lasts := lasts || last;
    calleds := calleds || called;
    PERFORM set_config('citus.enable_ddl_propagation', 'off', true);
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I DROP IDENTITY', tbl, c.attname);
    PERFORM set_config('citus.enable_ddl_propagation', propagation, true);
  END LOOP;
  PERFORM undistribute_table(tbl);
  FOR i IN 1 .. cardinality(names) LOOP
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I ADD GENERATED %s AS IDENTITY', tbl, names[i],
                   CASE kinds[i] WHEN 'a' THEN 'ALWAYS' ELSE 'BY DEFAULT' END);
    PERFORM setval(pg_get_serial_sequence(tbl, names[i]), lasts[i], calleds[i]);
  END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._undistribute_table(text) FROM PUBLIC;
