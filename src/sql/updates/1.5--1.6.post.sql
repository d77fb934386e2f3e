-- sicoop_etl 1.5 -> 1.6, after the functions are (re)created: the warehouse, if there is one,
-- is checked against 1.6's definition.

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
    IF operator::oid <> (SELECT e.extowner FROM pg_extension e WHERE e.extname = 'sicoop_etl') THEN
      -- As grant_operator would have left them (granting twice is harmless).
      EXECUTE format('GRANT EXECUTE ON %s TO %s', sicoop._operator_functions(), operator);
    END IF;
    PERFORM sicoop._remake_sicoop_definitions(true);
    PERFORM sicoop._check_warehouse_definition('ALTER EXTENSION sicoop_etl UPDATE');
  END IF;
END
$update$;
