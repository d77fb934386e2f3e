-- sicoop_etl 1.3 -> 1.4: hardening (issue 16).
--
-- What it does, in place (the warehouse's layout becomes 1.4: two rule kinds, fourteen rules):
--   * the handover check compares the warehouse with sicoop's own definition of it (a constant
--     of the extension, sicoop._warehouse_definition()), not with a record a DROP EXTENSION
--     resets: the record (sicoop.operator_handover) goes;
--   * no statistics of the columns that may hold a full card number as the source sent it;
--     those gathered so far are deleted;
--   * card-like and padded keys are rejected by rules of their own (the new rules make the
--     next run a full one, which also cleans trusted again with 1.4's masking);
--   * the reconciliation sums finite amounts only; alerts carry identifiers only; the
--     progress view trusts only the owner's sessions; every function pins its search_path.
-- The update first checks the warehouse against 1.4's definition, and changes nothing if the
-- warehouse holds what sicoop did not make (the error names each object and its DROP).
\echo Use "ALTER EXTENSION sicoop_etl UPDATE TO '1.4'" to load this file. \quit

------------------------------------------------------------------------------------------
-- The handover check (findings 1, 2): sicoop's definition as the yardstick
------------------------------------------------------------------------------------------
-- The warehouse's definition as the catalog has it: one line per object of schema sicoop's
-- relations (the extension's own scratch tables and the source's foreign tables included) --
-- relation, column (type, collation, default or generation, statistics target), constraint
-- (its own or another table's pointing at it), index, extended statistics, trigger, rule
-- (a view's query included), policy, inheritance and publication -- and per object of schema
-- sicoop that is no extension member. Each line comes with the statement that removes it
-- when it is not sicoop's. Everything here could run code, or change what a read returns,
-- when a role other than its maker reads or writes the table.
-- (Time zone and date style pinned: a default or CHECK with a timestamptz reads in them.)
CREATE OR REPLACE FUNCTION _warehouse_objects() RETURNS TABLE (relation name, line text, removal text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD'
  SET IntervalStyle = 'postgres' SET extra_float_digits = 1 AS $$
WITH rels AS (
  SELECT c.oid, c.relname, c.relkind, c.oid::regclass AS qualified FROM pg_class c
  WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relkind NOT IN ('i', 'I', 't', 'c')
)
SELECT r.relname, format('relation %s kind=%s persistence=%s am=%s of=%s rls=%s force_rls=%s partition=%s',
                         r.relname, c.relkind, c.relpersistence, coalesce(a.amname, '-'), c.reloftype::regtype,
                         c.relrowsecurity, c.relforcerowsecurity, c.relispartition), NULL
FROM rels r JOIN pg_class c ON c.oid = r.oid LEFT JOIN pg_am a ON a.oid = c.relam
UNION ALL
SELECT r.relname,
       format('column %s.%s %s collation=%s notnull=%s identity=%s %s=%s statistics=%s', r.relname, a.attname,
              format_type(a.atttypid, a.atttypmod),
              coalesce((SELECT format('%I.%I', n.nspname, o.collname) FROM pg_collation o
                        JOIN pg_namespace n ON n.oid = o.collnamespace WHERE o.oid = a.attcollation), '-'),
              a.attnotnull, a.attidentity <> '', CASE a.attgenerated WHEN 's' THEN 'generated' ELSE 'default' END,
              pg_get_expr(d.adbin, d.adrelid), a.attstattarget),
       CASE WHEN a.attgenerated = 's' THEN format('ALTER TABLE %s ALTER COLUMN %I DROP EXPRESSION', r.qualified, a.attname)
            WHEN d.adbin IS NOT NULL THEN format('ALTER TABLE %s ALTER COLUMN %I DROP DEFAULT', r.qualified, a.attname)
            ELSE format('ALTER TABLE %s DROP COLUMN %I', r.qualified, a.attname) END
FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
UNION ALL
SELECT r.relname, format('constraint %s.%s %s', k.conrelid::regclass, k.conname, pg_get_constraintdef(k.oid)),
       format('ALTER TABLE %s DROP CONSTRAINT %I', k.conrelid::regclass, k.conname)
FROM rels r JOIN pg_constraint k ON k.conrelid = r.oid OR (k.confrelid = r.oid AND k.conrelid <> r.oid)
UNION ALL
SELECT r.relname, format('index %s', pg_get_indexdef(i.indexrelid)), format('DROP INDEX %s', i.indexrelid::regclass)
FROM rels r JOIN pg_index i ON i.indrelid = r.oid
UNION ALL
SELECT r.relname, format('statistics %s target=%s', pg_get_statisticsobjdef(s.oid), s.stxstattarget),
       format('DROP STATISTICS %I.%I', s.stxnamespace::regnamespace, s.stxname)
FROM rels r JOIN pg_statistic_ext s ON s.stxrelid = r.oid
UNION ALL
SELECT r.relname, format('trigger %s enabled=%s', pg_get_triggerdef(t.oid), t.tgenabled),
       format('DROP TRIGGER %I ON %s', t.tgname, t.tgrelid::regclass)
FROM rels r JOIN pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
UNION ALL
SELECT r.relname, format('rule %s enabled=%s', pg_get_ruledef(w.oid), w.ev_enabled),
       CASE WHEN w.rulename = '_RETURN' THEN 'SELECT sicoop._create_flat_view(), sicoop._create_bi_views()'
            ELSE format('DROP RULE %I ON %s', w.rulename, r.qualified) END
FROM rels r JOIN pg_rewrite w ON w.ev_class = r.oid
UNION ALL
SELECT r.relname, format('policy %s.%s %s permissive=%s roles=%s using=%s check=%s', r.relname, p.polname, p.polcmd,
                         p.polpermissive, p.polroles::regrole[], pg_get_expr(p.polqual, p.polrelid),
                         pg_get_expr(p.polwithcheck, p.polrelid)),
       format('DROP POLICY %I ON %s', p.polname, r.qualified)
FROM rels r JOIN pg_policy p ON p.polrelid = r.oid
UNION ALL
SELECT r.relname, format('inherits %s from %s', i.inhrelid::regclass, i.inhparent::regclass),
       format('ALTER TABLE %s NO INHERIT %s', i.inhrelid::regclass, i.inhparent::regclass)
FROM rels r JOIN pg_inherits i ON i.inhparent = r.oid OR i.inhrelid = r.oid
UNION ALL
SELECT r.relname, format('publication %s of %s where=%s', p.pubname, r.relname, pg_get_expr(pr.prqual, pr.prrelid)),
       format('ALTER PUBLICATION %I DROP TABLE %s', p.pubname, r.qualified)
FROM rels r JOIN pg_publication_rel pr ON pr.prrelid = r.oid JOIN pg_publication p ON p.oid = pr.prpubid
UNION ALL
SELECT NULL, format('publication %s of schema sicoop', p.pubname),
       format('ALTER PUBLICATION %I DROP TABLES IN SCHEMA sicoop', p.pubname)
FROM pg_publication_namespace pn JOIN pg_publication p ON p.oid = pn.pnpubid
WHERE pn.pnnspid = 'sicoop'::regnamespace
UNION ALL
-- Objects of schema sicoop the extension did not make: a function there can outbid sicoop's
-- own in a call (an overload on an exact argument type), a type or operator can change a read.
SELECT NULL, format('%s %s in schema sicoop', kind, name), format('DROP %s %s', kind, name)
FROM (SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END,
             p.oid::regprocedure::text, 'pg_proc'::regclass, p.oid
      FROM pg_proc p WHERE p.pronamespace = 'sicoop'::regnamespace
      UNION ALL
      SELECT 'OPERATOR', o.oid::regoperator::text, 'pg_operator'::regclass, o.oid
      FROM pg_operator o WHERE o.oprnamespace = 'sicoop'::regnamespace
      UNION ALL
      SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype::text, 'pg_type'::regclass, t.oid
      FROM pg_type t WHERE t.typnamespace = 'sicoop'::regnamespace AND t.typrelid = 0 AND t.typelem = 0
      UNION ALL
      SELECT 'COLLATION', format('sicoop.%I', o.collname), 'pg_collation'::regclass, o.oid
      FROM pg_collation o WHERE o.collnamespace = 'sicoop'::regnamespace) obj(kind, name, catalog, oid)
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = obj.catalog AND d.objid = obj.oid AND d.deptype = 'e')
$$;

-- The same, one line per object, "<relation>: <object>" (or "-: <object>" for an object of the
-- schema), white space collapsed (a view's query is multi-line): what
-- sicoop._warehouse_definition() holds for a warehouse as sicoop makes it.
CREATE OR REPLACE FUNCTION _warehouse_signature() RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT array_agg(l.line ORDER BY l.line COLLATE "C")
FROM sicoop._warehouse_objects() o,
     LATERAL (SELECT format('%s: %s', coalesce(o.relation, '-'), regexp_replace(o.line, '\s+', ' ', 'g')) AS line) l
$$;

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
raw_movimentacao_cartao: index CREATE INDEX raw_movimentacao_cartao_data ON sicoop.raw_movimentacao_cartao USING brin (data_movimentacao) WITH (autosummarize='on')
raw_movimentacao_cartao: index CREATE INDEX raw_movimentacao_cartao_run ON sicoop.raw_movimentacao_cartao USING brin (run_id) WITH (autosummarize='on')
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
step_state: column step_state.last_run_id bigint collation=- notnull=t identity=f default= statistics=-1
step_state: column step_state.step text collation=pg_catalog."default" notnull=t identity=f default= statistics=-1
step_state: column step_state.updated_at timestamp with time zone collation=- notnull=t identity=f default=now() statistics=-1
step_state: constraint sicoop.step_state.step_state_pkey PRIMARY KEY (step)
step_state: index CREATE UNIQUE INDEX step_state_pkey ON sicoop.step_state USING btree (step)
step_state: relation step_state kind=r persistence=p am=heap of=- rls=f force_rls=f partition=f
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
trusted_movimentacao_cartao: index CREATE INDEX trusted_movimentacao_cartao_run ON sicoop.trusted_movimentacao_cartao USING brin (run_id) WITH (autosummarize='on')
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

-- The dimensions' "no update yet" default, 1900-01-01 at midnight UTC: 1.0 to 1.3 wrote it as
-- '1900-01-01', which PostgreSQL fixes in the time zone of the session that created the table
-- (1900-01-01 03:06:28+00 in America/Sao_Paulo). The same instant everywhere, so that the
-- warehouse's definition does not depend on where it was created. Changes nothing (and takes
-- no lock) where it already is so.
CREATE OR REPLACE FUNCTION _remake_sicoop_defaults() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' AS $fn$
DECLARE
  col record;
BEGIN
  FOR col IN SELECT a.attrelid::regclass AS tbl, a.attname
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relkind = 'r'
               AND c.relname IN ('dim_associado', 'dim_cartao', 'dim_conta') AND a.attname = 'data_hora_atualizacao_registro'
               AND pg_get_expr(d.adbin, d.adrelid) <> '''1900-01-01 00:00:00+00''::timestamp with time zone'
  LOOP
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT %L::timestamptz', col.tbl, col.attname, '1900-01-01 00:00:00+00');
  END LOOP;
END
$fn$;

-- Puts back, without reading a row, what sicoop can re-make of the warehouse by itself: its
-- views (the flat view, the BI views, progress) as it defines them, whatever an owner made of
-- them, and no statistics of the columns that may hold a card number as the source sent it
-- (the stage's text, raw's descriptions: see the stage tables), dropping any already
-- gathered. A superuser's: only a superuser may delete from pg_statistic.
CREATE OR REPLACE FUNCTION _remake_sicoop_definitions(in_extension_script boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  col record;
BEGIN
  PERFORM sicoop._check_warehouse_shape();  -- first: a table made a view, rules, RLS, children
  PERFORM sicoop._remake_views(in_extension_script);
  PERFORM sicoop._remake_sicoop_defaults();
  FOR col IN SELECT a.attrelid, a.attrelid::regclass AS tbl, a.attname, a.attnum, a.attstattarget
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
             WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
               AND ((c.relname IN ('stage_associado', 'stage_conta', 'stage_cartao', 'stage_movimentacao_cartao',
                                   'stage_reject', 'stage_key') AND a.atttypid IN ('text'::regtype, 'jsonb'::regtype))
                    OR (c.relname = 'raw_movimentacao_cartao' AND a.attname = 'descricao_movimentacao'))
  LOOP
    IF col.attstattarget <> 0 THEN
      EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET STATISTICS 0', col.tbl, col.attname);
    END IF;
    DELETE FROM pg_statistic s WHERE s.starelid = col.attrelid AND s.staattnum = col.attnum;
  END LOOP;
END
$fn$;

-- Refuses a warehouse whose definition is not sicoop's own: every object a role added to its
-- relations (or to schema sicoop) is named with the statement that removes it, and whatever
-- was changed or removed too. Called first by every superuser path that hands the warehouse
-- to a role or takes it back, adopts it or updates the extension: what another role added --
-- an expression in an index or extended statistics, a CHECK, a default, a trigger, a view --
-- would run with the rights of whoever reads or writes the table next.
CREATE OR REPLACE FUNCTION _check_warehouse_definition(action text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  expected text[] := sicoop._warehouse_definition();
  actual text[] := sicoop._warehouse_signature();
  extra text[];
  missing text[];
BEGIN
  SELECT array_agg(format('%s -- remove it with: %s;', o.line, o.removal) ORDER BY o.line COLLATE "C") INTO extra
  FROM sicoop._warehouse_objects() o
  WHERE format('%s: %s', coalesce(o.relation, '-'), regexp_replace(o.line, '\s+', ' ', 'g')) <> ALL (expected);
  SELECT array_agg(e ORDER BY e COLLATE "C") INTO missing
  FROM unnest(expected) e
  WHERE e <> ALL (actual)
    -- the source's foreign tables before connect_source() made them
    AND NOT (split_part(e, ':', 1) LIKE 'src\_%' AND to_regclass('sicoop.' || split_part(e, ':', 1)) IS NULL)
    -- a first load's secondary indexes, dropped until its insert is done
    AND NOT EXISTS (SELECT 1 FROM sicoop.deferred_index d
                    WHERE e = format('%s: index %s', split_part(d.table_name, '.', 2), d.definition));
  IF extra IS NOT NULL THEN
    RAISE EXCEPTION 'sicoop.%: % object(s) of the warehouse are not as sicoop defines them: %', action, cardinality(extra),
                    array_to_string(extra[1:10], ' ')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = CASE WHEN missing IS NOT NULL
                          THEN format('Changed or missing: %s', array_to_string(missing[1:10], '; '))
                          ELSE 'Nothing sicoop defines is changed or missing.' END,
            HINT = 'Nothing was changed, nothing of the warehouse was read. A superuser reviews these objects and runs the statements given (they remove only what sicoop did not create), then calls this again.';
  END IF;
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'sicoop.%: the warehouse''s definition is not sicoop''s: % object(s) changed or missing: %', action,
                    cardinality(missing), array_to_string(missing[1:10], '; ')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Nothing was changed. Put these objects back as sicoop defines them (or restore the warehouse from a backup), then call this again.';
  END IF;
END
$fn$;

-- Keeps, of the indexes a first load deferred, only those sicoop defines: the next run builds
-- them, as whoever owns the warehouse then; anything else a previous owner put there is dropped.
CREATE OR REPLACE FUNCTION _keep_sicoop_deferred_indexes() RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
DELETE FROM sicoop.deferred_index d
WHERE format('%s: index %s', split_part(d.table_name, '.', 2), d.definition) <> ALL (sicoop._warehouse_definition())
   OR d.table_name <> 'sicoop.' || split_part(d.table_name, '.', 2)
$$;

-- sicoop's views as it defines them (the flat view, the BI views, progress), whatever an owner
-- made of them. An extension script (CREATE EXTENSION adopting a warehouse, ALTER EXTENSION
-- UPDATE) may not replace an object that is not the extension's, so there the views that
-- differ from sicoop's are dropped and made anew -- with their owner, privileges and comments
-- -- and handed back to the database (ALTER EXTENSION ... DROP VIEW).
CREATE OR REPLACE FUNCTION _remake_views(in_extension_script boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  views text[] := ARRAY['vw_movimentacao_flat', 'progress'] || sicoop._analyst_views();
  saved record;
  kept jsonb;
  grant_ record;
BEGIN
  IF NOT in_extension_script THEN
    PERFORM sicoop._create_flat_view();
    PERFORM sicoop._create_bi_views();
    RETURN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM sicoop._warehouse_objects() o
                 WHERE o.relation = ANY (views) AND o.line LIKE 'rule %'
                   AND format('%s: %s', o.relation, regexp_replace(o.line, '\s+', ' ', 'g')) <> ALL (sicoop._warehouse_definition())) THEN
    RETURN;
  END IF;
  SELECT jsonb_object_agg(c.relname, jsonb_build_object('owner', c.relowner::regrole::text, 'acl', c.relacl::text)) INTO kept
  FROM pg_class c WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relname = ANY (views) AND c.relkind = 'v';
  FOR saved IN SELECT key AS name FROM jsonb_each(kept) LOOP
    EXECUTE format('DROP VIEW sicoop.%I', saved.name);
  END LOOP;
  PERFORM sicoop._create_flat_view();
  PERFORM sicoop._create_bi_views();
  FOR saved IN SELECT v AS name, kept -> v ->> 'owner' AS owner, (kept -> v ->> 'acl')::aclitem[] AS acl FROM unnest(views) v LOOP
    EXECUTE format('ALTER EXTENSION sicoop_etl DROP VIEW sicoop.%I', saved.name);
    IF saved.owner IS NOT NULL THEN
      EXECUTE format('ALTER VIEW sicoop.%I OWNER TO %s', saved.name, saved.owner);
    END IF;
    FOR grant_ IN SELECT a.privilege_type, a.grantee FROM aclexplode(saved.acl) a
                  WHERE a.grantee <> (SELECT c.relowner FROM pg_class c WHERE c.oid = ('sicoop.' || quote_ident(saved.name))::regclass) LOOP
      EXECUTE format('GRANT %s ON sicoop.%I TO %s', grant_.privilege_type, saved.name,
                     CASE WHEN grant_.grantee = 0 THEN 'PUBLIC' ELSE grant_.grantee::regrole::text END);
    END LOOP;
  END LOOP;
  PERFORM sicoop._comment_warehouse();
END
$fn$;

-- The operator: a role, not a superuser, that owns the warehouse (created here if needed) and
-- may point it at the source (with a password, as postgres_fdw requires), run and schedule
-- the pipeline, read the run log and export the flat file into sicoop.export_directory. The
-- operator is the warehouse's owner, so there is one at a time: to let several people
-- operate, name a group role and grant it to them.
CREATE OR REPLACE FUNCTION grant_operator(operator regrole) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  previous oid;
BEGIN
  PERFORM sicoop._check_grantor('grant_operator', operator);
  IF NOT sicoop._adopt_warehouse() THEN
    PERFORM sicoop._create_warehouse();
  END IF;
  PERFORM sicoop._create_source_objects();
  PERFORM sicoop._remake_sicoop_definitions(false);
  PERFORM sicoop._check_warehouse_definition('grant_operator');
  SELECT c.relowner INTO previous FROM pg_class c WHERE c.oid = 'sicoop.warehouse_info'::regclass;
  PERFORM sicoop._keep_sicoop_deferred_indexes();
  -- The warehouse, its source objects and the extension's own tables become the operator's.
  PERFORM sicoop._set_warehouse_owner(operator);
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
CREATE OR REPLACE FUNCTION revoke_operator(operator regrole) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  owner regrole;
BEGIN
  PERFORM sicoop._check_grantor('revoke_operator', operator);
  SELECT e.extowner::regrole INTO owner FROM pg_extension e WHERE e.extname = 'sicoop_etl';
  -- Nothing the operator added (defaults, constraints, statistics, triggers, rules...) may
  -- come along to a superuser: the definition must be sicoop's.
  PERFORM sicoop._remake_sicoop_definitions(false);
  PERFORM sicoop._check_warehouse_definition('revoke_operator');
  PERFORM sicoop._keep_sicoop_deferred_indexes();
  PERFORM sicoop._set_warehouse_owner(owner, operator);
  IF EXISTS (SELECT 1 FROM pg_user_mappings m WHERE m.srvname = 'sicoop_source' AND m.umuser = operator) THEN
    EXECUTE format('DROP USER MAPPING FOR %s SERVER sicoop_source', operator);
  END IF;
  EXECUTE format('REVOKE EXECUTE ON %s FROM %s', sicoop._operator_functions(), operator);
  EXECUTE format('REVOKE EXECUTE ON PROCEDURE sicoop.run_pipeline(boolean) FROM %s', operator);
  EXECUTE format('REVOKE USAGE ON SCHEMA sicoop FROM %s', operator);
  RETURN format('%s no longer operates the warehouse; %s owns it', operator, owner);
END
$fn$;

CREATE OR REPLACE FUNCTION grant_reader(reader regrole) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  r text;
BEGIN
  PERFORM sicoop._check_grantor('grant_reader', reader);
  IF NOT sicoop._adopt_warehouse() THEN
    RAISE EXCEPTION 'sicoop.grant_reader: there is no warehouse yet' USING ERRCODE = 'object_not_in_prerequisite_state',
      HINT = 'sicoop.grant_operator(role) or sicoop.connect_source(...) creates it.';
  END IF;
  PERFORM sicoop._remake_sicoop_definitions(false);
  PERFORM sicoop._check_warehouse_definition('grant_reader');
  EXECUTE format('GRANT USAGE ON SCHEMA sicoop TO %s', reader);
  FOREACH r IN ARRAY sicoop._reader_relations() LOOP
    EXECUTE format('GRANT SELECT ON sicoop.%I TO %s', r, reader);
  END LOOP;
  RETURN format('%s may read %s', reader, array_to_string(sicoop._reader_relations(), ', '));
END
$fn$;

-- Raises a clear error unless a run can start: a warehouse this version can use, and a source.
-- Runs are made by the warehouse's owner (the operator, sicoop.grant_operator()) or a member
-- of it. Not by a superuser when the owner is not one: the owner's triggers and functions on
-- its tables would then run with superuser rights.
CREATE OR REPLACE FUNCTION _check_ready() RETURNS void
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
      WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relowner <> owner) THEN
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

-- Gives every relation of schema sicoop owned by `from_owner` (all of them if NULL) to
-- `new_owner`, and the source server too (sequences owned by a table follow it).
CREATE OR REPLACE FUNCTION _set_warehouse_owner(new_owner regrole, from_owner regrole DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  rel record;
BEGIN
  FOR rel IN SELECT c.oid::regclass AS name, c.relkind
             FROM pg_class c
             WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'f', 'S')
               AND (from_owner IS NULL OR c.relowner = from_owner)
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

DROP FUNCTION sicoop._check_handover(regrole);
-- (an extension member: dropped with the update; the definition replaces what it recorded)
DROP TABLE sicoop.operator_handover;

------------------------------------------------------------------------------------------
-- No card number in statistics (finding 3)
------------------------------------------------------------------------------------------
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
-- Raw keeps the source's descriptions as they are, a number typed into one included: no
-- statistics of them (pg_stats would show a sample to whoever may read the table).
ALTER TABLE sicoop.raw_movimentacao_cartao ALTER COLUMN descricao_movimentacao SET STATISTICS 0;
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

IF EXISTS (SELECT 1 FROM pg_depend WHERE classid = 'pg_class'::regclass AND objid = 'sicoop.run_log'::regclass
           AND deptype = 'e') THEN
  RAISE EXCEPTION 'sicoop._create_warehouse() must not run inside an extension script: the data would belong to the extension';
END IF;
END
$fn$;

ALTER TABLE sicoop.stage_associado ALTER COLUMN id_associado SET STATISTICS 0, ALTER COLUMN nome SET STATISTICS 0,
  ALTER COLUMN estado_civil SET STATISTICS 0, ALTER COLUMN escolaridade SET STATISTICS 0;
ALTER TABLE sicoop.stage_conta ALTER COLUMN id_conta SET STATISTICS 0, ALTER COLUMN id_associado SET STATISTICS 0,
  ALTER COLUMN tipo_conta SET STATISTICS 0, ALTER COLUMN agencia SET STATISTICS 0, ALTER COLUMN situacao_conta SET STATISTICS 0;
ALTER TABLE sicoop.stage_cartao ALTER COLUMN id_cartao SET STATISTICS 0, ALTER COLUMN id_conta SET STATISTICS 0,
  ALTER COLUMN numero_cartao SET STATISTICS 0, ALTER COLUMN nome_impresso_cartao SET STATISTICS 0,
  ALTER COLUMN bandeira_cartao SET STATISTICS 0, ALTER COLUMN tipo_cartao SET STATISTICS 0;
ALTER TABLE sicoop.stage_movimentacao_cartao ALTER COLUMN id_movimentacao_cartao SET STATISTICS 0,
  ALTER COLUMN id_cartao SET STATISTICS 0, ALTER COLUMN descricao_movimentacao SET STATISTICS 0;
ALTER TABLE sicoop.stage_reject ALTER COLUMN record_id SET STATISTICS 0, ALTER COLUMN record SET STATISTICS 0;
ALTER TABLE sicoop.stage_key ALTER COLUMN record_id SET STATISTICS 0;

------------------------------------------------------------------------------------------
-- Masking that matches what people type; keys that are clean or kept out (finding 4)
------------------------------------------------------------------------------------------
------------------------------------------------------------------------------------------
-- The warehouse's data: created once, after CREATE EXTENSION, and never an extension member.
------------------------------------------------------------------------------------------
-- The layout of the warehouse's data this version creates and reads.
CREATE OR REPLACE FUNCTION _layout_version() RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$ SELECT '1.4'::text $$;

-- Whether the text holds what could be a card number: what _redact_card_numbers masks.
CREATE OR REPLACE FUNCTION contains_card_number(value text) RETURNS boolean
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'sicoop_contains_card_number';

-- The text with every possible card number masked to its last four digits, as sicoop does to
-- every error it reports or logs and to the trusted layer's free text: 13 or more decimal
-- digits of any script, in groups joined by spaces, dashes, dots, slashes or invisible
-- characters; joined by commas or colons, only a Luhn-valid 13-19 digit number in groups of
-- four or more (a list of small numbers is not a card). C++: src/steps/text_rules.cpp.
CREATE OR REPLACE FUNCTION _redact_card_numbers(value text) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'sicoop_redact_card_numbers';

-- The checks of the enabled row rules of a source table, as predicates on its row s in
-- `rows_in` (the stage, or raw after a first load's direct copy; the stage if NULL): one per
-- rule, or one per column for the rules of every column (part names the column). Column
-- types are the stage's, which the rules are written against.
CREATE OR REPLACE FUNCTION _row_rule_checks(tbl text, ref_date date, rows_in regclass DEFAULT NULL)
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
    WHEN 'no_card_number' THEN
      predicate := format('sicoop.contains_card_number(s.%I::text)', r.column_name);
      RETURN NEXT;
    WHEN 'trimmed' THEN
      -- white space (Unicode's too) or an invisible format character anywhere but between words
      predicate := format('s.%1$I::text ~ %2$L', r.column_name,
                          '^[[:space:]\u00a0\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ufeff]|[[:space:]\u00a0\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ufeff]$|[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]');
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
CREATE OR REPLACE FUNCTION _apply_row_rules(tbl text, run_id bigint, ref_date date, rows_in regclass DEFAULT NULL,
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
                    SELECT sicoop._redact_card_numbers(b.%4$I::text), b.broken, jsonb_build_object(%5$s) FROM bad b',
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

ALTER TABLE sicoop.dq_rule DROP CONSTRAINT dq_rule_kind_check,
  ADD CONSTRAINT dq_rule_kind_check CHECK (kind IN ('not_null', 'not_blank', 'unique', 'references', 'accepted_values',
                                                   'range', 'no_control_chars', 'fits', 'source_drift', 'canonical',
                                                   'reconciliation', 'no_card_number', 'trimmed'));

------------------------------------------------------------------------------------------
-- Books that NaN cannot blind (finding 5)
------------------------------------------------------------------------------------------
-- Reconciles the movements, per movement day, with the source: its count and sum of
-- valor_movimentacao (sicoop.source_day_total, read by the load in the snapshot it copied)
-- against the fact's plus the rejects'. The comparison of every day is in
-- sicoop.reconciliation, the outcome in sicoop.dq_result. Unbalanced days under a 'fail' rule
-- make the next run a full one (the run itself then fails: src/pipeline.cpp).
CREATE OR REPLACE FUNCTION _reconcile(run_id bigint) RETURNS void
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
  -- Only the days whose figures changed are written (their run_id is the run that changed
  -- them): an incremental run rewrites a handful of rows, not the whole history's days.
  -- Sums of finite amounts only, on every side: NaN = NaN is true for numeric, so one NaN in a
  -- day's sum would make any fact amount of that day look balanced (a NaN row still counts in
  -- the day's rows, and the source's totals leave it out of the sum the same way). NaN sorts
  -- above every number, Infinity included: two comparisons leave out NaN and both infinities.
  -- Days compare as coalesce(dia, '-infinity'), an equality a hash join can use (dia is NULL
  -- for movements without a date).
  WITH computed AS (
    SELECT dia, sum(source_rows) AS source_rows, sum(source_valor) AS source_valor,
           sum(fato_rows) AS fato_rows, sum(fato_valor) AS fato_valor,
           sum(reject_rows) AS reject_rows, sum(reject_valor) AS reject_valor,
           sum(source_rows) = sum(fato_rows) + sum(reject_rows) AND sum(source_valor) = sum(fato_valor) + sum(reject_valor) AS balanced
    FROM (SELECT s.dia, s.source_rows, s.source_valor, 0 AS fato_rows, 0 AS fato_valor, 0 AS reject_rows, 0 AS reject_valor
          FROM sicoop.source_day_total s
          UNION ALL
          SELECT f.data_hora_movimentacao::date, 0, 0, count(*),
                 coalesce(sum(f.valor_movimentacao) FILTER (WHERE f.valor_movimentacao < 'Infinity'::numeric AND f.valor_movimentacao > '-Infinity'::numeric), 0), 0, 0
          FROM sicoop.fato_movimentacao_cartao f GROUP BY 1
          UNION ALL
          SELECT (j.record->>'data_movimentacao')::timestamp::date, 0, 0, 0, 0, count(*),
                 coalesce(sum(v.valor) FILTER (WHERE v.valor < 'Infinity'::numeric AND v.valor > '-Infinity'::numeric), 0)
          FROM sicoop.reject j, LATERAL (SELECT (j.record->>'valor_movimentacao')::numeric AS valor) v
          WHERE j.table_name = 'movimentacao_cartao' GROUP BY 1) d
    GROUP BY dia),
  gone AS (
    DELETE FROM sicoop.reconciliation c
    WHERE NOT EXISTS (SELECT 1 FROM computed n WHERE coalesce(n.dia, '-infinity'::date) = coalesce(c.dia, '-infinity'::date))),
  changed AS (
    UPDATE sicoop.reconciliation c
    SET run_id = _reconcile.run_id, source_rows = n.source_rows, source_valor = n.source_valor,
        fato_rows = n.fato_rows, fato_valor = n.fato_valor, reject_rows = n.reject_rows,
        reject_valor = n.reject_valor, balanced = n.balanced
    FROM computed n
    WHERE coalesce(n.dia, '-infinity'::date) = coalesce(c.dia, '-infinity'::date)
      AND (c.source_rows, c.source_valor, c.fato_rows, c.fato_valor, c.reject_rows, c.reject_valor, c.balanced)
          IS DISTINCT FROM (n.source_rows, n.source_valor, n.fato_rows, n.fato_valor, n.reject_rows, n.reject_valor, n.balanced))
  INSERT INTO sicoop.reconciliation (run_id, dia, source_rows, source_valor, fato_rows, fato_valor, reject_rows, reject_valor, balanced)
  SELECT _reconcile.run_id, n.dia, n.source_rows, n.source_valor, n.fato_rows, n.fato_valor, n.reject_rows, n.reject_valor, n.balanced
  FROM computed n
  WHERE NOT EXISTS (SELECT 1 FROM sicoop.reconciliation c
                    WHERE coalesce(c.dia, '-infinity'::date) = coalesce(n.dia, '-infinity'::date));
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


------------------------------------------------------------------------------------------
-- Alerts and progress for the right people; every function pins its search_path (finding 8)
------------------------------------------------------------------------------------------
-- Tells whoever listens on channel sicoop_alerts (LISTEN sicoop_alerts) about a run's step: a
-- JSON payload of identifiers only -- the run, the step, its status, SQLSTATE and counts -- from
-- run_log: any role that may connect to the database may LISTEN, so the error's text (which
-- can quote keys and values) stays in run_log, for those who may read it. Sent when the
-- caller's transaction commits. Runs call it for a failed or aborted step, and for a skip
-- behind a run older than sicoop.max_run_time.
CREATE OR REPLACE FUNCTION _alert(run_id bigint, step text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
SELECT pg_notify('sicoop_alerts', json_build_object(
         'database', current_database(), 'run_id', l.run_id, 'step', l.step, 'status', l.status,
         'sqlstate', l.error_sqlstate, 'as_of', l.as_of,
         'started_at', l.started_at, 'finished_at', l.finished_at,
         'counts', json_build_object('read', l.rows_read, 'inserted', l.rows_inserted, 'updated', l.rows_updated,
                                     'deleted', l.rows_deleted, 'rejected', l.rows_rejected))::text)
FROM sicoop.run_log l WHERE l.run_id = $1 AND l.step = $2
$$;

-- The views that answer the first questions analysts ask (readers may read them), and the view
-- of the runs in progress (the owner's). Spend is the fact's valor_movimentacao; a member's attributes are those of the version valid at the
-- movement (the fact's sk_associado), as the SCD2 dimension keeps them.
CREATE OR REPLACE FUNCTION _create_bi_views() RETURNS void
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
       CASE WHEN split_part(a.application_name, ' ', 3) ~ '^[0-9]{1,18}$' THEN split_part(a.application_name, ' ', 3)::bigint END AS run_id,
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
-- Any session may set its application_name: only the sessions of the warehouse's owner (or of
-- a role that is a member of it, as a pg_cron job or a SET ROLE login is) are runs.
WHERE a.datname = current_database() AND a.application_name ~ '^sicoop_etl run [0-9]{1,18} '
  AND pg_has_role(a.usesysid, (SELECT c.relowner FROM pg_class c WHERE c.oid = to_regclass('sicoop.warehouse_info')), 'MEMBER');

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

ALTER FUNCTION sicoop._analyst_views() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop._canonical(text, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop._check_source(text, integer, text, text, text, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop._layout_version() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop._operator_functions() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop._reader_relations() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop._warehouse_relations() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop.age_years(date, date) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop.connect_source(text, integer, text, text, text, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop.export_flat(text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop.first_name(text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop.last_name(text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop.load_raw() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop.load_trusted() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop.load_dims() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop.scd2_associado() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop.load_fato() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop.mask_card(text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop.movement_window_start(timestamp) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop.reference_time() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION sicoop.run_step(text, boolean) SET search_path = pg_catalog, pg_temp;

------------------------------------------------------------------------------------------
-- Retention of the run log and the data-quality results (issue 17): sicoop.log_retention
------------------------------------------------------------------------------------------
-- Retention (sicoop.log_retention): deletes, in one batch of at most `batch` runs, the run log
-- and the data-quality results of runs that ended longer than `retention` ago. Never a run
-- still going, nor the latest successful run: the next runs read it (its reference time, its
-- figures, the tables' rows for sicoop.progress). Returns the runs deleted; the caller commits
-- between batches, so that no purge holds many rows locked or bloats one transaction.
CREATE OR REPLACE FUNCTION _purge_logs(retention interval, batch int DEFAULT 500) RETURNS int
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
WITH latest_success AS (
  SELECT max(l.run_id) AS run_id FROM sicoop.run_log l WHERE l.step = 'run_pipeline' AND l.status = 'succeeded'
),
old_runs AS (
  SELECT l.run_id FROM sicoop.run_log l
  WHERE l.run_id IS DISTINCT FROM (SELECT s.run_id FROM latest_success s)
  GROUP BY l.run_id
  HAVING bool_and(l.status <> 'running') AND max(coalesce(l.finished_at, l.started_at)) < now() - retention
  ORDER BY l.run_id
  LIMIT batch
),
results_gone AS (
  DELETE FROM sicoop.dq_result q USING old_runs o WHERE q.run_id = o.run_id
),
runs_gone AS (
  DELETE FROM sicoop.run_log l USING old_runs o WHERE l.run_id = o.run_id RETURNING l.run_id
)
SELECT count(DISTINCT g.run_id)::int FROM runs_gone g
$$;

-- The run's reference time (sicoop.as_of, empty = now()), once every setting a run reads is
-- checked: a finite reference time, not earlier than the latest successful run's (runs go
-- forward; replaying history in order works) nor later than now() plus five minutes (a typo
-- must not poison every later run); a time zone PostgreSQL knows; a lookback from 0 to 10
-- years; a log retention that is a positive interval (or empty). SQLSTATE 22023 otherwise, before anything is read or written.
CREATE OR REPLACE FUNCTION _run_settings() RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  as_of text := current_setting('sicoop.as_of', true);
  zone text := current_setting('sicoop.timezone', true);
  lookback_text text := coalesce(nullif(current_setting('sicoop.lookback', true), ''), '3 days');
  ref timestamptz;
  latest timestamptz;
  lookback interval;
  retention interval;
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
  BEGIN
    retention := nullif(current_setting('sicoop.log_retention', true), '')::interval;
  EXCEPTION WHEN data_exception THEN
    RAISE EXCEPTION 'sicoop.log_retention is not an interval: %', SQLERRM
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use an interval such as ''90 days'', or empty to keep the logs forever.';
  END;
  IF retention <= interval '0' THEN
    RAISE EXCEPTION 'sicoop.log_retention must be a positive interval, not %', retention
      USING ERRCODE = 'invalid_parameter_value', HINT = 'The default is ''90 days''; empty keeps the logs forever.';
  END IF;
  RETURN ref;
END
$fn$;

------------------------------------------------------------------------------------------
-- No hung run unseen (issue 17): the watchdog job, 'overdue' in run_status()
------------------------------------------------------------------------------------------
-- The names of this warehouse's jobs: incremental runs, the optional full run, and the watchdog.
CREATE OR REPLACE FUNCTION _job_names() RETURNS text[] LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS
$$ SELECT ARRAY['sicoop_pipeline@' || current_database(), 'sicoop_full@' || current_database(),
                'sicoop_watchdog@' || current_database()] $$;

-- The runs in the log, as they are now: a run whose backend is gone (crash, shutdown,
-- terminated) is 'aborted' at once (the next run records it so); a run still going for longer
-- than sicoop.max_run_time is 'overdue' (its steps are as they are).
CREATE OR REPLACE FUNCTION run_status()
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
            THEN 'aborted'
            WHEN l.status = 'running' AND l.step = 'run_pipeline'
                 AND nullif(current_setting('sicoop.max_run_time'), '0')::interval < clock_timestamp() - l.started_at
            THEN 'overdue'
            ELSE l.status END,
       l.as_of, l.started_at, l.finished_at, l.rows_read, l.rows_rejected, l.error_sqlstate,
       l.error_message, l.error_context, l.backend_pid
FROM sicoop.run_log l
ORDER BY l.run_id, l.started_at
$$;

-- The watchdog, a pg_cron job of its own that sicoop.schedule() makes (every minute): pg_cron
-- queues a job's next run behind one still going, so a hung run would stop the schedule in
-- silence, with no later run to notice it. This looks for runs going on for longer than
-- sicoop.max_run_time ('overdue' in sicoop.run_status() and schedule_status()) and alerts once
-- for each (NOTIFY sicoop_alerts: status 'overdue', SQLSTATE 55P03, the step it is at),
-- recording the alert in the run's run_log detail (overdue_alerted_at). Returns how many runs
-- are overdue.
CREATE OR REPLACE FUNCTION watchdog() RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  r record;
  overdue int := 0;
BEGIN
  FOR r IN SELECT s.run_id, s.started_at, l.detail ? 'overdue_alerted_at' AS alerted,
                  (SELECT x.step FROM sicoop.run_log x WHERE x.run_id = s.run_id AND x.step <> 'run_pipeline'
                   ORDER BY x.started_at DESC LIMIT 1) AS current_step
           FROM sicoop.run_status() s
           JOIN sicoop.run_log l ON l.run_id = s.run_id AND l.step = s.step
           WHERE s.step = 'run_pipeline' AND s.status = 'overdue'
  LOOP
    overdue := overdue + 1;
    CONTINUE WHEN r.alerted;
    UPDATE sicoop.run_log l SET detail = coalesce(l.detail, '{}') || jsonb_build_object('overdue_alerted_at', clock_timestamp())
    WHERE l.run_id = r.run_id AND l.step = 'run_pipeline';
    PERFORM pg_notify('sicoop_alerts', json_build_object(
              'database', current_database(), 'run_id', r.run_id, 'step', coalesce(r.current_step, 'run_pipeline'),
              'status', 'overdue', 'sqlstate', '55P03', 'started_at', r.started_at,
              'running_seconds', round(extract(epoch FROM clock_timestamp() - r.started_at)),
              'max_run_time', current_setting('sicoop.max_run_time'))::text);
  END LOOP;
  RETURN overdue;
END
$fn$;

------------------------------------------------------------------------------------------
-- Schedules that run (finding 6): sicoop.schedule() refuses jobs pg_cron could not start
------------------------------------------------------------------------------------------
-- Whether pg_cron could start this role's jobs here (C++, src/schedule.cpp): with background
-- workers (cron.use_background_workers) it can; else it starts each job over a connection to
-- cron.host as the job's role with no password, and only the server's environment (its
-- password file, a trust or peer rule) can make that work: `error` says why that very
-- connection, made from this server, fails (NULL: it works). pg_cron's settings are
-- superuser-only to read in SQL; this reads these two for the caller.
CREATE OR REPLACE FUNCTION _cron_connection_error(OUT background_workers boolean, OUT host text, OUT port int, OUT error text)
LANGUAGE c VOLATILE SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'sicoop_cron_connection_error';

-- Schedules the pipeline: CALL sicoop.run_pipeline() on `cron` (pg_cron's syntax), and, if
-- full_cron is given, CALL sicoop.run_pipeline(full => true) on it, and the watchdog every
-- minute (sicoop.watchdog()). Replaces this warehouse's earlier jobs. Returns the jobs.
-- Refuses jobs pg_cron could not start: with pg_cron's background workers off, its connection
-- for the caller must work (see sicoop._cron_connection_error()); the error says what to change.
CREATE OR REPLACE FUNCTION schedule(cron text DEFAULT '*/15 * * * *', full_cron text DEFAULT NULL)
RETURNS TABLE (jobid bigint, jobname text, schedule text, command text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  pg_cron record;
BEGIN
  PERFORM sicoop._check_cron('schedule', cron);
  IF cron IS NULL THEN
    RAISE EXCEPTION 'sicoop.schedule: a schedule is required' USING ERRCODE = 'null_value_not_allowed',
      HINT = 'pg_cron''s syntax, such as ''*/15 * * * *'' (every 15 minutes); sicoop.unschedule() removes the jobs.';
  END IF;
  SELECT * INTO pg_cron FROM sicoop._cron_connection_error();
  IF pg_cron.error IS NOT NULL THEN
    RAISE EXCEPTION 'sicoop.schedule: pg_cron could not start the jobs: its connection for % fails', current_user
      USING ERRCODE = 'sqlclient_unable_to_establish_sqlconnection',
            DETAIL = format('pg_cron (without background workers) connects with host=%s port=%s dbname=%s user=%s and no password: %s',
                            pg_cron.host, pg_cron.port, current_database(), current_user, pg_cron.error),
            HINT = format('Either run the jobs in background workers: as a superuser, ALTER SYSTEM SET cron.use_background_workers = on; '
                          'ALTER SYSTEM SET max_worker_processes = 20; then restart PostgreSQL. Or let pg_cron''s connection '
                          'authenticate: a line "%s:%s:%s:%s:<password>" in the password file of the server''s operating-system '
                          'user (~/.pgpass, mode 0600, or the file PGPASSFILE names in the server''s environment), or a pg_hba.conf '
                          'rule for it. Then call sicoop.schedule() again.',
                          pg_cron.host, pg_cron.port, current_database(), current_user);
  END IF;
  PERFORM sicoop.unschedule();
  PERFORM cron.schedule((sicoop._job_names())[1], cron, 'CALL sicoop.run_pipeline()');
  IF full_cron IS NOT NULL THEN
    PERFORM cron.schedule((sicoop._job_names())[2], full_cron, 'CALL sicoop.run_pipeline(full => true)');
  END IF;
  PERFORM cron.schedule((sicoop._job_names())[3], '* * * * *', 'SELECT sicoop.watchdog()');
  RETURN QUERY SELECT j.jobid, j.jobname::text, j.schedule, j.command FROM cron.job j
               WHERE j.jobname = ANY (sicoop._job_names()) ORDER BY j.jobname DESC;
END
$fn$;

-- The operator's functions: what grant_operator grants and revoke_operator takes back.
CREATE OR REPLACE FUNCTION _operator_functions() RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
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
                 sicoop.schedule_status(), sicoop._cron_connection_error(), sicoop._purge_logs(interval, integer),
                 sicoop.watchdog()'::text
$$;

REVOKE ALL ON FUNCTION sicoop._cron_connection_error(), sicoop._purge_logs(interval, integer), sicoop.watchdog() FROM PUBLIC;
-- An operator already in place may call the new functions (schedule() and its runs do).
DO $grant$
DECLARE
  operator regrole;
BEGIN
  SELECT c.relowner::regrole INTO operator FROM pg_class c WHERE c.oid = to_regclass('sicoop.warehouse_info');
  IF operator IS NOT NULL AND operator::oid <> (SELECT e.extowner FROM pg_extension e WHERE e.extname = 'sicoop_etl') THEN
    EXECUTE format('GRANT EXECUTE ON FUNCTION sicoop._cron_connection_error(), sicoop._purge_logs(interval, integer), sicoop.watchdog() TO %s', operator);
  END IF;
END
$grant$;

------------------------------------------------------------------------------------------
-- The data-quality tables as 1.4 creates them (the key rules, kinds no_card_number and
-- trimmed): what a warehouse created from now on gets
------------------------------------------------------------------------------------------
-- The data-quality tables: the rules, their results per run, the rejects, the canonical values
-- and the reconciliation of the movements with the source. Part of the warehouse (created by
-- _create_warehouse(), and by the 1.1 -> 1.2 upgrade), so the rules users edit are theirs.
CREATE OR REPLACE FUNCTION _create_quality_tables() RETURNS void
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
                                                   'reconciliation', 'no_card_number', 'trimmed')),
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
-- Keys (1.4): no card number, no padding. A key is never cleaned: '  MOV-1 ' cleaned would
-- become a second copy of 'MOV-1', so a key that is not clean is kept out, with its reason.
INSERT INTO sicoop.dq_rule (rule_name, table_name, column_name, kind, severity, min_value, max_value, accepted_values, ref_table, description) VALUES
  ('associado_id_no_card_number', 'associado', 'id_associado', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_associado holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
  ('associado_id_trimmed', 'associado', 'id_associado', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_associado has white space or invisible characters at its ends or inside: a key is taken as it is or not at all'),
  ('conta_id_no_card_number', 'conta', 'id_conta', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_conta holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
  ('conta_id_trimmed', 'conta', 'id_conta', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_conta has white space or invisible characters at its ends or inside: a key is taken as it is or not at all'),
  ('conta_associado_no_card_number', 'conta', 'id_associado', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_associado holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
  ('conta_associado_trimmed', 'conta', 'id_associado', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_associado has white space or invisible characters at its ends or inside: a key is taken as it is or not at all'),
  ('cartao_id_no_card_number', 'cartao', 'id_cartao', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_cartao holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
  ('cartao_id_trimmed', 'cartao', 'id_cartao', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_cartao has white space or invisible characters at its ends or inside: a key is taken as it is or not at all'),
  ('cartao_conta_no_card_number', 'cartao', 'id_conta', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_conta holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
  ('cartao_conta_trimmed', 'cartao', 'id_conta', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_conta has white space or invisible characters at its ends or inside: a key is taken as it is or not at all'),
  ('movimentacao_id_no_card_number', 'movimentacao_cartao', 'id_movimentacao_cartao', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_movimentacao_cartao holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
  ('movimentacao_id_trimmed', 'movimentacao_cartao', 'id_movimentacao_cartao', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_movimentacao_cartao has white space or invisible characters at its ends or inside: a key is taken as it is or not at all'),
  ('movimentacao_cartao_no_card_number', 'movimentacao_cartao', 'id_cartao', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_cartao holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
  ('movimentacao_cartao_trimmed', 'movimentacao_cartao', 'id_cartao', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_cartao has white space or invisible characters at its ends or inside: a key is taken as it is or not at all');

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
-- Signatures independent of the collation (issue 17): no spurious full run after a restore
------------------------------------------------------------------------------------------
-- The row rules and the canonical values as they are now: what every row is checked against
-- as it enters raw, and labelled with in trusted. Ordered byte-wise (COLLATE "C"), so that the
-- same rules give the same signature in a database of another collation (a restore into libc
-- C.UTF-8, an ICU or glibc upgrade): only a real change owes the full run that checks every row.
CREATE OR REPLACE FUNCTION _rules_signature() RETURNS text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT md5(coalesce((SELECT string_agg(q::text, ',' ORDER BY q.rule_name COLLATE "C") FROM ONLY sicoop.dq_rule q
                     WHERE q.enabled AND q.kind NOT IN ('source_drift', 'canonical', 'reconciliation')), '')
           || '|' ||
           coalesce((SELECT string_agg(c::text, ',' ORDER BY c.domain COLLATE "C", c.source_value COLLATE "C")
                     FROM ONLY sicoop.canonical_value c), ''))
$$;

------------------------------------------------------------------------------------------
-- Privileges of the new functions: a superuser's only
------------------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION sicoop._warehouse_objects(), sicoop._check_warehouse_definition(text),
  sicoop._keep_sicoop_deferred_indexes(), sicoop._remake_sicoop_definitions(boolean), sicoop._remake_sicoop_defaults(),
  sicoop._remake_views(boolean) FROM PUBLIC;

------------------------------------------------------------------------------------------
-- Last, on a warehouse that exists: sicoop's views and statistics targets put back, then the
-- check against 1.4's definition (an error here undoes the whole update).
------------------------------------------------------------------------------------------
DO $update$
BEGIN
  IF to_regclass('sicoop.warehouse_info') IS NOT NULL THEN
    PERFORM sicoop._check_warehouse_shape();
    PERFORM sicoop._remake_sicoop_definitions(true);
    PERFORM sicoop._check_warehouse_definition('ALTER EXTENSION sicoop_etl UPDATE');
    -- Only now, the warehouse known to be sicoop's, are its rows written.
    INSERT INTO sicoop.dq_rule (rule_name, table_name, column_name, kind, severity, min_value, max_value, accepted_values, ref_table, description) VALUES
      ('associado_id_no_card_number', 'associado', 'id_associado', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_associado holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
      ('associado_id_trimmed', 'associado', 'id_associado', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_associado has white space or invisible characters at its ends or inside: a key is taken as it is or not at all'),
      ('conta_id_no_card_number', 'conta', 'id_conta', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_conta holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
      ('conta_id_trimmed', 'conta', 'id_conta', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_conta has white space or invisible characters at its ends or inside: a key is taken as it is or not at all'),
      ('conta_associado_no_card_number', 'conta', 'id_associado', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_associado holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
      ('conta_associado_trimmed', 'conta', 'id_associado', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_associado has white space or invisible characters at its ends or inside: a key is taken as it is or not at all'),
      ('cartao_id_no_card_number', 'cartao', 'id_cartao', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_cartao holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
      ('cartao_id_trimmed', 'cartao', 'id_cartao', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_cartao has white space or invisible characters at its ends or inside: a key is taken as it is or not at all'),
      ('cartao_conta_no_card_number', 'cartao', 'id_conta', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_conta holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
      ('cartao_conta_trimmed', 'cartao', 'id_conta', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_conta has white space or invisible characters at its ends or inside: a key is taken as it is or not at all'),
      ('movimentacao_id_no_card_number', 'movimentacao_cartao', 'id_movimentacao_cartao', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_movimentacao_cartao holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
      ('movimentacao_id_trimmed', 'movimentacao_cartao', 'id_movimentacao_cartao', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_movimentacao_cartao has white space or invisible characters at its ends or inside: a key is taken as it is or not at all'),
      ('movimentacao_cartao_no_card_number', 'movimentacao_cartao', 'id_cartao', 'no_card_number', 'reject', NULL, NULL, NULL, NULL, 'id_cartao holds what could be a card number (kept masked here): a key cannot be masked without breaking it'),
      ('movimentacao_cartao_trimmed', 'movimentacao_cartao', 'id_cartao', 'trimmed', 'reject', NULL, NULL, NULL, NULL, 'id_cartao has white space or invisible characters at its ends or inside: a key is taken as it is or not at all');
    -- Free text in raw keeps no card number from now on (src/steps/raw.cpp): the rows loaded
    -- before that have theirs masked here, only the rows that hold one rewritten.
    UPDATE ONLY sicoop.raw_associado r SET nome = sicoop._redact_card_numbers(r.nome),
           estado_civil = sicoop._redact_card_numbers(r.estado_civil), escolaridade = sicoop._redact_card_numbers(r.escolaridade)
    WHERE sicoop.contains_card_number(r.nome) OR sicoop.contains_card_number(r.estado_civil)
       OR sicoop.contains_card_number(r.escolaridade);
    UPDATE ONLY sicoop.raw_conta r SET tipo_conta = sicoop._redact_card_numbers(r.tipo_conta),
           agencia = sicoop._redact_card_numbers(r.agencia), situacao_conta = sicoop._redact_card_numbers(r.situacao_conta)
    WHERE sicoop.contains_card_number(r.tipo_conta) OR sicoop.contains_card_number(r.agencia)
       OR sicoop.contains_card_number(r.situacao_conta);
    UPDATE ONLY sicoop.raw_cartao r SET nome_impresso_cartao = sicoop._redact_card_numbers(r.nome_impresso_cartao),
           bandeira_cartao = sicoop._redact_card_numbers(r.bandeira_cartao), tipo_cartao = sicoop._redact_card_numbers(r.tipo_cartao)
    WHERE sicoop.contains_card_number(r.nome_impresso_cartao) OR sicoop.contains_card_number(r.bandeira_cartao)
       OR sicoop.contains_card_number(r.tipo_cartao);
    UPDATE ONLY sicoop.raw_movimentacao_cartao r SET descricao_movimentacao = sicoop._redact_card_numbers(r.descricao_movimentacao)
    WHERE sicoop.contains_card_number(r.descricao_movimentacao);
    UPDATE ONLY sicoop.warehouse_info SET layout_version = '1.4';
  ELSE
    DELETE FROM pg_catalog.pg_statistic s
    USING pg_catalog.pg_class c WHERE c.oid = s.starelid AND c.relnamespace = 'sicoop'::regnamespace AND c.relname LIKE 'stage\_%';
  END IF;
END
$update$;
