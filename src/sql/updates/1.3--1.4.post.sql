-- sicoop_etl 1.3 -> 1.4, after the functions are (re)created: an operator already in place may
-- call the new functions; the warehouse, if there is one, is checked against 1.4's definition
-- and only then are its rows written.

-- An operator already in place may call the functions that are new in 1.4 (schedule() and its
-- runs do): the operator's functions, as grant_operator grants them (granting twice is harmless).
DO $grant$
DECLARE
  operator regrole;
BEGIN
  SELECT c.relowner::regrole INTO operator FROM pg_class c WHERE c.oid = to_regclass('sicoop.warehouse_info');
  IF operator IS NOT NULL AND operator::oid <> (SELECT e.extowner FROM pg_extension e WHERE e.extname = 'sicoop_etl') THEN
    EXECUTE format('GRANT EXECUTE ON %s TO %s', sicoop._operator_functions(), operator);
  END IF;
END
$grant$;

------------------------------------------------------------------------------------------
-- Last, on a warehouse that exists: sicoop's views and statistics targets put back, then the
-- check against 1.4's definition (an error here undoes the whole update).
------------------------------------------------------------------------------------------
DO $update$
BEGIN
  IF to_regclass('sicoop.warehouse_info') IS NOT NULL THEN
    PERFORM sicoop._check_warehouse_shape();
    -- The two new kinds of rule (no_card_number, trimmed).
    ALTER TABLE sicoop.dq_rule DROP CONSTRAINT dq_rule_kind_check,
      ADD CONSTRAINT dq_rule_kind_check CHECK (kind IN ('not_null', 'not_blank', 'unique', 'references', 'accepted_values',
                                                       'range', 'no_control_chars', 'fits', 'source_drift', 'canonical',
                                                       'reconciliation', 'no_card_number', 'trimmed'));
    PERFORM sicoop._remake_sicoop_definitions(true);
    PERFORM sicoop._check_warehouse_definition('ALTER EXTENSION sicoop_etl UPDATE');
    -- Only now, the warehouse known to be sicoop's, are its rows written.
    PERFORM sicoop._insert_key_rules();
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
