-- The loads' SQL interface: the step functions and run_pipeline() (their logic is C++:
-- src/pipeline.cpp runs the steps of src/steps/), the settings a run reads, index deferral for
-- first loads, and export_flat().

-- First loads build secondary indexes after the rows are in (faster than maintaining them
-- row by row): their definitions wait in sicoop.deferred_index meanwhile.
-- (Rebuilding an index needs CREATE on schema sicoop, which an operator does not get: for
-- one, the indexes stay in place and are maintained row by row.)
CREATE OR REPLACE FUNCTION _defer_indexes(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  ix record;
BEGIN
  IF NOT has_schema_privilege('sicoop', 'CREATE') THEN
    RETURN;
  END IF;
  FOR ix IN SELECT i.indexrelid::regclass AS index_name, pg_get_indexdef(i.indexrelid) AS definition
            FROM pg_index i WHERE i.indrelid = tbl AND NOT i.indisprimary AND NOT i.indisunique
  LOOP
    INSERT INTO sicoop.deferred_index VALUES (tbl::text, ix.index_name::text, ix.definition);
    EXECUTE format('DROP INDEX %s', ix.index_name);
  END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._defer_indexes(regclass) FROM PUBLIC;  -- operator

-- Keeps, of the indexes a first load deferred, only those sicoop defines: the next run builds
-- them, as whoever owns the warehouse then; anything else a previous owner put there is dropped.
CREATE OR REPLACE FUNCTION _keep_sicoop_deferred_indexes() RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
DELETE FROM sicoop.deferred_index d
WHERE format('%s: index %s', split_part(d.table_name, '.', 2), d.definition) <> ALL (sicoop._warehouse_definition())
   OR d.table_name <> 'sicoop.' || split_part(d.table_name, '.', 2)
$$;
REVOKE ALL ON FUNCTION sicoop._keep_sicoop_deferred_indexes() FROM PUBLIC;

-- Which of these tables (in schema sicoop) are empty.
CREATE OR REPLACE FUNCTION _empty_tables(tables text[]) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  t text;
  empty text[] := '{}';
  has_rows boolean;
BEGIN
  FOREACH t IN ARRAY tables LOOP
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM sicoop.%I)', t) INTO has_rows;
    IF NOT has_rows THEN
      empty := empty || t;
    END IF;
  END LOOP;
  RETURN empty;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._empty_tables(text[]) FROM PUBLIC;  -- operator


-- Summarizes the table's new BRIN page ranges (an unsummarized range matches every query).
-- (1.12) The batch steps call it after they append to the movements' tables, whose BRIN
-- indexes have no autosummarize (src/sql/warehouse.sql). A pass over the index's range map,
-- and over the heap pages of the new ranges only. On Citus, each shard's indexes, where the
-- shard is (a BRIN summary takes rows still being written, so the step's own rows count).
CREATE OR REPLACE FUNCTION _summarize_ranges(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  ix regclass;
  failed text;
BEGIN
  IF sicoop._is_citus_table(tbl) THEN
    SELECT string_agg(r.result, '; ') INTO failed
    FROM run_command_on_shards(tbl, $cmd$
      SELECT pg_catalog.count(pg_catalog.brin_summarize_new_values(i.indexrelid))
      FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
      JOIN pg_catalog.pg_am a ON a.oid OPERATOR(pg_catalog.=) c.relam
      WHERE i.indrelid OPERATOR(pg_catalog.=) '%s'::pg_catalog.regclass AND a.amname OPERATOR(pg_catalog.=) 'brin'$cmd$) r
    WHERE NOT r.success;
    IF failed IS NOT NULL THEN  -- (slower reads until VACUUM summarizes them, not wrong ones)
      RAISE WARNING 'sicoop: the new BRIN ranges of some shards of % were not summarized: %', tbl, failed;
    END IF;
    RETURN;
  END IF;
  FOR ix IN SELECT i.indexrelid::regclass FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = tbl AND a.amname = 'brin'
  LOOP
    PERFORM brin_summarize_new_values(ix);
  END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._summarize_ranges(regclass) FROM PUBLIC;  -- operator

-- After a bulk load into a table whose BRIN indexes stayed live: summarize the new page
-- ranges, and refresh the statistics.
CREATE OR REPLACE FUNCTION _summarize(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM sicoop._summarize_ranges(tbl);
  PERFORM sicoop._analyze(tbl);
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._summarize(regclass) FROM PUBLIC;  -- operator

CREATE OR REPLACE FUNCTION _restore_indexes(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  ix record;
BEGIN
  FOR ix IN DELETE FROM sicoop.deferred_index WHERE table_name = tbl::text RETURNING definition LOOP
    EXECUTE ix.definition;
  END LOOP;
  -- (1.9) The live BRIN indexes' new ranges too, and the statistics once: a step used to
  -- analyze here, then again in _summarize.
  PERFORM sicoop._summarize(tbl);
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._restore_indexes(regclass) FROM PUBLIC;  -- operator

------------------------------------------------------------------------------------------
-- Reference time: sicoop.as_of (timestamptz; empty = now()).
------------------------------------------------------------------------------------------
-- (Names in the SQL functions below are qualified, so that they resolve the same whatever the
-- caller's search_path, and the functions stay inlinable: a SET clause would prevent it.)
CREATE OR REPLACE FUNCTION reference_time() RETURNS timestamptz LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS
$$ SELECT coalesce(nullif(pg_catalog.current_setting('sicoop.as_of', true), '')::pg_catalog.timestamptz, pg_catalog.now()) $$;

-- The run's reference time (sicoop.as_of, empty = now()), once every setting a run reads is
-- checked: a finite reference time, not earlier than the latest successful run's (runs go
-- forward; replaying history in order works) nor later than now() plus five minutes (a typo
-- must not poison every later run); a time zone PostgreSQL knows; a lookback from 0 to 10
-- years; a log retention that is a positive interval (or empty). SQLSTATE 22023 otherwise, before anything is read or written.
CREATE OR REPLACE FUNCTION _run_settings() RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  as_of text := current_setting('sicoop.as_of', true);
  zone text := current_setting('sicoop.timezone', true);
  lookback_text text := coalesce(nullif(current_setting('sicoop.lookback', true), ''), '3 days');
  ref timestamptz;
  latest timestamptz;
  lookback interval;
  retention interval;
BEGIN
  BEGIN
    ref := coalesce(nullif(as_of, '')::timestamptz, now());
  EXCEPTION WHEN data_exception THEN
    RAISE EXCEPTION 'sicoop.as_of is not a time: %', SQLERRM
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Set a timestamptz such as ''2025-08-15 10:00-03'', or leave it empty for now().';
  END;
  IF NOT isfinite(ref) THEN
    RAISE EXCEPTION 'sicoop.as_of must be a finite time, not %', ref
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Leave sicoop.as_of empty for now().';
  END IF;
  IF ref > now() + interval '5 minutes' THEN
    RAISE EXCEPTION 'sicoop.as_of (%) is in the future (now is %)', ref, now()
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Leave sicoop.as_of empty for now(), or set a past time to replay history.';
  END IF;
  SELECT max(r.as_of) INTO latest FROM sicoop.run_log r WHERE r.status = 'succeeded';
  IF ref < latest THEN
    RAISE EXCEPTION 'sicoop.as_of (%) is earlier than the reference time of the latest successful run (%)', ref, latest
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Runs go forward in time: replay history in order, or leave sicoop.as_of empty for now().';
  END IF;
  BEGIN
    PERFORM now() AT TIME ZONE zone;
  EXCEPTION WHEN data_exception OR invalid_parameter_value OR feature_not_supported THEN
    RAISE EXCEPTION 'sicoop.timezone is not a time zone: %', SQLERRM
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use a name such as America/Sao_Paulo (pg_timezone_names).';
  END;
  BEGIN
    lookback := lookback_text::interval;
  EXCEPTION WHEN data_exception THEN
    RAISE EXCEPTION 'sicoop.lookback is not an interval: %', SQLERRM
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use an interval such as ''3 days''.';
  END;
  IF lookback < interval '0' OR lookback > interval '10 years' THEN
    RAISE EXCEPTION 'sicoop.lookback must be between 0 and 10 years, not %', lookback
      USING ERRCODE = 'invalid_parameter_value', HINT = 'The default is ''3 days''.';
  END IF;
  BEGIN
    retention := nullif(current_setting('sicoop.log_retention', true), '')::interval;
  EXCEPTION WHEN data_exception THEN
    RAISE EXCEPTION 'sicoop.log_retention is not an interval: %', SQLERRM
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use an interval such as ''90 days'', or empty to keep the logs forever.';
  END;
  IF retention <= interval '0' THEN
    RAISE EXCEPTION 'sicoop.log_retention must be a positive interval, not %', retention
      USING ERRCODE = 'invalid_parameter_value', HINT = 'The default is ''90 days''; empty keeps the logs forever.';
  END IF;
  RETURN ref;
END
$fn$;

-- Where an incremental read of the source's movements starts: the watermark (the latest
-- movement time the previous copy saw in the source, but never later than the run's local
-- reference time: a future-dated row must not hide the new ones) minus the lookback
-- (sicoop.lookback, default 3 days), taken back to the start of its day. Whole days: the days
-- before the window are compared and re-read whole (by their count and sum), so a window
-- starting at a time of day would leave the boundary day's earlier hours in neither (1.6 and
-- before: a change there failed the reconciliation until the next full run). NULL before a
-- first load.
CREATE OR REPLACE FUNCTION movement_window_start(reference_local timestamp) RETURNS timestamp LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS
$$ SELECT pg_catalog.date_trunc('day', least(watermark, reference_local)
          OPERATOR(pg_catalog.-) coalesce(nullif(pg_catalog.current_setting('sicoop.lookback', true), ''),
                                                     '3 days')::pg_catalog.interval)
   FROM sicoop.source_sync WHERE table_name OPERATOR(pg_catalog.=) 'src_movimentacao_cartao'::pg_catalog.text $$;

-- Writes the flat file on the server (C++, src/export.cpp): a plain file name goes into
-- sicoop.export_directory, the directory a superuser allowed; an absolute path needs the
-- privileges of pg_write_server_files, as COPY's. Returns the number of movements.
CREATE OR REPLACE FUNCTION export_flat(path text) RETURNS bigint
LANGUAGE c SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'sicoop_export_flat';
REVOKE ALL ON FUNCTION sicoop.export_flat(text) FROM PUBLIC;  -- operator

------------------------------------------------------------------------------------------
-- The steps and the pipeline (C++: src/pipeline.cpp orchestrates, src/steps/ holds the SQL).
------------------------------------------------------------------------------------------
-- full => true: process everything (reconcile) instead of what changed since the step's last run.
CREATE OR REPLACE FUNCTION run_step(step text, "full" boolean DEFAULT false) RETURNS step_result
LANGUAGE c SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'sicoop_run_step';
REVOKE ALL ON FUNCTION sicoop.run_step(text, boolean) FROM PUBLIC;  -- operator

CREATE OR REPLACE FUNCTION load_raw() RETURNS step_result LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$ SELECT * FROM sicoop.run_step('load_raw') $$;
REVOKE ALL ON FUNCTION sicoop.load_raw() FROM PUBLIC;  -- operator
CREATE OR REPLACE FUNCTION load_trusted() RETURNS step_result LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$ SELECT * FROM sicoop.run_step('load_trusted') $$;
REVOKE ALL ON FUNCTION sicoop.load_trusted() FROM PUBLIC;  -- operator
CREATE OR REPLACE FUNCTION load_dims() RETURNS step_result LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$ SELECT * FROM sicoop.run_step('load_dims') $$;
REVOKE ALL ON FUNCTION sicoop.load_dims() FROM PUBLIC;  -- operator
CREATE OR REPLACE FUNCTION scd2_associado() RETURNS step_result LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$ SELECT * FROM sicoop.run_step('scd2_associado') $$;
REVOKE ALL ON FUNCTION sicoop.scd2_associado() FROM PUBLIC;  -- operator
CREATE OR REPLACE FUNCTION load_fato() RETURNS step_result LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$ SELECT * FROM sicoop.run_step('load_fato') $$;
REVOKE ALL ON FUNCTION sicoop.load_fato() FROM PUBLIC;  -- operator

-- full => true: a full reconciliation (whole source compared, catching what the movements'
-- watermark cannot see: late inserts and edits older than the lookback, old deletions).
CREATE OR REPLACE PROCEDURE run_pipeline("full" boolean DEFAULT false)
LANGUAGE c AS 'MODULE_PATHNAME', 'sicoop_run_pipeline';
REVOKE ALL ON PROCEDURE sicoop.run_pipeline(boolean) FROM PUBLIC;  -- granted by grant_operator
