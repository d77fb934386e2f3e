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
-- A stream's micro-batch (src/stream.cpp): every key it touched, per table, with the source
-- commit that left it so, whether it was deleted, and the columns whose unchanged TOAST value
-- the source did not send (taken from raw). A row with no key: the table was truncated.
CREATE UNLOGGED TABLE stream_key (table_name text NOT NULL, record_id text, deleted boolean NOT NULL,
                                  commit_time timestamptz NOT NULL, keep_from_raw text[] NOT NULL DEFAULT '{}');
CREATE INDEX stream_key_record ON stream_key (table_name, record_id);
-- A stream's micro-batch (issue 25): a member's states before its last one in the batch
-- (stage_associado holds the last), in commit order, for SCD2 to make a version of each as
-- separate batches would. `round` n: the member's nth earlier state; `keep_from_raw`: columns
-- whose unchanged TOAST value the source did not send (load_raw takes them from raw);
-- `rejected`: a reject rule of the stage's refuses the state (sicoop._check_member_states).
CREATE UNLOGGED TABLE stage_associado_state (
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
CREATE INDEX earlier_state_member ON stage_associado_state (id_associado, round);
-- A micro-batch's values that are not of their stage column's type (a source column whose type
-- changed: words in a numeric column, an impossible date): the stage holds NULL there, and this
-- names the row and the column; the table's fits rule rejects the row (src/stream_rows.cpp).
CREATE UNLOGGED TABLE stage_unfit (table_name text NOT NULL, record_id text, column_name text NOT NULL);
-- No statistics of the stage's text: it holds the source's values as they are -- full card
-- numbers, numbers typed into descriptions, card-like keys about to be rejected -- and ANALYZE
-- (the load's own, or autovacuum's) would copy a sample of them into pg_statistic, which
-- TRUNCATE keeps and pg_stats shows to whoever may read the table. Row counts and the other
-- columns' statistics stay, which is what the loads' plans need.
ALTER TABLE stage_associado ALTER COLUMN id_associado SET STATISTICS 0, ALTER COLUMN nome SET STATISTICS 0,
  ALTER COLUMN estado_civil SET STATISTICS 0, ALTER COLUMN escolaridade SET STATISTICS 0;
ALTER TABLE stage_associado_state ALTER COLUMN id_associado SET STATISTICS 0, ALTER COLUMN nome SET STATISTICS 0,
  ALTER COLUMN estado_civil SET STATISTICS 0, ALTER COLUMN escolaridade SET STATISTICS 0;
REVOKE ALL ON stage_associado_state FROM PUBLIC;
ALTER TABLE stage_conta ALTER COLUMN id_conta SET STATISTICS 0, ALTER COLUMN id_associado SET STATISTICS 0,
  ALTER COLUMN tipo_conta SET STATISTICS 0, ALTER COLUMN agencia SET STATISTICS 0, ALTER COLUMN situacao_conta SET STATISTICS 0;
ALTER TABLE stage_cartao ALTER COLUMN id_cartao SET STATISTICS 0, ALTER COLUMN id_conta SET STATISTICS 0,
  ALTER COLUMN numero_cartao SET STATISTICS 0, ALTER COLUMN nome_impresso_cartao SET STATISTICS 0,
  ALTER COLUMN bandeira_cartao SET STATISTICS 0, ALTER COLUMN tipo_cartao SET STATISTICS 0;
ALTER TABLE stage_movimentacao_cartao ALTER COLUMN id_movimentacao_cartao SET STATISTICS 0,
  ALTER COLUMN id_cartao SET STATISTICS 0, ALTER COLUMN descricao_movimentacao SET STATISTICS 0;
ALTER TABLE stage_reject ALTER COLUMN record_id SET STATISTICS 0, ALTER COLUMN record SET STATISTICS 0;
ALTER TABLE stage_key ALTER COLUMN record_id SET STATISTICS 0;
ALTER TABLE stream_key ALTER COLUMN record_id SET STATISTICS 0;
REVOKE ALL ON stream_key FROM PUBLIC;
ALTER TABLE stage_unfit ALTER COLUMN table_name SET STATISTICS 0, ALTER COLUMN record_id SET STATISTICS 0,
  ALTER COLUMN column_name SET STATISTICS 0;
REVOKE ALL ON stage_unfit FROM PUBLIC;

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
