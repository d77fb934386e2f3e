-- One round of 60_incremental.sql (psql variables round, ops): random changes to the source,
-- an incremental run, a from-scratch reference at the same reference time, the comparison.
SELECT format('2025-08-16 %s:00:00-03', lpad((6 + :round)::text, 2, '0')) AS round_as_of \gset
\o /dev/null
SELECT pg_temp.random_round(:'srcconn', :round, :ops);
\o
SET sicoop.as_of = :'round_as_of';
CALL sicoop.run_pipeline();
\o /dev/null
SELECT pg_temp.rebuild_reference(:'refconn', :'pgport', :'srcdb', :'round_as_of');
\o
SELECT * FROM pg_temp.compare_all(:'refconn', :round);
