-- The views: the flat view (the data scientists' CSV), the analysts' BI views and progress,
-- with the comments that document the warehouse's tables for BI tools.

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
REVOKE ALL ON FUNCTION sicoop._remake_views(boolean) FROM PUBLIC;

-- The flat file's view, as sicoop defines it (revoke_operator puts it back so, whatever the
-- operator made of it).
CREATE OR REPLACE FUNCTION _create_flat_view() RETURNS void
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
REVOKE ALL ON FUNCTION sicoop._create_flat_view() FROM PUBLIC;

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
REVOKE ALL ON FUNCTION sicoop._create_bi_views() FROM PUBLIC;

-- What BI tools show of the star schema, the flat file's view and the analysts' views: a
-- description of every table, view and column, in the cooperative's words.
CREATE OR REPLACE FUNCTION _comment_warehouse() RETURNS void
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
REVOKE ALL ON FUNCTION sicoop._comment_warehouse() FROM PUBLIC;
