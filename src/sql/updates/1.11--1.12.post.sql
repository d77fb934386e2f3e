-- sicoop_etl 1.11 -> 1.12, after the functions are (re)created: the warehouse, if there is one,
-- is checked as every update does; its three movement BRIN indexes are made again with 4 pages
-- per range and no autosummarize (a first load's deferred ones only get their new definition:
-- the load builds them); then it is checked against 1.12's definition and marked layout 1.12. The operator, if
-- there is one, gets the new functions it runs.
DO $update$
DECLARE
  operator regrole;
  ix record;
BEGIN
  SELECT c.relowner::regrole INTO operator FROM pg_class c WHERE c.oid = to_regclass('sicoop.warehouse_info');
  IF operator IS NOT NULL THEN
    PERFORM sicoop._check_warehouse_shape();
    -- [BRIN ranges of 4 pages, issue 28] (the definitions as sicoop._create_warehouse writes them)
    FOR ix IN SELECT * FROM (VALUES
        ('sicoop.raw_movimentacao_cartao', 'raw_movimentacao_cartao_run',
         'CREATE INDEX raw_movimentacao_cartao_run ON sicoop.raw_movimentacao_cartao USING brin (run_id) WITH (pages_per_range=''4'')'),
        ('sicoop.raw_movimentacao_cartao', 'raw_movimentacao_cartao_data',
         'CREATE INDEX raw_movimentacao_cartao_data ON sicoop.raw_movimentacao_cartao USING brin (data_movimentacao) WITH (pages_per_range=''4'')'),
        ('sicoop.trusted_movimentacao_cartao', 'trusted_movimentacao_cartao_run',
         'CREATE INDEX trusted_movimentacao_cartao_run ON sicoop.trusted_movimentacao_cartao USING brin (run_id) WITH (pages_per_range=''4'')'))
        AS i (table_name, index_name, definition)
    LOOP
      UPDATE sicoop.deferred_index d SET definition = ix.definition
      WHERE d.table_name = ix.table_name AND d.index_name = 'sicoop.' || ix.index_name;
      IF NOT FOUND THEN
        EXECUTE format('DROP INDEX IF EXISTS sicoop.%I', ix.index_name);
        EXECUTE ix.definition;
      END IF;
    END LOOP;
    -- [end BRIN ranges]
    IF operator::oid <> (SELECT e.extowner FROM pg_extension e WHERE e.extname = 'sicoop_etl') THEN
      -- As grant_operator would have left them (granting twice is harmless).
      EXECUTE format('GRANT EXECUTE ON %s TO %s', sicoop._operator_functions(), operator);
    END IF;
    PERFORM sicoop._remake_sicoop_definitions(true);
    PERFORM sicoop._check_warehouse_definition('ALTER EXTENSION sicoop_etl UPDATE');
    UPDATE ONLY sicoop.warehouse_info SET layout_version = '1.12';
  END IF;
END
$update$;
