-- sicoop_etl 1.6 -> 1.7: the stream as production runs it (issue 25).
--
-- What it does, in place:
--   * a restored or recovered warehouse never skips changes: the stream compares its position
--     with the slot's before it streams;
--   * the stream's health is seen from the source's side (its WAL position, the slot's retained
--     WAL), a stall is a state of its own, and the watchdog alerts once per condition;
--   * a full check while streaming runs in the worker, at the stream's own position.
--   * a repeated member no longer cuts a micro-batch: SCD2 replays its earlier states (catch-up).
--
-- This file holds what must change before the functions are (re)created: what 1.7 drops, and
-- the extension's own tables. The build (src/sql/assemble.sh) appends every function source
-- of src/sql/, then updates/1.6--1.7.post.sql: the warehouse's data changes and checks.

-- stream health (issue 25): stream_status() reports the source's side too (new columns), so
-- it is dropped and made again (the operator's grant is given back by 1.6--1.7.post.sql).
DROP FUNCTION sicoop.stream_status();

-- >>> catch-up (issue 25, finding 6): a member's earlier states in a micro-batch, for SCD2
-- (src/sql/install/scratch.sql says what it holds).
CREATE UNLOGGED TABLE sicoop.stage_associado_state (
    state_no int NOT NULL,
    round int NOT NULL,
    commit_time timestamptz NOT NULL,
    deleted boolean NOT NULL,
    keep_from_raw text[] NOT NULL DEFAULT '{}',
    id_associado text,
    nome text,
    data_nascimento date,
    estado_civil text,
    escolaridade text,
    rejected boolean NOT NULL DEFAULT false
);
-- (Named apart from the stage: a plain index column has no statistics to withhold.)
CREATE INDEX earlier_state_member ON sicoop.stage_associado_state (id_associado, round);
ALTER TABLE sicoop.stage_associado_state ALTER COLUMN id_associado SET STATISTICS 0, ALTER COLUMN nome SET STATISTICS 0,
  ALTER COLUMN estado_civil SET STATISTICS 0, ALTER COLUMN escolaridade SET STATISTICS 0;
REVOKE ALL ON sicoop.stage_associado_state FROM PUBLIC;
-- <<< catch-up
