-- sicoop_etl 1.5 -> 1.6: trust (issue 24).
--
-- What it does, in place:
--   * the warehouse takes no code: an event trigger refuses, at the statement, any DDL that
--     would hang code or another definition off a warehouse relation (ARCHITECTURE.md, "One
--     rule for every superuser path");
--   * no full card number is written: masked in the COPY stream, before the first write;
--   * the stream fails closed: its own slot, the publication and replica identities checked,
--     a value that does not fit a reject, the worker acting for the warehouse's owner;
--   * canonical values relabel every SCD2 version in place (warehouse_info.canonical_labels).
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

-- stream-control (issue 24, finding 5): start_stream's slot name defaults to NULL, the slot of
-- this warehouse (sicoop_<system identifier>_<database OID>), no longer 'sicoop_stream'; the
-- same arguments, so the function is dropped and made again (the operator's grant is given
-- back by 1.5--1.6.post.sql).
DROP FUNCTION sicoop.start_stream(text, text);
-- (end stream-control)
