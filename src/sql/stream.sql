-- Streaming (issue 19): the source's changes followed on PostgreSQL's logical replication by a
-- background worker of sicoop's own (src/stream.cpp), which applies them through the same
-- data-quality gate and steps as a batch run, in micro-batches. ARCHITECTURE.md says why a
-- worker and not a subscription. Here: the stream's state table, start_stream(),
-- stop_stream(), resync_stream(), stream_status(), and what the watchdog does for the stream.

-- The stream's state: one row, part of the warehouse (so the LSN it has applied is dumped,
-- restored and owned with the data it covers). Written by start_stream()/stop_stream() and by
-- the worker, in the same transaction as the changes it applies (exactly once).
CREATE OR REPLACE FUNCTION _create_stream_state() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
CREATE TABLE sicoop.stream_state (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    slot_name        text NOT NULL,
    publication      text NOT NULL,
    -- Started and not stopped: the watchdog starts the worker again after a server restart.
    wanted           boolean NOT NULL DEFAULT false,
    state            text NOT NULL DEFAULT 'stopped'
                     CHECK (state IN ('starting', 'syncing', 'streaming', 'paused', 'stalled', 'reconnecting', 'stopped', 'failed')),
    -- The end of the last source transaction the warehouse holds: the stream resumes after it.
    -- NULL: no snapshot taken yet (the worker's first start copies one, then streams from it).
    applied_lsn      pg_lsn,
    received_lsn     pg_lsn,         -- the latest position the source reported
    changes_applied  bigint NOT NULL DEFAULT 0,
    transactions_applied bigint NOT NULL DEFAULT 0,
    batches_applied  bigint NOT NULL DEFAULT 0,
    last_commit_time timestamptz,    -- the source commit of the last transaction applied
    last_apply_at    timestamptz,
    started_by       text,           -- the role the worker acts for (the warehouse's owner)
    worker_pid       int,
    started_at       timestamptz,
    stopped_at       timestamptz,
    lag_alerted_at   timestamptz,
    error_sqlstate   text,
    error_message    text,
    error_hint       text,
    -- The slot this warehouse created at the source, as <slot name>@<sicoop._warehouse_id()>;
    -- NULL: none. The stream never uses nor drops a slot it did not create.
    created_slot     text,
    -- (1.7) The last message from the source (a change or a keepalive): nothing for longer
    -- than sicoop.stream_receive_timeout and the stream is stalled.
    last_message_at  timestamptz,
    -- (1.7) The warehouse held everything the source had committed as of this time (the worker
    -- samples the source's WAL position and sees it applied): the lag in seconds is since then.
    current_at       timestamptz,
    -- (1.7) The condition the watchdog alerted last (once per condition) and the source's WAL
    -- position it saw then, with the time (the rate at which the source writes WAL).
    alerted          text,
    source_lsn       pg_lsn,
    source_lsn_at    timestamptz,
    -- (1.7) A full check asked of the worker (run_pipeline(full => true) while streaming): the
    -- worker runs it at the stream's own position and clears this.
    full_check_requested_at timestamptz
);
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._create_stream_state() FROM PUBLIC;

-- Starts the stream worker (src/stream.cpp) unless one runs for this database; its pid.
CREATE OR REPLACE FUNCTION _launch_stream_worker() RETURNS int
AS 'MODULE_PATHNAME', 'sicoop_launch_stream_worker' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION sicoop._launch_stream_worker() FROM PUBLIC;  -- operator

-- This warehouse among every one that may stream the same source: its cluster's system
-- identifier (in letters: 19 digits would be masked as a card number in messages) and its
-- database's OID (the default slot is sicoop_<this>).
CREATE OR REPLACE FUNCTION _warehouse_id() RETURNS text
AS 'MODULE_PATHNAME', 'sicoop_warehouse_id' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION sicoop._warehouse_id() FROM PUBLIC;  -- operator

-- Ends this database's stream worker `pid` (SIGTERM; only a sicoop stream worker of this
-- database), whoever's session it runs in; whether it was signalled.
CREATE OR REPLACE FUNCTION _signal_stream_worker(pid int) RETURNS boolean
AS 'MODULE_PATHNAME', 'sicoop_signal_stream_worker' LANGUAGE C VOLATILE STRICT SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION sicoop._signal_stream_worker(int) FROM PUBLIC;  -- operator

-- The worker of this database's stream, if it runs: the holder of the stream's advisory lock
-- (src/stream.cpp: of class 4, which no SQL function takes), which every role sees in pg_locks
-- whoever started the worker.
CREATE OR REPLACE FUNCTION _stream_worker_pid() RETURNS int LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT l.pid FROM pg_catalog.pg_locks l
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 1936286576::oid AND l.objid = 7338002::oid AND l.objsubid = 4
  AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
LIMIT 1
$$;

-- Starts following the source's changes: the publication `publication` at the source (the
-- README gives its CREATE PUBLICATION), through replication slot `slot_name` (by default
-- sicoop_<sicoop._warehouse_id()>, from the system identifier and the database OID: two
-- warehouses on one source never share one),
-- which the worker creates at its first start together with the snapshot the warehouse is
-- brought to; a slot of that name that this warehouse did not create is refused, never used
-- nor dropped. Batch runs then skip (the stream keeps the warehouse current); full runs still
-- check it. Returns the worker's pid. Called again, it starts a worker that is not running
-- (with no slot named: the same slot).
CREATE OR REPLACE FUNCTION start_stream(slot_name text DEFAULT NULL, publication text DEFAULT 'sicoop_stream')
RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  s record;
  slot text;
BEGIN
  PERFORM sicoop._check_ready();
  SELECT * INTO s FROM sicoop.stream_state FOR UPDATE;
  slot := coalesce(start_stream.slot_name, s.slot_name, 'sicoop_' || sicoop._warehouse_id());
  -- A slot's name, as the source accepts it; the publication's, as an identifier.
  IF slot !~ '^[a-z0-9_]{1,63}$' THEN
    RAISE EXCEPTION 'sicoop.start_stream: % is not a replication slot name', quote_literal(slot)
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Lower-case letters, digits and underscores, at most 63.';
  END IF;
  IF publication IS NULL OR publication !~ '^[A-Za-z_][A-Za-z0-9_$]{0,62}$' THEN
    RAISE EXCEPTION 'sicoop.start_stream: % is not a publication name', coalesce(quote_literal(publication), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF s.applied_lsn IS NOT NULL AND (s.slot_name, s.publication) IS DISTINCT FROM (slot, start_stream.publication) THEN
    RAISE EXCEPTION 'sicoop.start_stream: the stream follows slot % and publication %', s.slot_name, s.publication
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Call sicoop.start_stream() with those, or sicoop.stop_stream() and sicoop.resync_stream() first to start over from a fresh snapshot (the history is kept).';
  END IF;
  INSERT INTO sicoop.stream_state AS t (slot_name, publication, wanted, state, started_by, started_at, stopped_at)
  VALUES (slot, start_stream.publication, true, 'starting', current_user, clock_timestamp(), NULL)
  ON CONFLICT (singleton) DO UPDATE
  SET slot_name = EXCLUDED.slot_name, publication = EXCLUDED.publication, wanted = true,
      state = CASE WHEN sicoop._stream_worker_pid() IS NULL THEN 'starting' ELSE t.state END,
      started_by = current_user, started_at = coalesce(t.started_at, EXCLUDED.started_at), stopped_at = NULL,
      error_sqlstate = NULL, error_message = NULL, error_hint = NULL;
  -- (The worker waits for this transaction to end before it reads the row.)
  RETURN coalesce(sicoop._stream_worker_pid(), sicoop._launch_stream_worker());
END
$fn$;
REVOKE ALL ON FUNCTION sicoop.start_stream(text, text) FROM PUBLIC;  -- operator

-- Stops the stream: a streaming worker finishes the micro-batch it is applying and exits
-- (within sicoop.stream_interval); one in any other state (starting, taking its snapshot,
-- reconnecting) is ended at once (its transaction undone: nothing half applied). The slot
-- stays at the source, holding the changes since: a later start_stream() resumes from there,
-- nothing lost. (Drop the slot at the source if the stream is given up for good: a slot left
-- behind keeps the source's WAL.)
CREATE OR REPLACE FUNCTION stop_stream() RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  was text;
  pid int := sicoop._stream_worker_pid();
BEGIN
  SELECT s.state INTO was FROM sicoop.stream_state s FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 'no stream was started';
  END IF;
  UPDATE sicoop.stream_state SET wanted = false, stopped_at = clock_timestamp(),
                                 state = CASE WHEN state IN ('failed') THEN state ELSE 'stopped' END;
  -- (Restarted by the postmaster, the worker finds the stream not wanted and ends.)
  IF pid IS NOT NULL AND was NOT IN ('streaming', 'paused') THEN
    PERFORM sicoop._signal_stream_worker(pid);
  END IF;
  RETURN format('the stream stops (worker %s); sicoop.start_stream() resumes it where it stopped',
                coalesce(pid::text, 'not running'));
END
$fn$;
REVOKE ALL ON FUNCTION sicoop.stop_stream() FROM PUBLIC;  -- operator

-- After a stream failed for good (its slot invalidated at the source, wal_status 'lost', or
-- dropped): the next start_stream() drops the slot if it is still there (and this warehouse
-- created it), creates it again and brings the warehouse to its snapshot with a full
-- comparison (every table compared by checksums, only what differs read): the history is
-- kept, nothing is loaded twice. Right after stop_stream() it waits (up to 30 s) for the
-- worker to end.
CREATE OR REPLACE FUNCTION resync_stream() RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  deadline timestamptz := clock_timestamp() + interval '30 s';
BEGIN
  IF (SELECT s.wanted FROM sicoop.stream_state s) AND sicoop._stream_worker_pid() IS NOT NULL THEN
    RAISE EXCEPTION 'sicoop.resync_stream: the stream worker is running' USING ERRCODE = 'object_in_use',
      HINT = 'Call sicoop.stop_stream() first.';
  END IF;
  WHILE sicoop._stream_worker_pid() IS NOT NULL LOOP
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'sicoop.resync_stream: the stream worker (pid %) has not ended 30 s after the stream was stopped',
                      sicoop._stream_worker_pid()
        USING ERRCODE = 'object_in_use', HINT = 'Call sicoop.stop_stream() again, then sicoop.resync_stream(); the server log says what the worker is doing.';
    END IF;
    PERFORM pg_sleep(0.1);
  END LOOP;
  UPDATE sicoop.stream_state SET applied_lsn = NULL, received_lsn = NULL, state = 'stopped', wanted = false,
                                 error_sqlstate = NULL, error_message = NULL, error_hint = NULL;
  RETURN 'the next sicoop.start_stream() takes a fresh snapshot';
END
$fn$;
REVOKE ALL ON FUNCTION sicoop.resync_stream() FROM PUBLIC;  -- operator

-- The source's current WAL position and slot `slot` as the source has it, read now over a
-- connection of the caller's (its user mapping) (src/stream.cpp); NULLs but source_lsn: no
-- such slot. An error if the source cannot be read.
CREATE OR REPLACE FUNCTION _source_slot(slot text, OUT source_lsn pg_lsn, OUT confirmed_flush_lsn pg_lsn,
    OUT restart_lsn pg_lsn, OUT wal_status text, OUT safe_wal_size bigint, OUT active_pid int)
AS 'MODULE_PATHNAME', 'sicoop_source_slot' LANGUAGE C VOLATILE STRICT SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION sicoop._source_slot(text) FROM PUBLIC;  -- operator

-- The stream as it is, from both sides. The warehouse's: its state, slot, the LSNs applied and
-- received, what it applied, its last error, the last message from the source. The source's,
-- read now (_source_slot): its WAL position; the lag in bytes (that position less the applied
-- one) and in seconds (since the warehouse last held all the source had: current_at, sampled
-- each second by the worker; a stall, a stopped stream or a batch held behind a lock all show);
-- the WAL the slot retains, and what is left of max_slot_wal_keep_size (bytes, and the time it
-- lasts at the rate the source writes WAL, from the watchdog's last sample). When the source
-- cannot be read, source_error says why and the source's columns are NULL: the watchdog alerts.
-- state: the worker's, or 'not running' (wanted, its worker gone: the watchdog starts it again).
CREATE OR REPLACE FUNCTION stream_status(
    OUT state text, OUT slot_name text, OUT publication text, OUT applied_lsn pg_lsn, OUT received_lsn pg_lsn,
    OUT lag_bytes numeric, OUT lag_seconds numeric, OUT changes_applied bigint, OUT transactions_applied bigint,
    OUT batches_applied bigint, OUT last_commit_time timestamptz, OUT last_apply_at timestamptz, OUT worker_pid int,
    OUT error_sqlstate text, OUT error_message text, OUT error_hint text,
    OUT source_lsn pg_lsn, OUT seconds_since_message numeric, OUT current_at timestamptz, OUT slot_wal_status text,
    OUT retained_bytes numeric, OUT wal_left_bytes numeric, OUT wal_left_seconds numeric, OUT source_error text)
RETURNS SETOF record  -- (no row: no stream was ever started)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  s sicoop.stream_state;
  src_restart_lsn pg_lsn;
  src_safe_wal_size bigint;
  pid int := sicoop._stream_worker_pid();
  rate numeric;
BEGIN
  SELECT * INTO s FROM sicoop.stream_state;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  BEGIN
    SELECT x.source_lsn, x.wal_status, x.restart_lsn, x.safe_wal_size
    INTO source_lsn, slot_wal_status, src_restart_lsn, src_safe_wal_size FROM sicoop._source_slot(s.slot_name) x;
  EXCEPTION WHEN OTHERS THEN
    source_error := sicoop._redact_card_numbers(SQLERRM);
  END;
  state := CASE WHEN s.state = 'failed' OR NOT s.wanted OR pid IS NOT NULL THEN s.state
                -- (ended to connect again: the postmaster starts it within 5 s, each attempt recorded)
                WHEN s.state IN ('reconnecting', 'stalled') AND s.stopped_at > clock_timestamp() - interval '30 s' THEN s.state
                ELSE 'not running' END;
  slot_name := s.slot_name; publication := s.publication; applied_lsn := s.applied_lsn; received_lsn := s.received_lsn;
  changes_applied := s.changes_applied; transactions_applied := s.transactions_applied; batches_applied := s.batches_applied;
  last_commit_time := s.last_commit_time; last_apply_at := s.last_apply_at; worker_pid := pid;
  error_sqlstate := s.error_sqlstate; error_message := s.error_message; error_hint := s.error_hint;
  current_at := s.current_at;
  seconds_since_message := CASE WHEN pid IS NOT NULL AND s.last_message_at IS NOT NULL
                                THEN round(extract(epoch FROM clock_timestamp() - s.last_message_at)::numeric, 3) END;
  lag_bytes := greatest(coalesce(coalesce(source_lsn, s.received_lsn) OPERATOR(pg_catalog.-) s.applied_lsn, 0), 0);
  lag_seconds := CASE WHEN lag_bytes > 0
                      THEN round(extract(epoch FROM clock_timestamp() - coalesce(s.current_at, s.last_commit_time, s.started_at))::numeric, 3)
                      ELSE 0 END;
  retained_bytes := source_lsn OPERATOR(pg_catalog.-) src_restart_lsn;
  wal_left_bytes := src_safe_wal_size;
  IF s.source_lsn_at IS NOT NULL AND s.source_lsn_at < clock_timestamp() - interval '10 s' THEN
    rate := (source_lsn OPERATOR(pg_catalog.-) s.source_lsn) / extract(epoch FROM clock_timestamp() - s.source_lsn_at);
  END IF;
  wal_left_seconds := CASE WHEN rate > 0 THEN round(src_safe_wal_size / rate) END;
  RETURN NEXT;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop.stream_status() FROM PUBLIC;  -- operator

-- The watchdog's part for the stream (sicoop.watchdog(), every minute): a stream that should
-- run and whose worker is gone (a server restart ends dynamic workers) is started again; and
-- each condition is alerted (NOTIFY sicoop_alerts) once, when it begins: the stream failed,
-- stalled, not running, lagging past sicoop.stream_lag_alert, stopped while its slot holds the
-- source's changes for longer than that, its slot retaining more WAL than
-- sicoop.stream_retained_alert or lost, or the source that cannot be read (a check that cannot
-- see fails). It keeps the source's WAL position and its time (the rate stream_status() gives
-- the time left with). Returns what it did, or NULL.
CREATE OR REPLACE FUNCTION _watch_stream() RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  s record;
  -- (Shown with their units, as '1min' and '1GB'.)
  limit_seconds numeric := coalesce(extract(epoch FROM nullif(current_setting('sicoop.stream_lag_alert', true), '')::interval), 60);
  retained_limit numeric := coalesce(pg_size_bytes(nullif(current_setting('sicoop.stream_retained_alert', true), '')), 1073741824);
  conditions text[];
  previous text[];
  fresh text[];
  did text;
BEGIN
  IF to_regclass('sicoop.stream_state') IS NULL THEN
    RETURN NULL;
  END IF;
  SELECT * INTO s FROM sicoop.stream_status() x;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF s.state = 'not running' THEN
    PERFORM sicoop._launch_stream_worker();
    did := 'started the stream worker again';
  END IF;
  conditions := array_remove(ARRAY[
    CASE WHEN s.state IN ('failed', 'stalled', 'not running') THEN s.state END,
    CASE WHEN s.state NOT IN ('stopped', 'failed') AND s.lag_seconds > limit_seconds THEN 'lagging' END,
    CASE WHEN s.state = 'stopped' AND s.slot_wal_status IS NOT NULL AND s.lag_seconds > limit_seconds THEN 'stopped behind' END,
    CASE WHEN s.retained_bytes > retained_limit THEN 'retaining WAL' END,
    CASE WHEN s.slot_wal_status IN ('unreserved', 'lost') THEN 'slot at risk' END,
    CASE WHEN s.source_error IS NOT NULL AND (SELECT t.wanted FROM sicoop.stream_state t) THEN 'source unreadable' END], NULL);
  previous := coalesce(string_to_array((SELECT t.alerted FROM sicoop.stream_state t), ', '), '{}');
  SELECT array_agg(c ORDER BY c) INTO fresh FROM unnest(conditions) c WHERE c <> ALL (previous);
  UPDATE sicoop.stream_state
  SET alerted = nullif(array_to_string(ARRAY(SELECT c FROM unnest(conditions) c ORDER BY c), ', '), ''),
      lag_alerted_at = CASE WHEN cardinality(conditions) = 0 THEN NULL ELSE coalesce(lag_alerted_at, clock_timestamp()) END,
      source_lsn = coalesce(s.source_lsn, source_lsn),
      source_lsn_at = CASE WHEN s.source_lsn IS NOT NULL THEN clock_timestamp() ELSE source_lsn_at END;
  IF fresh IS NOT NULL THEN
    PERFORM pg_notify('sicoop_alerts', json_build_object(
              'database', current_database(), 'step', 'stream', 'status', 'stream ' || c,
              'state', s.state, 'sqlstate', s.error_sqlstate, 'lag_seconds', s.lag_seconds, 'lag_bytes', s.lag_bytes,
              'retained_bytes', s.retained_bytes, 'wal_left_seconds', s.wal_left_seconds,
              'stream_lag_alert', limit_seconds, 'stream_retained_alert', retained_limit)::text)
    FROM unnest(fresh) c;
    did := concat_ws('; ', did, 'alerted: ' || array_to_string(fresh, ', '));
  END IF;
  RETURN did;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._watch_stream() FROM PUBLIC;  -- operator
