-- sicoop_etl 1.5 -> 1.6, after the functions are (re)created: the warehouse, if there is one,
-- gets warehouse_info.canonical_labels (layout 1.6) and is checked against 1.6's definition.

-- stream-control (issue 24, finding 5): stream_state records the slot the warehouse created
-- (created_slot: the stream never uses nor drops a slot it did not create). A 1.5 stream that
-- has a position created its slot (1.5 always created the slot it streamed from).
DO $stream_control$
BEGIN
  IF to_regclass('sicoop.stream_state') IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = to_regclass('sicoop.stream_state')
                     AND a.attname = 'created_slot' AND NOT a.attisdropped) THEN
    ALTER TABLE sicoop.stream_state ADD COLUMN created_slot text;
    UPDATE sicoop.stream_state SET created_slot = slot_name || '@' || sicoop._warehouse_id() WHERE applied_lsn IS NOT NULL;
  END IF;
END
$stream_control$;
-- (end stream-control)

DO $update$
DECLARE
  operator regrole;
BEGIN
  SELECT c.relowner::regrole INTO operator FROM pg_class c WHERE c.oid = to_regclass('sicoop.warehouse_info');
  IF operator IS NOT NULL THEN
    PERFORM sicoop._check_warehouse_shape();
    -- [canonical values relabel in place, issue 24 finding 9] The labels dim_associado's
    -- versions were written with, so that an edit of sicoop.canonical_value relabels them in
    -- place. A 1.5 warehouse was labelled with the table as it is, unless an edit is still
    -- waiting for its full run (then what it replaced is lost: those labels stay as 1.5 left them).
    ALTER TABLE sicoop.warehouse_info ADD COLUMN canonical_labels jsonb;
    UPDATE ONLY sicoop.warehouse_info SET canonical_labels = sicoop._canonical_labels();
    -- [end canonical values]
    IF operator::oid <> (SELECT e.extowner FROM pg_extension e WHERE e.extname = 'sicoop_etl') THEN
      -- As grant_operator would have left them (granting twice is harmless).
      EXECUTE format('GRANT EXECUTE ON %s TO %s', sicoop._operator_functions(), operator);
    END IF;
    PERFORM sicoop._remake_sicoop_definitions(true);
    PERFORM sicoop._check_warehouse_definition('ALTER EXTENSION sicoop_etl UPDATE');
    UPDATE ONLY sicoop.warehouse_info SET layout_version = '1.6';  -- (canonical_labels)
  END IF;
END
$update$;

-- >>> stream values (issue 24, finding 4): an operator already in place owns the new scratch
-- table, as grant_operator would have left it (the stream's worker runs as the operator).
DO $stream_values$
DECLARE
  operator regrole;
BEGIN
  SELECT c.relowner::regrole INTO operator FROM pg_class c WHERE c.oid = to_regclass('sicoop.warehouse_info');
  IF operator IS NOT NULL AND operator::oid <> (SELECT e.extowner FROM pg_extension e WHERE e.extname = 'sicoop_etl') THEN
    EXECUTE format('ALTER TABLE sicoop.stage_unfit OWNER TO %s', operator);
  END IF;
END
$stream_values$;
-- <<< stream values

-- The guard (src/sql/definition.sql, _guard_warehouse), after the check above: from now on no
-- DDL may add code to the warehouse.
CREATE EVENT TRIGGER sicoop_guard ON ddl_command_end EXECUTE FUNCTION sicoop._guard_warehouse();
