-- sicoop_etl 1.3: the SQL interface of SiCooperativeDW's pipeline.
-- The step logic lives in src/steps/*.cpp (one file per step).
--
-- The extension owns code, never data. Everything this script creates is an extension member
-- (functions, the step_result type, and the steps' scratch tables, empty between runs), and
-- none of it holds the warehouse's rows. The warehouse itself -- the
-- tables of every layer, the run log, the incremental state, their sequences, the flat view,
-- and the source's foreign server and tables -- is created by sicoop._create_warehouse()
-- (called by connect_source()) after CREATE EXTENSION, so it belongs to the database like any
-- table: pg_dump keeps it whole, and DROP EXTENSION removes the code and leaves the data.
-- Re-created over a surviving warehouse, the extension adopts it (same layout) or refuses.
\echo Use "CREATE EXTENSION sicoop_etl CASCADE" to load this file. \quit

-- The trusted layer upper-cases with accents kept: refuse a database that cannot.
DO $check$
BEGIN
  IF current_setting('server_encoding') <> 'UTF8' THEN
    RAISE EXCEPTION 'sicoop_etl needs a UTF-8 database, this one is %', current_setting('server_encoding')
      USING HINT = 'CREATE DATABASE ... ENCODING ''UTF8'' with an ICU or libc locale such as pt-BR.';
  END IF;
  IF upper('joão poupança') <> 'JOÃO POUPANÇA' THEN
    RAISE EXCEPTION 'sicoop_etl needs a database collation that upper-cases accented letters; upper(''joão'') gives %', upper('joão')
      USING HINT = 'Create the database with LOCALE_PROVIDER icu ICU_LOCALE ''pt-BR'', or a libc locale such as pt_BR.UTF-8 or C.UTF-8.';
  END IF;
END
$check$;

------------------------------------------------------------------------------------------
-- The warehouse's data: created once, after CREATE EXTENSION, and never an extension member.
------------------------------------------------------------------------------------------
-- The layout of the warehouse's data this version creates and reads.
CREATE FUNCTION _layout_version() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT '1.2'::text $$;

-- The views that answer analysts' first questions (sicoop._create_bi_views()).
CREATE FUNCTION _analyst_views() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
SELECT ARRAY['vw_gasto_mensal_faixa_etaria', 'vw_gasto_escolaridade_estado_civil', 'vw_gasto_bandeira_tipo_cartao',
             'vw_gasto_tipo_conta_agencia', 'vw_associados_ativos_mes']
$$;

-- Every relation of the warehouse (schema sicoop), as this layout has it.
CREATE FUNCTION _warehouse_relations() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
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
CREATE FUNCTION _check_warehouse_shape() RETURNS void
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

-- The warehouse's definition, one line per relation, column, default, constraint, index,
-- trigger, rule and policy: what grant_operator hands over and revoke_operator gets back.
CREATE FUNCTION _warehouse_signature() RETURNS text[]
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
CREATE FUNCTION _check_handover(from_owner regrole) RETURNS void
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
CREATE FUNCTION _adopt_warehouse() RETURNS boolean
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
CREATE FUNCTION _create_warehouse() RETURNS void
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
CREATE FUNCTION _create_flat_view() RETURNS void
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
CREATE FUNCTION _create_bi_views() RETURNS void
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
CREATE FUNCTION _comment_warehouse() RETURNS void
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
CREATE FUNCTION _create_quality_tables() RETURNS void
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

-- The source's foreign server and tables (postgres_fdw): created by connect_source() when
-- missing (a first connection, or after DROP EXTENSION postgres_fdw CASCADE removed them).
CREATE FUNCTION _create_source_objects() RETURNS void
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
CREATE FUNCTION _check_ready() RETURNS void
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
CREATE FUNCTION _is_current_source(host text, port int, dbname text, source_schema text) RETURNS boolean
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

------------------------------------------------------------------------------------------
-- The source: one postgres_fdw server; connect_source() sets its options and user mapping.
------------------------------------------------------------------------------------------
-- Checks the source over libpq (it answers; the four tables and their columns exist).
CREATE FUNCTION _check_source(host text, port int, dbname text, username text, password text, source_schema text)
RETURNS void LANGUAGE c AS 'MODULE_PATHNAME', 'sicoop_check_source';

-- Points the warehouse at the source (C++, src/source.cpp, over _connect_source() below):
-- its errors never show the password, and the server log leaves out the statement that
-- carried it.
CREATE FUNCTION connect_source(host text, port int, dbname text, username text,
                               password text DEFAULT NULL, source_schema text DEFAULT 'public')
RETURNS text LANGUAGE c AS 'MODULE_PATHNAME', 'sicoop_connect_source';

-- The catalog work of connect_source(): creates the warehouse first if schema sicoop has
-- none; given the source it already points at (a password re-entered after a restore), the
-- incremental state is kept; another source is read whole by the next run.
CREATE FUNCTION _connect_source(host text, port int, dbname text, username text, password text, source_schema text)
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

------------------------------------------------------------------------------------------
-- Scratch tables of the steps: the extension's own, holding nothing between runs. As
-- extension members pg_dump neither dumps nor locks them (a run's TRUNCATE never waits for
-- a backup, and no backup holds the stage's full card numbers).
------------------------------------------------------------------------------------------
-- Staging: what the bulk COPY from the source lands in, before it is merged into raw.
-- Unlogged: it is rebuilt by every load, so it need not survive a crash. Its types are wider
-- than the warehouse's and nothing is required, so that every source row lands here as it is:
-- the data-quality rules (sicoop.dq_rule) then decide, row by row, what enters raw and what is
-- rejected with its reason; nothing is cut, rounded or refused wholesale on the way.
CREATE UNLOGGED TABLE stage_associado (
    id_associado text,
    nome text,
    data_nascimento date,
    estado_civil text,
    escolaridade text
);
CREATE UNLOGGED TABLE stage_conta (
    id_conta text,
    id_associado text,
    tipo_conta text,
    agencia text,
    situacao_conta text,
    data_criacao_conta date
);
CREATE UNLOGGED TABLE stage_cartao (
    id_cartao text,
    id_conta text,
    numero_cartao text,
    nome_impresso_cartao text,
    bandeira_cartao text,
    tipo_cartao text,
    data_emissao date
);
CREATE UNLOGGED TABLE stage_movimentacao_cartao (
    id_movimentacao_cartao text,
    id_cartao text,
    descricao_movimentacao text,
    valor_movimentacao numeric,
    data_movimentacao timestamp
);
-- The rows a run rejects (sicoop._apply_row_rules), before they replace the table's rejects.
CREATE UNLOGGED TABLE stage_reject (record_id text, rules text[], record jsonb);
-- The source's columns as its catalog describes them, read by each load (schema drift;
-- whether a unique index and NOT NULL guarantee one row per key; whether NULL can occur).
CREATE UNLOGGED TABLE stage_source_column (table_name text, column_name text, source_type text, unique_key boolean,
                                           not_null boolean);
REVOKE ALL ON stage_associado, stage_conta, stage_cartao, stage_movimentacao_cartao, stage_reject FROM PUBLIC;
-- Finding deleted source rows: key checksums per bucket from the source, the buckets that
-- differ from raw, and the source keys of those buckets.
CREATE UNLOGGED TABLE stage_key_checksum (bucket int, keys bigint, key_hash_sum numeric);
CREATE UNLOGGED TABLE stage_bucket (bucket int);
CREATE UNLOGGED TABLE stage_key (record_id text);
-- The source's movements per day (local date): count and sum of valor_movimentacao, in the
-- snapshot the latest load copied. The reconciliation after load_fato compares the fact with it.
-- Logged: it is kept from load_raw to load_fato, which commit apart.
CREATE TABLE source_day_total (dia date, source_rows bigint NOT NULL, source_valor numeric NOT NULL);
-- The movement days, before the incremental window, whose source totals differ from raw's plus
-- the rejects': an old movement inserted, edited or deleted. The incremental load reads them too.
CREATE UNLOGGED TABLE stage_day (dia date);

-- What grant_operator handed over to each operator: the warehouse's definition then, which
-- revoke_operator (or a later grant_operator) checks before taking the warehouse back. The
-- extension's own, owned by the superuser who installed it, not the operator.
CREATE TABLE operator_handover (
    role_name   text PRIMARY KEY,
    signature   text[] NOT NULL,
    handed_at   timestamptz NOT NULL DEFAULT pg_catalog.now()
);
REVOKE ALL ON operator_handover FROM PUBLIC;

-- First loads build secondary indexes after the rows are in (faster than maintaining them
-- row by row): their definitions wait here meanwhile (from the short transaction that drops
-- them before the step to the end of the step's insert). pg_dump keeps its rows: a dump taken
-- in that window restores with the definitions, and the next run builds the indexes.
CREATE TABLE deferred_index (
    table_name  text NOT NULL,    -- the table, schema-qualified
    index_name  name NOT NULL,
    definition  text NOT NULL,
    PRIMARY KEY (table_name, index_name)
);
SELECT pg_catalog.pg_extension_config_dump('deferred_index', '');

-- What every step function returns.
CREATE TYPE step_result AS (
    run_id          bigint,
    step            text,
    rows_read       bigint,
    rows_inserted   bigint,
    rows_updated    bigint,
    rows_deleted    bigint,
    rows_unchanged  bigint,
    rows_unknown    bigint,
    rows_rejected   bigint,
    seconds         numeric
);

-- First loads build secondary indexes after the rows are in (faster than maintaining them
-- row by row): their definitions wait in sicoop.deferred_index meanwhile.
-- (Rebuilding an index needs CREATE on schema sicoop, which an operator does not get: for
-- one, the indexes stay in place and are maintained row by row.)
CREATE FUNCTION _defer_indexes(tbl regclass) RETURNS void
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
CREATE FUNCTION _empty_tables(tables text[]) RETURNS text[]
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
CREATE FUNCTION _summarize(tbl regclass) RETURNS void
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

CREATE FUNCTION _restore_indexes(tbl regclass) RETURNS void
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
CREATE FUNCTION reference_time() RETURNS timestamptz LANGUAGE sql STABLE AS
$$ SELECT coalesce(nullif(pg_catalog.current_setting('sicoop.as_of', true), '')::pg_catalog.timestamptz, pg_catalog.now()) $$;

-- The run's reference time (sicoop.as_of, empty = now()), once every setting a run reads is
-- checked: a finite reference time, not earlier than the latest successful run's (runs go
-- forward; replaying history in order works) nor later than now() plus five minutes (a typo
-- must not poison every later run); a time zone PostgreSQL knows; a lookback from 0 to 10
-- years. SQLSTATE 22023 otherwise, before anything is read or written.
CREATE FUNCTION _run_settings() RETURNS timestamptz
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

------------------------------------------------------------------------------------------
-- Data quality: the rules of sicoop.dq_rule, applied to the source rows as they enter raw
-- (src/steps/raw.cpp calls _apply_row_rules for each table once its rows are in the stage).
------------------------------------------------------------------------------------------
-- The key column of a source table.
CREATE FUNCTION _source_key(tbl text) RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS
$$ SELECT CASE tbl WHEN 'associado' THEN 'id_associado' WHEN 'conta' THEN 'id_conta'
                   WHEN 'cartao' THEN 'id_cartao' WHEN 'movimentacao_cartao' THEN 'id_movimentacao_cartao' END $$;

-- A range rule's bound as a SQL expression of type typ ('date' or 'numeric'): a literal, or
-- today[+-N], the run's date plus or minus N days. NULL: no bound.
CREATE FUNCTION _rule_bound(rule text, bound text, typ text, ref_date date) RETURNS text
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

-- The checks of the enabled row rules of a source table, as predicates on its row s in
-- `rows_in` (the stage, or raw after a first load's direct copy; the stage if NULL): one per
-- rule, or one per column for the rules of every column (part names the column). Column
-- types are the stage's, which the rules are written against.
CREATE FUNCTION _row_rule_checks(tbl text, ref_date date, rows_in regclass DEFAULT NULL)
RETURNS TABLE (rule_name text, part text, severity text, predicate text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  r record;
  c record;
  stage regclass := format('sicoop.%I', 'stage_' || tbl)::regclass;
  raw regclass := format('sicoop.%I', 'raw_' || tbl)::regclass;
  checked regclass := coalesce(rows_in, stage);
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
        predicate := format('s.%1$I IN (SELECT d.%1$I FROM %2$s d GROUP BY 1 HAVING count(*) > 1)', r.column_name, checked);
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

-- Applies the row rules of a source table to its rows in `rows_in` -- the stage
-- (sicoop.stage_<tbl>, if NULL), or raw_<tbl> when a first load copied the source straight into
-- it: counts every rule's failures in sicoop.dq_result; stops the step on a failing 'fail'
-- rule; moves the rows that break a 'reject' rule out of `rows_in` into sicoop.reject (card
-- numbers masked), which then holds exactly the rejects of this check (what was fixed or
-- deleted at the source leaves). `rows_in` holds every row the run looks at again, rejected
-- keys included (src/steps/raw.cpp). rows_checked: the rows it held before.
CREATE FUNCTION _apply_row_rules(tbl text, run_id bigint, ref_date date, rows_in regclass DEFAULT NULL,
                                 OUT rows_rejected bigint, OUT rows_checked bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  stage regclass := format('sicoop.%I', 'stage_' || tbl)::regclass;
  checked regclass := coalesce(rows_in, stage);
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
  IF checked NOT IN (stage, format('sicoop.%I', 'raw_' || tbl)::regclass) THEN
    RAISE EXCEPTION 'sicoop: the row rules of % apply to sicoop.stage_% or sicoop.raw_%, not to %', tbl, tbl, tbl, checked
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
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

  -- One pass over the rows counts the rows examined and what the plain rules find; a rule
  -- that reads another table (references, unique) counts in a query of its own, where the
  -- planner makes it a join rather than a lookup per row.
  SELECT array_agg(c.rule_name ORDER BY c.rule_name), array_agg(c.severity ORDER BY c.rule_name),
         array_agg(c.predicate ORDER BY c.rule_name)
  INTO rules, severities, rule_preds
  FROM (SELECT x.rule_name, min(x.severity) AS severity, '(' || string_agg(x.predicate, ') OR (') || ')' AS predicate
        FROM sicoop._row_rule_checks(tbl, ref_date, checked) x GROUP BY x.rule_name) c;
  EXECUTE format('SELECT ARRAY[count(*)%s] FROM %s s',
                 (SELECT string_agg(CASE WHEN p ~* '\mSELECT\M' THEN ', 0::bigint'
                                         ELSE format(', count(*) FILTER (WHERE %s)', p) END, '' ORDER BY o)
                  FROM unnest(rule_preds) WITH ORDINALITY u(p, o)), checked)
  INTO counts;
  rows_checked := counts[1];
  FOR i IN 1 .. coalesce(array_length(rules, 1), 0) LOOP
    IF rule_preds[i] ~* '\mSELECT\M' THEN
      EXECUTE format('SELECT count(*) FROM %s s WHERE %s', checked, rule_preds[i]) INTO found;
      counts[i + 1] := found;
    END IF;
    any_rejected := any_rejected OR (severities[i] = 'reject' AND counts[i + 1] > 0);
  END LOOP;
  FOR i IN 1 .. coalesce(array_length(rules, 1), 0) LOOP
    sample := NULL;
    IF counts[i + 1] > 0 THEN
      EXECUTE format('SELECT jsonb_agg(k) FROM (SELECT sicoop._redact_card_numbers(s.%I::text) AS k FROM %s s WHERE %s LIMIT 5) x',
                     key, checked, rule_preds[i])
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

  -- The rejected rows leave `checked` for sicoop.reject, with every rule they break.
  TRUNCATE sicoop.stage_reject;
  SELECT string_agg('(' || x.predicate || ')', ' OR '),
         string_agg(format('CASE WHEN %s THEN %L END', x.predicate, x.rule_name || coalesce('(' || x.part || ')', '')), ', ')
  INTO reject_pred, reject_labels
  FROM sicoop._row_rule_checks(tbl, ref_date, checked) x WHERE x.severity = 'reject';
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
                   checked, reject_pred, reject_labels, key, record_expr);
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
CREATE FUNCTION _check_source_drift(tbl text, run_id bigint) RETURNS void
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
CREATE FUNCTION _canonical(domain text, value text) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT coalesce((SELECT c.canonical FROM sicoop.canonical_value c
                    WHERE c.domain OPERATOR(pg_catalog.=) $1 AND c.source_value OPERATOR(pg_catalog.=) $2), $2) $$;

-- The table's 'canonical' rules: trusted values that are neither a mapped source value nor a
-- canonical one, counted (with a few of them) in sicoop.dq_result.
CREATE FUNCTION _check_canonical(tbl text, run_id bigint) RETURNS void
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
CREATE FUNCTION _reconcile(run_id bigint) RETURNS void
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
CREATE FUNCTION _check_run_quality(run_id bigint) RETURNS void
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
CREATE FUNCTION _rules_signature() RETURNS text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT md5(coalesce((SELECT string_agg(q::text, ',' ORDER BY q.rule_name) FROM ONLY sicoop.dq_rule q
                     WHERE q.enabled AND q.kind NOT IN ('source_drift', 'canonical', 'reconciliation')), '')
           || '|' ||
           coalesce((SELECT string_agg(c::text, ',' ORDER BY c.domain, c.source_value) FROM ONLY sicoop.canonical_value c), ''))
$$;

-- Why the next run must be a full one, or NULL: a full run started or asked for (by a failed
-- reconciliation, or by the upgrade to 1.2) has not completed, or the row rules or the
-- canonical values changed since every row was last checked and labelled by them.
CREATE FUNCTION _full_run_owed() RETURNS text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
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
CREATE FUNCTION _alert(run_id bigint, step text) RETURNS void
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
CREATE FUNCTION _mark_aborted_runs() RETURNS bigint
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
CREATE FUNCTION run_status()
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
-- Cleaning rules (the trusted layer). Kept as SQL functions so analysts can reuse them.
------------------------------------------------------------------------------------------
-- Trim, collapse inner runs of white space, mask card numbers (a number typed into a
-- description), upper-case with accents kept; blank -> NULL.
-- (C++, src/sql_functions.cpp: it runs on every text field of every row.)
CREATE FUNCTION clean_text(value text) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'sicoop_clean_text';

-- First word of the cleaned name.
CREATE FUNCTION first_name(nome text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT pg_catalog.split_part(sicoop.clean_text(nome), ' ', 1) $$;

-- Everything after the first word, NULL if there is none.
CREATE FUNCTION last_name(nome text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT nullif(pg_catalog.substr(n, pg_catalog.strpos(n, ' ') OPERATOR(pg_catalog.+) 1), n)
   FROM (SELECT sicoop.clean_text(nome) AS n) s $$;

-- Whole years lived on a date (birthday-aware; someone born on 29 February turns a year
-- older on 1 March in common years). NULL without a birth date or for a future one.
CREATE FUNCTION age_years(birth date, on_date date) RETURNS int
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT CASE WHEN birth OPERATOR(pg_catalog.<=) on_date
               THEN pg_catalog.date_part('year', pg_catalog.age(on_date::pg_catalog.timestamp, birth::pg_catalog.timestamp))::pg_catalog.int4
          END $$;

-- The text with every possible card number (13 or more digits) masked to its last four digits,
-- as sicoop does to every error it reports or logs (C++, src/steps/text_rules.cpp).
CREATE FUNCTION _redact_card_numbers(value text) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'sicoop_redact_card_numbers';

-- Every character but the last four replaced by '*' (white space around it ignored; blank -> NULL).
CREATE FUNCTION mask_card(numero text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT nullif(pg_catalog.repeat('*', greatest(pg_catalog.length(n) OPERATOR(pg_catalog.-) 4, 0))
                            OPERATOR(pg_catalog.||) pg_catalog.right(n, 4), '')
   FROM (SELECT pg_catalog.regexp_replace(numero, '^\s+|\s+$', '', 'g') AS n) s $$;

-- Where an incremental read of the source's movements starts: the watermark (the latest
-- movement time the previous copy saw in the source, but never later than the run's local
-- reference time: a future-dated row must not hide the new ones) minus the lookback
-- (sicoop.lookback, default 3 days). NULL before a first load.
CREATE FUNCTION movement_window_start(reference_local timestamp) RETURNS timestamp LANGUAGE sql STABLE AS
$$ SELECT least(watermark, reference_local)
          OPERATOR(pg_catalog.-) coalesce(nullif(pg_catalog.current_setting('sicoop.lookback', true), ''),
                                                     '3 days')::pg_catalog.interval
   FROM sicoop.source_sync WHERE table_name OPERATOR(pg_catalog.=) 'src_movimentacao_cartao'::pg_catalog.text $$;


-- No two versions of a member overlap: checked by every SCD2 run, set-based, for the members
-- whose versions it changed (all of them when since_run_id is 0), and the run fails with
-- SQLSTATE 23P01 otherwise. (An exclusion constraint would say the same, but maintaining its
-- GiST index cost more than the rest of the SCD2 step.)
CREATE FUNCTION check_vigencia(since_run_id bigint DEFAULT 0) RETURNS void
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
CREATE FUNCTION _check_scd2_reference_time(ref timestamptz) RETURNS void
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
CREATE FUNCTION export_flat(path text) RETURNS bigint
LANGUAGE c AS 'MODULE_PATHNAME', 'sicoop_export_flat';

------------------------------------------------------------------------------------------
-- The steps and the pipeline (C++: src/pipeline.cpp orchestrates, src/steps/ holds the SQL).
------------------------------------------------------------------------------------------
-- full => true: process everything (reconcile) instead of what changed since the step's last run.
CREATE FUNCTION run_step(step text, "full" boolean DEFAULT false) RETURNS step_result
LANGUAGE c AS 'MODULE_PATHNAME', 'sicoop_run_step';

CREATE FUNCTION load_raw() RETURNS step_result LANGUAGE sql AS $$ SELECT * FROM sicoop.run_step('load_raw') $$;
CREATE FUNCTION load_trusted() RETURNS step_result LANGUAGE sql AS $$ SELECT * FROM sicoop.run_step('load_trusted') $$;
CREATE FUNCTION load_dims() RETURNS step_result LANGUAGE sql AS $$ SELECT * FROM sicoop.run_step('load_dims') $$;
CREATE FUNCTION scd2_associado() RETURNS step_result LANGUAGE sql AS $$ SELECT * FROM sicoop.run_step('scd2_associado') $$;
CREATE FUNCTION load_fato() RETURNS step_result LANGUAGE sql AS $$ SELECT * FROM sicoop.run_step('load_fato') $$;

-- full => true: a full reconciliation (whole source compared, catching what the movements'
-- watermark cannot see: late inserts and edits older than the lookback, old deletions).
CREATE PROCEDURE run_pipeline("full" boolean DEFAULT false)
LANGUAGE c AS 'MODULE_PATHNAME', 'sicoop_run_pipeline';

------------------------------------------------------------------------------------------
-- Scheduling with pg_cron, in one call. pg_cron lives in the database cron.database_name
-- names; with the warehouse there (the usual setup), the jobs run the pipeline here as the
-- role that scheduled them (the operator).
------------------------------------------------------------------------------------------
-- The names of this warehouse's jobs: incremental runs, and the optional full run.
CREATE FUNCTION _job_names() RETURNS text[] LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS
$$ SELECT ARRAY['sicoop_pipeline@' || current_database(), 'sicoop_full@' || current_database()] $$;

-- Refuses when pg_cron is not in this database, saying what to run where it is.
CREATE FUNCTION _check_cron(what text, cron text) RETURNS void
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
CREATE FUNCTION schedule(cron text DEFAULT '*/15 * * * *', full_cron text DEFAULT NULL)
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
CREATE FUNCTION unschedule() RETURNS int
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
CREATE FUNCTION schedule_status()
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
CREATE FUNCTION _operator_functions() RETURNS text LANGUAGE sql IMMUTABLE AS $$
SELECT 'FUNCTION sicoop.connect_source(text, integer, text, text, text, text),
                 sicoop._connect_source(text, integer, text, text, text, text),
                 sicoop._check_source(text, integer, text, text, text, text),
                 sicoop.run_step(text, boolean), sicoop.load_raw(), sicoop.load_trusted(), sicoop.load_dims(),
                 sicoop.scd2_associado(), sicoop.load_fato(), sicoop.export_flat(text),
                 sicoop._defer_indexes(regclass), sicoop._restore_indexes(regclass), sicoop._summarize(regclass),
                 sicoop._empty_tables(text[]), sicoop._create_source_objects(),
                 sicoop._apply_row_rules(text, bigint, date, regclass), sicoop._check_source_drift(text, bigint),
                 sicoop._check_canonical(text, bigint), sicoop._reconcile(bigint), sicoop._check_run_quality(bigint),
                 sicoop._mark_aborted_runs(), sicoop._row_rule_checks(text, date, regclass), sicoop._rule_bound(text, text, text, date),
                 sicoop._alert(bigint, text), sicoop.schedule(text, text), sicoop.unschedule(),
                 sicoop.schedule_status()'::text
$$;

-- Gives every relation of schema sicoop owned by `from_owner` (all of them if NULL) to
-- `new_owner`, and the source server too (sequences owned by a table follow it).
CREATE FUNCTION _set_warehouse_owner(new_owner regrole, from_owner regrole DEFAULT NULL) RETURNS void
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
CREATE FUNCTION _check_grantor(fn text, target regrole) RETURNS void
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
CREATE FUNCTION grant_operator(operator regrole) RETURNS text
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
CREATE FUNCTION revoke_operator(operator regrole) RETURNS text
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
CREATE FUNCTION _reader_relations() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
SELECT ARRAY['dim_data', 'dim_conta', 'dim_cartao', 'dim_associado', 'fato_movimentacao_cartao', 'vw_movimentacao_flat']
       || sicoop._analyst_views()
$$;

CREATE FUNCTION grant_reader(reader regrole) RETURNS text
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

CREATE FUNCTION revoke_reader(reader regrole) RETURNS text
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

-- Privileges: what may change the warehouse, reach the source or export is the operator's
-- (grant_operator), never PUBLIC's. The cleaning helpers stay callable by anyone.
REVOKE ALL ON FUNCTION sicoop.connect_source(text, integer, text, text, text, text), sicoop._connect_source(text, integer, text, text, text, text),
  sicoop._check_source(text, integer, text, text, text, text), sicoop.run_step(text, boolean), sicoop.load_raw(),
  sicoop.load_trusted(), sicoop.load_dims(), sicoop.scd2_associado(), sicoop.load_fato(), sicoop.export_flat(text), sicoop.grant_operator(regrole),
  sicoop.revoke_operator(regrole), sicoop.grant_reader(regrole), sicoop.revoke_reader(regrole),
  sicoop._set_warehouse_owner(regrole, regrole), sicoop._create_flat_view(), sicoop._create_warehouse(),
  sicoop._create_source_objects(), sicoop._defer_indexes(regclass), sicoop._restore_indexes(regclass),
  sicoop._summarize(regclass), sicoop._empty_tables(text[]), sicoop._create_quality_tables(),
  sicoop._apply_row_rules(text, bigint, date, regclass), sicoop._check_source_drift(text, bigint), sicoop._check_canonical(text, bigint),
  sicoop._reconcile(bigint), sicoop._check_run_quality(bigint), sicoop._mark_aborted_runs(),
  sicoop._row_rule_checks(text, date, regclass), sicoop._rule_bound(text, text, text, date), sicoop._alert(bigint, text),
  sicoop._create_bi_views(), sicoop._comment_warehouse(), sicoop.schedule(text, text), sicoop.unschedule(),
  sicoop.schedule_status() FROM PUBLIC;
REVOKE ALL ON PROCEDURE sicoop.run_pipeline(boolean) FROM PUBLIC;
-- End of privileges

-- Re-created over a warehouse that outlived the extension (DROP EXTENSION keeps the data),
-- the extension adopts it, or refuses with the reason, before anything is changed.
DO $adopt$
BEGIN
  IF sicoop._adopt_warehouse() THEN
    -- A warning: extension scripts run with client_min_messages at WARNING or above.
    RAISE WARNING 'sicoop_etl: adopting the warehouse already in schema sicoop (layout %): its data is kept as it is',
                  sicoop._layout_version();
  END IF;
END
$adopt$;
