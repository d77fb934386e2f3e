-- What the warehouse is as sicoop makes it (a fresh install and every upgraded one alike; the
-- test 10_schema.sql compares the two, test/warehouse_definition.sh prints it anew): the
-- yardstick of sicoop._check_warehouse_definition(). A constant of the extension, so that
-- nothing done to the database -- re-creating the extension, restoring a dump -- resets it.
CREATE OR REPLACE FUNCTION _warehouse_definition() RETURNS text[] LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $def$
SELECT array_remove(string_to_array($lines$
canonical_value: column canonical_value.canonical text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
canonical_value: column canonical_value.domain text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
canonical_value: column canonical_value.source_value text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
canonical_value: constraint sicoop.canonical_value.canonical_value_domain_check CHECK ((domain = ANY (ARRAY['estado_civil'::text, 'escolaridade'::text, 'tipo_conta'::text, 'bandeira_cartao'::text])))
canonical_value: constraint sicoop.canonical_value.canonical_value_pkey PRIMARY KEY (domain, source_value)
canonical_value: index CREATE UNIQUE INDEX canonical_value_pkey ON sicoop.canonical_value USING btree (domain, source_value)
canonical_value: relation canonical_value kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
deferred_index: column deferred_index.definition text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
deferred_index: column deferred_index.index_name name collation=pg_catalog."C" notnull=t identity=f default= statistics=-1
deferred_index: column deferred_index.table_name text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
deferred_index: constraint sicoop.deferred_index.deferred_index_pkey PRIMARY KEY (table_name, index_name)
deferred_index: index CREATE UNIQUE INDEX deferred_index_pkey ON sicoop.deferred_index USING btree (table_name, index_name)
deferred_index: relation deferred_index kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
dim_associado: column dim_associado.data_hora_atualizacao_registro timestamp with time zone collation=- notnull=t identity=f default='1900-01-01 00:00:00+00'::timestamp with time zone statistics=-1
dim_associado: column dim_associado.data_nascimento_associado date collation=- notnull=f identity=f default= statistics=-1
dim_associado: column dim_associado.escolaridade_associado character varying(100) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dim_associado: column dim_associado.estado_civil_associado character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dim_associado: column dim_associado.fim_vigencia_registro_associado timestamp with time zone collation=- notnull=t identity=f default= statistics=-1
dim_associado: column dim_associado.id_associado character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dim_associado: column dim_associado.idade_atual_associado integer collation=- notnull=f identity=f default= statistics=-1
dim_associado: column dim_associado.inicio_vigencia_registro_associado timestamp with time zone collation=- notnull=t identity=f default= statistics=-1
dim_associado: column dim_associado.nome_associado character varying(255) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dim_associado: column dim_associado.registro_ativo_associado boolean collation=- notnull=t identity=f default= statistics=-1
dim_associado: column dim_associado.run_id bigint collation=- notnull=f identity=f default= statistics=-1
dim_associado: column dim_associado.sk_associado integer collation=- notnull=t identity=t default= statistics=-1
dim_associado: column dim_associado.sobrenome_associado character varying(255) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dim_associado: constraint sicoop.dim_associado.dim_associado_check CHECK ((fim_vigencia_registro_associado > inicio_vigencia_registro_associado))
dim_associado: constraint sicoop.dim_associado.dim_associado_check1 CHECK ((registro_ativo_associado = (fim_vigencia_registro_associado > '9999-12-30 00:00:00+00'::timestamp with time zone)))
dim_associado: constraint sicoop.dim_associado.dim_associado_check2 CHECK (((sk_associado = '-1'::integer) = (id_associado IS NULL)))
dim_associado: constraint sicoop.dim_associado.dim_associado_pkey PRIMARY KEY (sk_associado)
dim_associado: index CREATE INDEX dim_associado_member ON sicoop.dim_associado USING btree (id_associado, inicio_vigencia_registro_associado)
dim_associado: index CREATE INDEX dim_associado_run ON sicoop.dim_associado USING btree (run_id)
dim_associado: index CREATE UNIQUE INDEX dim_associado_one_current ON sicoop.dim_associado USING btree (id_associado) WHERE registro_ativo_associado
dim_associado: index CREATE UNIQUE INDEX dim_associado_pkey ON sicoop.dim_associado USING btree (sk_associado)
dim_associado: relation dim_associado kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
dim_associado_sk_associado_seq: column dim_associado_sk_associado_seq.is_called boolean collation=- notnull=t identity=f default= statistics=-1
dim_associado_sk_associado_seq: column dim_associado_sk_associado_seq.last_value bigint collation=- notnull=t identity=f default= statistics=-1
dim_associado_sk_associado_seq: column dim_associado_sk_associado_seq.log_cnt bigint collation=- notnull=t identity=f default= statistics=-1
dim_associado_sk_associado_seq: relation dim_associado_sk_associado_seq kind=S persistence=p am=- of=- rls=f force_rls=f partition=f
dim_cartao: column dim_cartao.bandeira_cartao character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dim_cartao: column dim_cartao.data_emissao_cartao date collation=- notnull=f identity=f default= statistics=-1
dim_cartao: column dim_cartao.data_hora_atualizacao_registro timestamp with time zone collation=- notnull=t identity=f default='1900-01-01 00:00:00+00'::timestamp with time zone statistics=-1
dim_cartao: column dim_cartao.id_cartao character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dim_cartao: column dim_cartao.id_conta character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dim_cartao: column dim_cartao.nome_impresso_cartao character varying(150) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dim_cartao: column dim_cartao.numero_cartao character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dim_cartao: column dim_cartao.run_id bigint collation=- notnull=f identity=f default= statistics=-1
dim_cartao: column dim_cartao.sk_cartao integer collation=- notnull=t identity=t default= statistics=-1
dim_cartao: column dim_cartao.tipo_cartao character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dim_cartao: constraint sicoop.dim_cartao.dim_cartao_check CHECK (((sk_cartao = '-1'::integer) = (id_cartao IS NULL)))
dim_cartao: constraint sicoop.dim_cartao.dim_cartao_id_cartao_key UNIQUE (id_cartao)
dim_cartao: constraint sicoop.dim_cartao.dim_cartao_numero_cartao_check CHECK (((numero_cartao)::text ~ '^\**.{0,4}$'::text))
dim_cartao: constraint sicoop.dim_cartao.dim_cartao_pkey PRIMARY KEY (sk_cartao)
dim_cartao: index CREATE INDEX dim_cartao_conta ON sicoop.dim_cartao USING btree (id_conta)
dim_cartao: index CREATE INDEX dim_cartao_run ON sicoop.dim_cartao USING btree (run_id)
dim_cartao: index CREATE UNIQUE INDEX dim_cartao_id_cartao_key ON sicoop.dim_cartao USING btree (id_cartao)
dim_cartao: index CREATE UNIQUE INDEX dim_cartao_pkey ON sicoop.dim_cartao USING btree (sk_cartao)
dim_cartao: relation dim_cartao kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
dim_cartao_sk_cartao_seq: column dim_cartao_sk_cartao_seq.is_called boolean collation=- notnull=t identity=f default= statistics=-1
dim_cartao_sk_cartao_seq: column dim_cartao_sk_cartao_seq.last_value bigint collation=- notnull=t identity=f default= statistics=-1
dim_cartao_sk_cartao_seq: column dim_cartao_sk_cartao_seq.log_cnt bigint collation=- notnull=t identity=f default= statistics=-1
dim_cartao_sk_cartao_seq: relation dim_cartao_sk_cartao_seq kind=S persistence=p am=- of=- rls=f force_rls=f partition=f
dim_conta: column dim_conta.agencia_conta character varying(20) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dim_conta: column dim_conta.data_criacao_conta date collation=- notnull=f identity=f default= statistics=-1
dim_conta: column dim_conta.data_hora_atualizacao_registro timestamp with time zone collation=- notnull=t identity=f default='1900-01-01 00:00:00+00'::timestamp with time zone statistics=-1
dim_conta: column dim_conta.id_associado character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dim_conta: column dim_conta.id_conta character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dim_conta: column dim_conta.run_id bigint collation=- notnull=f identity=f default= statistics=-1
dim_conta: column dim_conta.situacao_conta character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dim_conta: column dim_conta.sk_conta integer collation=- notnull=t identity=t default= statistics=-1
dim_conta: column dim_conta.tipo_conta character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dim_conta: constraint sicoop.dim_conta.dim_conta_check CHECK (((sk_conta = '-1'::integer) = (id_conta IS NULL)))
dim_conta: constraint sicoop.dim_conta.dim_conta_id_conta_key UNIQUE (id_conta)
dim_conta: constraint sicoop.dim_conta.dim_conta_pkey PRIMARY KEY (sk_conta)
dim_conta: index CREATE INDEX dim_conta_associado ON sicoop.dim_conta USING btree (id_associado)
dim_conta: index CREATE INDEX dim_conta_run ON sicoop.dim_conta USING btree (run_id)
dim_conta: index CREATE UNIQUE INDEX dim_conta_id_conta_key ON sicoop.dim_conta USING btree (id_conta)
dim_conta: index CREATE UNIQUE INDEX dim_conta_pkey ON sicoop.dim_conta USING btree (sk_conta)
dim_conta: relation dim_conta kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
dim_conta_sk_conta_seq: column dim_conta_sk_conta_seq.is_called boolean collation=- notnull=t identity=f default= statistics=-1
dim_conta_sk_conta_seq: column dim_conta_sk_conta_seq.last_value bigint collation=- notnull=t identity=f default= statistics=-1
dim_conta_sk_conta_seq: column dim_conta_sk_conta_seq.log_cnt bigint collation=- notnull=t identity=f default= statistics=-1
dim_conta_sk_conta_seq: relation dim_conta_sk_conta_seq kind=S persistence=p am=- of=- rls=f force_rls=f partition=f
dim_data: column dim_data.ano integer collation=- notnull=f identity=f default= statistics=-1
dim_data: column dim_data.data date collation=- notnull=f identity=f default= statistics=-1
dim_data: column dim_data.dia integer collation=- notnull=f identity=f default= statistics=-1
dim_data: column dim_data.dia_da_semana character varying(20) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dim_data: column dim_data.fim_de_semana boolean collation=- notnull=f identity=f default= statistics=-1
dim_data: column dim_data.mes integer collation=- notnull=f identity=f default= statistics=-1
dim_data: column dim_data.sk_data integer collation=- notnull=t identity=f default= statistics=-1
dim_data: column dim_data.trimestre integer collation=- notnull=f identity=f default= statistics=-1
dim_data: constraint sicoop.dim_data.dim_data_check CHECK (((sk_data = '-1'::integer) OR (sk_data = (to_char((data)::timestamp with time zone, 'YYYYMMDD'::text))::integer)))
dim_data: constraint sicoop.dim_data.dim_data_data_key UNIQUE (data)
dim_data: constraint sicoop.dim_data.dim_data_pkey PRIMARY KEY (sk_data)
dim_data: index CREATE UNIQUE INDEX dim_data_data_key ON sicoop.dim_data USING btree (data)
dim_data: index CREATE UNIQUE INDEX dim_data_pkey ON sicoop.dim_data USING btree (sk_data)
dim_data: relation dim_data kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
dq_result: column dq_result.checked_at timestamp with time zone collation=- notnull=t identity=f default=clock_timestamp() statistics=-1
dq_result: column dq_result.rows_checked bigint collation=- notnull=t identity=f default= statistics=-1
dq_result: column dq_result.rows_failed bigint collation=- notnull=t identity=f default= statistics=-1
dq_result: column dq_result.rule_name text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
dq_result: column dq_result.run_id bigint collation=- notnull=t identity=f default= statistics=-1
dq_result: column dq_result.sample jsonb collation=- notnull=f identity=f default= statistics=-1
dq_result: column dq_result.severity text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
dq_result: column dq_result.table_name text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
dq_result: constraint sicoop.dq_result.dq_result_pkey PRIMARY KEY (run_id, rule_name)
dq_result: index CREATE UNIQUE INDEX dq_result_pkey ON sicoop.dq_result USING btree (run_id, rule_name)
dq_result: relation dq_result kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
dq_rule: column dq_rule.accepted_values text[] collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dq_rule: column dq_rule.column_name text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dq_rule: column dq_rule.description text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
dq_rule: column dq_rule.enabled boolean collation=- notnull=t identity=f default=true statistics=-1
dq_rule: column dq_rule.kind text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
dq_rule: column dq_rule.max_value text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dq_rule: column dq_rule.min_value text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dq_rule: column dq_rule.ref_table text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
dq_rule: column dq_rule.rule_name text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
dq_rule: column dq_rule.severity text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
dq_rule: column dq_rule.table_name text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
dq_rule: constraint sicoop.dq_rule.dq_rule_check CHECK (((severity <> 'reject'::text) OR (kind <> ALL (ARRAY['source_drift'::text, 'canonical'::text, 'reconciliation'::text]))))
dq_rule: constraint sicoop.dq_rule.dq_rule_check1 CHECK (((kind = 'range'::text) = ((min_value IS NOT NULL) OR (max_value IS NOT NULL))))
dq_rule: constraint sicoop.dq_rule.dq_rule_check2 CHECK (((kind = 'accepted_values'::text) = (accepted_values IS NOT NULL)))
dq_rule: constraint sicoop.dq_rule.dq_rule_check3 CHECK (((kind = 'references'::text) = (ref_table IS NOT NULL)))
dq_rule: constraint sicoop.dq_rule.dq_rule_check4 CHECK (((column_name IS NOT NULL) OR (kind = ANY (ARRAY['fits'::text, 'no_control_chars'::text, 'source_drift'::text, 'reconciliation'::text]))))
dq_rule: constraint sicoop.dq_rule.dq_rule_kind_check CHECK ((kind = ANY (ARRAY['not_null'::text, 'not_blank'::text, 'unique'::text, 'references'::text, 'accepted_values'::text, 'range'::text, 'no_control_chars'::text, 'fits'::text, 'source_drift'::text, 'canonical'::text, 'reconciliation'::text, 'no_card_number'::text, 'trimmed'::text])))
dq_rule: constraint sicoop.dq_rule.dq_rule_pkey PRIMARY KEY (rule_name)
dq_rule: constraint sicoop.dq_rule.dq_rule_ref_table_check CHECK ((ref_table = ANY (ARRAY['associado'::text, 'conta'::text, 'cartao'::text])))
dq_rule: constraint sicoop.dq_rule.dq_rule_severity_check CHECK ((severity = ANY (ARRAY['reject'::text, 'warn'::text, 'fail'::text])))
dq_rule: constraint sicoop.dq_rule.dq_rule_table_name_check CHECK ((table_name = ANY (ARRAY['associado'::text, 'conta'::text, 'cartao'::text, 'movimentacao_cartao'::text])))
dq_rule: index CREATE UNIQUE INDEX dq_rule_pkey ON sicoop.dq_rule USING btree (rule_name)
dq_rule: relation dq_rule kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
fato_movimentacao_cartao: column fato_movimentacao_cartao.data_hora_atualizacao_registro timestamp with time zone collation=- notnull=t identity=f default= statistics=-1
fato_movimentacao_cartao: column fato_movimentacao_cartao.data_hora_movimentacao timestamp without time zone collation=- notnull=t identity=f default= statistics=-1
fato_movimentacao_cartao: column fato_movimentacao_cartao.descricao_movimentacao character varying(150) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
fato_movimentacao_cartao: column fato_movimentacao_cartao.id_movimentacao_cartao character varying(50) collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
fato_movimentacao_cartao: column fato_movimentacao_cartao.sk_associado integer collation=- notnull=t identity=f default= statistics=-1
fato_movimentacao_cartao: column fato_movimentacao_cartao.sk_cartao integer collation=- notnull=t identity=f default= statistics=-1
fato_movimentacao_cartao: column fato_movimentacao_cartao.sk_conta integer collation=- notnull=t identity=f default= statistics=-1
fato_movimentacao_cartao: column fato_movimentacao_cartao.sk_data integer collation=- notnull=t identity=f default= statistics=-1
fato_movimentacao_cartao: column fato_movimentacao_cartao.valor_movimentacao numeric(10,2) collation=- notnull=t identity=f default= statistics=-1
fato_movimentacao_cartao: constraint sicoop.fato_movimentacao_cartao.fato_movimentacao_cartao_pkey PRIMARY KEY (id_movimentacao_cartao)
fato_movimentacao_cartao: index CREATE INDEX fato_movimentacao_cartao_atualizacao ON sicoop.fato_movimentacao_cartao USING btree (data_hora_atualizacao_registro)
fato_movimentacao_cartao: index CREATE INDEX fato_movimentacao_cartao_cartao ON sicoop.fato_movimentacao_cartao USING btree (sk_cartao)
fato_movimentacao_cartao: index CREATE INDEX fato_movimentacao_cartao_unknown ON sicoop.fato_movimentacao_cartao USING btree (id_movimentacao_cartao) WHERE ((sk_associado = '-1'::integer) OR (sk_cartao = '-1'::integer) OR (sk_conta = '-1'::integer))
fato_movimentacao_cartao: index CREATE UNIQUE INDEX fato_movimentacao_cartao_pkey ON sicoop.fato_movimentacao_cartao USING btree (id_movimentacao_cartao)
fato_movimentacao_cartao: relation fato_movimentacao_cartao kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
progress: column progress.backend_pid integer collation=- notnull=f identity=f default= statistics=-1
progress: column progress.rows_done bigint collation=- notnull=f identity=f default= statistics=-1
progress: column progress.rows_expected bigint collation=- notnull=f identity=f default= statistics=-1
progress: column progress.rows_per_second numeric collation=- notnull=f identity=f default= statistics=-1
progress: column progress.rows_to_go bigint collation=- notnull=f identity=f default= statistics=-1
progress: column progress.run_id bigint collation=- notnull=f identity=f default= statistics=-1
progress: column progress.step text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
progress: column progress.step_elapsed interval collation=- notnull=f identity=f default= statistics=-1
progress: column progress.step_started_at timestamp with time zone collation=- notnull=f identity=f default= statistics=-1
progress: column progress.table_name text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
progress: relation progress kind=v persistence=p am=- of=- rls=f force_rls=f partition=f
progress: rule CREATE RULE "_RETURN" AS ON SELECT TO sicoop.progress DO INSTEAD SELECT a.pid AS backend_pid, CASE WHEN (split_part(a.application_name, ' '::text, 3) ~ '^[0-9]{1,18}$'::text) THEN (split_part(a.application_name, ' '::text, 3))::bigint ELSE NULL::bigint END AS run_id, split_part(a.application_name, ' '::text, 4) AS step, NULLIF(split_part(a.application_name, ' '::text, 5), ''::text) AS table_name, a.xact_start AS step_started_at, date_trunc('second'::text, (clock_timestamp() - a.xact_start)) AS step_elapsed, p.tuples_processed AS rows_done, round(((p.tuples_processed)::numeric / GREATEST(EXTRACT(epoch FROM (clock_timestamp() - a.xact_start)), 0.001))) AS rows_per_second, e.rows_last_run AS rows_expected, GREATEST((e.rows_last_run - p.tuples_processed), (0)::bigint) AS rows_to_go FROM ((pg_stat_activity a LEFT JOIN pg_stat_progress_copy p ON ((p.pid = a.pid))) LEFT JOIN LATERAL ( SELECT (((l.detail -> split_part(a.application_name, ' '::text, 5)) ->> 'rows'::text))::bigint AS rows_last_run FROM sicoop.run_log l WHERE ((l.step = split_part(a.application_name, ' '::text, 4)) AND (l.status = 'succeeded'::text)) ORDER BY l.run_id DESC LIMIT 1) e ON (true)) WHERE ((a.datname = current_database()) AND (a.application_name ~ '^sicoop_etl run [0-9]{1,18} '::text) AND pg_has_role(a.usesysid, ( SELECT c.relowner FROM pg_class c WHERE (c.oid = (to_regclass('sicoop.warehouse_info'::text))::oid)), 'MEMBER'::text)); enabled=O
raw_associado: column raw_associado.data_nascimento date collation=- notnull=f identity=f default= statistics=-1
raw_associado: column raw_associado.escolaridade character varying(100) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
raw_associado: column raw_associado.estado_civil character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
raw_associado: column raw_associado.id_associado character varying(50) collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
raw_associado: column raw_associado.loaded_at timestamp with time zone collation=- notnull=t identity=f default=now() statistics=-1
raw_associado: column raw_associado.nome character varying(255) collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
raw_associado: column raw_associado.run_id bigint collation=- notnull=t identity=f default= statistics=-1
raw_associado: constraint sicoop.raw_associado.raw_associado_pkey PRIMARY KEY (id_associado)
raw_associado: index CREATE INDEX raw_associado_run ON sicoop.raw_associado USING btree (run_id)
raw_associado: index CREATE UNIQUE INDEX raw_associado_pkey ON sicoop.raw_associado USING btree (id_associado)
raw_associado: relation raw_associado kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
raw_cartao: column raw_cartao.bandeira_cartao character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
raw_cartao: column raw_cartao.data_emissao date collation=- notnull=f identity=f default= statistics=-1
raw_cartao: column raw_cartao.id_cartao character varying(50) collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
raw_cartao: column raw_cartao.id_conta character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
raw_cartao: column raw_cartao.loaded_at timestamp with time zone collation=- notnull=t identity=f default=now() statistics=-1
raw_cartao: column raw_cartao.nome_impresso_cartao character varying(150) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
raw_cartao: column raw_cartao.numero_cartao character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
raw_cartao: column raw_cartao.run_id bigint collation=- notnull=t identity=f default= statistics=-1
raw_cartao: column raw_cartao.tipo_cartao character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
raw_cartao: constraint sicoop.raw_cartao.raw_cartao_numero_cartao_check CHECK (((numero_cartao)::text ~ '^\**.{0,4}$'::text))
raw_cartao: constraint sicoop.raw_cartao.raw_cartao_pkey PRIMARY KEY (id_cartao)
raw_cartao: index CREATE INDEX raw_cartao_run ON sicoop.raw_cartao USING btree (run_id)
raw_cartao: index CREATE UNIQUE INDEX raw_cartao_pkey ON sicoop.raw_cartao USING btree (id_cartao)
raw_cartao: relation raw_cartao kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
raw_conta: column raw_conta.agencia character varying(20) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
raw_conta: column raw_conta.data_criacao_conta date collation=- notnull=f identity=f default= statistics=-1
raw_conta: column raw_conta.id_associado character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
raw_conta: column raw_conta.id_conta character varying(50) collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
raw_conta: column raw_conta.loaded_at timestamp with time zone collation=- notnull=t identity=f default=now() statistics=-1
raw_conta: column raw_conta.run_id bigint collation=- notnull=t identity=f default= statistics=-1
raw_conta: column raw_conta.situacao_conta character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
raw_conta: column raw_conta.tipo_conta character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
raw_conta: constraint sicoop.raw_conta.raw_conta_pkey PRIMARY KEY (id_conta)
raw_conta: index CREATE INDEX raw_conta_run ON sicoop.raw_conta USING btree (run_id)
raw_conta: index CREATE UNIQUE INDEX raw_conta_pkey ON sicoop.raw_conta USING btree (id_conta)
raw_conta: relation raw_conta kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
raw_movimentacao_cartao: column raw_movimentacao_cartao.data_movimentacao timestamp without time zone collation=- notnull=t identity=f default= statistics=-1
raw_movimentacao_cartao: column raw_movimentacao_cartao.descricao_movimentacao character varying(150) collation=pg_catalog."default" notnull=f identity=f default= statistics=0
raw_movimentacao_cartao: column raw_movimentacao_cartao.id_cartao character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
raw_movimentacao_cartao: column raw_movimentacao_cartao.id_movimentacao_cartao character varying(50) collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
raw_movimentacao_cartao: column raw_movimentacao_cartao.loaded_at timestamp with time zone collation=- notnull=t identity=f default=now() statistics=-1
raw_movimentacao_cartao: column raw_movimentacao_cartao.run_id bigint collation=- notnull=t identity=f default= statistics=-1
raw_movimentacao_cartao: column raw_movimentacao_cartao.valor_movimentacao numeric(10,2) collation=- notnull=t identity=f default= statistics=-1
raw_movimentacao_cartao: constraint sicoop.raw_movimentacao_cartao.raw_movimentacao_cartao_pkey PRIMARY KEY (id_movimentacao_cartao)
raw_movimentacao_cartao: index CREATE INDEX raw_movimentacao_cartao_data ON sicoop.raw_movimentacao_cartao USING brin (data_movimentacao) WITH (pages_per_range='4')
raw_movimentacao_cartao: index CREATE INDEX raw_movimentacao_cartao_run ON sicoop.raw_movimentacao_cartao USING brin (run_id) WITH (pages_per_range='4')
raw_movimentacao_cartao: index CREATE UNIQUE INDEX raw_movimentacao_cartao_pkey ON sicoop.raw_movimentacao_cartao USING btree (id_movimentacao_cartao)
raw_movimentacao_cartao: relation raw_movimentacao_cartao kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
raw_tombstone: column raw_tombstone.record_id character varying(50) collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
raw_tombstone: column raw_tombstone.run_id bigint collation=- notnull=t identity=f default= statistics=-1
raw_tombstone: column raw_tombstone.table_name text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
raw_tombstone: constraint sicoop.raw_tombstone.raw_tombstone_pkey PRIMARY KEY (table_name, record_id)
raw_tombstone: index CREATE INDEX raw_tombstone_run ON sicoop.raw_tombstone USING btree (run_id)
raw_tombstone: index CREATE UNIQUE INDEX raw_tombstone_pkey ON sicoop.raw_tombstone USING btree (table_name, record_id)
raw_tombstone: relation raw_tombstone kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
reconciliation: column reconciliation.balanced boolean collation=- notnull=t identity=f default= statistics=-1
reconciliation: column reconciliation.dia date collation=- notnull=f identity=f default= statistics=-1
reconciliation: column reconciliation.fato_rows bigint collation=- notnull=t identity=f default= statistics=-1
reconciliation: column reconciliation.fato_valor numeric collation=- notnull=t identity=f default= statistics=-1
reconciliation: column reconciliation.reject_rows bigint collation=- notnull=t identity=f default= statistics=-1
reconciliation: column reconciliation.reject_valor numeric collation=- notnull=t identity=f default= statistics=-1
reconciliation: column reconciliation.run_id bigint collation=- notnull=t identity=f default= statistics=-1
reconciliation: column reconciliation.source_rows bigint collation=- notnull=t identity=f default= statistics=-1
reconciliation: column reconciliation.source_valor numeric collation=- notnull=t identity=f default= statistics=-1
reconciliation: relation reconciliation kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
reject: column reject.copy_no integer collation=- notnull=t identity=f default= statistics=-1
reject: column reject.last_run_id bigint collation=- notnull=t identity=f default= statistics=-1
reject: column reject.reason text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
reject: column reject.record jsonb collation=- notnull=t identity=f default= statistics=-1
reject: column reject.record_id text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
reject: column reject.rejected_at timestamp with time zone collation=- notnull=t identity=f default= statistics=-1
reject: column reject.rule_name text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
reject: column reject.rules text[] collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
reject: column reject.run_id bigint collation=- notnull=t identity=f default= statistics=-1
reject: column reject.table_name text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
reject: constraint sicoop.reject.reject_table_name_record_id_copy_no_key UNIQUE NULLS NOT DISTINCT (table_name, record_id, copy_no)
reject: index CREATE UNIQUE INDEX reject_table_name_record_id_copy_no_key ON sicoop.reject USING btree (table_name, record_id, copy_no) NULLS NOT DISTINCT
reject: relation reject kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
run_id_seq: column run_id_seq.is_called boolean collation=- notnull=t identity=f default= statistics=-1
run_id_seq: column run_id_seq.last_value bigint collation=- notnull=t identity=f default= statistics=-1
run_id_seq: column run_id_seq.log_cnt bigint collation=- notnull=t identity=f default= statistics=-1
run_id_seq: relation run_id_seq kind=S persistence=p am=- of=- rls=f force_rls=f partition=f
run_log: column run_log.as_of timestamp with time zone collation=- notnull=f identity=f default= statistics=-1
run_log: column run_log.backend_pid integer collation=- notnull=t identity=f default=pg_backend_pid() statistics=-1
run_log: column run_log.detail jsonb collation=- notnull=f identity=f default= statistics=-1
run_log: column run_log.error_context text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
run_log: column run_log.error_detail text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
run_log: column run_log.error_message text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
run_log: column run_log.error_sqlstate text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
run_log: column run_log.finished_at timestamp with time zone collation=- notnull=f identity=f default= statistics=-1
run_log: column run_log.rows_deleted bigint collation=- notnull=f identity=f default= statistics=-1
run_log: column run_log.rows_inserted bigint collation=- notnull=f identity=f default= statistics=-1
run_log: column run_log.rows_read bigint collation=- notnull=f identity=f default= statistics=-1
run_log: column run_log.rows_rejected bigint collation=- notnull=f identity=f default= statistics=-1
run_log: column run_log.rows_unchanged bigint collation=- notnull=f identity=f default= statistics=-1
run_log: column run_log.rows_unknown bigint collation=- notnull=f identity=f default= statistics=-1
run_log: column run_log.rows_updated bigint collation=- notnull=f identity=f default= statistics=-1
run_log: column run_log.run_id bigint collation=- notnull=t identity=f default= statistics=-1
run_log: column run_log.started_at timestamp with time zone collation=- notnull=t identity=f default=clock_timestamp() statistics=-1
run_log: column run_log.status text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
run_log: column run_log.step text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
run_log: constraint sicoop.run_log.run_log_pkey PRIMARY KEY (run_id, step)
run_log: constraint sicoop.run_log.run_log_status_check CHECK ((status = ANY (ARRAY['running'::text, 'succeeded'::text, 'failed'::text, 'skipped'::text, 'aborted'::text])))
run_log: index CREATE INDEX run_log_started_at ON sicoop.run_log USING btree (started_at)
run_log: index CREATE UNIQUE INDEX run_log_pkey ON sicoop.run_log USING btree (run_id, step)
run_log: relation run_log kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
source_day_total: column source_day_total.dia date collation=- notnull=f identity=f default= statistics=-1
source_day_total: column source_day_total.source_rows bigint collation=- notnull=t identity=f default= statistics=-1
source_day_total: column source_day_total.source_valor numeric collation=- notnull=t identity=f default= statistics=-1
source_day_total: relation source_day_total kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
source_sync: column source_sync.copied_at timestamp with time zone collation=- notnull=t identity=f default=now() statistics=-1
source_sync: column source_sync.snapshot_xmin bigint collation=- notnull=t identity=f default= statistics=-1
source_sync: column source_sync.table_name text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
source_sync: column source_sync.watermark timestamp without time zone collation=- notnull=f identity=f default= statistics=-1
source_sync: constraint sicoop.source_sync.source_sync_pkey PRIMARY KEY (table_name)
source_sync: index CREATE UNIQUE INDEX source_sync_pkey ON sicoop.source_sync USING btree (table_name)
source_sync: relation source_sync kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
src_associado: column src_associado.data_nascimento date collation=- notnull=f identity=f default= statistics=-1
src_associado: column src_associado.escolaridade character varying(100) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
src_associado: column src_associado.estado_civil character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
src_associado: column src_associado.id_associado character varying(50) collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
src_associado: column src_associado.nome character varying(255) collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
src_associado: relation src_associado kind=f persistence=p am=- of=- rls=f force_rls=f partition=f
src_cartao: column src_cartao.bandeira_cartao character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
src_cartao: column src_cartao.data_emissao date collation=- notnull=f identity=f default= statistics=-1
src_cartao: column src_cartao.id_cartao character varying(50) collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
src_cartao: column src_cartao.id_conta character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
src_cartao: column src_cartao.nome_impresso_cartao character varying(150) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
src_cartao: column src_cartao.numero_cartao character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
src_cartao: column src_cartao.tipo_cartao character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
src_cartao: relation src_cartao kind=f persistence=p am=- of=- rls=f force_rls=f partition=f
src_conta: column src_conta.agencia character varying(20) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
src_conta: column src_conta.data_criacao_conta date collation=- notnull=f identity=f default= statistics=-1
src_conta: column src_conta.id_associado character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
src_conta: column src_conta.id_conta character varying(50) collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
src_conta: column src_conta.situacao_conta character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
src_conta: column src_conta.tipo_conta character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
src_conta: relation src_conta kind=f persistence=p am=- of=- rls=f force_rls=f partition=f
src_movimentacao_cartao: column src_movimentacao_cartao.data_movimentacao timestamp without time zone collation=- notnull=t identity=f default= statistics=-1
src_movimentacao_cartao: column src_movimentacao_cartao.descricao_movimentacao character varying(150) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
src_movimentacao_cartao: column src_movimentacao_cartao.id_cartao character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
src_movimentacao_cartao: column src_movimentacao_cartao.id_movimentacao_cartao character varying(50) collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
src_movimentacao_cartao: column src_movimentacao_cartao.valor_movimentacao numeric(10,2) collation=- notnull=t identity=f default= statistics=-1
src_movimentacao_cartao: relation src_movimentacao_cartao kind=f persistence=p am=- of=- rls=f force_rls=f partition=f
stage_associado: column stage_associado.data_nascimento date collation=- notnull=f identity=f default= statistics=-1
stage_associado: column stage_associado.escolaridade text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_associado: column stage_associado.estado_civil text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_associado: column stage_associado.id_associado text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_associado: column stage_associado.nome text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_associado: relation stage_associado kind=r persistence=u am=heap of=- rls=f force_rls=f partition=f
stage_associado_state: column stage_associado_state.commit_time timestamp with time zone collation=- notnull=t identity=f default= statistics=-1
stage_associado_state: column stage_associado_state.data_nascimento date collation=- notnull=f identity=f default= statistics=-1
stage_associado_state: column stage_associado_state.deleted boolean collation=- notnull=t identity=f default= statistics=-1
stage_associado_state: column stage_associado_state.escolaridade text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_associado_state: column stage_associado_state.estado_civil text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_associado_state: column stage_associado_state.id_associado text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_associado_state: column stage_associado_state.keep_from_raw text[] collation=pg_catalog."default" notnull=t identity=f default='{}'::text[] statistics=-1
stage_associado_state: column stage_associado_state.nome text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_associado_state: column stage_associado_state.rejected boolean collation=- notnull=t identity=f default=false statistics=-1
stage_associado_state: column stage_associado_state.round integer collation=- notnull=t identity=f default= statistics=-1
stage_associado_state: column stage_associado_state.state_no integer collation=- notnull=t identity=f default= statistics=-1
stage_associado_state: index CREATE INDEX earlier_state_member ON sicoop.stage_associado_state USING btree (id_associado, round)
stage_associado_state: relation stage_associado_state kind=r persistence=u am=heap of=- rls=f force_rls=f partition=f
stage_bucket: column stage_bucket.bucket integer collation=- notnull=f identity=f default= statistics=-1
stage_bucket: relation stage_bucket kind=r persistence=u am=heap of=- rls=f force_rls=f partition=f
stage_cartao: column stage_cartao.bandeira_cartao text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_cartao: column stage_cartao.data_emissao date collation=- notnull=f identity=f default= statistics=-1
stage_cartao: column stage_cartao.id_cartao text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_cartao: column stage_cartao.id_conta text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_cartao: column stage_cartao.nome_impresso_cartao text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_cartao: column stage_cartao.numero_cartao text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_cartao: column stage_cartao.tipo_cartao text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_cartao: relation stage_cartao kind=r persistence=u am=heap of=- rls=f force_rls=f partition=f
stage_conta: column stage_conta.agencia text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_conta: column stage_conta.data_criacao_conta date collation=- notnull=f identity=f default= statistics=-1
stage_conta: column stage_conta.id_associado text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_conta: column stage_conta.id_conta text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_conta: column stage_conta.situacao_conta text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_conta: column stage_conta.tipo_conta text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_conta: relation stage_conta kind=r persistence=u am=heap of=- rls=f force_rls=f partition=f
stage_day: column stage_day.dia date collation=- notnull=f identity=f default= statistics=-1
stage_day: relation stage_day kind=r persistence=u am=heap of=- rls=f force_rls=f partition=f
stage_key: column stage_key.record_id text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_key: relation stage_key kind=r persistence=u am=heap of=- rls=f force_rls=f partition=f
stage_key_checksum: column stage_key_checksum.bucket integer collation=- notnull=f identity=f default= statistics=-1
stage_key_checksum: column stage_key_checksum.key_hash_sum numeric collation=- notnull=f identity=f default= statistics=-1
stage_key_checksum: column stage_key_checksum.keys bigint collation=- notnull=f identity=f default= statistics=-1
stage_key_checksum: relation stage_key_checksum kind=r persistence=u am=heap of=- rls=f force_rls=f partition=f
stage_movimentacao_cartao: column stage_movimentacao_cartao.data_movimentacao timestamp without time zone collation=- notnull=f identity=f default= statistics=-1
stage_movimentacao_cartao: column stage_movimentacao_cartao.descricao_movimentacao text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_movimentacao_cartao: column stage_movimentacao_cartao.id_cartao text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_movimentacao_cartao: column stage_movimentacao_cartao.id_movimentacao_cartao text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_movimentacao_cartao: column stage_movimentacao_cartao.valor_movimentacao numeric collation=- notnull=f identity=f default= statistics=-1
stage_movimentacao_cartao: relation stage_movimentacao_cartao kind=r persistence=u am=heap of=- rls=f force_rls=f partition=f
stage_reject: column stage_reject.record jsonb collation=- notnull=f identity=f default= statistics=0
stage_reject: column stage_reject.record_id text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_reject: column stage_reject.rules text[] collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
stage_reject: relation stage_reject kind=r persistence=u am=heap of=- rls=f force_rls=f partition=f
stage_source_column: column stage_source_column.column_name text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
stage_source_column: column stage_source_column.not_null boolean collation=- notnull=f identity=f default= statistics=-1
stage_source_column: column stage_source_column.source_type text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
stage_source_column: column stage_source_column.table_name text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
stage_source_column: column stage_source_column.unique_key boolean collation=- notnull=f identity=f default= statistics=-1
stage_source_column: relation stage_source_column kind=r persistence=u am=heap of=- rls=f force_rls=f partition=f
stage_unfit: column stage_unfit.column_name text collation=pg_catalog."default" notnull=t identity=f default= statistics=0
stage_unfit: column stage_unfit.record_id text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stage_unfit: column stage_unfit.table_name text collation=pg_catalog."default" notnull=t identity=f default= statistics=0
stage_unfit: relation stage_unfit kind=r persistence=u am=heap of=- rls=f force_rls=f partition=f
step_state: column step_state.last_run_id bigint collation=- notnull=t identity=f default= statistics=-1
step_state: column step_state.step text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
step_state: column step_state.updated_at timestamp with time zone collation=- notnull=t identity=f default=now() statistics=-1
step_state: constraint sicoop.step_state.step_state_pkey PRIMARY KEY (step)
step_state: index CREATE UNIQUE INDEX step_state_pkey ON sicoop.step_state USING btree (step)
step_state: relation step_state kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
stream_key: column stream_key.commit_time timestamp with time zone collation=- notnull=t identity=f default= statistics=-1
stream_key: column stream_key.deleted boolean collation=- notnull=t identity=f default= statistics=-1
stream_key: column stream_key.keep_from_raw text[] collation=pg_catalog."default" notnull=t identity=f default='{}'::text[] statistics=-1
stream_key: column stream_key.record_id text collation=pg_catalog."default" notnull=f identity=f default= statistics=0
stream_key: column stream_key.table_name text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
stream_key: index CREATE INDEX stream_key_record ON sicoop.stream_key USING btree (table_name, record_id)
stream_key: relation stream_key kind=r persistence=u am=heap of=- rls=f force_rls=f partition=f
stream_state: column stream_state.alerted text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
stream_state: column stream_state.applied_lsn pg_lsn collation=- notnull=f identity=f default= statistics=-1
stream_state: column stream_state.batches_applied bigint collation=- notnull=t identity=f default=0 statistics=-1
stream_state: column stream_state.changes_applied bigint collation=- notnull=t identity=f default=0 statistics=-1
stream_state: column stream_state.created_slot text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
stream_state: column stream_state.current_at timestamp with time zone collation=- notnull=f identity=f default= statistics=-1
stream_state: column stream_state.error_hint text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
stream_state: column stream_state.error_message text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
stream_state: column stream_state.error_sqlstate text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
stream_state: column stream_state.full_check_requested_at timestamp with time zone collation=- notnull=f identity=f default= statistics=-1
stream_state: column stream_state.lag_alerted_at timestamp with time zone collation=- notnull=f identity=f default= statistics=-1
stream_state: column stream_state.last_apply_at timestamp with time zone collation=- notnull=f identity=f default= statistics=-1
stream_state: column stream_state.last_commit_time timestamp with time zone collation=- notnull=f identity=f default= statistics=-1
stream_state: column stream_state.last_message_at timestamp with time zone collation=- notnull=f identity=f default= statistics=-1
stream_state: column stream_state.publication text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
stream_state: column stream_state.received_lsn pg_lsn collation=- notnull=f identity=f default= statistics=-1
stream_state: column stream_state.singleton boolean collation=- notnull=t identity=f default=true statistics=-1
stream_state: column stream_state.slot_name text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
stream_state: column stream_state.source_lsn pg_lsn collation=- notnull=f identity=f default= statistics=-1
stream_state: column stream_state.source_lsn_at timestamp with time zone collation=- notnull=f identity=f default= statistics=-1
stream_state: column stream_state.started_at timestamp with time zone collation=- notnull=f identity=f default= statistics=-1
stream_state: column stream_state.started_by text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
stream_state: column stream_state.state text collation=pg_catalog."default" notnull=t identity=f default='stopped'::text statistics=-1
stream_state: column stream_state.stopped_at timestamp with time zone collation=- notnull=f identity=f default= statistics=-1
stream_state: column stream_state.transactions_applied bigint collation=- notnull=t identity=f default=0 statistics=-1
stream_state: column stream_state.wanted boolean collation=- notnull=t identity=f default=false statistics=-1
stream_state: column stream_state.worker_pid integer collation=- notnull=f identity=f default= statistics=-1
stream_state: constraint sicoop.stream_state.stream_state_pkey PRIMARY KEY (singleton)
stream_state: constraint sicoop.stream_state.stream_state_singleton_check CHECK (singleton)
stream_state: constraint sicoop.stream_state.stream_state_state_check CHECK ((state = ANY (ARRAY['starting'::text, 'syncing'::text, 'streaming'::text, 'paused'::text, 'stalled'::text, 'reconnecting'::text, 'stopped'::text, 'failed'::text])))
stream_state: index CREATE UNIQUE INDEX stream_state_pkey ON sicoop.stream_state USING btree (singleton)
stream_state: relation stream_state kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
trusted_associado: column trusted_associado.data_nascimento date collation=- notnull=f identity=f default= statistics=-1
trusted_associado: column trusted_associado.escolaridade character varying(100) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
trusted_associado: column trusted_associado.estado_civil character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
trusted_associado: column trusted_associado.id_associado character varying(50) collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
trusted_associado: column trusted_associado.idade_atual_associado integer collation=- notnull=f identity=f default= statistics=-1
trusted_associado: column trusted_associado.nome character varying(255) collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
trusted_associado: column trusted_associado.run_id bigint collation=- notnull=t identity=f default= statistics=-1
trusted_associado: column trusted_associado.sobrenome character varying(255) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
trusted_associado: column trusted_associado.updated_at timestamp with time zone collation=- notnull=t identity=f default= statistics=-1
trusted_associado: constraint sicoop.trusted_associado.trusted_associado_pkey PRIMARY KEY (id_associado)
trusted_associado: index CREATE INDEX trusted_associado_run ON sicoop.trusted_associado USING btree (run_id)
trusted_associado: index CREATE UNIQUE INDEX trusted_associado_pkey ON sicoop.trusted_associado USING btree (id_associado)
trusted_associado: relation trusted_associado kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
trusted_cartao: column trusted_cartao.bandeira_cartao character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
trusted_cartao: column trusted_cartao.data_emissao date collation=- notnull=f identity=f default= statistics=-1
trusted_cartao: column trusted_cartao.id_cartao character varying(50) collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
trusted_cartao: column trusted_cartao.id_conta character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
trusted_cartao: column trusted_cartao.nome_impresso_cartao character varying(150) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
trusted_cartao: column trusted_cartao.numero_cartao character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
trusted_cartao: column trusted_cartao.run_id bigint collation=- notnull=t identity=f default= statistics=-1
trusted_cartao: column trusted_cartao.tipo_cartao character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
trusted_cartao: column trusted_cartao.updated_at timestamp with time zone collation=- notnull=t identity=f default= statistics=-1
trusted_cartao: constraint sicoop.trusted_cartao.trusted_cartao_numero_cartao_check CHECK (((numero_cartao)::text ~ '^\**.{0,4}$'::text))
trusted_cartao: constraint sicoop.trusted_cartao.trusted_cartao_pkey PRIMARY KEY (id_cartao)
trusted_cartao: index CREATE INDEX trusted_cartao_run ON sicoop.trusted_cartao USING btree (run_id)
trusted_cartao: index CREATE UNIQUE INDEX trusted_cartao_pkey ON sicoop.trusted_cartao USING btree (id_cartao)
trusted_cartao: relation trusted_cartao kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
trusted_conta: column trusted_conta.agencia character varying(20) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
trusted_conta: column trusted_conta.data_criacao_conta date collation=- notnull=f identity=f default= statistics=-1
trusted_conta: column trusted_conta.id_associado character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
trusted_conta: column trusted_conta.id_conta character varying(50) collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
trusted_conta: column trusted_conta.run_id bigint collation=- notnull=t identity=f default= statistics=-1
trusted_conta: column trusted_conta.situacao_conta character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
trusted_conta: column trusted_conta.tipo_conta character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
trusted_conta: column trusted_conta.updated_at timestamp with time zone collation=- notnull=t identity=f default= statistics=-1
trusted_conta: constraint sicoop.trusted_conta.trusted_conta_pkey PRIMARY KEY (id_conta)
trusted_conta: index CREATE INDEX trusted_conta_run ON sicoop.trusted_conta USING btree (run_id)
trusted_conta: index CREATE UNIQUE INDEX trusted_conta_pkey ON sicoop.trusted_conta USING btree (id_conta)
trusted_conta: relation trusted_conta kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
trusted_movimentacao_cartao: column trusted_movimentacao_cartao.data_movimentacao timestamp without time zone collation=- notnull=t identity=f default= statistics=-1
trusted_movimentacao_cartao: column trusted_movimentacao_cartao.descricao_movimentacao character varying(150) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
trusted_movimentacao_cartao: column trusted_movimentacao_cartao.id_cartao character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
trusted_movimentacao_cartao: column trusted_movimentacao_cartao.id_movimentacao_cartao character varying(50) collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
trusted_movimentacao_cartao: column trusted_movimentacao_cartao.run_id bigint collation=- notnull=t identity=f default= statistics=-1
trusted_movimentacao_cartao: column trusted_movimentacao_cartao.updated_at timestamp with time zone collation=- notnull=t identity=f default= statistics=-1
trusted_movimentacao_cartao: column trusted_movimentacao_cartao.valor_movimentacao numeric(10,2) collation=- notnull=t identity=f default= statistics=-1
trusted_movimentacao_cartao: constraint sicoop.trusted_movimentacao_cartao.trusted_movimentacao_cartao_pkey PRIMARY KEY (id_movimentacao_cartao)
trusted_movimentacao_cartao: index CREATE INDEX trusted_movimentacao_cartao_run ON sicoop.trusted_movimentacao_cartao USING brin (run_id) WITH (pages_per_range='4')
trusted_movimentacao_cartao: index CREATE UNIQUE INDEX trusted_movimentacao_cartao_pkey ON sicoop.trusted_movimentacao_cartao USING btree (id_movimentacao_cartao)
trusted_movimentacao_cartao: relation trusted_movimentacao_cartao kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
vw_associados_ativos_mes: column vw_associados_ativos_mes.associados_ativos bigint collation=- notnull=f identity=f default= statistics=-1
vw_associados_ativos_mes: column vw_associados_ativos_mes.mes date collation=- notnull=f identity=f default= statistics=-1
vw_associados_ativos_mes: column vw_associados_ativos_mes.movimentacoes bigint collation=- notnull=f identity=f default= statistics=-1
vw_associados_ativos_mes: column vw_associados_ativos_mes.valor_total numeric collation=- notnull=f identity=f default= statistics=-1
vw_associados_ativos_mes: relation vw_associados_ativos_mes kind=v persistence=p am=- of=- rls=f force_rls=f partition=f
vw_associados_ativos_mes: rule CREATE RULE "_RETURN" AS ON SELECT TO sicoop.vw_associados_ativos_mes DO INSTEAD SELECT (date_trunc('month'::text, f.data_hora_movimentacao))::date AS mes, count(DISTINCT a.id_associado) AS associados_ativos, count(*) AS movimentacoes, sum(f.valor_movimentacao) AS valor_total FROM (sicoop.fato_movimentacao_cartao f JOIN sicoop.dim_associado a ON ((a.sk_associado = f.sk_associado))) WHERE (a.id_associado IS NOT NULL) GROUP BY ((date_trunc('month'::text, f.data_hora_movimentacao))::date); enabled=O
vw_gasto_bandeira_tipo_cartao: column vw_gasto_bandeira_tipo_cartao.bandeira_cartao character varying collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
vw_gasto_bandeira_tipo_cartao: column vw_gasto_bandeira_tipo_cartao.movimentacoes bigint collation=- notnull=f identity=f default= statistics=-1
vw_gasto_bandeira_tipo_cartao: column vw_gasto_bandeira_tipo_cartao.ticket_medio numeric collation=- notnull=f identity=f default= statistics=-1
vw_gasto_bandeira_tipo_cartao: column vw_gasto_bandeira_tipo_cartao.tipo_cartao character varying collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
vw_gasto_bandeira_tipo_cartao: column vw_gasto_bandeira_tipo_cartao.valor_total numeric collation=- notnull=f identity=f default= statistics=-1
vw_gasto_bandeira_tipo_cartao: relation vw_gasto_bandeira_tipo_cartao kind=v persistence=p am=- of=- rls=f force_rls=f partition=f
vw_gasto_bandeira_tipo_cartao: rule CREATE RULE "_RETURN" AS ON SELECT TO sicoop.vw_gasto_bandeira_tipo_cartao DO INSTEAD SELECT COALESCE(c.bandeira_cartao, 'DESCONHECIDA'::character varying) AS bandeira_cartao, COALESCE(c.tipo_cartao, 'DESCONHECIDO'::character varying) AS tipo_cartao, count(*) AS movimentacoes, sum(f.valor_movimentacao) AS valor_total, round(avg(f.valor_movimentacao), 2) AS ticket_medio FROM (sicoop.fato_movimentacao_cartao f JOIN sicoop.dim_cartao c ON ((c.sk_cartao = f.sk_cartao))) GROUP BY COALESCE(c.bandeira_cartao, 'DESCONHECIDA'::character varying), COALESCE(c.tipo_cartao, 'DESCONHECIDO'::character varying); enabled=O
vw_gasto_escolaridade_estado_civil: column vw_gasto_escolaridade_estado_civil.escolaridade character varying collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
vw_gasto_escolaridade_estado_civil: column vw_gasto_escolaridade_estado_civil.estado_civil character varying collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
vw_gasto_escolaridade_estado_civil: column vw_gasto_escolaridade_estado_civil.movimentacoes bigint collation=- notnull=f identity=f default= statistics=-1
vw_gasto_escolaridade_estado_civil: column vw_gasto_escolaridade_estado_civil.ticket_medio numeric collation=- notnull=f identity=f default= statistics=-1
vw_gasto_escolaridade_estado_civil: column vw_gasto_escolaridade_estado_civil.valor_total numeric collation=- notnull=f identity=f default= statistics=-1
vw_gasto_escolaridade_estado_civil: relation vw_gasto_escolaridade_estado_civil kind=v persistence=p am=- of=- rls=f force_rls=f partition=f
vw_gasto_escolaridade_estado_civil: rule CREATE RULE "_RETURN" AS ON SELECT TO sicoop.vw_gasto_escolaridade_estado_civil DO INSTEAD SELECT COALESCE(a.escolaridade_associado, 'DESCONHECIDA'::character varying) AS escolaridade, COALESCE(a.estado_civil_associado, 'DESCONHECIDO'::character varying) AS estado_civil, count(*) AS movimentacoes, sum(f.valor_movimentacao) AS valor_total, round(avg(f.valor_movimentacao), 2) AS ticket_medio FROM (sicoop.fato_movimentacao_cartao f JOIN sicoop.dim_associado a ON ((a.sk_associado = f.sk_associado))) GROUP BY COALESCE(a.escolaridade_associado, 'DESCONHECIDA'::character varying), COALESCE(a.estado_civil_associado, 'DESCONHECIDO'::character varying); enabled=O
vw_gasto_mensal_faixa_etaria: column vw_gasto_mensal_faixa_etaria.faixa_etaria text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
vw_gasto_mensal_faixa_etaria: column vw_gasto_mensal_faixa_etaria.mes date collation=- notnull=f identity=f default= statistics=-1
vw_gasto_mensal_faixa_etaria: column vw_gasto_mensal_faixa_etaria.movimentacoes bigint collation=- notnull=f identity=f default= statistics=-1
vw_gasto_mensal_faixa_etaria: column vw_gasto_mensal_faixa_etaria.ticket_medio numeric collation=- notnull=f identity=f default= statistics=-1
vw_gasto_mensal_faixa_etaria: column vw_gasto_mensal_faixa_etaria.valor_total numeric collation=- notnull=f identity=f default= statistics=-1
vw_gasto_mensal_faixa_etaria: relation vw_gasto_mensal_faixa_etaria kind=v persistence=p am=- of=- rls=f force_rls=f partition=f
vw_gasto_mensal_faixa_etaria: rule CREATE RULE "_RETURN" AS ON SELECT TO sicoop.vw_gasto_mensal_faixa_etaria DO INSTEAD SELECT (date_trunc('month'::text, f.data_hora_movimentacao))::date AS mes, CASE WHEN (i.idade IS NULL) THEN 'DESCONHECIDA'::text WHEN (i.idade < 18) THEN 'ATÉ 17'::text WHEN (i.idade < 25) THEN '18 A 24'::text WHEN (i.idade < 35) THEN '25 A 34'::text WHEN (i.idade < 45) THEN '35 A 44'::text WHEN (i.idade < 55) THEN '45 A 54'::text WHEN (i.idade < 65) THEN '55 A 64'::text ELSE '65 OU MAIS'::text END AS faixa_etaria, count(*) AS movimentacoes, sum(f.valor_movimentacao) AS valor_total, round(avg(f.valor_movimentacao), 2) AS ticket_medio FROM ((sicoop.fato_movimentacao_cartao f JOIN sicoop.dim_associado a ON ((a.sk_associado = f.sk_associado))) CROSS JOIN LATERAL ( SELECT (date_part('year'::text, age(((f.data_hora_movimentacao)::date)::timestamp with time zone, (a.data_nascimento_associado)::timestamp with time zone)))::integer AS idade) i) GROUP BY ((date_trunc('month'::text, f.data_hora_movimentacao))::date), CASE WHEN (i.idade IS NULL) THEN 'DESCONHECIDA'::text WHEN (i.idade < 18) THEN 'ATÉ 17'::text WHEN (i.idade < 25) THEN '18 A 24'::text WHEN (i.idade < 35) THEN '25 A 34'::text WHEN (i.idade < 45) THEN '35 A 44'::text WHEN (i.idade < 55) THEN '45 A 54'::text WHEN (i.idade < 65) THEN '55 A 64'::text ELSE '65 OU MAIS'::text END; enabled=O
vw_gasto_tipo_conta_agencia: column vw_gasto_tipo_conta_agencia.agencia character varying collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
vw_gasto_tipo_conta_agencia: column vw_gasto_tipo_conta_agencia.movimentacoes bigint collation=- notnull=f identity=f default= statistics=-1
vw_gasto_tipo_conta_agencia: column vw_gasto_tipo_conta_agencia.ticket_medio numeric collation=- notnull=f identity=f default= statistics=-1
vw_gasto_tipo_conta_agencia: column vw_gasto_tipo_conta_agencia.tipo_conta character varying collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
vw_gasto_tipo_conta_agencia: column vw_gasto_tipo_conta_agencia.valor_total numeric collation=- notnull=f identity=f default= statistics=-1
vw_gasto_tipo_conta_agencia: relation vw_gasto_tipo_conta_agencia kind=v persistence=p am=- of=- rls=f force_rls=f partition=f
vw_gasto_tipo_conta_agencia: rule CREATE RULE "_RETURN" AS ON SELECT TO sicoop.vw_gasto_tipo_conta_agencia DO INSTEAD SELECT COALESCE(co.tipo_conta, 'DESCONHECIDO'::character varying) AS tipo_conta, COALESCE(co.agencia_conta, 'DESCONHECIDA'::character varying) AS agencia, count(*) AS movimentacoes, sum(f.valor_movimentacao) AS valor_total, round(avg(f.valor_movimentacao), 2) AS ticket_medio FROM (sicoop.fato_movimentacao_cartao f JOIN sicoop.dim_conta co ON ((co.sk_conta = f.sk_conta))) GROUP BY COALESCE(co.tipo_conta, 'DESCONHECIDO'::character varying), COALESCE(co.agencia_conta, 'DESCONHECIDA'::character varying); enabled=O
vw_movimentacao_flat: column vw_movimentacao_flat.data_criacao_cartao date collation=- notnull=f identity=f default= statistics=-1
vw_movimentacao_flat: column vw_movimentacao_flat.data_criacao_conta date collation=- notnull=f identity=f default= statistics=-1
vw_movimentacao_flat: column vw_movimentacao_flat.data_movimentacao timestamp without time zone collation=- notnull=f identity=f default= statistics=-1
vw_movimentacao_flat: column vw_movimentacao_flat.des_transacao_movimento character varying(150) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
vw_movimentacao_flat: column vw_movimentacao_flat.idade_associado integer collation=- notnull=f identity=f default= statistics=-1
vw_movimentacao_flat: column vw_movimentacao_flat.nome_associado character varying(255) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
vw_movimentacao_flat: column vw_movimentacao_flat.nome_impresso_cartao character varying(150) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
vw_movimentacao_flat: column vw_movimentacao_flat.numero_cartao character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
vw_movimentacao_flat: column vw_movimentacao_flat.sobrenome_associado character varying(255) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
vw_movimentacao_flat: column vw_movimentacao_flat.tipo_conta character varying(50) collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
vw_movimentacao_flat: column vw_movimentacao_flat.vlr_transacao_movimento numeric(10,2) collation=- notnull=f identity=f default= statistics=-1
vw_movimentacao_flat: relation vw_movimentacao_flat kind=v persistence=p am=- of=- rls=f force_rls=f partition=f
vw_movimentacao_flat: rule CREATE RULE "_RETURN" AS ON SELECT TO sicoop.vw_movimentacao_flat DO INSTEAD SELECT a.nome_associado, a.sobrenome_associado, a.idade_atual_associado AS idade_associado, f.valor_movimentacao AS vlr_transacao_movimento, f.descricao_movimentacao AS des_transacao_movimento, f.data_hora_movimentacao AS data_movimentacao, c.numero_cartao, c.nome_impresso_cartao, c.data_emissao_cartao AS data_criacao_cartao, co.tipo_conta, co.data_criacao_conta FROM (((sicoop.fato_movimentacao_cartao f JOIN sicoop.dim_associado a ON ((a.sk_associado = f.sk_associado))) JOIN sicoop.dim_cartao c ON ((c.sk_cartao = f.sk_cartao))) JOIN sicoop.dim_conta co ON ((co.sk_conta = f.sk_conta))) ORDER BY f.data_hora_movimentacao, f.id_movimentacao_cartao; enabled=O
warehouse_info: column warehouse_info.canonical_labels jsonb collation=- notnull=f identity=f default= statistics=-1
warehouse_info: column warehouse_info.created_at timestamp with time zone collation=- notnull=t identity=f default=now() statistics=-1
warehouse_info: column warehouse_info.full_run_owed_by bigint collation=- notnull=f identity=f default= statistics=-1
warehouse_info: column warehouse_info.layout_version text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
warehouse_info: column warehouse_info.rules_signature text collation=pg_catalog."default" notnull=f identity=f default= statistics=-1
warehouse_info: column warehouse_info.singleton boolean collation=- notnull=t identity=f default=true statistics=-1
warehouse_info: constraint sicoop.warehouse_info.warehouse_info_pkey PRIMARY KEY (singleton)
warehouse_info: constraint sicoop.warehouse_info.warehouse_info_singleton_check CHECK (singleton)
warehouse_info: index CREATE UNIQUE INDEX warehouse_info_pkey ON sicoop.warehouse_info USING btree (singleton)
warehouse_info: relation warehouse_info kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
$lines$, E'\n'), '')
$def$;
