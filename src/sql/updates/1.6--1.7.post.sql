-- sicoop_etl 1.6 -> 1.7, after the functions are (re)created: the warehouse, if there is one,
-- gets stream_state's new columns and state (layout 1.7) and is checked against 1.7's
-- definition.
DO $update$
DECLARE
  operator regrole;
BEGIN
  SELECT c.relowner::regrole INTO operator FROM pg_class c WHERE c.oid = to_regclass('sicoop.warehouse_info');
  IF operator IS NOT NULL THEN
    PERFORM sicoop._check_warehouse_shape();
    -- [stream health, issue 25] (the columns last, as a fresh stream_state has them)
    ALTER TABLE sicoop.stream_state
      ADD COLUMN last_message_at timestamptz, ADD COLUMN current_at timestamptz, ADD COLUMN alerted text,
      ADD COLUMN source_lsn pg_lsn, ADD COLUMN source_lsn_at timestamptz, ADD COLUMN full_check_requested_at timestamptz,
      DROP CONSTRAINT stream_state_state_check,
      ADD CONSTRAINT stream_state_state_check
        CHECK (state IN ('starting', 'syncing', 'streaming', 'paused', 'stalled', 'reconnecting', 'stopped', 'failed'));
    UPDATE ONLY sicoop.stream_state SET alerted = CASE WHEN lag_alerted_at IS NOT NULL THEN 'lagging' END;
    -- [end stream health]
    IF operator::oid <> (SELECT e.extowner FROM pg_extension e WHERE e.extname = 'sicoop_etl') THEN
      -- As grant_operator would have left them (granting twice is harmless).
      EXECUTE format('GRANT EXECUTE ON %s TO %s', sicoop._operator_functions(), operator);
    END IF;
    PERFORM sicoop._remake_sicoop_definitions(true);
    PERFORM sicoop._check_warehouse_definition('ALTER EXTENSION sicoop_etl UPDATE');
    UPDATE ONLY sicoop.warehouse_info SET layout_version = '1.7';
  END IF;
END
$update$;

-- >>> catch-up (issue 25, finding 6): an operator already in place owns the new scratch table,
-- as grant_operator would have left it (the stream's worker runs as the operator).
DO $catchup$
DECLARE
  operator regrole;
BEGIN
  SELECT c.relowner::regrole INTO operator FROM pg_class c WHERE c.oid = to_regclass('sicoop.warehouse_info');
  IF operator IS NOT NULL AND operator::oid <> (SELECT e.extowner FROM pg_extension e WHERE e.extname = 'sicoop_etl') THEN
    EXECUTE format('ALTER TABLE sicoop.stage_associado_state OWNER TO %s', operator);
  END IF;
END
$catchup$;
-- <<< catch-up
