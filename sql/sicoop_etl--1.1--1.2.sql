-- sicoop_etl 1.1 -> 1.2: data-quality rules, rejects with reasons, canonical values, the
-- reconciliation of the movements with the source, and runs that end in a known state.
--
-- What it does, in place:
--   - the stage takes every source row as it is (wider types, nothing required), and gains the
--     scratch tables of the rules (stage_reject, stage_source_column, stage_day) and the
--     source's day totals (source_day_total);
--   - the warehouse gains sicoop.dq_rule (with the default rules), dq_result, canonical_value
--     (with the default mappings), reconciliation, a reject of the new shape (the 1.1 rejects
--     carried over), run_log's 'aborted' status and warehouse_info.full_run_owed_by;
--   - the next run is a full one (full_run_owed_by is set), so that the rows loaded before
--     the rules existed are checked by them and the canonical values apply everywhere;
--   - 1.2's functions.
\echo Use "ALTER EXTENSION sicoop_etl UPDATE TO '1.2'" to load this file. \quit

-- Whether an operator's warehouse is still as it was handed over (read before anything here
-- changes it): if so, it is handed over again below with 1.2's definition.
CREATE TEMP TABLE sicoop_1_2_handover_unchanged AS
SELECT h.role_name FROM sicoop.operator_handover h
WHERE to_regclass('sicoop.warehouse_info') IS NOT NULL AND h.signature = sicoop._warehouse_signature();

-- The stage (the extension's own, empty between runs): wide types, nothing required.
DROP TABLE sicoop.stage_associado, sicoop.stage_conta, sicoop.stage_cartao, sicoop.stage_movimentacao_cartao,
           sicoop.stage_key;
-- Staging: what the bulk COPY from the source lands in, before it is merged into raw.
-- Unlogged: it is rebuilt by every load, so it need not survive a crash. Its types are wider
-- than the warehouse's and nothing is required, so that every source row lands here as it is:
-- the data-quality rules (sicoop.dq_rule) then decide, row by row, what enters raw and what is
-- rejected with its reason; nothing is cut, rounded or refused wholesale on the way.
CREATE UNLOGGED TABLE sicoop.stage_associado (
    id_associado text,
    nome text,
    data_nascimento date,
    estado_civil text,
    escolaridade text
);
CREATE UNLOGGED TABLE sicoop.stage_conta (
    id_conta text,
    id_associado text,
    tipo_conta text,
    agencia text,
    situacao_conta text,
    data_criacao_conta date
);
CREATE UNLOGGED TABLE sicoop.stage_cartao (
    id_cartao text,
    id_conta text,
    numero_cartao text,
    nome_impresso_cartao text,
    bandeira_cartao text,
    tipo_cartao text,
    data_emissao date
);
CREATE UNLOGGED TABLE sicoop.stage_movimentacao_cartao (
    id_movimentacao_cartao text,
    id_cartao text,
    descricao_movimentacao text,
    valor_movimentacao numeric,
    data_movimentacao timestamp
);
-- The rows a run rejects (sicoop._apply_row_rules), before they replace the table's rejects.
CREATE UNLOGGED TABLE sicoop.stage_reject (record_id text, rules text[], record jsonb);
-- The source's columns as its catalog describes them, read by each load (schema drift, and
-- whether a unique index guarantees the key).
CREATE UNLOGGED TABLE sicoop.stage_source_column (table_name text, column_name text, source_type text, unique_key boolean);
REVOKE ALL ON sicoop.stage_associado, sicoop.stage_conta, sicoop.stage_cartao, sicoop.stage_movimentacao_cartao, sicoop.stage_reject FROM PUBLIC;
CREATE UNLOGGED TABLE sicoop.stage_key (record_id text);
-- The source's movements per day (local date): count and sum of valor_movimentacao, in the
-- snapshot the latest load copied. The reconciliation after load_fato compares the fact with it.
-- Logged: it is kept from load_raw to load_fato, which commit apart.
CREATE TABLE sicoop.source_day_total (dia date, source_rows bigint NOT NULL, source_valor numeric NOT NULL);
-- The movement days, before the incremental window, whose source totals differ from raw's plus
-- the rejects': an old movement inserted, edited or deleted. The incremental load reads them too.
CREATE UNLOGGED TABLE sicoop.stage_day (dia date);


-- 1.2's functions.
------------------------------------------------------------------------------------------
-- The warehouse's data: created once, after CREATE EXTENSION, and never an extension member.
------------------------------------------------------------------------------------------
-- The layout of the warehouse's data this version creates and reads.
CREATE OR REPLACE FUNCTION sicoop._layout_version() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT '1.2'::text $$;

-- The views that answer analysts' first questions (sicoop._create_bi_views()).
CREATE OR REPLACE FUNCTION sicoop._analyst_views() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
SELECT ARRAY['vw_gasto_mensal_faixa_etaria', 'vw_gasto_escolaridade_estado_civil', 'vw_gasto_bandeira_tipo_cartao',
             'vw_gasto_tipo_conta_agencia', 'vw_associados_ativos_mes']
$$;

-- Every relation of the warehouse (schema sicoop), as this layout has it.
CREATE OR REPLACE FUNCTION sicoop._warehouse_relations() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
SELECT ARRAY['warehouse_info', 'run_id_seq', 'run_log', 'reject', 'step_state', 'raw_tombstone',
             'source_sync', 'raw_associado', 'raw_conta', 'raw_cartao', 'raw_movimentacao_cartao',
             'trusted_associado', 'trusted_conta', 'trusted_cartao', 'trusted_movimentacao_cartao',
             'dim_data', 'dim_conta', 'dim_cartao', 'dim_associado', 'fato_movimentacao_cartao',
             'vw_movimentacao_flat', 'dq_rule', 'dq_result', 'canonical_value', 'reconciliation', 'progress']
       || sicoop._analyst_views()
$$;

-- Refuses a warehouse whose relations could run code of their owner's when another role reads
-- or writes them: a table turned into a view or given rules, triggers, row-level security or
-- inheritance children; a flat view with rules of its own. (The extension's own code never
-- needs any of these. A superuser may add triggers to a warehouse a superuser owns.)
CREATE OR REPLACE FUNCTION sicoop._check_warehouse_shape() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  odd text[];
  views text[] := ARRAY['vw_movimentacao_flat', 'progress'] || sicoop._analyst_views();
BEGIN
  SELECT array_agg(format('%s (%s)', c.relname, why) ORDER BY c.relname) INTO odd
  FROM pg_class c
  CROSS JOIN LATERAL (
    SELECT CASE
      WHEN c.relname = ANY (views) AND c.relkind <> 'v' THEN 'not a view'
      WHEN c.relname = 'run_id_seq' AND c.relkind <> 'S' THEN 'not a sequence'
      WHEN c.relname <> ALL (views) AND c.relkind NOT IN ('r', 'S') THEN 'not a plain table'
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

-- Creates the warehouse's tables (every layer, the run log and the incremental state), with
-- their sequences, indexes, the unknown members and the flat view. connect_source() calls it
-- when schema sicoop holds no warehouse. Never from an extension script: what a script
-- creates becomes an extension member, which pg_dump leaves out and DROP EXTENSION drops.
CREATE OR REPLACE FUNCTION sicoop._create_warehouse() RETURNS void
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
    rules_signature text
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
PERFORM sicoop._create_quality_tables();

IF EXISTS (SELECT 1 FROM pg_depend WHERE classid = 'pg_class'::regclass AND objid = 'sicoop.run_log'::regclass
           AND deptype = 'e') THEN
  RAISE EXCEPTION 'sicoop._create_warehouse() must not run inside an extension script: the data would belong to the extension';
END IF;
END
$fn$;

-- The flat file's view, as sicoop defines it (revoke_operator puts it back so, whatever the
-- operator made of it).
CREATE OR REPLACE FUNCTION sicoop._create_flat_view() RETURNS void
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
PERFORM sicoop._create_bi_views();
PERFORM sicoop._comment_warehouse();
END
$fn$;

-- The views that answer the first questions analysts ask (readers may read them), and the view
-- of the runs in progress (the owner's). Spend is the fact's valor_movimentacao; a member's attributes are those of the version valid at the
-- movement (the fact's sk_associado), as the SCD2 dimension keeps them.
CREATE OR REPLACE FUNCTION sicoop._create_bi_views() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
CREATE OR REPLACE VIEW sicoop.vw_gasto_mensal_faixa_etaria AS
SELECT date_trunc('month', f.data_hora_movimentacao)::date AS mes,
       CASE WHEN i.idade IS NULL THEN 'DESCONHECIDA'
            WHEN i.idade < 18 THEN 'ATÉ 17' WHEN i.idade < 25 THEN '18 A 24' WHEN i.idade < 35 THEN '25 A 34'
            WHEN i.idade < 45 THEN '35 A 44' WHEN i.idade < 55 THEN '45 A 54' WHEN i.idade < 65 THEN '55 A 64'
            ELSE '65 OU MAIS' END AS faixa_etaria,
       count(*) AS movimentacoes,
       sum(f.valor_movimentacao) AS valor_total,
       round(avg(f.valor_movimentacao), 2) AS ticket_medio
FROM sicoop.fato_movimentacao_cartao f
JOIN sicoop.dim_associado a ON a.sk_associado = f.sk_associado
CROSS JOIN LATERAL (SELECT date_part('year', age(f.data_hora_movimentacao::date, a.data_nascimento_associado))::int AS idade) i
GROUP BY 1, 2;

CREATE OR REPLACE VIEW sicoop.vw_gasto_escolaridade_estado_civil AS
SELECT coalesce(a.escolaridade_associado, 'DESCONHECIDA') AS escolaridade,
       coalesce(a.estado_civil_associado, 'DESCONHECIDO') AS estado_civil,
       count(*) AS movimentacoes,
       sum(f.valor_movimentacao) AS valor_total,
       round(avg(f.valor_movimentacao), 2) AS ticket_medio
FROM sicoop.fato_movimentacao_cartao f
JOIN sicoop.dim_associado a ON a.sk_associado = f.sk_associado
GROUP BY 1, 2;

CREATE OR REPLACE VIEW sicoop.vw_gasto_bandeira_tipo_cartao AS
SELECT coalesce(c.bandeira_cartao, 'DESCONHECIDA') AS bandeira_cartao,
       coalesce(c.tipo_cartao, 'DESCONHECIDO') AS tipo_cartao,
       count(*) AS movimentacoes,
       sum(f.valor_movimentacao) AS valor_total,
       round(avg(f.valor_movimentacao), 2) AS ticket_medio
FROM sicoop.fato_movimentacao_cartao f
JOIN sicoop.dim_cartao c ON c.sk_cartao = f.sk_cartao
GROUP BY 1, 2;

CREATE OR REPLACE VIEW sicoop.vw_gasto_tipo_conta_agencia AS
SELECT coalesce(co.tipo_conta, 'DESCONHECIDO') AS tipo_conta,
       coalesce(co.agencia_conta, 'DESCONHECIDA') AS agencia,
       count(*) AS movimentacoes,
       sum(f.valor_movimentacao) AS valor_total,
       round(avg(f.valor_movimentacao), 2) AS ticket_medio
FROM sicoop.fato_movimentacao_cartao f
JOIN sicoop.dim_conta co ON co.sk_conta = f.sk_conta
GROUP BY 1, 2;

-- Where the runs in progress are, readable from any session while they run: the step and
-- table each is at (what its session publishes as application_name), since when, the rows
-- copied so far when it is copying from the source (pg_stat_progress_copy: the caller's own
-- sessions, or all with pg_read_all_stats), their rate, and the rows the same step and table
-- took in the latest successful run, as an estimate of what is to come.
CREATE OR REPLACE VIEW sicoop.progress AS
SELECT a.pid AS backend_pid,
       split_part(a.application_name, ' ', 3)::bigint AS run_id,
       split_part(a.application_name, ' ', 4) AS step,
       nullif(split_part(a.application_name, ' ', 5), '') AS table_name,
       a.xact_start AS step_started_at,
       date_trunc('second', clock_timestamp() - a.xact_start) AS step_elapsed,
       p.tuples_processed AS rows_done,
       round(p.tuples_processed / greatest(extract(epoch FROM clock_timestamp() - a.xact_start), 0.001)) AS rows_per_second,
       e.rows_last_run AS rows_expected,
       greatest(e.rows_last_run - p.tuples_processed, 0) AS rows_to_go
FROM pg_stat_activity a
LEFT JOIN pg_stat_progress_copy p ON p.pid = a.pid
LEFT JOIN LATERAL (
  SELECT (l.detail -> split_part(a.application_name, ' ', 5) ->> 'rows')::bigint AS rows_last_run
  FROM sicoop.run_log l
  WHERE l.step = split_part(a.application_name, ' ', 4) AND l.status = 'succeeded'
  ORDER BY l.run_id DESC LIMIT 1) e ON true
WHERE a.datname = current_database() AND a.application_name ~ '^sicoop_etl run [0-9]+ ';

CREATE OR REPLACE VIEW sicoop.vw_associados_ativos_mes AS
SELECT date_trunc('month', f.data_hora_movimentacao)::date AS mes,
       count(DISTINCT a.id_associado) AS associados_ativos,
       count(*) AS movimentacoes,
       sum(f.valor_movimentacao) AS valor_total
FROM sicoop.fato_movimentacao_cartao f
JOIN sicoop.dim_associado a ON a.sk_associado = f.sk_associado
WHERE a.id_associado IS NOT NULL
GROUP BY 1;
END
$fn$;

-- What BI tools show of the star schema, the flat file's view and the analysts' views: a
-- description of every table, view and column, in the cooperative's words.
CREATE OR REPLACE FUNCTION sicoop._comment_warehouse() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  c record;
BEGIN
  FOR c IN SELECT * FROM (VALUES
    ('dim_data', NULL, 'Dimensão calendário: um dia por linha, do primeiro ao último dia com movimentação.'),
    ('dim_data', 'sk_data', 'Chave do dia no formato AAAAMMDD (-1: data desconhecida).'),
    ('dim_data', 'data', 'O dia.'),
    ('dim_data', 'dia', 'Dia do mês.'),
    ('dim_data', 'mes', 'Mês (1 a 12).'),
    ('dim_data', 'ano', 'Ano.'),
    ('dim_data', 'trimestre', 'Trimestre (1 a 4).'),
    ('dim_data', 'dia_da_semana', 'Nome do dia da semana.'),
    ('dim_data', 'fim_de_semana', 'Verdadeiro aos sábados e domingos.'),
    ('dim_conta', NULL, 'Dimensão conta corrente, poupança ou outra, do associado (tipo 1: alterações sobrescrevem).'),
    ('dim_conta', 'sk_conta', 'Chave substituta da conta (-1: conta desconhecida).'),
    ('dim_conta', 'id_conta', 'Identificador da conta no sistema de origem.'),
    ('dim_conta', 'id_associado', 'Identificador do associado titular no sistema de origem.'),
    ('dim_conta', 'tipo_conta', 'Tipo de conta, na forma canônica (CORRENTE, POUPANÇA, ...).'),
    ('dim_conta', 'agencia_conta', 'Agência da conta.'),
    ('dim_conta', 'situacao_conta', 'Situação da conta (ATIVA, INATIVA, ...).'),
    ('dim_conta', 'data_criacao_conta', 'Data de abertura da conta.'),
    ('dim_conta', 'data_hora_atualizacao_registro', 'Quando o registro foi gravado ou alterado pela última vez.'),
    ('dim_conta', 'run_id', 'Execução do pipeline que gravou o registro por último.'),
    ('dim_cartao', NULL, 'Dimensão cartão (tipo 1: alterações sobrescrevem).'),
    ('dim_cartao', 'sk_cartao', 'Chave substituta do cartão (-1: cartão desconhecido).'),
    ('dim_cartao', 'id_cartao', 'Identificador do cartão no sistema de origem.'),
    ('dim_cartao', 'id_conta', 'Identificador da conta do cartão no sistema de origem.'),
    ('dim_cartao', 'numero_cartao', 'Número do cartão mascarado: só os quatro últimos dígitos são visíveis.'),
    ('dim_cartao', 'nome_impresso_cartao', 'Nome impresso no cartão.'),
    ('dim_cartao', 'bandeira_cartao', 'Bandeira, na forma canônica (VISA, MASTERCARD, ELO, ...).'),
    ('dim_cartao', 'tipo_cartao', 'Tipo de cartão (CRÉDITO, DÉBITO, ...).'),
    ('dim_cartao', 'data_emissao_cartao', 'Data de emissão do cartão.'),
    ('dim_cartao', 'data_hora_atualizacao_registro', 'Quando o registro foi gravado ou alterado pela última vez.'),
    ('dim_cartao', 'run_id', 'Execução do pipeline que gravou o registro por último.'),
    ('dim_associado', NULL, 'Dimensão associado, histórica (SCD tipo 2): uma versão por período em que estado civil, escolaridade e idade ficaram iguais.'),
    ('dim_associado', 'sk_associado', 'Chave substituta da versão do associado (-1: associado desconhecido).'),
    ('dim_associado', 'id_associado', 'Identificador do associado no sistema de origem.'),
    ('dim_associado', 'nome_associado', 'Primeiro nome do associado.'),
    ('dim_associado', 'sobrenome_associado', 'Sobrenome do associado.'),
    ('dim_associado', 'data_nascimento_associado', 'Data de nascimento do associado.'),
    ('dim_associado', 'idade_atual_associado', 'Idade em anos completos na data de referência da versão (histórica).'),
    ('dim_associado', 'estado_civil_associado', 'Estado civil na forma canônica (histórico).'),
    ('dim_associado', 'escolaridade_associado', 'Escolaridade na forma canônica (histórica).'),
    ('dim_associado', 'inicio_vigencia_registro_associado', 'Início da vigência da versão (incluído).'),
    ('dim_associado', 'fim_vigencia_registro_associado', 'Fim da vigência da versão (excluído); 9999-12-31 para a versão atual.'),
    ('dim_associado', 'registro_ativo_associado', 'Verdadeiro para a versão atual do associado.'),
    ('dim_associado', 'data_hora_atualizacao_registro', 'Quando a versão foi gravada ou alterada pela última vez.'),
    ('dim_associado', 'run_id', 'Execução do pipeline que gravou a versão por último.'),
    ('fato_movimentacao_cartao', NULL, 'Fato: uma linha por movimentação de cartão, ligada às dimensões vigentes no momento da movimentação.'),
    ('fato_movimentacao_cartao', 'id_movimentacao_cartao', 'Identificador da movimentação no sistema de origem.'),
    ('fato_movimentacao_cartao', 'sk_associado', 'Versão do associado vigente no momento da movimentação (dim_associado).'),
    ('fato_movimentacao_cartao', 'sk_cartao', 'Cartão da movimentação (dim_cartao).'),
    ('fato_movimentacao_cartao', 'sk_conta', 'Conta do cartão (dim_conta).'),
    ('fato_movimentacao_cartao', 'sk_data', 'Dia da movimentação (dim_data).'),
    ('fato_movimentacao_cartao', 'descricao_movimentacao', 'Descrição da movimentação (estabelecimento).'),
    ('fato_movimentacao_cartao', 'valor_movimentacao', 'Valor da movimentação em reais (negativo: estorno).'),
    ('fato_movimentacao_cartao', 'data_hora_movimentacao', 'Data e hora da movimentação, no horário local da cooperativa.'),
    ('fato_movimentacao_cartao', 'data_hora_atualizacao_registro', 'Quando o fato foi gravado ou alterado pela última vez (para leituras incrementais).'),
    ('vw_movimentacao_flat', NULL, 'Arquivo plano para ciência de dados: uma linha por movimentação, com associado, cartão e conta.'),
    ('vw_movimentacao_flat', 'nome_associado', 'Primeiro nome do associado.'),
    ('vw_movimentacao_flat', 'sobrenome_associado', 'Sobrenome do associado.'),
    ('vw_movimentacao_flat', 'idade_associado', 'Idade do associado em anos completos.'),
    ('vw_movimentacao_flat', 'vlr_transacao_movimento', 'Valor da movimentação em reais.'),
    ('vw_movimentacao_flat', 'des_transacao_movimento', 'Descrição da movimentação.'),
    ('vw_movimentacao_flat', 'data_movimentacao', 'Data e hora da movimentação.'),
    ('vw_movimentacao_flat', 'numero_cartao', 'Número do cartão mascarado.'),
    ('vw_movimentacao_flat', 'nome_impresso_cartao', 'Nome impresso no cartão.'),
    ('vw_movimentacao_flat', 'data_criacao_cartao', 'Data de emissão do cartão.'),
    ('vw_movimentacao_flat', 'tipo_conta', 'Tipo de conta.'),
    ('vw_movimentacao_flat', 'data_criacao_conta', 'Data de abertura da conta.'),
    ('vw_gasto_mensal_faixa_etaria', NULL, 'Gasto por mês e faixa etária do associado na data da movimentação.'),
    ('vw_gasto_mensal_faixa_etaria', 'mes', 'Primeiro dia do mês.'),
    ('vw_gasto_mensal_faixa_etaria', 'faixa_etaria', 'Faixa de idade do associado na data da movimentação.'),
    ('vw_gasto_escolaridade_estado_civil', NULL, 'Gasto por escolaridade e estado civil do associado, como eram na data da movimentação.'),
    ('vw_gasto_escolaridade_estado_civil', 'escolaridade', 'Escolaridade na data da movimentação.'),
    ('vw_gasto_escolaridade_estado_civil', 'estado_civil', 'Estado civil na data da movimentação.'),
    ('vw_gasto_bandeira_tipo_cartao', NULL, 'Gasto por bandeira e tipo de cartão.'),
    ('vw_gasto_bandeira_tipo_cartao', 'bandeira_cartao', 'Bandeira do cartão.'),
    ('vw_gasto_bandeira_tipo_cartao', 'tipo_cartao', 'Tipo de cartão.'),
    ('vw_gasto_tipo_conta_agencia', NULL, 'Gasto por tipo de conta e agência.'),
    ('vw_gasto_tipo_conta_agencia', 'tipo_conta', 'Tipo de conta.'),
    ('vw_gasto_tipo_conta_agencia', 'agencia', 'Agência da conta.'),
    ('vw_associados_ativos_mes', NULL, 'Associados ativos por mês: os que movimentaram algum cartão no mês.'),
    ('vw_associados_ativos_mes', 'mes', 'Primeiro dia do mês.'),
    ('vw_associados_ativos_mes', 'associados_ativos', 'Associados distintos com ao menos uma movimentação no mês.')
  ) AS t(rel, col, note)
  UNION ALL
  -- The measures the analysts' views share.
  SELECT v.rel, m.col, m.note
  FROM unnest(ARRAY['vw_gasto_mensal_faixa_etaria', 'vw_gasto_escolaridade_estado_civil', 'vw_gasto_bandeira_tipo_cartao',
                    'vw_gasto_tipo_conta_agencia', 'vw_associados_ativos_mes']) AS v(rel)
  CROSS JOIN (VALUES ('movimentacoes', 'Quantidade de movimentações.'), ('valor_total', 'Soma dos valores, em reais.'),
                     ('ticket_medio', 'Valor médio por movimentação, em reais.')) AS m(col, note)
  WHERE EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = format('sicoop.%I', v.rel)::regclass AND a.attname = m.col)
  LOOP
    IF c.col IS NULL THEN
      EXECUTE format('COMMENT ON %s sicoop.%I IS %L',
                     CASE WHEN c.rel LIKE 'vw\_%' THEN 'VIEW' ELSE 'TABLE' END, c.rel, c.note);
    ELSE
      EXECUTE format('COMMENT ON COLUMN sicoop.%I.%I IS %L', c.rel, c.col, c.note);
    END IF;
  END LOOP;
END
$fn$;

-- The data-quality tables: the rules, their results per run, the rejects, the canonical values
-- and the reconciliation of the movements with the source. Part of the warehouse (created by
-- _create_warehouse(), and by the 1.1 -> 1.2 upgrade), so the rules users edit are theirs.
CREATE OR REPLACE FUNCTION sicoop._create_quality_tables() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
-- What a source row must satisfy to enter the warehouse (checked as it enters raw, so a row is
-- either in every layer or in sicoop.reject), and the checks of whole tables and runs.
-- Users add, change and disable rules with INSERT and UPDATE; sicoop.dq_rule_kinds() says what
-- each kind does. Severity: 'reject' keeps the row out (in sicoop.reject, with the reason) and
-- loads the rest; 'warn' loads it and counts it in sicoop.dq_result; 'fail' stops the step.
CREATE TABLE sicoop.dq_rule (
    rule_name        text PRIMARY KEY,
    table_name       text NOT NULL CHECK (table_name IN ('associado', 'conta', 'cartao', 'movimentacao_cartao')),
    column_name      text,         -- NULL: every column the kind applies to (fits, no_control_chars)
    kind             text NOT NULL CHECK (kind IN ('not_null', 'not_blank', 'unique', 'references', 'accepted_values',
                                                   'range', 'no_control_chars', 'fits', 'source_drift', 'canonical',
                                                   'reconciliation')),
    severity         text NOT NULL CHECK (severity IN ('reject', 'warn', 'fail')),
    min_value        text,         -- range: a literal of the column's type, or today[+-N] (days)
    max_value        text,
    accepted_values  text[],       -- accepted_values: the values, as cleaned (upper case)
    ref_table        text CHECK (ref_table IN ('associado', 'conta', 'cartao')),  -- references
    enabled          boolean NOT NULL DEFAULT true,
    description      text NOT NULL,
    -- Checks of a table or a run have no row to keep out.
    CHECK (severity <> 'reject' OR kind NOT IN ('source_drift', 'canonical', 'reconciliation')),
    CHECK ((kind = 'range') = (min_value IS NOT NULL OR max_value IS NOT NULL)),
    CHECK ((kind = 'accepted_values') = (accepted_values IS NOT NULL)),
    CHECK ((kind = 'references') = (ref_table IS NOT NULL)),
    CHECK (column_name IS NOT NULL OR kind IN ('fits', 'no_control_chars', 'source_drift', 'reconciliation'))
);
INSERT INTO sicoop.dq_rule (rule_name, table_name, column_name, kind, severity, min_value, max_value, accepted_values, ref_table, description) VALUES
  ('associado_id_not_null', 'associado', 'id_associado', 'not_null', 'reject', NULL, NULL, NULL, NULL, 'id_associado is missing'),
  ('associado_id_unique', 'associado', 'id_associado', 'unique', 'reject', NULL, NULL, NULL, NULL, 'id_associado is not unique in the source: every copy is kept out'),
  ('associado_fits', 'associado', NULL, 'fits', 'reject', NULL, NULL, NULL, NULL, 'a value is longer than the warehouse''s column'),
  ('associado_no_control_chars', 'associado', NULL, 'no_control_chars', 'reject', NULL, NULL, NULL, NULL, 'a text holds control characters'),
  ('associado_nome_not_blank', 'associado', 'nome', 'not_blank', 'reject', NULL, NULL, NULL, NULL, 'nome is blank'),
  ('associado_nascimento_range', 'associado', 'data_nascimento', 'range', 'reject', '1900-01-01', 'today', NULL, NULL, 'data_nascimento is before 1900 or after the run''s date'),
  ('associado_estado_civil_canonical', 'associado', 'estado_civil', 'canonical', 'warn', NULL, NULL, NULL, NULL, 'estado_civil has no canonical value in sicoop.canonical_value'),
  ('associado_escolaridade_canonical', 'associado', 'escolaridade', 'canonical', 'warn', NULL, NULL, NULL, NULL, 'escolaridade has no canonical value in sicoop.canonical_value'),
  ('associado_source_drift', 'associado', NULL, 'source_drift', 'warn', NULL, NULL, NULL, NULL, 'a source column''s type differs from the warehouse''s'),
  ('conta_id_not_null', 'conta', 'id_conta', 'not_null', 'reject', NULL, NULL, NULL, NULL, 'id_conta is missing'),
  ('conta_id_unique', 'conta', 'id_conta', 'unique', 'reject', NULL, NULL, NULL, NULL, 'id_conta is not unique in the source: every copy is kept out'),
  ('conta_fits', 'conta', NULL, 'fits', 'reject', NULL, NULL, NULL, NULL, 'a value is longer than the warehouse''s column'),
  ('conta_no_control_chars', 'conta', NULL, 'no_control_chars', 'reject', NULL, NULL, NULL, NULL, 'a text holds control characters'),
  ('conta_criacao_range', 'conta', 'data_criacao_conta', 'range', 'reject', '1900-01-01', 'today+31', NULL, NULL, 'data_criacao_conta is before 1900 or more than a month after the run''s date'),
  ('conta_associado_references', 'conta', 'id_associado', 'references', 'warn', NULL, NULL, NULL, 'associado', 'the account''s member is not (yet) in the source: its facts go to the unknown member'),
  ('conta_situacao_accepted', 'conta', 'situacao_conta', 'accepted_values', 'warn', NULL, NULL, '{ATIVA,INATIVA,ENCERRADA,BLOQUEADA}', NULL, 'situacao_conta is not one of the known states'),
  ('conta_tipo_canonical', 'conta', 'tipo_conta', 'canonical', 'warn', NULL, NULL, NULL, NULL, 'tipo_conta has no canonical value in sicoop.canonical_value'),
  ('conta_source_drift', 'conta', NULL, 'source_drift', 'warn', NULL, NULL, NULL, NULL, 'a source column''s type differs from the warehouse''s'),
  ('cartao_id_not_null', 'cartao', 'id_cartao', 'not_null', 'reject', NULL, NULL, NULL, NULL, 'id_cartao is missing'),
  ('cartao_id_unique', 'cartao', 'id_cartao', 'unique', 'reject', NULL, NULL, NULL, NULL, 'id_cartao is not unique in the source: every copy is kept out'),
  ('cartao_fits', 'cartao', NULL, 'fits', 'reject', NULL, NULL, NULL, NULL, 'a value is longer than the warehouse''s column'),
  ('cartao_no_control_chars', 'cartao', NULL, 'no_control_chars', 'reject', NULL, NULL, NULL, NULL, 'a text holds control characters'),
  ('cartao_emissao_range', 'cartao', 'data_emissao', 'range', 'reject', '1900-01-01', 'today+31', NULL, NULL, 'data_emissao is before 1900 or more than a month after the run''s date'),
  ('cartao_conta_references', 'cartao', 'id_conta', 'references', 'warn', NULL, NULL, NULL, 'conta', 'the card''s account is not (yet) in the source: its facts go to the unknown member'),
  ('cartao_bandeira_canonical', 'cartao', 'bandeira_cartao', 'canonical', 'warn', NULL, NULL, NULL, NULL, 'bandeira_cartao has no canonical value in sicoop.canonical_value'),
  ('cartao_source_drift', 'cartao', NULL, 'source_drift', 'warn', NULL, NULL, NULL, NULL, 'a source column''s type differs from the warehouse''s'),
  ('movimentacao_id_not_null', 'movimentacao_cartao', 'id_movimentacao_cartao', 'not_null', 'reject', NULL, NULL, NULL, NULL, 'id_movimentacao_cartao is missing'),
  ('movimentacao_id_unique', 'movimentacao_cartao', 'id_movimentacao_cartao', 'unique', 'reject', NULL, NULL, NULL, NULL, 'id_movimentacao_cartao is not unique in the source: every copy is kept out'),
  ('movimentacao_fits', 'movimentacao_cartao', NULL, 'fits', 'reject', NULL, NULL, NULL, NULL, 'a value does not fit the warehouse''s column (too long, too large, or more decimals than it keeps)'),
  ('movimentacao_no_control_chars', 'movimentacao_cartao', NULL, 'no_control_chars', 'reject', NULL, NULL, NULL, NULL, 'a text holds control characters'),
  ('movimentacao_valor_not_null', 'movimentacao_cartao', 'valor_movimentacao', 'not_null', 'reject', NULL, NULL, NULL, NULL, 'valor_movimentacao is missing'),
  ('movimentacao_data_not_null', 'movimentacao_cartao', 'data_movimentacao', 'not_null', 'reject', NULL, NULL, NULL, NULL, 'data_movimentacao is missing'),
  ('movimentacao_data_range', 'movimentacao_cartao', 'data_movimentacao', 'range', 'reject', '1990-01-01', 'today+31', NULL, NULL, 'data_movimentacao is outside the cooperative''s life (1990 to a month after the run''s date)'),
  ('movimentacao_valor_non_negative', 'movimentacao_cartao', 'valor_movimentacao', 'range', 'warn', '0', NULL, NULL, NULL, 'valor_movimentacao is negative (a refund or reversal?)'),
  ('movimentacao_cartao_references', 'movimentacao_cartao', 'id_cartao', 'references', 'warn', NULL, NULL, NULL, 'cartao', 'the movement''s card is not (yet) in the source: the fact goes to the unknown member'),
  ('movimentacao_source_drift', 'movimentacao_cartao', NULL, 'source_drift', 'warn', NULL, NULL, NULL, NULL, 'a source column''s type differs from the warehouse''s'),
  ('movimentacao_reconciliation', 'movimentacao_cartao', NULL, 'reconciliation', 'fail', NULL, NULL, NULL, NULL, 'per movement day, the source''s count and sum of valor_movimentacao differ from the fact''s plus the rejects''');

-- Every rule's outcome, per run.
CREATE TABLE sicoop.dq_result (
    run_id        bigint NOT NULL,
    rule_name     text NOT NULL,
    table_name    text NOT NULL,
    severity      text NOT NULL,
    rows_checked  bigint NOT NULL,     -- rows (or columns, or days) the rule looked at
    rows_failed   bigint NOT NULL,
    sample        jsonb,               -- a few of the failing keys (or columns, values, days)
    checked_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, rule_name)
);

-- Source rows kept out of the warehouse: one row per source row (every copy of a duplicated
-- key), with the rules it breaks, why, and its values (card numbers masked). Rechecked by every
-- run: a row fixed at the source loads and leaves; one deleted there leaves.
CREATE TABLE sicoop.reject (
    table_name   text NOT NULL,
    record_id    text,                 -- NULL: the source row has no key
    copy_no      int NOT NULL,         -- 1, 2, ... for the copies of a duplicated key
    rule_name    text NOT NULL,        -- the first rule it breaks (rules: all of them)
    rules        text[] NOT NULL,
    reason       text NOT NULL,
    record       jsonb NOT NULL,
    run_id       bigint NOT NULL,      -- the run that first kept it out
    last_run_id  bigint NOT NULL,      -- the latest run that checked it again
    rejected_at  timestamptz NOT NULL,
    UNIQUE NULLS NOT DISTINCT (table_name, record_id, copy_no)
);
REVOKE ALL ON sicoop.reject FROM PUBLIC;

-- Canonical values of the descriptive columns (as cleaned: upper case, single spaces): a value
-- found in source_value is replaced by its canonical one in trusted and the star schema. A value
-- found nowhere (neither as a source_value nor as a canonical one) is kept as it is, and counted
-- by the column's 'canonical' rule. Editing this table re-labels every layer on the next run
-- (a full one).
CREATE TABLE sicoop.canonical_value (
    domain        text NOT NULL CHECK (domain IN ('estado_civil', 'escolaridade', 'tipo_conta', 'bandeira_cartao')),
    source_value  text NOT NULL,
    canonical     text NOT NULL,
    PRIMARY KEY (domain, source_value)
);
INSERT INTO sicoop.canonical_value (domain, source_value, canonical) VALUES
  ('estado_civil', 'SOLTEIRO', 'SOLTEIRO(A)'), ('estado_civil', 'SOLTEIRA', 'SOLTEIRO(A)'),
  ('estado_civil', 'CASADO', 'CASADO(A)'), ('estado_civil', 'CASADA', 'CASADO(A)'),
  ('estado_civil', 'DIVORCIADO', 'DIVORCIADO(A)'), ('estado_civil', 'DIVORCIADA', 'DIVORCIADO(A)'),
  ('estado_civil', 'SEPARADO', 'SEPARADO(A)'), ('estado_civil', 'SEPARADA', 'SEPARADO(A)'),
  ('estado_civil', 'VIÚVO', 'VIÚVO(A)'), ('estado_civil', 'VIÚVA', 'VIÚVO(A)'),
  ('estado_civil', 'VIUVO', 'VIÚVO(A)'), ('estado_civil', 'VIUVA', 'VIÚVO(A)'),
  ('estado_civil', 'UNIAO ESTAVEL', 'UNIÃO ESTÁVEL'),
  ('escolaridade', 'ENSINO FUNDAMENTAL', 'ENSINO FUNDAMENTAL'),
  ('escolaridade', 'ENSINO MEDIO', 'ENSINO MÉDIO'), ('escolaridade', 'ENSINO MEDIO COMPLETO', 'ENSINO MÉDIO COMPLETO'),
  ('escolaridade', 'ENSINO MÉDIO INCOMPLETO', 'ENSINO MÉDIO INCOMPLETO'), ('escolaridade', 'ENSINO MEDIO INCOMPLETO', 'ENSINO MÉDIO INCOMPLETO'),
  ('escolaridade', 'ENSINO SUPERIOR INCOMPLETO', 'ENSINO SUPERIOR INCOMPLETO'),
  ('escolaridade', 'POS-GRADUACAO', 'PÓS-GRADUAÇÃO'), ('escolaridade', 'POS GRADUACAO', 'PÓS-GRADUAÇÃO'),
  ('escolaridade', 'PÓS GRADUAÇÃO', 'PÓS-GRADUAÇÃO'),
  ('tipo_conta', 'CONTA CORRENTE', 'CORRENTE'), ('tipo_conta', 'POUPANCA', 'POUPANÇA'),
  ('tipo_conta', 'CONTA POUPANÇA', 'POUPANÇA'), ('tipo_conta', 'CONTA POUPANCA', 'POUPANÇA'),
  ('tipo_conta', 'SALARIO', 'SALÁRIO'), ('tipo_conta', 'CONTA SALÁRIO', 'SALÁRIO'),
  ('bandeira_cartao', 'MASTER', 'MASTERCARD'), ('bandeira_cartao', 'MASTER CARD', 'MASTERCARD'),
  ('bandeira_cartao', 'AMEX', 'AMERICAN EXPRESS');
UPDATE ONLY sicoop.warehouse_info SET rules_signature = sicoop._rules_signature();

-- The latest reconciliation of the movements, per movement day (local): the source's count and
-- sum of valor_movimentacao, in the snapshot the load read, against the fact's plus the rejects'.
CREATE TABLE sicoop.reconciliation (
    run_id        bigint NOT NULL,
    dia           date,                -- NULL: movements without a date
    source_rows   bigint NOT NULL,
    source_valor  numeric NOT NULL,
    fato_rows     bigint NOT NULL,
    fato_valor    numeric NOT NULL,
    reject_rows   bigint NOT NULL,
    reject_valor  numeric NOT NULL,
    balanced      boolean NOT NULL
);

END
$fn$;

------------------------------------------------------------------------------------------
-- Data quality: the rules of sicoop.dq_rule, applied to the source rows as they enter raw
-- (src/steps/raw.cpp calls _apply_row_rules for each table once its rows are in the stage).
------------------------------------------------------------------------------------------
-- The key column of a source table.
CREATE OR REPLACE FUNCTION sicoop._source_key(tbl text) RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS
$$ SELECT CASE tbl WHEN 'associado' THEN 'id_associado' WHEN 'conta' THEN 'id_conta'
                   WHEN 'cartao' THEN 'id_cartao' WHEN 'movimentacao_cartao' THEN 'id_movimentacao_cartao' END $$;

-- A range rule's bound as a SQL expression of type typ ('date' or 'numeric'): a literal, or
-- today[+-N], the run's date plus or minus N days. NULL: no bound.
CREATE OR REPLACE FUNCTION sicoop._rule_bound(rule text, bound text, typ text, ref_date date) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  m text[];
BEGIN
  IF typ NOT IN ('date', 'numeric') THEN
    RAISE EXCEPTION 'sicoop: range bounds are dates or numbers, not %', typ USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF bound IS NULL THEN
    RETURN NULL;
  END IF;
  m := regexp_match(bound, '^\s*today\s*(?:([+-])\s*([0-9]{1,5}))?\s*$', 'i');
  IF m IS NOT NULL AND typ = 'date' THEN
    RETURN format('(%L::date %s %s)', ref_date, coalesce(m[1], '+'), coalesce(m[2], '0'));
  END IF;
  BEGIN
    EXECUTE format('SELECT %L::%s', bound, typ);
  EXCEPTION WHEN data_exception THEN
    RAISE EXCEPTION 'sicoop: data-quality rule %: bound ''%'' is not a %', rule, bound, typ
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A range bound is a literal of the column''s type, or today, today+N, today-N (days) for dates.';
  END;
  RETURN format('%L::%s', bound, typ);
END
$fn$;

-- The checks of the enabled row rules of a source table, as predicates on its stage row s:
-- one per rule, or one per column for the rules of every column (part names the column).
CREATE OR REPLACE FUNCTION sicoop._row_rule_checks(tbl text, ref_date date)
RETURNS TABLE (rule_name text, part text, severity text, predicate text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  r record;
  c record;
  stage regclass := format('sicoop.%I', 'stage_' || tbl)::regclass;
  raw regclass := format('sicoop.%I', 'raw_' || tbl)::regclass;
  col_type text;
  expr text;
  lo text;
  hi text;
BEGIN
  FOR r IN SELECT q.rule_name, q.column_name, q.kind, q.severity, q.min_value, q.max_value, q.accepted_values, q.ref_table
           FROM ONLY sicoop.dq_rule q
           WHERE q.table_name = tbl AND q.enabled AND q.kind NOT IN ('source_drift', 'canonical', 'reconciliation')
           ORDER BY q.rule_name LOOP
    col_type := NULL;
    IF r.column_name IS NOT NULL THEN
      SELECT format_type(a.atttypid, a.atttypmod) INTO col_type FROM pg_attribute a
      WHERE a.attrelid = stage AND a.attname = r.column_name AND a.attnum > 0 AND NOT a.attisdropped;
      IF col_type IS NULL THEN
        RAISE EXCEPTION 'sicoop: data-quality rule % names column %, which the pipeline does not read from source table %',
                        r.rule_name, r.column_name, tbl
          USING ERRCODE = 'invalid_parameter_value',
                HINT = 'Fix the rule, or disable it: UPDATE sicoop.dq_rule SET enabled = false WHERE rule_name = ...';
      END IF;
    END IF;
    rule_name := r.rule_name;
    severity := r.severity;
    part := NULL;
    CASE r.kind
    WHEN 'not_null' THEN
      predicate := format('s.%I IS NULL', r.column_name);
      RETURN NEXT;
    WHEN 'not_blank' THEN
      predicate := format('coalesce(sicoop.clean_text(s.%I::text), '''') = ''''', r.column_name);
      RETURN NEXT;
    WHEN 'unique' THEN
      IF EXISTS (SELECT 1 FROM sicoop.stage_source_column k
                 WHERE k.table_name = tbl AND k.column_name = r.column_name AND k.unique_key) THEN
        predicate := 'false';  -- a unique index of the source guarantees it
      ELSE
        predicate := format('s.%1$I IN (SELECT d.%1$I FROM %2$s d GROUP BY 1 HAVING count(*) > 1)', r.column_name, stage);
      END IF;
      RETURN NEXT;
    WHEN 'references' THEN
      predicate := format('s.%I IS NOT NULL AND NOT EXISTS (SELECT 1 FROM sicoop.%I p WHERE p.%I = s.%I)',
                          r.column_name, 'raw_' || r.ref_table, sicoop._source_key(r.ref_table), r.column_name);
      RETURN NEXT;
    WHEN 'accepted_values' THEN
      predicate := format('sicoop.clean_text(s.%I::text) <> ALL (%L::text[])', r.column_name, r.accepted_values);
      RETURN NEXT;
    WHEN 'range' THEN
      IF col_type IN ('date', 'timestamp without time zone', 'timestamp with time zone') THEN
        expr := format('s.%I::date', r.column_name);
        lo := sicoop._rule_bound(r.rule_name, r.min_value, 'date', ref_date);
        hi := sicoop._rule_bound(r.rule_name, r.max_value, 'date', ref_date);
      ELSIF col_type = 'numeric' THEN
        expr := format('s.%I', r.column_name);
        lo := sicoop._rule_bound(r.rule_name, r.min_value, 'numeric', ref_date);
        hi := sicoop._rule_bound(r.rule_name, r.max_value, 'numeric', ref_date);
      ELSE
        RAISE EXCEPTION 'sicoop: data-quality rule %: range rules apply to dates, times and amounts, not to % (%)',
                        r.rule_name, r.column_name, col_type
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      predicate := concat_ws(' OR ', CASE WHEN lo IS NOT NULL THEN format('%s < %s', expr, lo) END,
                                      CASE WHEN hi IS NOT NULL THEN format('%s > %s', expr, hi) END);
      RETURN NEXT;
    WHEN 'no_control_chars' THEN
      -- C0 controls but tab, newline and carriage return (white space the cleaning collapses),
      -- DEL and the C1 controls.
      FOR c IN SELECT a.attname::text AS name FROM pg_attribute a
               WHERE a.attrelid = stage AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid = 'text'::regtype
                 AND (r.column_name IS NULL OR a.attname = r.column_name)
               ORDER BY a.attnum LOOP
        part := c.name;
        predicate := format('s.%I ~ %L', c.name, '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]');
        RETURN NEXT;
      END LOOP;
    WHEN 'fits' THEN
      -- The raw table's length and precision: nothing is cut or rounded on the way in.
      FOR c IN SELECT a.attname::text AS name, a.atttypid, a.atttypmod - 4 AS typmod FROM pg_attribute a
               WHERE a.attrelid = raw AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypmod >= 4
                 AND a.atttypid IN ('varchar'::regtype, 'numeric'::regtype)
                 AND (r.column_name IS NULL OR a.attname = r.column_name)
                 AND EXISTS (SELECT 1 FROM pg_attribute b WHERE b.attrelid = stage AND b.attname = a.attname)
               ORDER BY a.attnum LOOP
        part := c.name;
        IF c.atttypid = 'varchar'::regtype THEN
          predicate := format('length(s.%I) > %s', c.name, c.typmod);
        ELSE
          predicate := format('(s.%1$I <> round(s.%1$I, %2$s) OR abs(s.%1$I) >= 1e%3$s)',
                              c.name, c.typmod & 65535, (c.typmod >> 16) - (c.typmod & 65535));
        END IF;
        RETURN NEXT;
      END LOOP;
    END CASE;
  END LOOP;
END
$fn$;

-- Applies the row rules of a source table to its rows in the stage (sicoop.stage_<tbl>): counts
-- every rule's failures in sicoop.dq_result; stops the step on a failing 'fail' rule; moves the
-- rows that break a 'reject' rule out of the stage into sicoop.reject (card numbers masked), which
-- then holds exactly the rejects of this check (what was fixed or deleted at the source leaves).
-- The stage holds every row the run looks at again, rejected keys included (src/steps/raw.cpp).
CREATE OR REPLACE FUNCTION sicoop._apply_row_rules(tbl text, run_id bigint, ref_date date, OUT rows_rejected bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  stage regclass := format('sicoop.%I', 'stage_' || tbl)::regclass;
  key text := sicoop._source_key(tbl);
  rules text[];
  severities text[];
  rule_preds text[];
  counts bigint[];
  sample jsonb;
  reject_pred text;
  reject_labels text;
  record_expr text;
  missing text;
  found bigint;
  any_rejected boolean := false;
BEGIN
  -- The rules the warehouse's tables rely on (a key, unique, and values that fit) cannot be
  -- disabled or made warnings: the rows would fail the load or be cut.
  SELECT string_agg(needed, ', ') INTO missing
  FROM (VALUES (tbl || ': not_null on ' || key, 'not_null', key), (tbl || ': unique on ' || key, 'unique', key),
               (tbl || ': fits on every column', 'fits', NULL)) AS n(needed, kind, col)
  WHERE NOT EXISTS (SELECT 1 FROM ONLY sicoop.dq_rule q
                    WHERE q.table_name = tbl AND q.kind = n.kind AND q.column_name IS NOT DISTINCT FROM n.col
                      AND q.enabled AND q.severity IN ('reject', 'fail'));
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'sicoop: the warehouse needs these data-quality rules enabled, as reject or fail: %', missing
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'The tables cannot hold rows without a key, with a duplicated key, or with values longer or more precise than their columns. Re-enable the rules in sicoop.dq_rule.';
  END IF;

  -- One pass over the stage counts the rows examined and what the plain rules find; a rule
  -- that reads another table (references, unique) counts in a query of its own, where the
  -- planner makes it a join rather than a lookup per row.
  SELECT array_agg(c.rule_name ORDER BY c.rule_name), array_agg(c.severity ORDER BY c.rule_name),
         array_agg(c.predicate ORDER BY c.rule_name)
  INTO rules, severities, rule_preds
  FROM (SELECT x.rule_name, min(x.severity) AS severity, '(' || string_agg(x.predicate, ') OR (') || ')' AS predicate
        FROM sicoop._row_rule_checks(tbl, ref_date) x GROUP BY x.rule_name) c;
  EXECUTE format('SELECT ARRAY[count(*)%s] FROM %s s',
                 (SELECT string_agg(CASE WHEN p ~* '\mSELECT\M' THEN ', 0::bigint'
                                         ELSE format(', count(*) FILTER (WHERE %s)', p) END, '' ORDER BY o)
                  FROM unnest(rule_preds) WITH ORDINALITY u(p, o)), stage)
  INTO counts;
  FOR i IN 1 .. coalesce(array_length(rules, 1), 0) LOOP
    IF rule_preds[i] ~* '\mSELECT\M' THEN
      EXECUTE format('SELECT count(*) FROM %s s WHERE %s', stage, rule_preds[i]) INTO found;
      counts[i + 1] := found;
    END IF;
    any_rejected := any_rejected OR (severities[i] = 'reject' AND counts[i + 1] > 0);
  END LOOP;
  FOR i IN 1 .. coalesce(array_length(rules, 1), 0) LOOP
    sample := NULL;
    IF counts[i + 1] > 0 THEN
      EXECUTE format('SELECT jsonb_agg(k) FROM (SELECT sicoop._redact_card_numbers(s.%I::text) AS k FROM %s s WHERE %s LIMIT 5) x',
                     key, stage, rule_preds[i])
      INTO sample;
    END IF;
    INSERT INTO sicoop.dq_result (run_id, rule_name, table_name, severity, rows_checked, rows_failed, sample)
    VALUES (_apply_row_rules.run_id, rules[i], tbl, severities[i], counts[1], counts[i + 1], sample);
    IF severities[i] = 'fail' AND counts[i + 1] > 0 THEN
      RAISE EXCEPTION 'sicoop: data-quality rule % failed for % of % rows of source table % (keys %)',
                      rules[i], counts[i + 1], counts[1], tbl, sample
        USING ERRCODE = 'check_violation',
              HINT = 'Fix the rows at the source, or make the rule reject or warn: UPDATE sicoop.dq_rule SET severity = ... WHERE rule_name = ...';
    END IF;
  END LOOP;

  -- The rejected rows leave the stage for sicoop.reject, with every rule they break.
  TRUNCATE sicoop.stage_reject;
  SELECT string_agg('(' || x.predicate || ')', ' OR '),
         string_agg(format('CASE WHEN %s THEN %L END', x.predicate, x.rule_name || coalesce('(' || x.part || ')', '')), ', ')
  INTO reject_pred, reject_labels
  FROM sicoop._row_rule_checks(tbl, ref_date) x WHERE x.severity = 'reject';
  IF reject_pred IS NOT NULL AND any_rejected THEN
    SELECT string_agg(format('%L, %s', a.attname,
                             CASE WHEN a.attname = 'numero_cartao' THEN format('sicoop.mask_card(b.%I)', a.attname)
                                  WHEN a.atttypid = 'text'::regtype THEN format('sicoop._redact_card_numbers(b.%I)', a.attname)
                                  ELSE format('b.%I', a.attname) END), ', ' ORDER BY a.attnum)
    INTO record_expr
    FROM pg_attribute a WHERE a.attrelid = stage AND a.attnum > 0 AND NOT a.attisdropped;
    EXECUTE format('WITH bad AS (DELETE FROM %1$s s WHERE %2$s RETURNING s.*, array_remove(ARRAY[%3$s], NULL) AS broken)
                    INSERT INTO sicoop.stage_reject (record_id, rules, record)
                    SELECT b.%4$I::text, b.broken, jsonb_build_object(%5$s) FROM bad b',
                   stage, reject_pred, reject_labels, key, record_expr);
  END IF;

  WITH found AS (
    SELECT n.record_id, row_number() OVER (PARTITION BY n.record_id ORDER BY n.record::text) AS copy_no
    FROM sicoop.stage_reject n)
  DELETE FROM sicoop.reject j
  WHERE j.table_name = tbl
    AND NOT EXISTS (SELECT 1 FROM found f WHERE f.record_id IS NOT DISTINCT FROM j.record_id AND f.copy_no = j.copy_no);
  INSERT INTO sicoop.reject AS j (table_name, record_id, copy_no, rule_name, rules, reason, record, run_id, last_run_id, rejected_at)
  SELECT tbl, n.record_id, row_number() OVER (PARTITION BY n.record_id ORDER BY n.record::text),
         regexp_replace(n.rules[1], '\(.*$', ''), n.rules,
         (SELECT string_agg(q.description || coalesce(': ' || substring(l FROM '\((.*)\)$'), ''), '; ' ORDER BY o)
          FROM unnest(n.rules) WITH ORDINALITY u(l, o)
          JOIN ONLY sicoop.dq_rule q ON q.rule_name = regexp_replace(l, '\(.*$', '')),
         n.record, _apply_row_rules.run_id, _apply_row_rules.run_id, clock_timestamp()
  FROM sicoop.stage_reject n
  ON CONFLICT (table_name, record_id, copy_no) DO UPDATE
  SET rule_name = EXCLUDED.rule_name, rules = EXCLUDED.rules, reason = EXCLUDED.reason, record = EXCLUDED.record,
      last_run_id = EXCLUDED.last_run_id;
  SELECT count(*) INTO rows_rejected FROM sicoop.stage_reject;
END
$fn$;

-- The source's column types against the warehouse's (the stage_source_column rows the load
-- read from the source's catalog), for the table's enabled source_drift rules.
CREATE OR REPLACE FUNCTION sicoop._check_source_drift(tbl text, run_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  r record;
  checked bigint;
  drifted bigint;
  sample jsonb;
BEGIN
  SELECT count(*), count(*) FILTER (WHERE d.differs),
         jsonb_agg(d.column_name || ': source ' || d.source_type || ', warehouse ' || d.warehouse_type) FILTER (WHERE d.differs)
  INTO checked, drifted, sample
  FROM (SELECT k.column_name, k.source_type, format_type(a.atttypid, a.atttypmod) AS warehouse_type,
               k.source_type IS DISTINCT FROM format_type(a.atttypid, a.atttypmod) AS differs
        FROM sicoop.stage_source_column k
        JOIN pg_attribute a ON a.attrelid = format('sicoop.%I', 'raw_' || tbl)::regclass AND a.attname = k.column_name
                           AND a.attnum > 0 AND NOT a.attisdropped
        WHERE k.table_name = tbl
          AND EXISTS (SELECT 1 FROM pg_attribute b WHERE b.attrelid = format('sicoop.%I', 'stage_' || tbl)::regclass
                                                     AND b.attname = k.column_name)) d;
  FOR r IN SELECT q.rule_name, q.severity FROM ONLY sicoop.dq_rule q
           WHERE q.table_name = tbl AND q.kind = 'source_drift' AND q.enabled LOOP
    INSERT INTO sicoop.dq_result (run_id, rule_name, table_name, severity, rows_checked, rows_failed, sample)
    VALUES (_check_source_drift.run_id, r.rule_name, tbl, r.severity, checked, drifted, sample);
    IF r.severity = 'fail' AND drifted > 0 THEN
      RAISE EXCEPTION 'sicoop: data-quality rule %: the source''s column types differ from the warehouse''s: %', r.rule_name, sample
        USING ERRCODE = 'check_violation';
    END IF;
  END LOOP;
END
$fn$;

-- A descriptive value's canonical form (sicoop.canonical_value), or the value itself.
CREATE OR REPLACE FUNCTION sicoop._canonical(domain text, value text) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT coalesce((SELECT c.canonical FROM sicoop.canonical_value c
                    WHERE c.domain OPERATOR(pg_catalog.=) $1 AND c.source_value OPERATOR(pg_catalog.=) $2), $2) $$;

-- The table's 'canonical' rules: trusted values that are neither a mapped source value nor a
-- canonical one, counted (with a few of them) in sicoop.dq_result.
CREATE OR REPLACE FUNCTION sicoop._check_canonical(tbl text, run_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  r record;
  checked bigint;
  unmapped bigint;
  sample jsonb;
BEGIN
  FOR r IN SELECT q.rule_name, q.column_name, q.severity FROM ONLY sicoop.dq_rule q
           WHERE q.table_name = tbl AND q.kind = 'canonical' AND q.enabled LOOP
    IF r.column_name NOT IN ('estado_civil', 'escolaridade', 'tipo_conta', 'bandeira_cartao')
       OR NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = format('sicoop.%I', 'trusted_' || tbl)::regclass
                                                     AND a.attname = r.column_name) THEN
      RAISE EXCEPTION 'sicoop: data-quality rule %: canonical values exist for estado_civil, escolaridade, tipo_conta and bandeira_cartao, not for %.%',
                      r.rule_name, tbl, r.column_name
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Each distinct value is looked up once (a descriptive column has few of them).
    EXECUTE format($q$
      WITH d AS (
        SELECT g.v, g.n,
               g.v IS NULL OR EXISTS (SELECT 1 FROM sicoop.canonical_value c
                                      WHERE c.domain = %3$L AND (c.source_value = g.v OR c.canonical = g.v)) AS known
        FROM (SELECT t.%1$I AS v, count(*) AS n FROM sicoop.%2$I t GROUP BY 1) g)
      SELECT coalesce(sum(d.n), 0)::bigint, coalesce(sum(d.n) FILTER (WHERE NOT d.known), 0)::bigint,
             (SELECT jsonb_agg(x.v ORDER BY x.v) FROM (SELECT u.v FROM d u WHERE NOT u.known ORDER BY u.v LIMIT 5) x)
      FROM d$q$, r.column_name, 'trusted_' || tbl, r.column_name)
    INTO checked, unmapped, sample;
    INSERT INTO sicoop.dq_result (run_id, rule_name, table_name, severity, rows_checked, rows_failed, sample)
    VALUES (_check_canonical.run_id, r.rule_name, tbl, r.severity, checked, unmapped, sample);
    IF r.severity = 'fail' AND unmapped > 0 THEN
      RAISE EXCEPTION 'sicoop: data-quality rule %: % rows of %.% have no canonical value (%)', r.rule_name, unmapped, tbl, r.column_name, sample
        USING ERRCODE = 'check_violation',
              HINT = 'Map them in sicoop.canonical_value, or make the rule warn.';
    END IF;
  END LOOP;
END
$fn$;

-- Reconciles the movements, per movement day, with the source: its count and sum of
-- valor_movimentacao (sicoop.source_day_total, read by the load in the snapshot it copied)
-- against the fact's plus the rejects'. The comparison of every day is in
-- sicoop.reconciliation, the outcome in sicoop.dq_result. Unbalanced days under a 'fail' rule
-- make the next run a full one (the run itself then fails: src/pipeline.cpp).
CREATE OR REPLACE FUNCTION sicoop._reconcile(run_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  rows_unbalanced bigint := 0;
  r record;
  days bigint;
  sample jsonb;
BEGIN
  SELECT q.rule_name, q.severity INTO r FROM ONLY sicoop.dq_rule q
  WHERE q.table_name = 'movimentacao_cartao' AND q.kind = 'reconciliation' AND q.enabled ORDER BY q.rule_name LIMIT 1;
  IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM sicoop.source_day_total) THEN
    RETURN;  -- disabled, or no load has read the source's totals yet
  END IF;
  DELETE FROM sicoop.reconciliation;
  INSERT INTO sicoop.reconciliation (run_id, dia, source_rows, source_valor, fato_rows, fato_valor, reject_rows, reject_valor, balanced)
  SELECT _reconcile.run_id, dia, sum(source_rows), sum(source_valor), sum(fato_rows), sum(fato_valor),
         sum(reject_rows), sum(reject_valor),
         sum(source_rows) = sum(fato_rows) + sum(reject_rows) AND sum(source_valor) = sum(fato_valor) + sum(reject_valor)
  FROM (SELECT s.dia, s.source_rows, s.source_valor, 0 AS fato_rows, 0 AS fato_valor, 0 AS reject_rows, 0 AS reject_valor
        FROM sicoop.source_day_total s
        UNION ALL
        SELECT f.data_hora_movimentacao::date, 0, 0, count(*), sum(f.valor_movimentacao), 0, 0
        FROM sicoop.fato_movimentacao_cartao f GROUP BY 1
        UNION ALL
        SELECT (j.record->>'data_movimentacao')::timestamp::date, 0, 0, 0, 0, count(*),
               coalesce(sum((j.record->>'valor_movimentacao')::numeric), 0)
        FROM sicoop.reject j WHERE j.table_name = 'movimentacao_cartao' GROUP BY 1) d
  GROUP BY dia;
  SELECT count(*), count(*) FILTER (WHERE NOT balanced),
         (SELECT jsonb_agg(x) FROM (SELECT coalesce(c.dia::text, 'no date') AS x FROM sicoop.reconciliation c
                                    WHERE NOT c.balanced ORDER BY c.dia LIMIT 5) y)
  INTO days, rows_unbalanced, sample FROM sicoop.reconciliation;
  INSERT INTO sicoop.dq_result (run_id, rule_name, table_name, severity, rows_checked, rows_failed, sample)
  VALUES (_reconcile.run_id, r.rule_name, 'movimentacao_cartao', r.severity, days, rows_unbalanced, sample);
  IF r.severity = 'fail' AND rows_unbalanced > 0 THEN
    UPDATE ONLY sicoop.warehouse_info SET full_run_owed_by = coalesce(full_run_owed_by, _reconcile.run_id);
  END IF;
END
$fn$;

-- Raises if a 'fail' rule failed in the run (what is left to raise once the steps committed:
-- the reconciliation).
CREATE OR REPLACE FUNCTION sicoop._check_run_quality(run_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  r record;
BEGIN
  SELECT d.rule_name, d.rows_failed, d.rows_checked, d.sample INTO r FROM sicoop.dq_result d
  WHERE d.run_id = _check_run_quality.run_id AND d.severity = 'fail' AND d.rows_failed > 0 ORDER BY d.rule_name LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'sicoop: data-quality rule % failed: % of % movement days do not balance with the source (%)',
                    r.rule_name, r.rows_failed, r.rows_checked, r.sample
      USING ERRCODE = 'check_violation',
            DETAIL = 'SELECT * FROM sicoop.reconciliation WHERE NOT balanced shows them.',
            HINT = 'The next run is a full one (full => true), which re-reads and compares the whole source.';
  END IF;
END
$fn$;

-- The row rules and the canonical values as they are now: what every row is checked against
-- as it enters raw, and labelled with in trusted.
CREATE OR REPLACE FUNCTION sicoop._rules_signature() RETURNS text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT md5(coalesce((SELECT string_agg(q::text, ',' ORDER BY q.rule_name) FROM ONLY sicoop.dq_rule q
                     WHERE q.enabled AND q.kind NOT IN ('source_drift', 'canonical', 'reconciliation')), '')
           || '|' ||
           coalesce((SELECT string_agg(c::text, ',' ORDER BY c.domain, c.source_value) FROM ONLY sicoop.canonical_value c), ''))
$$;

-- Why the next run must be a full one, or NULL: a full run started or asked for (by a failed
-- reconciliation, or by the upgrade to 1.2) has not completed, or the row rules or the
-- canonical values changed since every row was last checked and labelled by them.
CREATE OR REPLACE FUNCTION sicoop._full_run_owed() RETURNS text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT CASE WHEN w.full_run_owed_by IS NOT NULL
              THEN format('the full run that run %s started or asked for has not completed', w.full_run_owed_by)
            WHEN w.rules_signature IS DISTINCT FROM sicoop._rules_signature()
                 AND EXISTS (SELECT 1 FROM sicoop.run_log l WHERE l.step = 'run_pipeline' AND l.status = 'succeeded')
              THEN 'the data-quality rules or the canonical values changed since every row was last checked and labelled by them'
       END
FROM ONLY sicoop.warehouse_info w
$$;

-- Tells whoever listens on channel sicoop_alerts (LISTEN sicoop_alerts) about a run's step: a
-- JSON payload with the run, the step, its status, error and counts, from run_log. Sent when the
-- caller's transaction commits. Runs call it for a failed or aborted step, and for a skip
-- behind a run older than sicoop.max_run_time.
CREATE OR REPLACE FUNCTION sicoop._alert(run_id bigint, step text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
SELECT pg_notify('sicoop_alerts', json_build_object(
         'database', current_database(), 'run_id', l.run_id, 'step', l.step, 'status', l.status,
         'sqlstate', l.error_sqlstate, 'error', left(l.error_message, 2000), 'as_of', l.as_of,
         'started_at', l.started_at, 'finished_at', l.finished_at,
         'counts', json_build_object('read', l.rows_read, 'inserted', l.rows_inserted, 'updated', l.rows_updated,
                                     'deleted', l.rows_deleted, 'rejected', l.rows_rejected))::text)
FROM sicoop.run_log l WHERE l.run_id = $1 AND l.step = $2
$$;

-- Marks 'running' rows of runs whose backend no longer holds the pipeline's lock (a crash, a
-- shutdown, a terminated backend) as 'aborted', and alerts once per run (naming the step that
-- was running). Each run calls it once it holds the lock.
CREATE OR REPLACE FUNCTION sicoop._mark_aborted_runs() RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  runs bigint[];
BEGIN
  WITH aborted AS (
    UPDATE sicoop.run_log l
    SET status = 'aborted', finished_at = clock_timestamp(),
        error_message = format('the run''s backend (pid %s) ended before the run did: a server crash or shutdown, or a terminated backend', l.backend_pid)
    WHERE l.status = 'running'
      AND NOT EXISTS (SELECT 1 FROM pg_locks k
                      WHERE k.locktype = 'advisory' AND k.granted AND k.pid = l.backend_pid
                        AND k.classid = 1936286576::oid AND k.objid = 7338001::oid AND k.objsubid = 4
                        AND k.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database()))
    RETURNING l.run_id)
  SELECT array_agg(DISTINCT a.run_id) INTO runs FROM aborted a;
  PERFORM sicoop._alert(a.run_id, a.step)
  FROM (SELECT DISTINCT ON (l.run_id) l.run_id, l.step FROM sicoop.run_log l
        WHERE l.run_id = ANY (runs) AND l.status = 'aborted'
        ORDER BY l.run_id, l.step = 'run_pipeline', l.started_at DESC) a;
  RETURN coalesce(cardinality(runs), 0);
END
$fn$;

-- The run log as a reader should see it: a 'running' row whose backend no longer holds the
-- pipeline's lock (a crash, a shutdown, a terminated backend) is 'aborted' at once, before the
-- next run records it so. Runs with the caller's rights: it shows what the caller may read.
CREATE OR REPLACE FUNCTION sicoop.run_status()
RETURNS TABLE (run_id bigint, step text, status text, as_of timestamptz, started_at timestamptz,
               finished_at timestamptz, rows_read bigint, rows_rejected bigint, error_sqlstate text,
               error_message text, error_context text, backend_pid int)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT l.run_id, l.step,
       CASE WHEN l.status = 'running' AND NOT EXISTS (
                   SELECT 1 FROM pg_locks k
                   WHERE k.locktype = 'advisory' AND k.granted AND k.pid = l.backend_pid
                     AND k.classid = 1936286576::oid AND k.objid = 7338001::oid AND k.objsubid = 4
                     AND k.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database()))
            THEN 'aborted' ELSE l.status END,
       l.as_of, l.started_at, l.finished_at, l.rows_read, l.rows_rejected, l.error_sqlstate,
       l.error_message, l.error_context, l.backend_pid
FROM sicoop.run_log l
ORDER BY l.run_id, l.started_at
$$;

------------------------------------------------------------------------------------------
-- Scheduling with pg_cron, in one call. pg_cron lives in the database cron.database_name
-- names; with the warehouse there (the usual setup), the jobs run the pipeline here as the
-- role that scheduled them (the operator).
------------------------------------------------------------------------------------------
-- The names of this warehouse's jobs: incremental runs, and the optional full run.
CREATE OR REPLACE FUNCTION sicoop._job_names() RETURNS text[] LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS
$$ SELECT ARRAY['sicoop_pipeline@' || current_database(), 'sicoop_full@' || current_database()] $$;

-- Refuses when pg_cron is not in this database, saying what to run where it is.
CREATE OR REPLACE FUNCTION sicoop._check_cron(what text, cron text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF to_regprocedure('cron.schedule(text, text, text)') IS NULL THEN
    RAISE EXCEPTION 'sicoop.%: pg_cron is not installed in database %', what, current_database()
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = format('pg_cron runs jobs from the database cron.database_name names (%s). There, a superuser runs: SELECT cron.schedule_in_database(%L, %L, %L, %L);',
                          coalesce(current_setting('cron.database_name', true), 'postgres'), (sicoop._job_names())[1],
                          coalesce(cron, '*/15 * * * *'), 'CALL sicoop.run_pipeline()', current_database());
  END IF;
END
$fn$;

-- Schedules the pipeline: CALL sicoop.run_pipeline() on `cron` (pg_cron's syntax), and, if
-- full_cron is given, CALL sicoop.run_pipeline(full => true) on it. Replaces this warehouse's
-- earlier jobs. Returns the jobs.
CREATE OR REPLACE FUNCTION sicoop.schedule(cron text DEFAULT '*/15 * * * *', full_cron text DEFAULT NULL)
RETURNS TABLE (jobid bigint, jobname text, schedule text, command text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM sicoop._check_cron('schedule', cron);
  IF cron IS NULL THEN
    RAISE EXCEPTION 'sicoop.schedule: a schedule is required' USING ERRCODE = 'null_value_not_allowed',
      HINT = 'pg_cron''s syntax, such as ''*/15 * * * *'' (every 15 minutes); sicoop.unschedule() removes the jobs.';
  END IF;
  PERFORM sicoop.unschedule();
  PERFORM cron.schedule((sicoop._job_names())[1], cron, 'CALL sicoop.run_pipeline()');
  IF full_cron IS NOT NULL THEN
    PERFORM cron.schedule((sicoop._job_names())[2], full_cron, 'CALL sicoop.run_pipeline(full => true)');
  END IF;
  RETURN QUERY SELECT j.jobid, j.jobname::text, j.schedule, j.command FROM cron.job j
               WHERE j.jobname = ANY (sicoop._job_names()) ORDER BY j.jobname DESC;
END
$fn$;

-- Removes this warehouse's jobs (those its caller may see); returns how many.
CREATE OR REPLACE FUNCTION sicoop.unschedule() RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  n int := 0;
  j record;
BEGIN
  PERFORM sicoop._check_cron('unschedule', NULL);
  FOR j IN SELECT c.jobid FROM cron.job c WHERE c.jobname = ANY (sicoop._job_names()) LOOP
    PERFORM cron.unschedule(j.jobid);
    n := n + 1;
  END LOOP;
  RETURN n;
END
$fn$;

-- This warehouse's jobs, their latest run in pg_cron (cron.job_run_details), and the latest run
-- in the run log (aborted runs shown so at once). A function, not a view: a view of pg_cron's
-- tables would be data that DROP EXTENSION pg_cron must drop or be refused by.
CREATE OR REPLACE FUNCTION sicoop.schedule_status()
RETURNS TABLE (jobname text, schedule text, command text, active boolean, cron_status text, cron_started timestamptz,
               cron_finished timestamptz, cron_message text, run_id bigint, run_status text, run_started timestamptz,
               run_finished timestamptz, run_error text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM sicoop._check_cron('schedule_status', NULL);
  RETURN QUERY
  SELECT j.jobname::text, j.schedule, j.command, j.active, d.status, d.start_time, d.end_time, d.return_message,
         r.run_id, r.status, r.started_at, r.finished_at, r.error_message
  FROM cron.job j
  LEFT JOIN LATERAL (SELECT x.status, x.start_time, x.end_time, x.return_message FROM cron.job_run_details x
                     WHERE x.jobid = j.jobid ORDER BY x.runid DESC LIMIT 1) d ON true
  LEFT JOIN LATERAL (SELECT s.run_id, s.status, s.started_at, s.finished_at, s.error_message FROM sicoop.run_status() s
                     WHERE s.step = 'run_pipeline' ORDER BY s.run_id DESC LIMIT 1) r ON true
  WHERE j.jobname = ANY (sicoop._job_names())
  ORDER BY j.jobname DESC;
END
$fn$;

------------------------------------------------------------------------------------------
-- Roles. A superuser installs the extension, names the operator and the readers.
------------------------------------------------------------------------------------------
-- The operator's functions: what grant_operator grants and revoke_operator takes back.
CREATE OR REPLACE FUNCTION sicoop._operator_functions() RETURNS text LANGUAGE sql IMMUTABLE AS $$
SELECT 'FUNCTION sicoop.connect_source(text, integer, text, text, text, text),
                 sicoop._connect_source(text, integer, text, text, text, text),
                 sicoop._check_source(text, integer, text, text, text, text),
                 sicoop.run_step(text, boolean), sicoop.load_raw(), sicoop.load_trusted(), sicoop.load_dims(),
                 sicoop.scd2_associado(), sicoop.load_fato(), sicoop.export_flat(text),
                 sicoop._defer_indexes(regclass), sicoop._restore_indexes(regclass), sicoop._summarize(regclass),
                 sicoop._empty_tables(text[]), sicoop._create_source_objects(),
                 sicoop._apply_row_rules(text, bigint, date), sicoop._check_source_drift(text, bigint),
                 sicoop._check_canonical(text, bigint), sicoop._reconcile(bigint), sicoop._check_run_quality(bigint),
                 sicoop._mark_aborted_runs(), sicoop._row_rule_checks(text, date), sicoop._rule_bound(text, text, text, date),
                 sicoop._alert(bigint, text), sicoop.schedule(text, text), sicoop.unschedule(),
                 sicoop.schedule_status()'::text
$$;

-- The star schema a reader (a BI tool, an analyst) may query: the dimensions, the fact and
-- the flat view, nothing else -- no raw or stage (source values), no rejects, no source
-- tables, no run control.
CREATE OR REPLACE FUNCTION sicoop._reader_relations() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
SELECT ARRAY['dim_data', 'dim_conta', 'dim_cartao', 'dim_associado', 'fato_movimentacao_cartao', 'vw_movimentacao_flat']
       || sicoop._analyst_views()
$$;


-- 1.2's functions that write the warehouse are the operator's (grant_operator), never PUBLIC's.
REVOKE ALL ON FUNCTION sicoop._create_quality_tables(), sicoop._apply_row_rules(text, bigint, date),
  sicoop._check_source_drift(text, bigint), sicoop._check_canonical(text, bigint), sicoop._reconcile(bigint),
  sicoop._check_run_quality(bigint), sicoop._mark_aborted_runs(), sicoop._row_rule_checks(text, date),
  sicoop._rule_bound(text, text, text, date), sicoop._alert(bigint, text),
  sicoop._create_bi_views(), sicoop._comment_warehouse(), sicoop.schedule(text, text), sicoop.unschedule(),
  sicoop.schedule_status() FROM PUBLIC;

-- The warehouse's data (if there is a warehouse yet: connect_source() or grant_operator()
-- creates it). Nothing is copied but the rejects, which are few.
DO $migrate$
DECLARE
  owner regrole;
  handed_unchanged boolean;
  reader text;
BEGIN
  IF to_regclass('sicoop.warehouse_info') IS NULL THEN
    RETURN;
  END IF;
  SELECT c.relowner::regrole INTO owner FROM pg_class c WHERE c.oid = 'sicoop.warehouse_info'::regclass;
  -- An operator's warehouse whose definition is still the one handed over is handed over
  -- again with 1.2's definition below (what the operator changed, if anything, stays refused).
  handed_unchanged := EXISTS (SELECT 1 FROM sicoop_1_2_handover_unchanged u WHERE u.role_name = owner::text);

  ALTER TABLE sicoop.run_log DROP CONSTRAINT run_log_status_check;
  ALTER TABLE sicoop.run_log ADD CONSTRAINT run_log_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'skipped', 'aborted'));
  ALTER TABLE sicoop.warehouse_info ADD COLUMN full_run_owed_by bigint, ADD COLUMN rules_signature text;
  ALTER TABLE sicoop.reject RENAME TO reject_1_1;
  ALTER TABLE sicoop.reject_1_1 RENAME CONSTRAINT reject_pkey TO reject_1_1_pkey;
  PERFORM sicoop._create_quality_tables();
  ALTER EXTENSION sicoop_etl DROP TABLE sicoop.dq_rule;
  ALTER EXTENSION sicoop_etl DROP TABLE sicoop.dq_result;
  ALTER EXTENSION sicoop_etl DROP TABLE sicoop.reject;
  ALTER EXTENSION sicoop_etl DROP TABLE sicoop.canonical_value;
  ALTER EXTENSION sicoop_etl DROP TABLE sicoop.reconciliation;
  -- The analysts' views, and the descriptions BI tools show; readers of the flat view may read them.
  PERFORM sicoop._create_bi_views();
  ALTER EXTENSION sicoop_etl DROP VIEW sicoop.vw_gasto_mensal_faixa_etaria;
  ALTER EXTENSION sicoop_etl DROP VIEW sicoop.vw_gasto_escolaridade_estado_civil;
  ALTER EXTENSION sicoop_etl DROP VIEW sicoop.vw_gasto_bandeira_tipo_cartao;
  ALTER EXTENSION sicoop_etl DROP VIEW sicoop.vw_gasto_tipo_conta_agencia;
  ALTER EXTENSION sicoop_etl DROP VIEW sicoop.vw_associados_ativos_mes;
  ALTER EXTENSION sicoop_etl DROP VIEW sicoop.progress;
  PERFORM sicoop._comment_warehouse();
  FOR reader IN SELECT DISTINCT g.grantee FROM information_schema.role_table_grants g
                WHERE g.table_schema = 'sicoop' AND g.table_name = 'vw_movimentacao_flat' AND g.privilege_type = 'SELECT'
                  AND g.grantee <> owner::text LOOP
    EXECUTE format('GRANT SELECT ON sicoop.vw_gasto_mensal_faixa_etaria, sicoop.vw_gasto_escolaridade_estado_civil,
                      sicoop.vw_gasto_bandeira_tipo_cartao, sicoop.vw_gasto_tipo_conta_agencia, sicoop.vw_associados_ativos_mes TO %I',
                   reader);
  END LOOP;
  -- 1.1 rejected members whose nome was blank (in trusted): the same rule, now at the entry.
  INSERT INTO sicoop.reject (table_name, record_id, copy_no, rule_name, rules, reason, record, run_id, last_run_id, rejected_at)
  SELECT o.table_name, o.record_id, 1, 'associado_nome_not_blank', '{associado_nome_not_blank}', 'nome is blank',
         o.record, o.run_id, o.run_id, o.rejected_at
  FROM sicoop.reject_1_1 o;
  DROP TABLE sicoop.reject_1_1;
  -- The rows loaded before the rules existed are checked by the next run, a full one.
  UPDATE ONLY sicoop.warehouse_info
  SET layout_version = '1.2', full_run_owed_by = (SELECT coalesce(max(r.run_id), 0) FROM sicoop.run_log r);

  IF owner::oid <> (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user) THEN
    -- The operator's warehouse: the new tables, scratch and data, are the operator's too, and
    -- so are the new functions it runs.
    PERFORM sicoop._set_warehouse_owner(owner);
    EXECUTE format('GRANT EXECUTE ON %s TO %s', sicoop._operator_functions(), owner);
    IF handed_unchanged THEN
      UPDATE sicoop.operator_handover SET signature = sicoop._warehouse_signature() WHERE role_name = owner::text;
    END IF;
  END IF;
END
$migrate$;
-- (A table made by an extension script is the extension's, a temporary one too.)
ALTER EXTENSION sicoop_etl DROP TABLE pg_temp.sicoop_1_2_handover_unchanged;
DROP TABLE pg_temp.sicoop_1_2_handover_unchanged;
