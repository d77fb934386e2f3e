-- pg_temp.layer_query(layer): the query giving a warehouse layer as comparable text rows,
-- with no surrogate key values, run ids or load stamps, and none of what only history
-- explains (SCD2 versions other than the current one; the card, account or member a
-- movement points to once that row left the source). Used to compare a warehouse with a
-- from-scratch load of the same source (test/pgtap/60_incremental.sql, test/lifecycle/).
CREATE FUNCTION pg_temp.layer_query(layer text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE layer
    WHEN 'trusted_associado' THEN 'SELECT (id_associado, nome, sobrenome, data_nascimento, idade_atual_associado, estado_civil, escolaridade)::text FROM sicoop.trusted_associado'
    WHEN 'trusted_conta' THEN 'SELECT (id_conta, id_associado, tipo_conta, agencia, situacao_conta, data_criacao_conta)::text FROM sicoop.trusted_conta'
    WHEN 'trusted_cartao' THEN 'SELECT (id_cartao, id_conta, numero_cartao, nome_impresso_cartao, bandeira_cartao, tipo_cartao, data_emissao)::text FROM sicoop.trusted_cartao'
    WHEN 'trusted_movimentacao_cartao' THEN 'SELECT (id_movimentacao_cartao, id_cartao, descricao_movimentacao, valor_movimentacao, data_movimentacao)::text FROM sicoop.trusted_movimentacao_cartao'
    WHEN 'dim_conta' THEN 'SELECT (id_conta, id_associado, tipo_conta, agencia_conta, situacao_conta, data_criacao_conta)::text FROM sicoop.dim_conta WHERE id_conta IN (SELECT id_conta FROM sicoop.trusted_conta)'
    WHEN 'dim_cartao' THEN 'SELECT (id_cartao, id_conta, numero_cartao, nome_impresso_cartao, bandeira_cartao, tipo_cartao, data_emissao_cartao)::text FROM sicoop.dim_cartao WHERE id_cartao IN (SELECT id_cartao FROM sicoop.trusted_cartao)'
    WHEN 'dim_associado' THEN 'SELECT (id_associado, nome_associado, sobrenome_associado, data_nascimento_associado, idade_atual_associado, estado_civil_associado, escolaridade_associado)::text FROM sicoop.dim_associado WHERE registro_ativo_associado AND id_associado IS NOT NULL'
    WHEN 'fato' THEN $q$
      SELECT (f.id_movimentacao_cartao, k.card, k.account, k.member,
              d.data, f.descricao_movimentacao, f.valor_movimentacao, f.data_hora_movimentacao)::text
      FROM sicoop.fato_movimentacao_cartao f
      JOIN sicoop.dim_cartao c USING (sk_cartao) JOIN sicoop.dim_conta co USING (sk_conta)
      JOIN sicoop.dim_associado a USING (sk_associado) JOIN sicoop.dim_data d USING (sk_data)
      CROSS JOIN LATERAL (
        SELECT c.id_cartao IN (SELECT id_cartao FROM sicoop.trusted_cartao) AS card_known,
               co.id_conta IN (SELECT id_conta FROM sicoop.trusted_conta) AS account_known,
               a.id_associado IN (SELECT id_associado FROM sicoop.trusted_associado) AS member_known) known
      CROSS JOIN LATERAL (
        SELECT CASE WHEN card_known THEN c.id_cartao END AS card,
               CASE WHEN card_known AND account_known THEN co.id_conta END AS account,
               CASE WHEN card_known AND account_known AND member_known THEN a.id_associado END AS member) k$q$
  END
$$;

-- A layer's row count and a checksum of its rows (for comparisons across databases).
CREATE FUNCTION pg_temp.layer_digest(layer text, OUT n bigint, OUT digest text) LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('SELECT count(*), md5(coalesce(string_agg(r, E''\n'' ORDER BY r), '''')) FROM (%s) q(r)',
                 pg_temp.layer_query(layer)) INTO n, digest;
END
$$;
