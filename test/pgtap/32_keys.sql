-- Surrogate keys are assigned in business-key order (byte-wise), whatever order the source
-- returns its rows in: the same rows get the same keys in every copy of the warehouse (a
-- restore run side by side with the original, another collation). The source here inserts its
-- new members, accounts and cards in descending key order, so its scan order is the reverse.
\ir helpers/reset.sql
SELECT plan(4);

\o /dev/null
SELECT dblink_exec(:'srcconn', $$INSERT INTO associado
  SELECT 'ASSOC-K' || lpad(i::text, 3, '0'), 'Membro ' || i, '1990-01-01', 'solteiro', 'superior'
  FROM generate_series(40, 1, -1) AS i$$);
SELECT dblink_exec(:'srcconn', $$INSERT INTO conta
  SELECT 'CONTA-K' || lpad(i::text, 3, '0'), 'ASSOC-K' || lpad(i::text, 3, '0'), 'corrente', '0001', 'ativa', '2024-01-01'
  FROM generate_series(40, 1, -1) AS i$$);
SELECT dblink_exec(:'srcconn', $$INSERT INTO cartao
  SELECT 'CARTAO-K' || lpad(i::text, 3, '0'), 'CONTA-K' || lpad(i::text, 3, '0'), '9999', 'MEMBRO ' || i, 'visa', 'crédito', '2024-01-01'
  FROM generate_series(40, 1, -1) AS i$$);
\o
-- The keys a run assigned, out of business-key order: a row whose surrogate key is larger than
-- that of a row with a later business key, among the rows inserted by the same run.
CREATE FUNCTION pg_temp.out_of_order(dim text, sk text, id text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE format($q$SELECT count(*) FROM (
                      SELECT %2$I AS id, lag(%2$I) OVER (PARTITION BY run_id ORDER BY %1$I) AS previous FROM sicoop.%3$I
                      WHERE %2$I IS NOT NULL) x
                    WHERE x.previous COLLATE "C" > x.id COLLATE "C"$q$, sk, id, dim) INTO n;
  RETURN n;
END
$$;
SELECT lives_ok('CALL sicoop.run_pipeline()', 'a first load of a source whose rows come in descending key order');
SELECT is(pg_temp.out_of_order('dim_associado', 'sk_associado', 'id_associado'), 0::bigint,
          'dim_associado: surrogate keys follow the business keys');
SELECT is(pg_temp.out_of_order('dim_conta', 'sk_conta', 'id_conta'), 0::bigint, 'dim_conta too');
SELECT is(pg_temp.out_of_order('dim_cartao', 'sk_cartao', 'id_cartao'), 0::bigint, 'dim_cartao too');

SELECT * FROM finish();
