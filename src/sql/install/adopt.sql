-- Re-created over a warehouse that outlived the extension (DROP EXTENSION keeps the data),
-- the extension adopts it, or refuses with the reason, before anything is changed.
DO $adopt$
BEGIN
  IF sicoop._adopt_warehouse() THEN
    PERFORM sicoop._remake_sicoop_definitions(true);
    PERFORM sicoop._check_warehouse_definition('adopting the warehouse');
    -- A warning: extension scripts run with client_min_messages at WARNING or above.
    RAISE WARNING 'sicoop_etl: adopting the warehouse already in schema sicoop (layout %): its data is kept as it is',
                  sicoop._layout_version();
  END IF;
END
$adopt$;

-- The guard (src/sql/definition.sql, _guard_warehouse): no DDL may add code to the warehouse.
CREATE EVENT TRIGGER sicoop_guard ON ddl_command_end EXECUTE FUNCTION sicoop._guard_warehouse();
