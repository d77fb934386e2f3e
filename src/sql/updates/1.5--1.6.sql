-- sicoop_etl 1.5 -> 1.6: trust (issue 24).
--
-- What it does, in place:
--   * the warehouse takes no code: an event trigger refuses, at the statement, any DDL that
--     would hang code or another definition off a warehouse relation (ARCHITECTURE.md, "One
--     rule for every superuser path");
--
-- This file holds what must change before the functions are (re)created: what 1.6 drops, and
-- the extension's own tables. The build (src/sql/assemble.sh) appends every function source
-- of src/sql/, then updates/1.5--1.6.post.sql: the warehouse's data changes and checks.

-- stream-control (issue 24, finding 5): start_stream's slot name defaults to NULL, the slot of
-- this warehouse (sicoop_<system identifier>_<database OID>), no longer 'sicoop_stream'; the
-- same arguments, so the function is dropped and made again (the operator's grant is given
-- back by 1.5--1.6.post.sql).
DROP FUNCTION sicoop.start_stream(text, text);
-- (end stream-control)
