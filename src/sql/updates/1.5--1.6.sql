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

-- >>> stream values (issue 24, finding 4): a micro-batch's values that are not of their stage
-- column's type land as NULL and are named here; the table's fits rule rejects their rows.
CREATE UNLOGGED TABLE sicoop.stage_unfit (table_name text NOT NULL, record_id text, column_name text NOT NULL);
ALTER TABLE sicoop.stage_unfit ALTER COLUMN table_name SET STATISTICS 0, ALTER COLUMN record_id SET STATISTICS 0,
  ALTER COLUMN column_name SET STATISTICS 0;
REVOKE ALL ON sicoop.stage_unfit FROM PUBLIC;
-- <<< stream values
