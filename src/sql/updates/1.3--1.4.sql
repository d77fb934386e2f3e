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
--
-- This file holds what must change before the functions are (re)created: what 1.4 drops, and
-- the extension's own tables. The build (src/sql/assemble.sh) appends every function source
-- of src/sql/, then updates/1.3--1.4.post.sql: the warehouse's data changes and checks.

DROP FUNCTION sicoop._check_handover(regrole);
-- (an extension member: dropped with the update; the definition replaces what it recorded)
DROP TABLE sicoop.operator_handover;
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
