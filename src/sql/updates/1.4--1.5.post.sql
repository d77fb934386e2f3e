-- sicoop_etl 1.4 -> 1.5, after the functions are (re)created: an operator already in place may
-- call the new functions and owns the new scratch table; the warehouse, if there is one, gets
-- the stream's state table and is checked against 1.5's definition.

DO $update$
DECLARE
  operator regrole;
BEGIN
  SELECT c.relowner::regrole INTO operator FROM pg_class c WHERE c.oid = to_regclass('sicoop.warehouse_info');
  IF operator IS NOT NULL THEN
    PERFORM sicoop._check_warehouse_shape();
    PERFORM sicoop._create_stream_state();
    -- The warehouse's, not the extension's (made inside this script, it became a member).
    ALTER EXTENSION sicoop_etl DROP TABLE sicoop.stream_state;
    IF operator::oid <> (SELECT e.extowner FROM pg_extension e WHERE e.extname = 'sicoop_etl') THEN
      -- As grant_operator would have left them (granting twice is harmless).
      EXECUTE format('GRANT EXECUTE ON %s TO %s', sicoop._operator_functions(), operator);
      EXECUTE format('ALTER TABLE sicoop.stream_key OWNER TO %s', operator);
      EXECUTE format('ALTER TABLE sicoop.stream_state OWNER TO %s', operator);
    END IF;
    PERFORM sicoop._remake_sicoop_definitions(true);
    PERFORM sicoop._check_warehouse_definition('ALTER EXTENSION sicoop_etl UPDATE');
    UPDATE ONLY sicoop.warehouse_info SET layout_version = '1.5';
  END IF;
END
$update$;
