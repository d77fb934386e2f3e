// Step load_fato: fato_movimentacao_cartao, one row per movement, loaded incrementally.
// Keys: the card's dim_cartao row, its account's dim_conta row, and the dim_associado version
// valid at the movement's time (a naive local time, read in the cooperative's time zone, $3). What is not (yet) known lands on the unknown member (-1)
// instead of being dropped; because every run recomputes the keys, a later run re-keys such a
// fact once the late row has arrived. New movements are inserted, changed ones (amount,
// description, time or keys) updated and re-stamped with the reference time; a movement gone
// from the source is deleted. Nothing else is touched, so a rerun with no change changes nothing.
#include "steps/sql_patterns.hpp"
#include "steps/step.hpp"

namespace sicoop {

Step fato_step() {
    Step step{"load_fato", "load fato_movimentacao_cartao incrementally", {}};
    const std::string keyed_movements = R"SQL((
  SELECT m.id_movimentacao_cartao,
         coalesce(a.sk_associado, -1) AS sk_associado,
         coalesce(dc.sk_cartao, -1) AS sk_cartao,
         coalesce(dco.sk_conta, -1) AS sk_conta,
         to_char(m.data_movimentacao, 'YYYYMMDD')::int AS sk_data,
         m.descricao_movimentacao,
         m.valor_movimentacao,
         m.data_movimentacao
  FROM sicoop.trusted_movimentacao_cartao m
  LEFT JOIN sicoop.trusted_cartao tc ON tc.id_cartao = m.id_cartao
  LEFT JOIN sicoop.dim_cartao dc ON dc.id_cartao = m.id_cartao
  LEFT JOIN sicoop.trusted_conta tco ON tco.id_conta = tc.id_conta
  LEFT JOIN sicoop.dim_conta dco ON dco.id_conta = tc.id_conta
  LEFT JOIN sicoop.dim_associado a
         ON a.id_associado = tco.id_associado
        AND (m.data_movimentacao AT TIME ZONE $3) >= a.inicio_vigencia_registro_associado
        AND (m.data_movimentacao AT TIME ZONE $3) < a.fim_vigencia_registro_associado) s)SQL";

    step.actions.push_back(sql_action(count_read_sql("sicoop.trusted_movimentacao_cartao")));
    step.actions.push_back(sql_action(merge_changed_sql(
        "sicoop.fato_movimentacao_cartao", "id_movimentacao_cartao",
        {{"sk_associado", "s.sk_associado"},
         {"sk_cartao", "s.sk_cartao"},
         {"sk_conta", "s.sk_conta"},
         {"sk_data", "s.sk_data"},
         {"descricao_movimentacao", "s.descricao_movimentacao"},
         {"valor_movimentacao", "s.valor_movimentacao"},
         {"data_hora_movimentacao", "s.data_movimentacao"}},
        {{"data_hora_atualizacao_registro", "$1"}}, keyed_movements)));
    step.actions.push_back(sql_action(delete_missing_sql(
        "sicoop.fato_movimentacao_cartao", "id_movimentacao_cartao", "sicoop.trusted_movimentacao_cartao")));
    // Facts that still point at an unknown member, after this run.
    step.actions.push_back(sql_action(
        "SELECT count(*) AS rows_unknown FROM sicoop.fato_movimentacao_cartao\n"
        "WHERE sk_associado = -1 OR sk_cartao = -1 OR sk_conta = -1"));
    return step;
}

}  // namespace sicoop
