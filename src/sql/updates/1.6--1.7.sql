-- sicoop_etl 1.6 -> 1.7: the stream as production runs it (issue 25).
--
-- What it does, in place:
--   * a restored or recovered warehouse never skips changes: the stream compares its position
--     with the slot's before it streams;
--   * the stream's health is seen from the source's side (its WAL position, the slot's retained
--     WAL), a stall is a state of its own, and the watchdog alerts once per condition;
--   * a full check while streaming runs in the worker, at the stream's own position.
--
-- This file holds what must change before the functions are (re)created: what 1.7 drops, and
-- the extension's own tables. The build (src/sql/assemble.sh) appends every function source
-- of src/sql/, then updates/1.6--1.7.post.sql: the warehouse's data changes and checks.

-- stream health (issue 25): stream_status() reports the source's side too (new columns), so
-- it is dropped and made again (the operator's grant is given back by 1.6--1.7.post.sql).
DROP FUNCTION sicoop.stream_status();
