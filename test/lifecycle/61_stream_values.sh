#!/usr/bin/env bash
# The stream's data plane never stops on a value and never shows one (issue 24, finding 4), on
# real logical replication. The source changes column types under a running stream (an amount
# and a birth date become text, a name unbounded) and writes values that fit no warehouse
# column -- words with a CPF and a password in an amount, an impossible date, an amount past
# numeric's range, NaN, a name too long -- among good rows, in one transaction and in later ones:
#   - the stream stays streaming and the good rows of the same batch and later batches load;
#   - each bad row is in sicoop.reject with its rule (fits) and reason, naming the column;
#   - no value reaches stream_state, run_log, reject.reason or the server log;
#   - fixed at the source, the rows load and leave the rejects;
#   - an error no rule foresaw (a value refused by the stage itself) stops the stream with its
#     SQLSTATE and a message without the value, in stream_state and the log.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SRC=sicoop_values_src DW=sicoop_values_dw SLOT=sicoop_stream_values
SERVER_LOG=$(readlink -f "$REPO/.pgdata")/data/server.log

cleanup() { end_stream "$DW"; drop_slot "$SLOT"; }
drop_db "$DW"
cleanup
trap 'cleanup; drop_db "$DW"; drop_db "$SRC"; rm -rf "$WORK"' EXIT

make_source "$SRC" 2000
q -d "$SRC" -c "$PUBLISH_SOURCE"
make_warehouse "$DW" "$SRC"

# The amount as text (the column's type changes below); a failed stream is not waited for, and
# only its SQLSTATE is shown (no value may show).
MARK_AMOUNT="'1'" MARK_DETAIL=error_sqlstate MARK_UNTIL_FAILED=1
marker() { mark_and_wait "$SRC" MOV-MARK 300 "$DW"; }  # a movement written at the source now reaches the fact
state() { val "$DW" "SELECT state FROM sicoop.stream_status()"; }
in_fact() { val "$DW" "SELECT string_agg(id_movimentacao_cartao || '=' || valor_movimentacao, ' ' ORDER BY id_movimentacao_cartao)
                       FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao LIKE 'MOV-V-%'"; }
# Where a value could show: the stream's state, the run log, the rejects' reasons, and the
# server log since the test began.
LOG_START=$(stat -c %s "$SERVER_LOG")
shown() {  # shown <value>: where it shows, if anywhere
  local where=''
  [ "$(val "$DW" "SELECT count(*) FROM sicoop.stream_state WHERE concat_ws(' ', error_message, error_hint, error_sqlstate) LIKE '%' || \$\$$1\$\$ || '%'")" = 0 ] || where+=' stream_state'
  [ "$(val "$DW" "SELECT count(*) FROM sicoop.run_log r WHERE r::text LIKE '%' || \$\$$1\$\$ || '%'")" = 0 ] || where+=' run_log'
  [ "$(val "$DW" "SELECT count(*) FROM sicoop.reject WHERE reason LIKE '%' || \$\$$1\$\$ || '%'")" = 0 ] || where+=' reject.reason'
  tail -c +"$((LOG_START + 1))" "$SERVER_LOG" | grep -qF -- "$1" && where+=' server.log'
  echo "${where:- nowhere}"
}

val "$DW" "SELECT sicoop.start_stream('$SLOT')" >/dev/null
for _ in $(seq 300); do [ "$(state)" = streaming ] && break; sleep 0.1; done
is "$(state)" streaming 'the stream starts on a generated source'

# 1. Column types change at the source under the stream; bad values among good ones.
q -d "$SRC" -c "ALTER TABLE movimentacao_cartao ALTER COLUMN valor_movimentacao TYPE text" \
            -c "ALTER TABLE associado ALTER COLUMN data_nascimento TYPE text" \
            -c "ALTER TABLE associado ALTER COLUMN nome TYPE text"
q -d "$SRC" >/dev/null <<'SQL'
BEGIN;
INSERT INTO movimentacao_cartao VALUES ('MOV-V-1', 'CARTAO-00000001', 'boa', '12.50', now()::timestamp);
INSERT INTO movimentacao_cartao VALUES ('MOV-V-BAD', 'CARTAO-00000001', 'ruim', 'CPF 123.456.789-09 senha hunter2', now()::timestamp);
INSERT INTO movimentacao_cartao VALUES ('MOV-V-2', 'CARTAO-00000002', 'boa', '7.25', now()::timestamp);
COMMIT;
BEGIN;
INSERT INTO movimentacao_cartao VALUES ('MOV-V-HUGE', 'CARTAO-00000001', 'enorme', '9e999999', now()::timestamp);
INSERT INTO movimentacao_cartao VALUES ('MOV-V-NAN', 'CARTAO-00000001', 'nan', 'NaN', now()::timestamp);
INSERT INTO movimentacao_cartao VALUES ('MOV-V-3', 'CARTAO-00000003', 'boa', '3.00', now()::timestamp);
COMMIT;
INSERT INTO associado VALUES ('ASSOC-V-DATA', 'Data Impossivel', '2025-02-30', 'Solteiro', 'Superior');
INSERT INTO associado VALUES ('ASSOC-V-LONGO', repeat('Nome Comprido ', 30), '1980-01-01', 'Solteiro', 'Superior');
INSERT INTO movimentacao_cartao VALUES ('MOV-V-4', 'CARTAO-00000004', 'boa', '4.00', now()::timestamp);
SQL
ok_run 'the stream goes on past values that fit no column (a marker row reaches the fact)' marker
is "$(state)" streaming 'and it is still streaming'
is "$(in_fact)" 'MOV-V-1=12.50 MOV-V-2=7.25 MOV-V-3=3.00 MOV-V-4=4.00' \
   'the good rows of the same transactions and of later ones are in the fact'
is "$(val "$DW" "SELECT string_agg(record_id || ':' || rule_name, ' ' ORDER BY record_id) FROM sicoop.reject
                 WHERE record_id LIKE 'MOV-V-%' OR record_id LIKE 'ASSOC-V-%'")" \
   'ASSOC-V-DATA:associado_fits ASSOC-V-LONGO:associado_fits MOV-V-BAD:movimentacao_fits MOV-V-HUGE:movimentacao_fits MOV-V-NAN:movimentacao_fits' \
   "each bad row is a reject of its table's fits rule"
is "$(val "$DW" "SELECT count(*) FROM sicoop.reject WHERE record_id = 'MOV-V-BAD' AND reason LIKE '%valor_movimentacao is not a valid numeric%'")" 1 \
   'the reason names the column and the type its value is not (words in an amount)'
is "$(val "$DW" "SELECT count(*) FROM sicoop.reject WHERE record_id = 'ASSOC-V-DATA' AND reason LIKE '%data_nascimento is not a valid date%'")" 1 \
   'an impossible date: its column named'
is "$(val "$DW" "SELECT count(*) FROM sicoop.reject WHERE record_id = 'MOV-V-HUGE' AND reason LIKE '%valor_movimentacao is not a valid numeric%'")" 1 \
   "an amount past numeric's range: its column named"
is "$(val "$DW" "SELECT count(*) FROM sicoop.reject WHERE record_id = 'ASSOC-V-LONGO' AND reason LIKE '%longer than the warehouse%'")" 1 \
   'a name too long for its column: rejected as a batch run rejects it'
is "$(val "$DW" "SELECT count(*) FROM sicoop.raw_associado WHERE id_associado LIKE 'ASSOC-V-%'")" 0 'no bad member reached raw'
is "$(val "$DW" "SELECT count(*) FROM sicoop.stage_unfit")" 0 "the batch's record of unfit values left with it"
for v in hunter2 123.456.789 2025-02-30 9e999999; do
  is "$(shown "$v")" ' nowhere' "the value '$v' shows nowhere (stream_state, run_log, reject.reason, server log)"
done

# 2. Fixed at the source, the rows load and leave the rejects.
q -d "$SRC" -c "UPDATE movimentacao_cartao SET valor_movimentacao = '42.00' WHERE id_movimentacao_cartao = 'MOV-V-BAD'" \
            -c "UPDATE associado SET data_nascimento = '1980-02-28' WHERE id_associado = 'ASSOC-V-DATA'"
ok_run 'the fixes stream in' marker
is "$(val "$DW" "SELECT valor_movimentacao FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-V-BAD'")" 42.00 \
   'the amount fixed at the source loads'
is "$(val "$DW" "SELECT data_nascimento FROM sicoop.raw_associado WHERE id_associado = 'ASSOC-V-DATA'")" 1980-02-28 \
   'the date fixed at the source loads'
is "$(val "$DW" "SELECT string_agg(record_id, ' ' ORDER BY record_id) FROM sicoop.reject
                 WHERE record_id LIKE 'MOV-V-%' OR record_id LIKE 'ASSOC-V-%'")" 'ASSOC-V-LONGO MOV-V-HUGE MOV-V-NAN' \
   'and both left the rejects'

# 3. An error no rule foresees: a value the stage itself refuses (a check of the test's on the
#    stage, which casts it: planted with the guard off, as the guard refuses it). The stream
#    stops, with the SQLSTATE and a message without the value.
q -d "$DW" -c "ALTER EVENT TRIGGER sicoop_guard DISABLE" \
  -c "ALTER TABLE sicoop.stage_movimentacao_cartao ADD CONSTRAINT test_probe
        CHECK (descricao_movimentacao NOT LIKE 'ZZPROBE%' OR descricao_movimentacao::numeric > 0)" \
  -c "ALTER EVENT TRIGGER sicoop_guard ENABLE"
{
  q -d "$SRC" -c "INSERT INTO movimentacao_cartao VALUES ('MOV-V-PROBE', 'CARTAO-00000001', 'ZZPROBE senha swordfish', '1', now()::timestamp)"
  for _ in $(seq 300); do [ "$(state)" = failed ] && break; sleep 0.1; done
  is "$(val "$DW" "SELECT state || ' ' || error_sqlstate FROM sicoop.stream_status()")" 'failed 22P02' \
     'an unforeseen error stops the stream with its SQLSTATE'
  is "$(val "$DW" "SELECT error_message FROM sicoop.stream_status()")" 'invalid input syntax for type numeric: "..."' \
     'and a message without the value'
  is "$(shown swordfish)" ' nowhere' 'the value shows nowhere (stream_state, run_log, reject.reason, server log)'
  q -d "$DW" -c "ALTER TABLE sicoop.stage_movimentacao_cartao DROP CONSTRAINT test_probe"
  val "$DW" "SELECT sicoop.start_stream('$SLOT')" >/dev/null
  ok_run 'started again, the stream applies the row' marker
}

finish
