-- sicoop_etl 1.4 -> 1.5: streaming (issue 19).
--
-- What it does, in place (the warehouse's layout becomes 1.5: the stream's state table):
--   * the source's changes can be followed on logical replication by a background worker
--     (sicoop.start_stream(), stop_stream(), resync_stream(), stream_status());
--   * the row rules may check a micro-batch (sicoop._apply_row_rules gains `partial`).
--
-- This file holds what must change before the functions are (re)created: what 1.5 drops, and
-- the extension's own tables. The build (src/sql/assemble.sh) appends every function source
-- of src/sql/, then updates/1.4--1.5.post.sql: the warehouse's data changes and checks.

-- (Replaced by the same function with one more argument, `partial`.)
DROP FUNCTION sicoop._apply_row_rules(text, bigint, date, regclass);

-- A stream's micro-batch (as install/scratch.sql has it).
CREATE UNLOGGED TABLE sicoop.stream_key (table_name text NOT NULL, record_id text, deleted boolean NOT NULL,
                                         commit_time timestamptz NOT NULL, keep_from_raw text[] NOT NULL DEFAULT '{}');
CREATE INDEX stream_key_record ON sicoop.stream_key (table_name, record_id);
ALTER TABLE sicoop.stream_key ALTER COLUMN record_id SET STATISTICS 0;
REVOKE ALL ON sicoop.stream_key FROM PUBLIC;
