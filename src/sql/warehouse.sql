-- The warehouse's tables: every layer (raw, trusted, dimensions, fact), the run log's and the
-- incremental state's tables, created by sicoop._create_warehouse() after CREATE EXTENSION so
-- that they belong to the database, never to the extension (pg_dump keeps them; DROP
-- EXTENSION leaves them).

------------------------------------------------------------------------------------------
-- The warehouse's data: created once, after CREATE EXTENSION, and never an extension member.
------------------------------------------------------------------------------------------
-- The layout of the warehouse's data this version creates and reads.
CREATE OR REPLACE FUNCTION _layout_version() RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$ SELECT '1.12'::text $$;

-- The views that answer analysts' first questions (sicoop._create_bi_views()).
CREATE OR REPLACE FUNCTION _analyst_views() RETURNS text[] LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT ARRAY['vw_gasto_mensal_faixa_etaria', 'vw_gasto_escolaridade_estado_civil', 'vw_gasto_bandeira_tipo_cartao',
             'vw_gasto_tipo_conta_agencia', 'vw_associados_ativos_mes']
$$;

-- Every relation of the warehouse (schema sicoop), as this layout has it.
CREATE OR REPLACE FUNCTION _warehouse_relations() RETURNS text[] LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT ARRAY['warehouse_info', 'run_id_seq', 'run_log', 'reject', 'step_state', 'raw_tombstone',
             'source_sync', 'stream_state', 'raw_associado', 'raw_conta', 'raw_cartao', 'raw_movimentacao_cartao',
             'trusted_associado', 'trusted_conta', 'trusted_cartao', 'trusted_movimentacao_cartao',
             'dim_data', 'dim_conta', 'dim_cartao', 'dim_associado', 'fato_movimentacao_cartao',
             'vw_movimentacao_flat', 'dq_rule', 'dq_result', 'canonical_value', 'reconciliation', 'progress']
       || sicoop._analyst_views()
$$;


-- Creates the warehouse's tables (every layer, the run log and the incremental state), with
-- their sequences, indexes, the unknown members and the flat view. connect_source() calls it
-- when schema sicoop holds no warehouse. Never from an extension script: what a script
-- creates becomes an extension member, which pg_dump leaves out and DROP EXTENSION drops.
CREATE OR REPLACE FUNCTION _create_warehouse() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
-- What the warehouse is and which layout its data has (ALTER EXTENSION ... UPDATE migrates it).
CREATE TABLE sicoop.warehouse_info (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    layout_version  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- A full run (full => true) that started and has not finished yet, or one a failed
    -- reconciliation asked for: the next run is a full one.
    full_run_owed_by bigint,
    -- The row rules (sicoop.dq_rule) and canonical values every row was last checked against
    -- and labelled with: when they change, the next run is a full one.
    rules_signature text,
    -- The canonical values (sicoop._canonical_labels()) dim_associado's labels were written
    -- with: an edit of sicoop.canonical_value relabels every version from these, in place.
    canonical_labels jsonb
);
INSERT INTO sicoop.warehouse_info (layout_version) VALUES (sicoop._layout_version());

-- Run log: one row per run and step (the step 'run_pipeline' summarises a whole run).
CREATE SEQUENCE sicoop.run_id_seq;

CREATE TABLE sicoop.run_log (
    run_id          bigint NOT NULL,
    step            text NOT NULL,
    status          text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped', 'aborted')),
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
-- Raw keeps the source's descriptions as they are, a number typed into one included: no
-- statistics of them (pg_stats would show a sample to whoever may read the table).
ALTER TABLE sicoop.raw_movimentacao_cartao ALTER COLUMN descricao_movimentacao SET STATISTICS 0;
CREATE INDEX raw_associado_run ON sicoop.raw_associado (run_id);
CREATE INDEX raw_conta_run ON sicoop.raw_conta (run_id);
CREATE INDEX raw_cartao_run ON sicoop.raw_cartao (run_id);
-- BRIN: a BRIN index costs next to nothing to maintain during a 10-million-row first load.
-- Its ranges are 4 pages (1.12; the default was 128): a run's updated rows land wherever the
-- heap has room, and each range one of them lands in is read whole by the next run -- 128
-- pages for one row made an incremental run read half of raw after eight runs; 4 pages keep it
-- to the change. (A range's bounds widen only to what it holds: when the window moves on, an
-- old range with one row of last week no longer matches, so the cost stays the change's.)
-- The batch steps that append to the table summarize its new ranges themselves
-- (sicoop._summarize_ranges), so no autosummarize: it asks autovacuum for each new range as
-- rows enter it, and a first load's thousands of requests overflow autovacuum's queue, each
-- overflow a line in the server's log.
CREATE INDEX raw_movimentacao_cartao_run ON sicoop.raw_movimentacao_cartao USING brin (run_id)
    WITH (pages_per_range = 4);
-- The window after the watermark (movements arrive roughly in time order).
CREATE INDEX raw_movimentacao_cartao_data ON sicoop.raw_movimentacao_cartao USING brin (data_movimentacao)
    WITH (pages_per_range = 4);
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
    WITH (pages_per_range = 4);  -- (as raw's)
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
    data_hora_atualizacao_registro timestamptz NOT NULL DEFAULT '1900-01-01 00:00:00+00',
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
    data_hora_atualizacao_registro timestamptz NOT NULL DEFAULT '1900-01-01 00:00:00+00',
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
    data_hora_atualizacao_registro timestamptz NOT NULL DEFAULT '1900-01-01 00:00:00+00',
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
PERFORM sicoop._create_quality_tables();
PERFORM sicoop._create_stream_state();

IF EXISTS (SELECT 1 FROM pg_depend WHERE classid = 'pg_class'::regclass AND objid = 'sicoop.run_log'::regclass
           AND deptype = 'e') THEN
  RAISE EXCEPTION 'sicoop._create_warehouse() must not run inside an extension script: the data would belong to the extension';
END IF;
END
$fn$;
REVOKE ALL ON FUNCTION sicoop._create_warehouse() FROM PUBLIC;
