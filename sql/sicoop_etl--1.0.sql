-- sicoop_etl 1.0: SiCooperativeDW's schema, the source connection and the SQL interface.
-- The step logic lives in src/steps/*.cpp (one file per step); this script declares the data
-- model and the functions users call.
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
-- The source: one postgres_fdw server; connect_source() sets its options and user mapping.
------------------------------------------------------------------------------------------
CREATE SERVER sicoop_source FOREIGN DATA WRAPPER postgres_fdw;

CREATE FOREIGN TABLE src_associado (
    id_associado varchar(50) NOT NULL,
    nome varchar(255) NOT NULL,
    data_nascimento date,
    estado_civil varchar(50),
    escolaridade varchar(100)
) SERVER sicoop_source OPTIONS (schema_name 'public', table_name 'associado');

CREATE FOREIGN TABLE src_conta (
    id_conta varchar(50) NOT NULL,
    id_associado varchar(50),
    tipo_conta varchar(50),
    agencia varchar(20),
    situacao_conta varchar(50),
    data_criacao_conta date
) SERVER sicoop_source OPTIONS (schema_name 'public', table_name 'conta');

CREATE FOREIGN TABLE src_cartao (
    id_cartao varchar(50) NOT NULL,
    id_conta varchar(50),
    numero_cartao varchar(50),
    nome_impresso_cartao varchar(150),
    bandeira_cartao varchar(50),
    tipo_cartao varchar(50),
    data_emissao date
) SERVER sicoop_source OPTIONS (schema_name 'public', table_name 'cartao');

CREATE FOREIGN TABLE src_movimentacao_cartao (
    id_movimentacao_cartao varchar(50) NOT NULL,
    id_cartao varchar(50),
    descricao_movimentacao varchar(150),
    valor_movimentacao numeric(10,2) NOT NULL,
    data_movimentacao timestamp NOT NULL
) SERVER sicoop_source OPTIONS (schema_name 'public', table_name 'movimentacao_cartao');

-- Checks the source over libpq (it answers; the four tables and their columns exist).
CREATE FUNCTION _check_source(host text, port int, dbname text, username text, password text, source_schema text)
RETURNS void LANGUAGE c AS 'MODULE_PATHNAME', 'sicoop_check_source';

CREATE FUNCTION connect_source(host text, port int, dbname text, username text,
                               password text DEFAULT NULL, source_schema text DEFAULT 'public')
RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
  opt record;
  t text;
BEGIN
  PERFORM sicoop._check_source(host, port, dbname, username, password, source_schema);

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
  DELETE FROM sicoop.source_sync;
  FOREACH t IN ARRAY ARRAY['associado', 'conta', 'cartao', 'movimentacao_cartao'] LOOP
    EXECUTE format('ALTER FOREIGN TABLE sicoop.%I OPTIONS (SET schema_name %L)', 'src_' || t, source_schema);
  END LOOP;
  RETURN format('sicoop_source -> %s@%s:%s/%s (schema %s)', username, host, port, dbname, source_schema);
END
$fn$;

------------------------------------------------------------------------------------------
-- Run log: one row per run and step (the step 'run_pipeline' summarises a whole run).
------------------------------------------------------------------------------------------
CREATE SEQUENCE run_id_seq;

CREATE TABLE run_log (
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
CREATE INDEX run_log_started_at ON run_log (started_at);

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

-- Source rows the trusted layer cannot take, with the reason: one row per rejected record
-- while it stays bad (a later run that finds it fixed loads it and removes it from here).
-- Holds raw values (card numbers included): readable by the ETL owner only.
CREATE TABLE reject (
    table_name   text NOT NULL,
    record_id    text NOT NULL,
    reason       text NOT NULL,
    record       jsonb NOT NULL,
    run_id       bigint NOT NULL,
    rejected_at  timestamptz NOT NULL,
    PRIMARY KEY (table_name, record_id)
);
REVOKE ALL ON reject FROM PUBLIC;

-- Incremental bookkeeping: the last run each step processed. Rows of raw_*, trusted_* and
-- dim_associado carry the run that last changed them; a step processes what changed since.
CREATE TABLE step_state (
    step         text PRIMARY KEY,
    last_run_id  bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Keys deleted from raw_* (by the run that deleted them), so later steps follow deletions
-- without rescanning. Removed once every step has processed them.
CREATE TABLE raw_tombstone (
    table_name  text NOT NULL,
    record_id   varchar(50) NOT NULL,
    run_id      bigint NOT NULL,
    PRIMARY KEY (table_name, record_id)
);
CREATE INDEX raw_tombstone_run ON raw_tombstone (run_id);

-- First loads build secondary indexes after the rows are in (faster than maintaining them
-- row by row): their definitions wait here meanwhile.
CREATE TABLE deferred_index (
    table_name  regclass NOT NULL,
    index_name  name NOT NULL,
    definition  text NOT NULL,
    PRIMARY KEY (table_name, index_name)
);

CREATE FUNCTION _defer_indexes(tbl regclass) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
  ix record;
BEGIN
  FOR ix IN SELECT i.indexrelid::regclass AS index_name, pg_get_indexdef(i.indexrelid) AS definition
            FROM pg_index i WHERE i.indrelid = tbl AND NOT i.indisprimary AND NOT i.indisunique
  LOOP
    INSERT INTO sicoop.deferred_index VALUES (tbl, ix.index_name::text, ix.definition);
    EXECUTE format('DROP INDEX %s', ix.index_name);
  END LOOP;
END
$fn$;

-- Which of these tables (in schema sicoop) are empty.
CREATE FUNCTION _empty_tables(tables text[]) RETURNS text[] LANGUAGE plpgsql STABLE AS $fn$
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
CREATE FUNCTION _summarize(tbl regclass) RETURNS void LANGUAGE plpgsql AS $fn$
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

CREATE FUNCTION _restore_indexes(tbl regclass) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
  ix record;
BEGIN
  FOR ix IN DELETE FROM sicoop.deferred_index WHERE table_name = tbl RETURNING definition LOOP
    EXECUTE ix.definition;
  END LOOP;
  EXECUTE format('ANALYZE %s', tbl);
END
$fn$;

------------------------------------------------------------------------------------------
-- Reference time: sicoop.as_of (timestamptz; empty = now()).
------------------------------------------------------------------------------------------
CREATE FUNCTION reference_time() RETURNS timestamptz LANGUAGE sql STABLE AS
$$ SELECT coalesce(nullif(current_setting('sicoop.as_of', true), '')::timestamptz, now()) $$;

------------------------------------------------------------------------------------------
-- Cleaning rules (the trusted layer). Kept as SQL functions so analysts can reuse them.
------------------------------------------------------------------------------------------
-- Trim, collapse inner runs of white space, upper-case with accents kept; blank -> NULL.
-- (C++, src/sql_functions.cpp: it runs on every text field of every row.)
CREATE FUNCTION clean_text(value text) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'sicoop_clean_text';

-- First word of the cleaned name.
CREATE FUNCTION first_name(nome text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT split_part(sicoop.clean_text(nome), ' ', 1) $$;

-- Everything after the first word, NULL if there is none.
CREATE FUNCTION last_name(nome text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT nullif(substr(n, strpos(n, ' ') + 1), n) FROM (SELECT sicoop.clean_text(nome) AS n) s $$;

-- Whole years lived on a date (birthday-aware; someone born on 29 February turns a year
-- older on 1 March in common years). NULL without a birth date or for a future one.
CREATE FUNCTION age_years(birth date, on_date date) RETURNS int
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT CASE WHEN birth <= on_date THEN date_part('year', age(on_date, birth))::int END $$;

-- Every character but the last four replaced by '*' (white space around it ignored; blank -> NULL).
CREATE FUNCTION mask_card(numero text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT nullif(repeat('*', greatest(length(n) - 4, 0)) || right(n, 4), '')
   FROM (SELECT regexp_replace(numero, '^\s+|\s+$', '', 'g') AS n) s $$;

------------------------------------------------------------------------------------------
-- Raw: the source rows as they are, plus load metadata. Readable by the ETL owner only.
------------------------------------------------------------------------------------------
CREATE TABLE raw_associado (
    id_associado varchar(50) PRIMARY KEY,
    nome varchar(255) NOT NULL,
    data_nascimento date,
    estado_civil varchar(50),
    escolaridade varchar(100),
    run_id bigint NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE raw_conta (
    id_conta varchar(50) PRIMARY KEY,
    id_associado varchar(50),
    tipo_conta varchar(50),
    agencia varchar(20),
    situacao_conta varchar(50),
    data_criacao_conta date,
    run_id bigint NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE raw_cartao (
    id_cartao varchar(50) PRIMARY KEY,
    id_conta varchar(50),
    numero_cartao varchar(50),
    nome_impresso_cartao varchar(150),
    bandeira_cartao varchar(50),
    tipo_cartao varchar(50),
    data_emissao date,
    run_id bigint NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE raw_movimentacao_cartao (
    id_movimentacao_cartao varchar(50) PRIMARY KEY,
    id_cartao varchar(50),
    descricao_movimentacao varchar(150),
    valor_movimentacao numeric(10,2) NOT NULL,
    data_movimentacao timestamp NOT NULL,
    run_id bigint NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX raw_associado_run ON raw_associado (run_id);
CREATE INDEX raw_conta_run ON raw_conta (run_id);
CREATE INDEX raw_cartao_run ON raw_cartao (run_id);
-- BRIN: rows a run writes sit together at the end of the heap, and a BRIN index costs next
-- to nothing to maintain during a 10-million-row first load (which summarizes it at the end;
-- autovacuum summarizes what later runs append).
CREATE INDEX raw_movimentacao_cartao_run ON raw_movimentacao_cartao USING brin (run_id) WITH (autosummarize = on);
-- The window after the watermark (movements arrive roughly in time order, so BRIN suffices).
CREATE INDEX raw_movimentacao_cartao_data ON raw_movimentacao_cartao USING brin (data_movimentacao)
    WITH (autosummarize = on);
REVOKE ALL ON raw_associado, raw_conta, raw_cartao, raw_movimentacao_cartao FROM PUBLIC;

-- Staging: what the bulk COPY from the source lands in, before it is merged into raw.
-- Unlogged: it is rebuilt by every load, so it need not survive a crash.
CREATE UNLOGGED TABLE stage_associado (LIKE raw_associado INCLUDING DEFAULTS);
CREATE UNLOGGED TABLE stage_conta (LIKE raw_conta INCLUDING DEFAULTS);
CREATE UNLOGGED TABLE stage_cartao (LIKE raw_cartao INCLUDING DEFAULTS);
CREATE UNLOGGED TABLE stage_movimentacao_cartao (LIKE raw_movimentacao_cartao INCLUDING DEFAULTS);
ALTER TABLE stage_associado DROP COLUMN run_id, DROP COLUMN loaded_at;
ALTER TABLE stage_conta DROP COLUMN run_id, DROP COLUMN loaded_at;
ALTER TABLE stage_cartao DROP COLUMN run_id, DROP COLUMN loaded_at;
ALTER TABLE stage_movimentacao_cartao DROP COLUMN run_id, DROP COLUMN loaded_at;
REVOKE ALL ON stage_associado, stage_conta, stage_cartao, stage_movimentacao_cartao FROM PUBLIC;
-- Finding deleted source rows: key checksums per bucket from the source, the buckets that
-- differ from raw, and the source keys of those buckets.
CREATE UNLOGGED TABLE stage_key_checksum (bucket int, keys bigint, key_hash_sum numeric);
CREATE UNLOGGED TABLE stage_bucket (bucket int);
CREATE UNLOGGED TABLE stage_key (record_id varchar(50));

-- Per source table, the source snapshot its last copy read (txid_snapshot_xmin): the next
-- incremental copy reads the rows written since (their xmin), not the whole table.
CREATE TABLE source_sync (
    table_name     text PRIMARY KEY,
    snapshot_xmin  bigint NOT NULL,
    watermark      timestamp,       -- movements: the latest data_movimentacao in that snapshot
    copied_at      timestamptz NOT NULL DEFAULT now()
);

-- Where an incremental read of the source's movements starts: the watermark (the latest
-- movement time the previous copy saw in the source, but never later than the run's local
-- reference time: a future-dated row must not hide the new ones) minus the lookback
-- (sicoop.lookback, default 3 days). NULL before a first load.
CREATE FUNCTION movement_window_start(reference_local timestamp) RETURNS timestamp LANGUAGE sql STABLE AS
$$ SELECT least(watermark, reference_local)
          - coalesce(nullif(current_setting('sicoop.lookback', true), ''), '3 days')::interval
   FROM sicoop.source_sync WHERE table_name = 'src_movimentacao_cartao' $$;

------------------------------------------------------------------------------------------
-- Trusted: cleaned copies (see the cleaning functions above).
------------------------------------------------------------------------------------------
CREATE TABLE trusted_associado (
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
CREATE TABLE trusted_conta (
    id_conta varchar(50) PRIMARY KEY,
    id_associado varchar(50),
    tipo_conta varchar(50),
    agencia varchar(20),
    situacao_conta varchar(50),
    data_criacao_conta date,
    run_id bigint NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE trusted_cartao (
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
CREATE TABLE trusted_movimentacao_cartao (
    id_movimentacao_cartao varchar(50) PRIMARY KEY,
    id_cartao varchar(50),
    descricao_movimentacao varchar(150),
    valor_movimentacao numeric(10,2) NOT NULL,
    data_movimentacao timestamp NOT NULL,
    run_id bigint NOT NULL,
    updated_at timestamptz NOT NULL
);
-- What changed since a run.
CREATE INDEX trusted_associado_run ON trusted_associado (run_id);
CREATE INDEX trusted_conta_run ON trusted_conta (run_id);
CREATE INDEX trusted_cartao_run ON trusted_cartao (run_id);
CREATE INDEX trusted_movimentacao_cartao_run ON trusted_movimentacao_cartao USING brin (run_id)
    WITH (autosummarize = on);

------------------------------------------------------------------------------------------
-- Star schema. Every dimension has the unknown member sk = -1 (NULL natural key).
------------------------------------------------------------------------------------------
CREATE TABLE dim_data (
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
INSERT INTO dim_data (sk_data, dia_da_semana) VALUES (-1, 'DESCONHECIDO');

CREATE TABLE dim_conta (
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
CREATE INDEX dim_conta_associado ON dim_conta (id_associado);
CREATE INDEX dim_conta_run ON dim_conta (run_id);
INSERT INTO dim_conta (sk_conta, tipo_conta) VALUES (-1, 'DESCONHECIDO');

CREATE TABLE dim_cartao (
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
CREATE INDEX dim_cartao_conta ON dim_cartao (id_conta);
CREATE INDEX dim_cartao_run ON dim_cartao (run_id);
INSERT INTO dim_cartao (sk_cartao, nome_impresso_cartao) VALUES (-1, 'DESCONHECIDO');

-- SCD type 2. Vigência is half-open [inicio, fim); the current version ends at 9999-12-31
-- (1900-01-01 and 9999-12-31 are midnights in the cooperative's time zone, sicoop.timezone).
-- sicoop.check_vigencia() (below) refuses overlapping versions; the partial unique index
-- makes a second current version impossible.
CREATE TABLE dim_associado (
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

CREATE INDEX dim_associado_member ON dim_associado (id_associado, inicio_vigencia_registro_associado);

-- No two versions of a member overlap: checked by every SCD2 run, set-based, for the members
-- whose versions it changed (all of them when since_run_id is 0), and the run fails with
-- SQLSTATE 23P01 otherwise. (An exclusion constraint would say the same, but maintaining its
-- GiST index cost more than the rest of the SCD2 step.)
CREATE FUNCTION check_vigencia(since_run_id bigint DEFAULT 0) RETURNS void LANGUAGE plpgsql AS $fn$
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
CREATE INDEX dim_associado_run ON dim_associado (run_id);
CREATE UNIQUE INDEX dim_associado_one_current ON dim_associado (id_associado) WHERE registro_ativo_associado;
INSERT INTO dim_associado (sk_associado, nome_associado, inicio_vigencia_registro_associado,
                           fim_vigencia_registro_associado, registro_ativo_associado)
VALUES (-1, 'DESCONHECIDO', timestamp '1900-01-01' AT TIME ZONE 'America/Sao_Paulo',
        timestamp '9999-12-31' AT TIME ZONE 'America/Sao_Paulo', true);

-- SCD2 runs go forward in time: a reference time before the latest version's start is refused.
CREATE FUNCTION _check_scd2_reference_time(ref timestamptz) RETURNS void
LANGUAGE plpgsql AS $fn$
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

CREATE TABLE fato_movimentacao_cartao (
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
CREATE INDEX fato_movimentacao_cartao_atualizacao ON fato_movimentacao_cartao (data_hora_atualizacao_registro);
-- The facts of a card: re-keyed when the card, its account or its member changes.
CREATE INDEX fato_movimentacao_cartao_cartao ON fato_movimentacao_cartao (sk_cartao);
CREATE INDEX fato_movimentacao_cartao_unknown ON fato_movimentacao_cartao (id_movimentacao_cartao)
    WHERE sk_associado = -1 OR sk_cartao = -1 OR sk_conta = -1;

------------------------------------------------------------------------------------------
-- The flat file for data science.
------------------------------------------------------------------------------------------
CREATE VIEW vw_movimentacao_flat AS
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

-- Writes the flat file server-side (COPY's rules for server files apply: superuser or
-- pg_write_server_files, a path the server can write). Returns the number of movements.
CREATE FUNCTION export_flat(path text) RETURNS bigint
LANGUAGE plpgsql SET DateStyle = 'ISO, YMD' AS $fn$
DECLARE
  n bigint;
BEGIN
  IF path IS NULL OR path = '' THEN
    RAISE EXCEPTION 'sicoop.export_flat: a file path is required';
  END IF;
  EXECUTE format($$COPY (SELECT * FROM sicoop.vw_movimentacao_flat) TO %L
                   WITH (FORMAT csv, HEADER true, DELIMITER ';', ENCODING 'UTF8')$$, path);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$fn$;

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
