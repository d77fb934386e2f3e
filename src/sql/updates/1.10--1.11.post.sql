-- sicoop_etl 1.10 -> 1.11, after the functions are (re)created: the warehouse, if there is one,
-- is checked against the definition, as every update does, and marked layout 1.11 (its tables
-- are 1.10's: the mark says which version's functions it was last checked with); the operator,
-- if there is one, gets the new functions it runs.
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
    UPDATE ONLY sicoop.warehouse_info SET layout_version = '1.11';
  END IF;
END
$update$;
