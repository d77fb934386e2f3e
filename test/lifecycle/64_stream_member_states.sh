#!/usr/bin/env bash
# A member changed several times within one micro-batch (issue 25, finding 6: a repeated member
# cut the batch, and a backlog drained at 70 changes a batch). Two warehouses follow one source:
#   - the one under test gathers every change below in one batch (sicoop.stream_interval 3 s);
#   - the reference applies each source transaction as a batch of its own
#     (sicoop.stream_batch_changes 1): what "one batch per change" gives.
# Each member's versions (and their vigência to the microsecond: the source's commit times),
# the rejects, the rules' counts, raw, trusted and the facts' member versions must be the same
# in both, and the one under test must have applied it all in one batch.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SRC=sicoop_states_src DW=sicoop_states_dw ONE=sicoop_states_one

stop_one() { end_stream "$1"; drop_slot "$2" 0.3; }  # stop_one <db> <slot>
cleanup() { stop_one "$DW" sicoop_states_dw; stop_one "$ONE" sicoop_states_one; drop_db "$DW"; drop_db "$ONE"; drop_db "$SRC"; }
cleanup
trap 'cleanup; rm -rf "$WORK"' EXIT

make_source "$SRC" 2000
q -d "$SRC" -c "$PUBLISH_SOURCE"
make_warehouse "$DW" "$SRC"
make_warehouse "$ONE" "$SRC"
q -d postgres -c "ALTER DATABASE $DW SET sicoop.stream_interval = '3s'" \
  -c "ALTER DATABASE $ONE SET sicoop.stream_batch_changes = 1" >/dev/null
val "$DW" "SELECT sicoop.start_stream('sicoop_states_dw')" >/dev/null
val "$ONE" "SELECT sicoop.start_stream('sicoop_states_one')" >/dev/null
streaming() { wait_state "$1" streaming; }
ok_run 'the warehouse under test streams' streaming "$DW"
ok_run 'the reference warehouse (a batch per source transaction) streams' streaming "$ONE"
# Both have applied everything up to the source's position now (idle: nothing pending).
caught_up() {  # caught_up <db> <lsn>
  for _ in $(seq 600); do
    [ "$(val "$1" "SELECT (applied_lsn >= '$2'::pg_lsn)::text FROM sicoop.stream_state")" = true ] && return 0
    sleep 0.1
  done
  echo "# $1 did not catch up: $(val "$1" "SELECT state || ' ' || coalesce(error_message, '') FROM sicoop.stream_status()")"
  return 1
}
start_lsn=$(val "$SRC" "SELECT pg_current_wal_lsn()")
caught_up "$DW" "$start_lsn"
caught_up "$ONE" "$start_lsn"
sleep 1.5  # (the idle check records the position; a first batch after the sync is then a fresh one)
run_dw=$(val "$DW" "SELECT max(run_id) FROM sicoop.run_log")
run_one=$(val "$ONE" "SELECT max(run_id) FROM sicoop.run_log")

# Each -c is a source transaction of its own (15 with changes), all within the 3 s window:
#   ASSOC-00000005: five updates -- historized and type 1 attributes; the third has a blank
#     name (rule associado_nome_not_blank rejects it: the member is gone from that commit until
#     the fourth) -- and a movement of its card between the second and the third;
#   ASSOC-00000006: changed, then back to its state before the batch (trusted ends unchanged);
#   ASSOC-NOVO-S: inserted, changed, deleted and inserted again;
#   ASSOC-00000008: changed, then its last state rejected (nascimento in the future).
q -d "$SRC" \
  -c "UPDATE associado SET estado_civil = 'Casado' WHERE id_associado = 'ASSOC-00000005'" \
  -c "UPDATE associado SET escolaridade = 'Mestrado', nome = 'Joana Prado' WHERE id_associado = 'ASSOC-00000005'" \
  -c "INSERT INTO movimentacao_cartao VALUES ('MOV-ST-1', 'CARTAO-00000005', 'entre versões', 12.5, now()::timestamp)" \
  -c "UPDATE associado SET nome = '   ', estado_civil = 'Divorciado' WHERE id_associado = 'ASSOC-00000005'" \
  -c "UPDATE associado SET nome = 'Joana Reis', estado_civil = 'Viúva' WHERE id_associado = 'ASSOC-00000005'" \
  -c "UPDATE associado SET estado_civil = 'Casada' WHERE id_associado = 'ASSOC-00000005'" \
  -c "INSERT INTO movimentacao_cartao VALUES ('MOV-ST-2', 'CARTAO-00000005', 'depois', 7, now()::timestamp)" \
  -c "CREATE TEMP TABLE before6 AS SELECT estado_civil FROM associado WHERE id_associado = 'ASSOC-00000006'" \
  -c "UPDATE associado SET estado_civil = 'Viúvo' WHERE id_associado = 'ASSOC-00000006'" \
  -c "UPDATE associado SET estado_civil = (SELECT estado_civil FROM before6) WHERE id_associado = 'ASSOC-00000006'" \
  -c "INSERT INTO associado VALUES ('ASSOC-NOVO-S', 'Rui Novo', '1980-05-05', 'Solteiro', 'Fundamental')" \
  -c "UPDATE associado SET escolaridade = 'Superior' WHERE id_associado = 'ASSOC-NOVO-S'" \
  -c "DELETE FROM associado WHERE id_associado = 'ASSOC-NOVO-S'" \
  -c "INSERT INTO associado VALUES ('ASSOC-NOVO-S', 'Rui Novo', '1980-05-05', 'Casado', 'Superior')" \
  -c "UPDATE associado SET estado_civil = 'Solteiro' WHERE id_associado = 'ASSOC-00000008'" \
  -c "UPDATE associado SET data_nascimento = current_date + 30 WHERE id_associado = 'ASSOC-00000008'"
end_lsn=$(val "$SRC" "SELECT pg_current_wal_lsn()")
ok_run 'the warehouse under test applies the changes' caught_up "$DW" "$end_lsn"
ok_run 'the reference applies them' caught_up "$ONE" "$end_lsn"

is "$(val "$DW" "SELECT count(*) || ' batch, ' || sum((detail ->> 'transactions')::int) || ' transactions'
                 FROM sicoop.run_log WHERE step = 'stream' AND run_id > $run_dw")" '1 batch, 15 transactions' \
   'repeated members do not cut the batch: one micro-batch holds all 15 source transactions'
is "$(val "$ONE" "SELECT count(*) FROM sicoop.run_log WHERE step = 'stream' AND run_id > $run_one")" 15 \
   'the reference applied them one batch each'

members="'ASSOC-00000005', 'ASSOC-00000006', 'ASSOC-NOVO-S', 'ASSOC-00000008'"
versions() {
  val "$1" "SELECT string_agg(format('%s [%s, %s) %s %s %s %s %s %s %s', id_associado, inicio_vigencia_registro_associado,
                                     fim_vigencia_registro_associado, registro_ativo_associado, estado_civil_associado,
                                     escolaridade_associado, idade_atual_associado, nome_associado, sobrenome_associado,
                                     data_nascimento_associado), E'\n' ORDER BY id_associado, inicio_vigencia_registro_associado)
            FROM sicoop.dim_associado WHERE id_associado IN ($members)"
}
versions "$DW" >"$WORK/dw_versions"
versions "$ONE" >"$WORK/one_versions"
same_file "$WORK/one_versions" "$WORK/dw_versions" \
  'each member has the versions a batch per change gives: same attributes, same vigência to the microsecond'
is "$(val "$DW" "SELECT string_agg(estado_civil_associado || ' ' || escolaridade_associado, ' > ' ORDER BY inicio_vigencia_registro_associado)
                 FROM sicoop.dim_associado WHERE id_associado = 'ASSOC-00000005'
                   AND fim_vigencia_registro_associado > now() - interval '1 hour'")" \
   'SOLTEIRO(A) ENSINO FUNDAMENTAL > CASADO(A) ENSINO FUNDAMENTAL > CASADO(A) MESTRADO > VIÚVO(A) MESTRADO > CASADO(A) MESTRADO' \
   'ASSOC-00000005: a version per accepted state (after the one the batch closed)'
is "$(val "$DW" "SELECT string_agg(n.estado_civil_associado, ',') FROM sicoop.dim_associado n
                 WHERE n.id_associado = 'ASSOC-00000005' AND n.inicio_vigencia_registro_associado > now() - interval '1 hour'
                   AND NOT EXISTS (SELECT 1 FROM sicoop.dim_associado p WHERE p.id_associado = n.id_associado
                                   AND p.fim_vigencia_registro_associado = n.inicio_vigencia_registro_associado)")" 'VIÚVO(A)' \
   'the rejected state leaves a gap: the member was out of the warehouse from its commit to the next'
is "$(val "$DW" "SELECT string_agg(DISTINCT nome_associado || ' ' || sobrenome_associado, ',') FROM sicoop.dim_associado
                 WHERE id_associado = 'ASSOC-00000005'")" 'JOANA REIS' 'type 1: every version has the last accepted name'
ok_run 'no two versions overlap (check_vigencia)' q -d "$DW" -Atc "SELECT sicoop.check_vigencia()"

rejects() { val "$1" "SELECT string_agg(record_id || ' ' || rule_name || ' ' || record::text, E'\n' ORDER BY record_id)
                      FROM sicoop.reject WHERE table_name = 'associado'"; }
is "$(rejects "$DW")" "$(rejects "$ONE")" 'the same rejects (only a last state rejected stays: ASSOC-00000008)'
is "$(val "$DW" "SELECT string_agg(record_id, ',') FROM sicoop.reject WHERE table_name = 'associado'")" ASSOC-00000008 \
   'ASSOC-00000008 is rejected, ASSOC-00000005 (fixed by its next state) is not'
counts() { val "$1" "SELECT string_agg(rule_name || ' ' || failed, ', ' ORDER BY rule_name)
                     FROM (SELECT rule_name, sum(rows_failed) AS failed FROM sicoop.dq_result
                           WHERE table_name = 'associado' AND run_id > $2 GROUP BY 1) x"; }
is "$(counts "$DW" "$run_dw")" "$(counts "$ONE" "$run_one")" \
   'the rules count the same failures (the rejected earlier state counted in the batch)'
is "$(counts "$DW" "$run_dw")" 'associado_nascimento_range 1, associado_nome_not_blank 1' 'one of each'

layer() { val "$1" "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM (SELECT $2) t"; }
for what in "id_associado, nome, data_nascimento, estado_civil, escolaridade FROM sicoop.raw_associado" \
            "id_associado, nome, sobrenome, data_nascimento, idade_atual_associado, estado_civil, escolaridade FROM sicoop.trusted_associado" \
            "f.id_movimentacao_cartao, d.id_associado, d.inicio_vigencia_registro_associado, f.valor_movimentacao
             FROM sicoop.fato_movimentacao_cartao f JOIN sicoop.dim_associado d USING (sk_associado)"; do
  is "$(layer "$DW" "$what")" "$(layer "$ONE" "$what")" "the same: ${what%% FROM*} FROM ${what##* FROM }"
done
is "$(val "$DW" "SELECT d.estado_civil_associado || ' ' || d.escolaridade_associado FROM sicoop.fato_movimentacao_cartao f
                 JOIN sicoop.dim_associado d USING (sk_associado) WHERE f.id_movimentacao_cartao = 'MOV-ST-1'")" 'CASADO(A) MESTRADO' \
   'a movement committed between two states points to the version of its time'

finish
