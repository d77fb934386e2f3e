// Step load_trusted: raw_* cleaned into trusted_*, by the rules of the domain:
// text trimmed, inner white space collapsed, upper-cased with accents kept (sicoop.clean_text);
// nome split at the first space into nome / sobrenome; idade_atual_associado in whole years
// on the reference date; card numbers masked to their last four characters.
// Identifiers are carried unchanged: they are keys, and cleaning them could merge two rows.
#include "steps/sql_patterns.hpp"
#include "steps/step.hpp"

namespace sicoop {

Step trusted_step() {
    Step step{"load_trusted", "clean raw_* into trusted_*", {}};
    const std::vector<Column> stamps = {{"run_id", "$2"}, {"updated_at", "$1"}};

    struct Table {
        std::string name, key;
        std::vector<Column> columns;
    };
    const std::vector<Table> tables = {
        {"associado", "id_associado",
         {{"nome", "sicoop.first_name(s.nome)"},
          {"sobrenome", "sicoop.last_name(s.nome)"},
          {"data_nascimento", "s.data_nascimento"},
          {"idade_atual_associado", "sicoop.age_years(s.data_nascimento, $1::date)"},
          {"estado_civil", "sicoop.clean_text(s.estado_civil)"},
          {"escolaridade", "sicoop.clean_text(s.escolaridade)"}}},
        {"conta", "id_conta",
         {{"id_associado", "s.id_associado"},
          {"tipo_conta", "sicoop.clean_text(s.tipo_conta)"},
          {"agencia", "sicoop.clean_text(s.agencia)"},
          {"situacao_conta", "sicoop.clean_text(s.situacao_conta)"},
          {"data_criacao_conta", "s.data_criacao_conta"}}},
        {"cartao", "id_cartao",
         {{"id_conta", "s.id_conta"},
          {"numero_cartao", "sicoop.mask_card(s.numero_cartao)"},
          {"nome_impresso_cartao", "sicoop.clean_text(s.nome_impresso_cartao)"},
          {"bandeira_cartao", "sicoop.clean_text(s.bandeira_cartao)"},
          {"tipo_cartao", "sicoop.clean_text(s.tipo_cartao)"},
          {"data_emissao", "s.data_emissao"}}},
        {"movimentacao_cartao", "id_movimentacao_cartao",
         {{"id_cartao", "s.id_cartao"},
          {"descricao_movimentacao", "sicoop.clean_text(s.descricao_movimentacao)"},
          {"valor_movimentacao", "s.valor_movimentacao"},
          {"data_movimentacao", "s.data_movimentacao"}}},
    };
    for (const Table& t : tables) {
        const std::string raw = "sicoop.raw_" + t.name;
        const std::string trusted = "sicoop.trusted_" + t.name;
        step.actions.push_back(sql_action(count_read_sql(raw)));
        step.actions.push_back(sql_action(merge_changed_sql(trusted, t.key, t.columns, stamps, raw + " s")));
        step.actions.push_back(sql_action(delete_missing_sql(trusted, t.key, raw)));
    }
    return step;
}

}  // namespace sicoop
