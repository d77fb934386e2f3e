-- sicoop_etl 1.0 -> 1.1: the warehouse's data leaves the extension.
--
-- In 1.0 every warehouse table was an extension member: pg_dump left its rows out, and DROP
-- EXTENSION dropped years of history. From 1.1 the extension owns only code (and the steps'
-- scratch tables, empty between runs); the data --
-- tables of every layer, the run log, the incremental state, their sequences, the flat view,
-- and the source's foreign server and tables -- belongs to the database. This script releases
-- those objects from the extension in place (no row is copied or rewritten), records the
-- data's layout in sicoop.warehouse_info, and installs 1.1's functions.
\echo Use "ALTER EXTENSION sicoop_etl UPDATE TO '1.1'" to load this file. \quit

-- Every name below is qualified: nothing another role created can stand in for ours.
SET LOCAL search_path = pg_catalog, pg_temp;

-- The data, released from the extension.
ALTER EXTENSION sicoop_etl DROP SEQUENCE sicoop.run_id_seq;
ALTER EXTENSION sicoop_etl DROP TABLE sicoop.run_log;
ALTER EXTENSION sicoop_etl DROP TABLE sicoop.reject;
ALTER EXTENSION sicoop_etl DROP TABLE sicoop.step_state;
ALTER EXTENSION sicoop_etl DROP TABLE sicoop.raw_tombstone;
ALTER EXTENSION sicoop_etl DROP TABLE sicoop.source_sync;
ALTER EXTENSION sicoop_etl DROP TABLE sicoop.raw_associado;
ALTER EXTENSION sicoop_etl DROP TABLE sicoop.raw_conta;
ALTER EXTENSION sicoop_etl DROP TABLE sicoop.raw_cartao;
ALTER EXTENSION sicoop_etl DROP TABLE sicoop.raw_movimentacao_cartao;
ALTER EXTENSION sicoop_etl DROP TABLE sicoop.trusted_associado;
ALTER EXTENSION sicoop_etl DROP TABLE sicoop.trusted_conta;
ALTER EXTENSION sicoop_etl DROP TABLE sicoop.trusted_cartao;
ALTER EXTENSION sicoop_etl DROP TABLE sicoop.trusted_movimentacao_cartao;
ALTER EXTENSION sicoop_etl DROP TABLE sicoop.dim_data;
ALTER EXTENSION sicoop_etl DROP TABLE sicoop.dim_conta;
ALTER EXTENSION sicoop_etl DROP SEQUENCE sicoop.dim_conta_sk_conta_seq;
ALTER EXTENSION sicoop_etl DROP TABLE sicoop.dim_cartao;
ALTER EXTENSION sicoop_etl DROP SEQUENCE sicoop.dim_cartao_sk_cartao_seq;
ALTER EXTENSION sicoop_etl DROP TABLE sicoop.dim_associado;
ALTER EXTENSION sicoop_etl DROP SEQUENCE sicoop.dim_associado_sk_associado_seq;
ALTER EXTENSION sicoop_etl DROP TABLE sicoop.fato_movimentacao_cartao;
ALTER EXTENSION sicoop_etl DROP VIEW sicoop.vw_movimentacao_flat;
ALTER EXTENSION sicoop_etl DROP FOREIGN TABLE sicoop.src_associado;
ALTER EXTENSION sicoop_etl DROP FOREIGN TABLE sicoop.src_conta;
ALTER EXTENSION sicoop_etl DROP FOREIGN TABLE sicoop.src_cartao;
ALTER EXTENSION sicoop_etl DROP FOREIGN TABLE sicoop.src_movimentacao_cartao;
ALTER EXTENSION sicoop_etl DROP SERVER sicoop_source;

-- The steps' scratch tables stay the extension's (pg_dump neither dumps nor locks them); the
-- stage is rebuilt with plain column lists, as a fresh install has it (its rows are transient).
DROP TABLE sicoop.stage_associado, sicoop.stage_conta, sicoop.stage_cartao, sicoop.stage_movimentacao_cartao,
           sicoop.stage_key_checksum, sicoop.stage_bucket, sicoop.stage_key;
-- Staging: what the bulk COPY from the source lands in, before it is merged into raw.
-- Unlogged: it is rebuilt by every load, so it need not survive a crash.
CREATE UNLOGGED TABLE sicoop.stage_associado (
    id_associado varchar(50) NOT NULL,
    nome varchar(255) NOT NULL,
    data_nascimento date,
    estado_civil varchar(50),
    escolaridade varchar(100)
);
CREATE UNLOGGED TABLE sicoop.stage_conta (
    id_conta varchar(50) NOT NULL,
    id_associado varchar(50),
    tipo_conta varchar(50),
    agencia varchar(20),
    situacao_conta varchar(50),
    data_criacao_conta date
);
CREATE UNLOGGED TABLE sicoop.stage_cartao (
    id_cartao varchar(50) NOT NULL,
    id_conta varchar(50),
    numero_cartao varchar(50),
    nome_impresso_cartao varchar(150),
    bandeira_cartao varchar(50),
    tipo_cartao varchar(50),
    data_emissao date
);
CREATE UNLOGGED TABLE sicoop.stage_movimentacao_cartao (
    id_movimentacao_cartao varchar(50) NOT NULL,
    id_cartao varchar(50),
    descricao_movimentacao varchar(150),
    valor_movimentacao numeric(10,2) NOT NULL,
    data_movimentacao timestamp NOT NULL
);
REVOKE ALL ON sicoop.stage_associado, sicoop.stage_conta, sicoop.stage_cartao, sicoop.stage_movimentacao_cartao FROM PUBLIC;
-- Finding deleted source rows: key checksums per bucket from the source, the buckets that
-- differ from raw, and the source keys of those buckets.
CREATE UNLOGGED TABLE sicoop.stage_key_checksum (bucket int, keys bigint, key_hash_sum numeric);
CREATE UNLOGGED TABLE sicoop.stage_bucket (bucket int);
CREATE UNLOGGED TABLE sicoop.stage_key (record_id varchar(50));

-- Table names, not OIDs, in the deferred indexes' registry: OIDs change on restore, and
-- pg_upgrade refuses reg* columns in user tables. (The registry is empty between loads.)
ALTER TABLE sicoop.deferred_index ALTER COLUMN table_name TYPE text USING table_name::text;

-- What the warehouse is and which layout its data has; released like the rest.
CREATE TABLE sicoop.warehouse_info (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    layout_version  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO sicoop.warehouse_info (layout_version) VALUES ('1.1');

ALTER EXTENSION sicoop_etl DROP TABLE sicoop.warehouse_info;

-- 1.1's functions: new ones, then the ones whose definition changed.
------------------------------------------------------------------------------------------
-- The warehouse's data: created once, after CREATE EXTENSION, and never an extension member.
------------------------------------------------------------------------------------------
-- The layout of the warehouse's data this version creates and reads.
CREATE FUNCTION sicoop._layout_version() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT '1.1'::text $$;

-- Every relation of the warehouse (schema sicoop), as this layout has it.
CREATE FUNCTION sicoop._warehouse_relations() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
SELECT ARRAY['warehouse_info', 'run_id_seq', 'run_log', 'reject', 'step_state', 'raw_tombstone',
             'source_sync', 'raw_associado', 'raw_conta', 'raw_cartao', 'raw_movimentacao_cartao',
             'trusted_associado', 'trusted_conta', 'trusted_cartao', 'trusted_movimentacao_cartao',
             'dim_data', 'dim_conta', 'dim_cartao', 'dim_associado', 'fato_movimentacao_cartao',
             'vw_movimentacao_flat']
$$;

-- Refuses a warehouse whose relations could run code of their owner's when another role reads
-- or writes them: a table turned into a view or given rules, triggers, row-level security or
-- inheritance children; a flat view with rules of its own. (The extension's own code never
-- needs any of these. A superuser may add triggers to a warehouse a superuser owns.)
CREATE FUNCTION sicoop._check_warehouse_shape() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  odd text[];
BEGIN
  SELECT array_agg(format('%s (%s)', c.relname, why) ORDER BY c.relname) INTO odd
  FROM pg_class c
  CROSS JOIN LATERAL (
    SELECT CASE
      WHEN c.relname = 'vw_movimentacao_flat' AND c.relkind <> 'v' THEN 'not a view'
      WHEN c.relname = 'run_id_seq' AND c.relkind <> 'S' THEN 'not a sequence'
      WHEN c.relname <> 'vw_movimentacao_flat' AND c.relkind NOT IN ('r', 'S') THEN 'not a plain table'
      WHEN EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = c.oid AND NOT (c.relkind = 'v' AND r.rulename = '_RETURN'))
        THEN 'has rules'
      WHEN c.relrowsecurity THEN 'has row-level security'
      WHEN EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid OR i.inhrelid = c.oid) THEN 'has inheritance'
      WHEN EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal)
           AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = c.relowner) THEN 'has triggers'
      -- (reading a column of a type someone else defined can run its casts and functions)
      WHEN EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                     AND t.typnamespace <> 'pg_catalog'::regnamespace) THEN 'has a column of a type outside pg_catalog'
    END AS why) w
  WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relname NOT LIKE 'src\_%' AND c.relkind <> 'i'
    AND (c.relname = ANY (sicoop._warehouse_relations()) OR c.relkind IN ('r', 'v', 'S'))
    AND w.why IS NOT NULL;
  IF odd IS NOT NULL THEN
    RAISE EXCEPTION 'sicoop: the warehouse has been altered so that reading or writing it could run its owner''s code: %',
                    array_to_string(odd, ', ')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Nothing was read. A superuser reviews these objects and drops what sicoop did not create.';
  END IF;
END
$fn$;

-- The warehouse's definition, one line per relation, column, default, constraint, index,
-- trigger, rule and policy: what grant_operator hands over and revoke_operator gets back.
CREATE FUNCTION sicoop._warehouse_signature() RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
WITH rels AS (
  SELECT c.oid, c.relname, c.relkind, c.relrowsecurity FROM pg_class c
  WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relkind NOT IN ('i', 'I', 't', 'c') AND c.relname NOT LIKE 'src\_%')
SELECT array_agg(line ORDER BY line) FROM (
  SELECT format('relation %s %s rls=%s', relname, relkind, relrowsecurity) FROM rels
  UNION ALL
  SELECT format('column %s.%s %s notnull=%s default=%s', r.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                a.attnotnull, pg_get_expr(d.adbin, d.adrelid))
  FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  UNION ALL
  SELECT format('constraint %s.%s %s', r.relname, k.conname, pg_get_constraintdef(k.oid))
  FROM rels r JOIN pg_constraint k ON k.conrelid = r.oid
  UNION ALL
  SELECT format('index %s', pg_get_indexdef(i.indexrelid)) FROM rels r JOIN pg_index i ON i.indrelid = r.oid
  UNION ALL
  SELECT format('trigger %s', pg_get_triggerdef(t.oid)) FROM rels r JOIN pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
  UNION ALL
  SELECT format('rule %s', pg_get_ruledef(w.oid)) FROM rels r JOIN pg_rewrite w ON w.ev_class = r.oid
  UNION ALL
  SELECT format('policy %s.%s', r.relname, p.polname) FROM rels r JOIN pg_policy p ON p.polrelid = r.oid
  UNION ALL
  SELECT format('inherits %s', i.inhrelid::regclass) FROM rels r JOIN pg_inherits i ON i.inhparent = r.oid OR i.inhrelid = r.oid
) lines(line)
$$;

-- Refuses to take the warehouse back from an operator (to a superuser, or to another operator)
-- if its definition is not the one handed over: whatever the operator added to its tables --
-- a default, a constraint, an index expression, a trigger, a rule -- would run with the new
-- owner's rights.
CREATE FUNCTION sicoop._check_handover(from_owner regrole) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  handed text[];
  changed text[];
BEGIN
  SELECT h.signature INTO handed FROM sicoop.operator_handover h WHERE h.role_name = from_owner::text;
  IF handed IS NULL THEN
    RAISE EXCEPTION 'sicoop: there is no record of what was handed over to %', from_owner
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Review the warehouse''s tables by hand, then give them to another role with ALTER ... OWNER TO.';
  END IF;
  SELECT array_agg(line ORDER BY line) INTO changed
  FROM ((SELECT unnest(sicoop._warehouse_signature()) EXCEPT SELECT unnest(handed))
        UNION (SELECT unnest(handed) EXCEPT SELECT unnest(sicoop._warehouse_signature()))) d(line);
  IF changed IS NOT NULL THEN
    RAISE EXCEPTION 'sicoop: % changed the warehouse''s definition since it was handed over: %', from_owner,
                    array_to_string(changed[1:10], '; ')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Nothing was changed. A superuser reviews these differences and puts them back as sicoop made them first.';
  END IF;
END
$fn$;

-- Whether schema sicoop holds a warehouse this version can use as it is: true if it does,
-- false if it holds none; an error saying what is wrong and what to do otherwise (another
-- layout, a partial warehouse, foreign tables in the way). Nothing is ever changed here.
CREATE FUNCTION sicoop._adopt_warehouse() RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  layout text;
  present text[];
  missing text[];
BEGIN
  SELECT array_agg(r ORDER BY r) FILTER (WHERE to_regclass('sicoop.' || r) IS NOT NULL),
         array_agg(r ORDER BY r) FILTER (WHERE to_regclass('sicoop.' || r) IS NULL)
  INTO present, missing
  FROM unnest(sicoop._warehouse_relations()) AS r;
  IF to_regclass('sicoop.warehouse_info') IS NULL THEN
    IF present IS NULL THEN
      RETURN false;
    END IF;
    RAISE EXCEPTION 'sicoop_etl: schema sicoop holds % but no sicoop.warehouse_info: it is not a sicoop_etl warehouse of layout 1.1 or later',
                    array_to_string(present, ', ')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Nothing was changed. Move these relations out of schema sicoop (ALTER TABLE ... SET SCHEMA), or drop them if their data is not needed.';
  END IF;
  -- Whoever owns the warehouse could have made this table run code when read (a _RETURN rule
  -- makes it a view; a child table adds rows): a superuser reads it only as a plain table.
  PERFORM sicoop._check_warehouse_shape();
  SELECT w.layout_version INTO layout FROM ONLY sicoop.warehouse_info w;
  IF layout IS DISTINCT FROM sicoop._layout_version() THEN
    IF layout IS NOT NULL AND string_to_array(layout, '.')::int[] < string_to_array(sicoop._layout_version(), '.')::int[] THEN
      RAISE EXCEPTION 'sicoop_etl %: the warehouse in schema sicoop has the older layout %', sicoop._layout_version(), layout
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = format('Nothing was changed. Install the version that wrote it and update from there, which migrates the data: DROP EXTENSION sicoop_etl; CREATE EXTENSION sicoop_etl VERSION %L; ALTER EXTENSION sicoop_etl UPDATE;', layout);
    END IF;
    RAISE EXCEPTION 'sicoop_etl %: the warehouse in schema sicoop has layout %, which this version does not know', sicoop._layout_version(), coalesce(layout, 'NULL')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Nothing was changed. Install sicoop_etl ' || coalesce(layout, '') || ' or later to use this warehouse.';
  END IF;
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'sicoop_etl: the warehouse in schema sicoop is incomplete: % missing', array_to_string(missing, ', ')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Nothing was changed. Restore the warehouse from a backup (pg_restore), or, to start afresh and lose its data, DROP SCHEMA sicoop CASCADE and re-create the extension.';
  END IF;
  RETURN true;
END
$fn$;

-- Creates the warehouse's tables (every layer, the run log and the incremental state), with
-- their sequences, indexes, the unknown members and the flat view. connect_source() calls it
-- when schema sicoop holds no warehouse. Never from an extension script: what a script
-- creates becomes an extension member, which pg_dump leaves out and DROP EXTENSION drops.
CREATE FUNCTION sicoop._create_warehouse() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
-- What the warehouse is and which layout its data has (ALTER EXTENSION ... UPDATE migrates it).
CREATE TABLE sicoop.warehouse_info (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    layout_version  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO sicoop.warehouse_info (layout_version) VALUES (sicoop._layout_version());

-- Run log: one row per run and step (the step 'run_pipeline' summarises a whole run).
CREATE SEQUENCE sicoop.run_id_seq;

CREATE TABLE sicoop.run_log (
    run_id          bigint NOT NULL,
    step            text NOT NULL,
    status          text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
    as_of           timestamptz,
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at     timestamptz,
    rows_read       bigint,
    rows_inserted   bigint,
    rows_updated    bigint,
    rows_deleted    bigint,
    rows_unchanged  bigint,
    rows_unknown    bigint,
    rows_rejected   bigint,
    detail          jsonb,            -- rows and seconds per table, for steps that report them
    error_sqlstate  text,
    error_message   text,
    error_detail    text,
    error_context   text,
    backend_pid     int NOT NULL DEFAULT pg_backend_pid(),
    PRIMARY KEY (run_id, step)
);
CREATE INDEX run_log_started_at ON sicoop.run_log (started_at);
CREATE TABLE sicoop.reject (
    table_name   text NOT NULL,
    record_id    text NOT NULL,
    reason       text NOT NULL,
    record       jsonb NOT NULL,
    run_id       bigint NOT NULL,
    rejected_at  timestamptz NOT NULL,
    PRIMARY KEY (table_name, record_id)
);
REVOKE ALL ON sicoop.reject FROM PUBLIC;

-- Incremental bookkeeping: the last run each step processed. Rows of raw_*, trusted_* and
-- dim_associado carry the run that last changed them; a step processes what changed since.
CREATE TABLE sicoop.step_state (
    step         text PRIMARY KEY,
    last_run_id  bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Keys deleted from raw_* (by the run that deleted them), so later steps follow deletions
-- without rescanning. Removed once every step has processed them.
CREATE TABLE sicoop.raw_tombstone (
    table_name  text NOT NULL,
    record_id   varchar(50) NOT NULL,
    run_id      bigint NOT NULL,
    PRIMARY KEY (table_name, record_id)
);
CREATE INDEX raw_tombstone_run ON sicoop.raw_tombstone (run_id);

CREATE TABLE sicoop.raw_associado (
    id_associado varchar(50) PRIMARY KEY,
    nome varchar(255) NOT NULL,
    data_nascimento date,
    estado_civil varchar(50),
    escolaridade varchar(100),
    run_id bigint NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE sicoop.raw_conta (
    id_conta varchar(50) PRIMARY KEY,
    id_associado varchar(50),
    tipo_conta varchar(50),
    agencia varchar(20),
    situacao_conta varchar(50),
    data_criacao_conta date,
    run_id bigint NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
-- Cards: the number masked to its last four characters, never in clear (PCI DSS 3). (The
-- masked number is all any later layer holds, so it is all change detection needs.)
CREATE TABLE sicoop.raw_cartao (
    id_cartao varchar(50) PRIMARY KEY,
    id_conta varchar(50),
    numero_cartao varchar(50) CHECK (numero_cartao ~ '^\**.{0,4}$'),
    nome_impresso_cartao varchar(150),
    bandeira_cartao varchar(50),
    tipo_cartao varchar(50),
    data_emissao date,
    run_id bigint NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE sicoop.raw_movimentacao_cartao (
    id_movimentacao_cartao varchar(50) PRIMARY KEY,
    id_cartao varchar(50),
    descricao_movimentacao varchar(150),
    valor_movimentacao numeric(10,2) NOT NULL,
    data_movimentacao timestamp NOT NULL,
    run_id bigint NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX raw_associado_run ON sicoop.raw_associado (run_id);
CREATE INDEX raw_conta_run ON sicoop.raw_conta (run_id);
CREATE INDEX raw_cartao_run ON sicoop.raw_cartao (run_id);
-- BRIN: rows a run writes sit together at the end of the heap, and a BRIN index costs next
-- to nothing to maintain during a 10-million-row first load (which summarizes it at the end;
-- autovacuum summarizes what later runs append).
CREATE INDEX raw_movimentacao_cartao_run ON sicoop.raw_movimentacao_cartao USING brin (run_id) WITH (autosummarize = on);
-- The window after the watermark (movements arrive roughly in time order, so BRIN suffices).
CREATE INDEX raw_movimentacao_cartao_data ON sicoop.raw_movimentacao_cartao USING brin (data_movimentacao)
    WITH (autosummarize = on);
REVOKE ALL ON sicoop.raw_associado, sicoop.raw_conta, sicoop.raw_cartao, sicoop.raw_movimentacao_cartao FROM PUBLIC;

-- Per source table, the source snapshot its last copy read (txid_snapshot_xmin): the next
-- incremental copy reads the rows written since (their xmin), not the whole table.
CREATE TABLE sicoop.source_sync (
    table_name     text PRIMARY KEY,
    snapshot_xmin  bigint NOT NULL,
    watermark      timestamp,       -- movements: the latest data_movimentacao in that snapshot
    copied_at      timestamptz NOT NULL DEFAULT now()
);

-- Where an incremental read of the source's movements starts: the watermark (the latest
-- movement time the previous copy saw in the source, but never later than the run's local
-- reference time: a future-dated row must not hide the new ones) minus the lookback
CREATE TABLE sicoop.trusted_associado (
    id_associado varchar(50) PRIMARY KEY,
    nome varchar(255) NOT NULL,
    sobrenome varchar(255),
    data_nascimento date,
    idade_atual_associado int,
    estado_civil varchar(50),
    escolaridade varchar(100),
    run_id bigint NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE sicoop.trusted_conta (
    id_conta varchar(50) PRIMARY KEY,
    id_associado varchar(50),
    tipo_conta varchar(50),
    agencia varchar(20),
    situacao_conta varchar(50),
    data_criacao_conta date,
    run_id bigint NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE sicoop.trusted_cartao (
    id_cartao varchar(50) PRIMARY KEY,
    id_conta varchar(50),
    numero_cartao varchar(50) CHECK (numero_cartao ~ '^\**.{0,4}$'),
    nome_impresso_cartao varchar(150),
    bandeira_cartao varchar(50),
    tipo_cartao varchar(50),
    data_emissao date,
    run_id bigint NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE sicoop.trusted_movimentacao_cartao (
    id_movimentacao_cartao varchar(50) PRIMARY KEY,
    id_cartao varchar(50),
    descricao_movimentacao varchar(150),
    valor_movimentacao numeric(10,2) NOT NULL,
    data_movimentacao timestamp NOT NULL,
    run_id bigint NOT NULL,
    updated_at timestamptz NOT NULL
);
-- What changed since a run.
CREATE INDEX trusted_associado_run ON sicoop.trusted_associado (run_id);
CREATE INDEX trusted_conta_run ON sicoop.trusted_conta (run_id);
CREATE INDEX trusted_cartao_run ON sicoop.trusted_cartao (run_id);
CREATE INDEX trusted_movimentacao_cartao_run ON sicoop.trusted_movimentacao_cartao USING brin (run_id)
    WITH (autosummarize = on);
CREATE TABLE sicoop.dim_data (
    sk_data int PRIMARY KEY,
    data date UNIQUE,
    dia int,
    mes int,
    ano int,
    trimestre int,
    dia_da_semana varchar(20),
    fim_de_semana boolean,
    CHECK (sk_data = -1 OR sk_data = to_char(data, 'YYYYMMDD')::int)
);
INSERT INTO sicoop.dim_data (sk_data, dia_da_semana) VALUES (-1, 'DESCONHECIDO');

CREATE TABLE sicoop.dim_conta (
    sk_conta int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    id_conta varchar(50) UNIQUE,
    id_associado varchar(50),  -- the account's member: how a fact finds its member version
    tipo_conta varchar(50),
    agencia_conta varchar(20),
    situacao_conta varchar(50),
    data_criacao_conta date,
    data_hora_atualizacao_registro timestamptz NOT NULL DEFAULT '1900-01-01',
    run_id bigint,             -- the run that last changed this row
    CHECK ((sk_conta = -1) = (id_conta IS NULL))
);
CREATE INDEX dim_conta_associado ON sicoop.dim_conta (id_associado);
CREATE INDEX dim_conta_run ON sicoop.dim_conta (run_id);
INSERT INTO sicoop.dim_conta (sk_conta, tipo_conta) VALUES (-1, 'DESCONHECIDO');

CREATE TABLE sicoop.dim_cartao (
    sk_cartao int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    id_cartao varchar(50) UNIQUE,
    id_conta varchar(50),      -- the card's account: how a fact finds its account
    numero_cartao varchar(50) CHECK (numero_cartao ~ '^\**.{0,4}$'),
    nome_impresso_cartao varchar(150),
    bandeira_cartao varchar(50),
    tipo_cartao varchar(50),
    data_emissao_cartao date,
    data_hora_atualizacao_registro timestamptz NOT NULL DEFAULT '1900-01-01',
    run_id bigint,             -- the run that last changed this row
    CHECK ((sk_cartao = -1) = (id_cartao IS NULL))
);
CREATE INDEX dim_cartao_conta ON sicoop.dim_cartao (id_conta);
CREATE INDEX dim_cartao_run ON sicoop.dim_cartao (run_id);
INSERT INTO sicoop.dim_cartao (sk_cartao, nome_impresso_cartao) VALUES (-1, 'DESCONHECIDO');

-- SCD type 2. Vigência is half-open [inicio, fim); the current version ends at 9999-12-31
-- (1900-01-01 and 9999-12-31 are midnights in the cooperative's time zone, sicoop.timezone).
-- sicoop.check_vigencia() refuses overlapping versions; the partial unique index
-- makes a second current version impossible.
CREATE TABLE sicoop.dim_associado (
    sk_associado int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    id_associado varchar(50),
    nome_associado varchar(255),
    sobrenome_associado varchar(255),
    data_nascimento_associado date,
    idade_atual_associado int,
    estado_civil_associado varchar(50),
    escolaridade_associado varchar(100),
    inicio_vigencia_registro_associado timestamptz NOT NULL,
    fim_vigencia_registro_associado timestamptz NOT NULL,
    registro_ativo_associado boolean NOT NULL,
    data_hora_atualizacao_registro timestamptz NOT NULL DEFAULT '1900-01-01',
    run_id bigint,  -- the run that last changed this version
    CHECK (fim_vigencia_registro_associado > inicio_vigencia_registro_associado),
    -- Current means open-ended (the 9999-12-31 sentinel, a local midnight).
    CHECK (registro_ativo_associado = (fim_vigencia_registro_associado > '9999-12-30 00:00:00+00')),
    CHECK ((sk_associado = -1) = (id_associado IS NULL))
);

CREATE INDEX dim_associado_member ON sicoop.dim_associado (id_associado, inicio_vigencia_registro_associado);

CREATE INDEX dim_associado_run ON sicoop.dim_associado (run_id);
CREATE UNIQUE INDEX dim_associado_one_current ON sicoop.dim_associado (id_associado) WHERE registro_ativo_associado;
INSERT INTO sicoop.dim_associado (sk_associado, nome_associado, inicio_vigencia_registro_associado,
                           fim_vigencia_registro_associado, registro_ativo_associado)
VALUES (-1, 'DESCONHECIDO', timestamp '1900-01-01' AT TIME ZONE 'America/Sao_Paulo',
        timestamp '9999-12-31' AT TIME ZONE 'America/Sao_Paulo', true);

CREATE TABLE sicoop.fato_movimentacao_cartao (
    id_movimentacao_cartao varchar(50) PRIMARY KEY,
    sk_associado int NOT NULL,
    sk_cartao int NOT NULL,
    sk_conta int NOT NULL,
    sk_data int NOT NULL,
    descricao_movimentacao varchar(150),
    valor_movimentacao numeric(10,2) NOT NULL,
    data_hora_movimentacao timestamp NOT NULL,
    data_hora_atualizacao_registro timestamptz NOT NULL
);
CREATE INDEX fato_movimentacao_cartao_atualizacao ON sicoop.fato_movimentacao_cartao (data_hora_atualizacao_registro);
-- The facts of a card: re-keyed when the card, its account or its member changes.
CREATE INDEX fato_movimentacao_cartao_cartao ON sicoop.fato_movimentacao_cartao (sk_cartao);
CREATE INDEX fato_movimentacao_cartao_unknown ON sicoop.fato_movimentacao_cartao (id_movimentacao_cartao)
    WHERE sk_associado = -1 OR sk_cartao = -1 OR sk_conta = -1;

------------------------------------------------------------------------------------------
-- The flat file for data science.
------------------------------------------------------------------------------------------
PERFORM sicoop._create_flat_view();

IF EXISTS (SELECT 1 FROM pg_depend WHERE classid = 'pg_class'::regclass AND objid = 'sicoop.run_log'::regclass
           AND deptype = 'e') THEN
  RAISE EXCEPTION 'sicoop._create_warehouse() must not run inside an extension script: the data would belong to the extension';
END IF;
END
$fn$;

-- The flat file's view, as sicoop defines it (revoke_operator puts it back so, whatever the
-- operator made of it).
CREATE FUNCTION sicoop._create_flat_view() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
CREATE OR REPLACE VIEW sicoop.vw_movimentacao_flat AS
SELECT a.nome_associado,
       a.sobrenome_associado,
       a.idade_atual_associado    AS idade_associado,
       f.valor_movimentacao       AS vlr_transacao_movimento,
       f.descricao_movimentacao   AS des_transacao_movimento,
       f.data_hora_movimentacao   AS data_movimentacao,
       c.numero_cartao,
       c.nome_impresso_cartao,
       c.data_emissao_cartao      AS data_criacao_cartao,
       co.tipo_conta,
       co.data_criacao_conta
FROM sicoop.fato_movimentacao_cartao f
JOIN sicoop.dim_associado a ON a.sk_associado = f.sk_associado
JOIN sicoop.dim_cartao c    ON c.sk_cartao = f.sk_cartao
JOIN sicoop.dim_conta co    ON co.sk_conta = f.sk_conta
ORDER BY f.data_hora_movimentacao, f.id_movimentacao_cartao;
END
$fn$;

-- The source's foreign server and tables (postgres_fdw): created by connect_source() when
-- missing (a first connection, or after DROP EXTENSION postgres_fdw CASCADE removed them).
CREATE FUNCTION sicoop._create_source_objects() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_foreign_server WHERE srvname = 'sicoop_source') THEN
    CREATE SERVER sicoop_source FOREIGN DATA WRAPPER postgres_fdw;
  END IF;
  IF to_regclass('sicoop.src_associado') IS NULL THEN
    CREATE FOREIGN TABLE sicoop.src_associado (
        id_associado varchar(50) NOT NULL,
        nome varchar(255) NOT NULL,
        data_nascimento date,
        estado_civil varchar(50),
        escolaridade varchar(100)
    ) SERVER sicoop_source OPTIONS (schema_name 'public', table_name 'associado');
  END IF;
  IF to_regclass('sicoop.src_conta') IS NULL THEN
    CREATE FOREIGN TABLE sicoop.src_conta (
        id_conta varchar(50) NOT NULL,
        id_associado varchar(50),
        tipo_conta varchar(50),
        agencia varchar(20),
        situacao_conta varchar(50),
        data_criacao_conta date
    ) SERVER sicoop_source OPTIONS (schema_name 'public', table_name 'conta');
  END IF;
  IF to_regclass('sicoop.src_cartao') IS NULL THEN
    CREATE FOREIGN TABLE sicoop.src_cartao (
        id_cartao varchar(50) NOT NULL,
        id_conta varchar(50),
        numero_cartao varchar(50),
        nome_impresso_cartao varchar(150),
        bandeira_cartao varchar(50),
        tipo_cartao varchar(50),
        data_emissao date
    ) SERVER sicoop_source OPTIONS (schema_name 'public', table_name 'cartao');
  END IF;
  IF to_regclass('sicoop.src_movimentacao_cartao') IS NULL THEN
    CREATE FOREIGN TABLE sicoop.src_movimentacao_cartao (
        id_movimentacao_cartao varchar(50) NOT NULL,
        id_cartao varchar(50),
        descricao_movimentacao varchar(150),
        valor_movimentacao numeric(10,2) NOT NULL,
        data_movimentacao timestamp NOT NULL
    ) SERVER sicoop_source OPTIONS (schema_name 'public', table_name 'movimentacao_cartao');
  END IF;
END
$fn$;

-- Raises a clear error unless a run can start: a warehouse this version can use, and a source.
-- Runs are made by the warehouse's owner (the operator, sicoop.grant_operator()) or a member
-- of it. Not by a superuser when the owner is not one: the owner's triggers and functions on
-- its tables would then run with superuser rights.
CREATE FUNCTION sicoop._check_ready() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  missing text[];
  owner oid;
BEGIN
  -- Who may run is decided from the catalog alone, before anything of the warehouse is read.
  SELECT c.relowner INTO owner FROM pg_class c WHERE c.oid = to_regclass('sicoop.warehouse_info');
  IF owner IS NULL THEN
    PERFORM sicoop._adopt_warehouse();  -- says what is wrong with what is there, if anything
    RAISE EXCEPTION 'sicoop: there is no warehouse in schema sicoop yet'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Call sicoop.connect_source(host, port, dbname, username, password): it creates the warehouse and points it at the source.';
  END IF;
  -- The owner itself: a member of it with more rights of its own (CREATEROLE, other roles)
  -- would lend them to what the owner put in its tables.
  IF current_user::regrole::oid <> owner AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = owner) THEN
    RAISE EXCEPTION 'sicoop: only the warehouse''s owner (%) runs the pipeline, not %', owner::regrole, current_user
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('SET ROLE %s first, or have a superuser make your role the operator with sicoop.grant_operator(role).', owner::regrole);
  END IF;
  IF NOT pg_has_role(current_user, owner, 'USAGE') THEN
    RAISE EXCEPTION 'sicoop: only the warehouse''s owner (%) runs the pipeline, not %', owner::regrole, current_user
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'A superuser makes a role the operator with sicoop.grant_operator(role).';
  END IF;
  IF (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user)
     AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = owner) THEN
    RAISE EXCEPTION 'sicoop: the warehouse belongs to %; a superuser does not run its pipeline', owner::regrole
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('SET ROLE %I first: the owner''s triggers and functions must not run with superuser rights.', owner::regrole);
  END IF;
  PERFORM sicoop._adopt_warehouse();
  -- The extension's own tables (scratch, card hash key) are the operator's too; a re-created
  -- or restored extension makes them anew, owned by whoever ran CREATE EXTENSION.
  IF NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = owner) AND EXISTS (
      SELECT 1 FROM pg_class c JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
      WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relowner <> owner
        AND c.relname <> 'operator_handover') THEN
    RAISE EXCEPTION 'sicoop: the extension''s own tables do not belong to the warehouse''s owner (%)', owner::regrole
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = format('A superuser runs SELECT sicoop.grant_operator(%L) again (the extension was re-created or restored).', owner::regrole::text);
  END IF;
  SELECT array_agg(r) INTO missing
  FROM unnest(ARRAY['src_associado', 'src_conta', 'src_cartao', 'src_movimentacao_cartao']) AS r
  WHERE to_regclass('sicoop.' || r) IS NULL;
  IF missing IS NOT NULL OR NOT EXISTS (SELECT 1 FROM pg_foreign_server WHERE srvname = 'sicoop_source') THEN
    RAISE EXCEPTION 'sicoop: the warehouse is not connected to a source (foreign server sicoop_source or tables % missing)',
                    coalesce(array_to_string(missing, ', '), 'none')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Call sicoop.connect_source(host, port, dbname, username, password) again; the warehouse data is kept.';
  END IF;
END
$fn$;

-- Whether the foreign server and tables already point at this source (same host, port,
-- database and schema): then its incremental state still holds.
CREATE FUNCTION sicoop._is_current_source(host text, port int, dbname text, source_schema text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT coalesce((SELECT o.host = _is_current_source.host AND o.port = _is_current_source.port::text
                        AND o.dbname = _is_current_source.dbname
                 FROM (SELECT max(v) FILTER (WHERE k = 'host') AS host, max(v) FILTER (WHERE k = 'port') AS port,
                              max(v) FILTER (WHERE k = 'dbname') AS dbname
                       FROM pg_foreign_server s, unnest(s.srvoptions) AS opt,
                            LATERAL (SELECT split_part(opt, '=', 1) AS k, substr(opt, strpos(opt, '=') + 1) AS v) kv
                       WHERE s.srvname = 'sicoop_source') o), false)
   AND coalesce((SELECT bool_and(substr(opt, strpos(opt, '=') + 1) = _is_current_source.source_schema)
                 FROM pg_foreign_table ft, unnest(ft.ftoptions) AS opt
                 WHERE ft.ftrelid IN (SELECT to_regclass('sicoop.' || r)
                                      FROM unnest(ARRAY['src_associado', 'src_conta', 'src_cartao', 'src_movimentacao_cartao']) AS r)
                   AND split_part(opt, '=', 1) = 'schema_name'
                 HAVING count(*) = 4), false)
$$;

-- The catalog work of connect_source(): creates the warehouse first if schema sicoop has
-- none; given the source it already points at (a password re-entered after a restore), the
-- incremental state is kept; another source is read whole by the next run.
CREATE FUNCTION sicoop._connect_source(host text, port int, dbname text, username text, password text, source_schema text)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  opt record;
  t text;
  same_source boolean;
BEGIN
  PERFORM sicoop._check_source(host, port, dbname, username, password, source_schema);
  IF NOT sicoop._adopt_warehouse() THEN
    PERFORM sicoop._create_warehouse();
  END IF;
  same_source := sicoop._is_current_source(host, port, dbname, source_schema);
  PERFORM sicoop._create_source_objects();

  -- Replace the server's connection options wholesale, so stale ones never linger.
  FOR opt IN SELECT split_part(o, '=', 1) AS name
             FROM pg_foreign_server s, unnest(s.srvoptions) o WHERE s.srvname = 'sicoop_source'
  LOOP
    EXECUTE format('ALTER SERVER sicoop_source OPTIONS (DROP %I)', opt.name);
  END LOOP;
  EXECUTE format('ALTER SERVER sicoop_source OPTIONS (ADD host %L, ADD port %L, ADD dbname %L, ADD fetch_size %L)',
                 host, port::text, dbname, '10000');

  IF EXISTS (SELECT 1 FROM pg_user_mappings WHERE srvname = 'sicoop_source' AND usename = current_user) THEN
    EXECUTE 'DROP USER MAPPING FOR CURRENT_USER SERVER sicoop_source';
  END IF;
  IF password IS NULL THEN
    EXECUTE format('CREATE USER MAPPING FOR CURRENT_USER SERVER sicoop_source OPTIONS (user %L)', username);
  ELSE
    EXECUTE format('CREATE USER MAPPING FOR CURRENT_USER SERVER sicoop_source OPTIONS (user %L, password %L)',
                   username, password);
  END IF;

  -- Snapshots and watermarks belong to the source they were read from.
  IF NOT same_source THEN
    DELETE FROM sicoop.source_sync;
  END IF;
  FOREACH t IN ARRAY ARRAY['associado', 'conta', 'cartao', 'movimentacao_cartao'] LOOP
    EXECUTE format('ALTER FOREIGN TABLE sicoop.%I OPTIONS (SET schema_name %L)', 'src_' || t, source_schema);
  END LOOP;
  RETURN format('sicoop_source -> %s@%s:%s/%s (schema %s)', username, host, port, dbname, source_schema);
END
$fn$;

-- The run's reference time (sicoop.as_of, empty = now()), once every setting a run reads is
-- checked: a finite reference time, not earlier than the latest successful run's (runs go
-- forward; replaying history in order works) nor later than now() plus five minutes (a typo
-- must not poison every later run); a time zone PostgreSQL knows; a lookback from 0 to 10
-- years. SQLSTATE 22023 otherwise, before anything is read or written.
CREATE FUNCTION sicoop._run_settings() RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  as_of text := current_setting('sicoop.as_of', true);
  zone text := current_setting('sicoop.timezone', true);
  lookback_text text := coalesce(nullif(current_setting('sicoop.lookback', true), ''), '3 days');
  ref timestamptz;
  latest timestamptz;
  lookback interval;
BEGIN
  BEGIN
    ref := coalesce(nullif(as_of, '')::timestamptz, now());
  EXCEPTION WHEN data_exception THEN
    RAISE EXCEPTION 'sicoop.as_of is not a time: %', SQLERRM
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Set a timestamptz such as ''2025-08-15 10:00-03'', or leave it empty for now().';
  END;
  IF NOT isfinite(ref) THEN
    RAISE EXCEPTION 'sicoop.as_of must be a finite time, not %', ref
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Leave sicoop.as_of empty for now().';
  END IF;
  IF ref > now() + interval '5 minutes' THEN
    RAISE EXCEPTION 'sicoop.as_of (%) is in the future (now is %)', ref, now()
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Leave sicoop.as_of empty for now(), or set a past time to replay history.';
  END IF;
  SELECT max(r.as_of) INTO latest FROM sicoop.run_log r WHERE r.status = 'succeeded';
  IF ref < latest THEN
    RAISE EXCEPTION 'sicoop.as_of (%) is earlier than the reference time of the latest successful run (%)', ref, latest
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Runs go forward in time: replay history in order, or leave sicoop.as_of empty for now().';
  END IF;
  BEGIN
    PERFORM now() AT TIME ZONE zone;
  EXCEPTION WHEN data_exception OR invalid_parameter_value OR feature_not_supported THEN
    RAISE EXCEPTION 'sicoop.timezone is not a time zone: %', SQLERRM
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use a name such as America/Sao_Paulo (pg_timezone_names).';
  END;
  BEGIN
    lookback := lookback_text::interval;
  EXCEPTION WHEN data_exception THEN
    RAISE EXCEPTION 'sicoop.lookback is not an interval: %', SQLERRM
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use an interval such as ''3 days''.';
  END;
  IF lookback < interval '0' OR lookback > interval '10 years' THEN
    RAISE EXCEPTION 'sicoop.lookback must be between 0 and 10 years, not %', lookback
      USING ERRCODE = 'invalid_parameter_value', HINT = 'The default is ''3 days''.';
  END IF;
  RETURN ref;
END
$fn$;

-- The text with every possible card number (13 or more digits) masked to its last four digits,
-- as sicoop does to every error it reports or logs (C++, src/steps/text_rules.cpp).
CREATE FUNCTION sicoop._redact_card_numbers(value text) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'sicoop_redact_card_numbers';

------------------------------------------------------------------------------------------
-- Roles. A superuser installs the extension, names the operator and the readers.
------------------------------------------------------------------------------------------
-- The operator's functions: what grant_operator grants and revoke_operator takes back.
CREATE FUNCTION sicoop._operator_functions() RETURNS text LANGUAGE sql IMMUTABLE AS $$
SELECT 'FUNCTION sicoop.connect_source(text, integer, text, text, text, text),
                 sicoop._connect_source(text, integer, text, text, text, text),
                 sicoop._check_source(text, integer, text, text, text, text),
                 sicoop.run_step(text, boolean), sicoop.load_raw(), sicoop.load_trusted(), sicoop.load_dims(),
                 sicoop.scd2_associado(), sicoop.load_fato(), sicoop.export_flat(text),
                 sicoop._defer_indexes(regclass), sicoop._restore_indexes(regclass), sicoop._summarize(regclass),
                 sicoop._empty_tables(text[]), sicoop._create_source_objects()'::text
$$;

-- Gives every relation of schema sicoop owned by `from_owner` (all of them if NULL) to
-- `new_owner`, and the source server too (sequences owned by a table follow it).
CREATE FUNCTION sicoop._set_warehouse_owner(new_owner regrole, from_owner regrole DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  rel record;
BEGIN
  FOR rel IN SELECT c.oid::regclass AS name, c.relkind
             FROM pg_class c
             WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'f', 'S')
               AND (from_owner IS NULL OR c.relowner = from_owner)
               AND c.relname <> 'operator_handover'  -- the superuser's record of the handover
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                               AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
             ORDER BY c.relname
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO %s',
                   CASE rel.relkind WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
                   rel.name, new_owner);
  END LOOP;
  IF EXISTS (SELECT 1 FROM pg_foreign_server s WHERE s.srvname = 'sicoop_source'
             AND (from_owner IS NULL OR s.srvowner = from_owner)) THEN
    EXECUTE format('ALTER SERVER sicoop_source OWNER TO %s', new_owner);
  END IF;
END
$fn$;

-- What every grant_* and revoke_* checks first: a superuser calls it, for a role.
CREATE FUNCTION sicoop._check_grantor(fn text, target regrole) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) THEN
    RAISE EXCEPTION 'sicoop.%: only a superuser calls it', fn USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF target IS NULL THEN
    RAISE EXCEPTION 'sicoop.%: a role is required', fn USING ERRCODE = 'null_value_not_allowed';
  END IF;
END
$fn$;

-- The operator: a role, not a superuser, that owns the warehouse (created here if needed) and
-- may point it at the source (with a password, as postgres_fdw requires), run and schedule
-- the pipeline, read the run log and export the flat file into sicoop.export_directory. The
-- operator is the warehouse's owner, so there is one at a time: to let several people
-- operate, name a group role and grant it to them.
CREATE FUNCTION sicoop.grant_operator(operator regrole) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  previous oid;
BEGIN
  PERFORM sicoop._check_grantor('grant_operator', operator);
  IF NOT sicoop._adopt_warehouse() THEN
    PERFORM sicoop._create_warehouse();
  END IF;
  PERFORM sicoop._create_source_objects();
  SELECT c.relowner INTO previous FROM pg_class c WHERE c.oid = 'sicoop.warehouse_info'::regclass;
  IF previous <> operator::oid AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = previous) THEN
    PERFORM sicoop._check_handover(previous::regrole);
  END IF;
  TRUNCATE sicoop.deferred_index;  -- empty between loads; nothing of a previous owner's stays
  PERFORM sicoop._create_flat_view();  -- as sicoop defines it, whatever a previous operator made of it
  -- The warehouse, its source objects and the extension's own tables become the operator's
  -- (but the handover record, which stays the superuser's).
  PERFORM sicoop._set_warehouse_owner(operator);
  INSERT INTO sicoop.operator_handover AS h (role_name, signature) VALUES (operator::text, sicoop._warehouse_signature())
  ON CONFLICT (role_name) DO UPDATE SET signature = EXCLUDED.signature, handed_at = EXCLUDED.handed_at;
  EXECUTE format('GRANT USAGE ON SCHEMA sicoop TO %s', operator);
  EXECUTE format('GRANT EXECUTE ON %s TO %s', sicoop._operator_functions(), operator);
  EXECUTE format('GRANT EXECUTE ON PROCEDURE sicoop.run_pipeline(boolean) TO %s', operator);
  -- pg_cron lets a role schedule its own jobs once it may use schema cron.
  IF to_regnamespace('cron') IS NOT NULL THEN
    EXECUTE format('GRANT USAGE ON SCHEMA cron TO %s', operator);
  END IF;
  RETURN format('%s operates the warehouse: it owns it%s', operator,
                CASE WHEN previous <> operator::oid THEN format(' (taken over from %s)', previous::regrole) ELSE '' END);
END
$fn$;

-- Takes the operator's rights back: the warehouse goes to the extension's owner, the
-- operator's user mapping (its source password) is dropped. (USAGE on schema cron, which
-- grant_operator gave if pg_cron was there, stays: other things may need it.)
CREATE FUNCTION sicoop.revoke_operator(operator regrole) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  owner regrole;
BEGIN
  PERFORM sicoop._check_grantor('revoke_operator', operator);
  SELECT e.extowner::regrole INTO owner FROM pg_extension e WHERE e.extname = 'sicoop_etl';
  -- Nothing the operator added (defaults, constraints, triggers, rules, policies...) may
  -- come along to a superuser: the definition must be the one handed over.
  PERFORM sicoop._check_warehouse_shape();
  IF EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = 'sicoop.warehouse_info'::regclass AND c.relowner = operator) THEN
    PERFORM sicoop._check_handover(operator);
  END IF;
  TRUNCATE sicoop.deferred_index;
  PERFORM sicoop._set_warehouse_owner(owner, operator);
  PERFORM sicoop._create_flat_view();
  DELETE FROM sicoop.operator_handover h WHERE h.role_name = operator::text;
  IF EXISTS (SELECT 1 FROM pg_user_mappings m WHERE m.srvname = 'sicoop_source' AND m.umuser = operator) THEN
    EXECUTE format('DROP USER MAPPING FOR %s SERVER sicoop_source', operator);
  END IF;
  EXECUTE format('REVOKE EXECUTE ON %s FROM %s', sicoop._operator_functions(), operator);
  EXECUTE format('REVOKE EXECUTE ON PROCEDURE sicoop.run_pipeline(boolean) FROM %s', operator);
  EXECUTE format('REVOKE USAGE ON SCHEMA sicoop FROM %s', operator);
  RETURN format('%s no longer operates the warehouse; %s owns it', operator, owner);
END
$fn$;

-- The star schema a reader (a BI tool, an analyst) may query: the dimensions, the fact and
-- the flat view, nothing else -- no raw or stage (source values), no rejects, no source
-- tables, no run control.
CREATE FUNCTION sicoop._reader_relations() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
SELECT ARRAY['dim_data', 'dim_conta', 'dim_cartao', 'dim_associado', 'fato_movimentacao_cartao', 'vw_movimentacao_flat']
$$;

CREATE FUNCTION sicoop.grant_reader(reader regrole) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  r text;
BEGIN
  PERFORM sicoop._check_grantor('grant_reader', reader);
  IF NOT sicoop._adopt_warehouse() THEN
    RAISE EXCEPTION 'sicoop.grant_reader: there is no warehouse yet' USING ERRCODE = 'object_not_in_prerequisite_state',
      HINT = 'sicoop.grant_operator(role) or sicoop.connect_source(...) creates it.';
  END IF;
  EXECUTE format('GRANT USAGE ON SCHEMA sicoop TO %s', reader);
  FOREACH r IN ARRAY sicoop._reader_relations() LOOP
    EXECUTE format('GRANT SELECT ON sicoop.%I TO %s', r, reader);
  END LOOP;
  RETURN format('%s may read %s', reader, array_to_string(sicoop._reader_relations(), ', '));
END
$fn$;

CREATE FUNCTION sicoop.revoke_reader(reader regrole) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  r text;
BEGIN
  PERFORM sicoop._check_grantor('revoke_reader', reader);
  FOREACH r IN ARRAY sicoop._reader_relations() LOOP
    IF to_regclass('sicoop.' || r) IS NOT NULL THEN
      EXECUTE format('REVOKE SELECT ON sicoop.%I FROM %s', r, reader);
    END IF;
  END LOOP;
  EXECUTE format('REVOKE USAGE ON SCHEMA sicoop FROM %s', reader);
  RETURN format('%s no longer reads the warehouse', reader);
END
$fn$;

-- Points the warehouse at the source (C++, src/source.cpp, over _connect_source() below):
-- its errors never show the password, and the server log leaves out the statement that
-- carried it.
CREATE OR REPLACE FUNCTION sicoop.connect_source(host text, port int, dbname text, username text,
                               password text DEFAULT NULL, source_schema text DEFAULT 'public')
RETURNS text LANGUAGE c AS 'MODULE_PATHNAME', 'sicoop_connect_source';

-- First loads build secondary indexes after the rows are in (faster than maintaining them
-- row by row): their definitions wait in sicoop.deferred_index meanwhile.
-- (Rebuilding an index needs CREATE on schema sicoop, which an operator does not get: for
-- one, the indexes stay in place and are maintained row by row.)
CREATE OR REPLACE FUNCTION sicoop._defer_indexes(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  ix record;
BEGIN
  IF NOT has_schema_privilege('sicoop', 'CREATE') THEN
    RETURN;
  END IF;
  FOR ix IN SELECT i.indexrelid::regclass AS index_name, pg_get_indexdef(i.indexrelid) AS definition
            FROM pg_index i WHERE i.indrelid = tbl AND NOT i.indisprimary AND NOT i.indisunique
  LOOP
    INSERT INTO sicoop.deferred_index VALUES (tbl::text, ix.index_name::text, ix.definition);
    EXECUTE format('DROP INDEX %s', ix.index_name);
  END LOOP;
END
$fn$;

-- Which of these tables (in schema sicoop) are empty.
CREATE OR REPLACE FUNCTION sicoop._empty_tables(tables text[]) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  t text;
  empty text[] := '{}';
  has_rows boolean;
BEGIN
  FOREACH t IN ARRAY tables LOOP
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM sicoop.%I)', t) INTO has_rows;
    IF NOT has_rows THEN
      empty := empty || t;
    END IF;
  END LOOP;
  RETURN empty;
END
$fn$;

-- After a bulk load into a table whose BRIN indexes stayed live: summarize the new page
-- ranges (unsummarized ranges match every query), and refresh the statistics.
CREATE OR REPLACE FUNCTION sicoop._summarize(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  ix regclass;
BEGIN
  FOR ix IN SELECT i.indexrelid::regclass FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = tbl AND a.amname = 'brin'
  LOOP
    PERFORM brin_summarize_new_values(ix);
  END LOOP;
  EXECUTE format('ANALYZE %s', tbl);
END
$fn$;

CREATE OR REPLACE FUNCTION sicoop._restore_indexes(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  ix record;
BEGIN
  FOR ix IN DELETE FROM sicoop.deferred_index WHERE table_name = tbl::text RETURNING definition LOOP
    EXECUTE ix.definition;
  END LOOP;
  EXECUTE format('ANALYZE %s', tbl);
END
$fn$;

------------------------------------------------------------------------------------------
-- Reference time: sicoop.as_of (timestamptz; empty = now()).
------------------------------------------------------------------------------------------
-- (Names in the SQL functions below are qualified, so that they resolve the same whatever the
-- caller's search_path, and the functions stay inlinable: a SET clause would prevent it.)
CREATE OR REPLACE FUNCTION sicoop.reference_time() RETURNS timestamptz LANGUAGE sql STABLE AS
$$ SELECT coalesce(nullif(pg_catalog.current_setting('sicoop.as_of', true), '')::pg_catalog.timestamptz, pg_catalog.now()) $$;

-- First word of the cleaned name.
CREATE OR REPLACE FUNCTION sicoop.first_name(nome text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT pg_catalog.split_part(sicoop.clean_text(nome), ' ', 1) $$;

-- Everything after the first word, NULL if there is none.
CREATE OR REPLACE FUNCTION sicoop.last_name(nome text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT nullif(pg_catalog.substr(n, pg_catalog.strpos(n, ' ') OPERATOR(pg_catalog.+) 1), n)
   FROM (SELECT sicoop.clean_text(nome) AS n) s $$;

-- Whole years lived on a date (birthday-aware; someone born on 29 February turns a year
-- older on 1 March in common years). NULL without a birth date or for a future one.
CREATE OR REPLACE FUNCTION sicoop.age_years(birth date, on_date date) RETURNS int
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT CASE WHEN birth OPERATOR(pg_catalog.<=) on_date
               THEN pg_catalog.date_part('year', pg_catalog.age(on_date::pg_catalog.timestamp, birth::pg_catalog.timestamp))::pg_catalog.int4
          END $$;

-- Every character but the last four replaced by '*' (white space around it ignored; blank -> NULL).
CREATE OR REPLACE FUNCTION sicoop.mask_card(numero text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT nullif(pg_catalog.repeat('*', greatest(pg_catalog.length(n) OPERATOR(pg_catalog.-) 4, 0))
                            OPERATOR(pg_catalog.||) pg_catalog.right(n, 4), '')
   FROM (SELECT pg_catalog.regexp_replace(numero, '^\s+|\s+$', '', 'g') AS n) s $$;

-- Where an incremental read of the source's movements starts: the watermark (the latest
-- movement time the previous copy saw in the source, but never later than the run's local
-- reference time: a future-dated row must not hide the new ones) minus the lookback
-- (sicoop.lookback, default 3 days). NULL before a first load.
CREATE OR REPLACE FUNCTION sicoop.movement_window_start(reference_local timestamp) RETURNS timestamp LANGUAGE sql STABLE AS
$$ SELECT least(watermark, reference_local)
          OPERATOR(pg_catalog.-) coalesce(nullif(pg_catalog.current_setting('sicoop.lookback', true), ''),
                                                     '3 days')::pg_catalog.interval
   FROM sicoop.source_sync WHERE table_name OPERATOR(pg_catalog.=) 'src_movimentacao_cartao'::pg_catalog.text $$;

-- No two versions of a member overlap: checked by every SCD2 run, set-based, for the members
-- whose versions it changed (all of them when since_run_id is 0), and the run fails with
-- SQLSTATE 23P01 otherwise. (An exclusion constraint would say the same, but maintaining its
-- GiST index cost more than the rest of the SCD2 step.)
CREATE OR REPLACE FUNCTION sicoop.check_vigencia(since_run_id bigint DEFAULT 0) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  bad record;
BEGIN
  SELECT id_associado, inicio, fim, next_inicio INTO bad
  FROM (SELECT id_associado, inicio_vigencia_registro_associado AS inicio, fim_vigencia_registro_associado AS fim,
               lead(inicio_vigencia_registro_associado) OVER (PARTITION BY id_associado
                                                              ORDER BY inicio_vigencia_registro_associado) AS next_inicio
        FROM sicoop.dim_associado
        WHERE id_associado IN (SELECT id_associado FROM sicoop.dim_associado
                               WHERE since_run_id = 0 OR run_id > since_run_id)) v
  WHERE next_inicio < fim
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'sicoop: versions of member % overlap: [%, %) and one from %', bad.id_associado, bad.inicio, bad.fim, bad.next_inicio
      USING ERRCODE = 'exclusion_violation';
  END IF;
END
$fn$;

-- SCD2 runs go forward in time: a reference time before the latest version's start is refused.
CREATE OR REPLACE FUNCTION sicoop._check_scd2_reference_time(ref timestamptz) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  latest timestamptz;
BEGIN
  -- The latest boundary of any kind: a version's start, or the close of a deleted member.
  SELECT max(greatest(inicio_vigencia_registro_associado,
                      CASE WHEN NOT registro_ativo_associado THEN fim_vigencia_registro_associado END))
  INTO latest
  FROM sicoop.dim_associado WHERE id_associado IS NOT NULL;
  IF latest > ref THEN
    RAISE EXCEPTION 'sicoop: reference time % is earlier than the latest member version change (%)', ref, latest
      USING HINT = 'Runs cannot go back in time: set sicoop.as_of to a later time, or leave it empty for now().',
            ERRCODE = 'invalid_parameter_value';
  END IF;
END
$fn$;

-- Writes the flat file on the server (C++, src/export.cpp): a plain file name goes into
-- sicoop.export_directory, the directory a superuser allowed; an absolute path needs the
-- privileges of pg_write_server_files, as COPY's. Returns the number of movements.
CREATE OR REPLACE FUNCTION sicoop.export_flat(path text) RETURNS bigint
LANGUAGE c AS 'MODULE_PATHNAME', 'sicoop_export_flat';

-- Privileges: what may change the warehouse, reach the source or export is the operator's
-- (grant_operator), never PUBLIC's. The cleaning helpers stay callable by anyone.
REVOKE ALL ON FUNCTION sicoop.connect_source(text, integer, text, text, text, text), sicoop._connect_source(text, integer, text, text, text, text),
  sicoop._check_source(text, integer, text, text, text, text), sicoop.run_step(text, boolean), sicoop.load_raw(),
  sicoop.load_trusted(), sicoop.load_dims(), sicoop.scd2_associado(), sicoop.load_fato(), sicoop.export_flat(text), sicoop.grant_operator(regrole),
  sicoop.revoke_operator(regrole), sicoop.grant_reader(regrole), sicoop.revoke_reader(regrole),
  sicoop._set_warehouse_owner(regrole, regrole), sicoop._create_flat_view(), sicoop._create_warehouse(),
  sicoop._create_source_objects(), sicoop._defer_indexes(regclass), sicoop._restore_indexes(regclass),
  sicoop._summarize(regclass), sicoop._empty_tables(text[]) FROM PUBLIC;
REVOKE ALL ON PROCEDURE sicoop.run_pipeline(boolean) FROM PUBLIC;


-- The record of what grant_operator hands over (the extension's own, the superuser's).
CREATE TABLE sicoop.operator_handover (
    role_name   text PRIMARY KEY,
    signature   text[] NOT NULL,
    handed_at   timestamptz NOT NULL DEFAULT pg_catalog.now()
);
REVOKE ALL ON sicoop.operator_handover FROM PUBLIC;

-- Data conversion (1.0 -> 1.1).
-- Card numbers: raw keeps them masked to their last four characters, never in clear (PCI
-- DSS 3). ALTER ... TYPE with USING rewrites the table, so that no row version on disk keeps a
-- full number. (Backups taken before the update still hold them: see the README.)
ALTER TABLE sicoop.raw_cartao
  ALTER COLUMN numero_cartao TYPE varchar(50) USING sicoop.mask_card(numero_cartao),
  ADD CONSTRAINT raw_cartao_numero_cartao_check CHECK (numero_cartao ~ '^\**.{0,4}$');
-- Errors 1.0 logged could hold a full card number (a failing row's values): redacted, the
-- table rewritten likewise.
ALTER TABLE sicoop.run_log
  ALTER COLUMN error_message TYPE text USING sicoop._redact_card_numbers(error_message),
  ALTER COLUMN error_detail TYPE text USING sicoop._redact_card_numbers(error_detail),
  ALTER COLUMN error_context TYPE text USING sicoop._redact_card_numbers(error_context);
