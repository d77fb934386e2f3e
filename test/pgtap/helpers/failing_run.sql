-- A run the test expects to fail (it then reads run_log): its start time in :started, and its
-- error not ending the file. Included with the output off (\o /dev/null); it turns it on.
SELECT clock_timestamp() AS started \gset
\o
\set ON_ERROR_STOP 0
CALL sicoop.run_pipeline();
\set ON_ERROR_STOP 1
