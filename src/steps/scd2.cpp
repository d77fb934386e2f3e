// Step scd2_associado: dim_associado as a slowly changing dimension of type 2.
//
// Historized attributes: estado civil, escolaridade and idade (the original design's choice).
// nome, sobrenome and data de nascimento are type 1: corrected in place on every version.
// At reference time T ($1):
//   - a member whose historized attributes changed has its current version closed at T and
//     a new version opened from T (half-open vigência [inicio, fim): no gap, no overlap);
//   - if the current version itself was opened at T (a second run at the same instant), it is
//     corrected in place instead, so no empty version is ever made;
//   - a member gone from the source has its current version closed at T, with no new one;
//   - a member seen for the first time gets a version valid from 1900-01-01, so movements
//     older than the first load still find it; a member that comes back gets one from T.
// 1900-01-01 and 9999-12-31 are midnights in the cooperative's time zone ($3), as ages are
// taken on the reference time's date there.
// Only members whose trusted row changed since this step last ran ($4) are compared; gone
// members are found by comparing every current version with trusted (N/25 rows).
// Every version whose vigência this step opens or closes is stamped with the run id, which
// load_fato follows to re-key the movements from that time on.
// sicoop.check_vigencia() at the end and the partial unique index guarantee, whatever
// happens, no overlapping versions and at most one current version per member.
#include "steps/pure_cpp.hpp"

#include "steps/step.hpp"

namespace sicoop {

namespace {

// The member's historized attributes, as they are in the dimension (d) and in the source (s).
const char* const kDimHistorized =
    "(d.estado_civil_associado, d.escolaridade_associado, d.idade_atual_associado)";
const char* const kSourceHistorized =
    "(s.estado_civil, s.escolaridade, sicoop.age_years(s.data_nascimento, ($1 AT TIME ZONE $3)::date))";

}  // namespace

std::vector<Action> plan_scd2(const RunContext& ctx) {
    std::vector<Action> actions;
    const std::string dim_historized = kDimHistorized;
    const std::string src_historized = kSourceHistorized;
    // Members whose trusted row changed since this step last ran (load_trusted also stamps the
    // members whose age moved on); all of them on a full run.
    const std::string changed = ctx.everything() ? "" : " AND s.run_id > $4";

    // Runs go forward in time: closing a version before it started would be a lie.
    actions.push_back(sql_action("SELECT sicoop._check_scd2_reference_time($1)"));

    // A canonical value is a label, not a change in the member's life: when sicoop.canonical_value
    // is edited (the next run is then a full one), every version takes the new label in place
    // (no new version), before the comparison with trusted (which load_trusted re-labelled).
    if (ctx.everything()) actions.push_back(sql_action(R"sql(
WITH relabelled AS (
  UPDATE sicoop.dim_associado d
  SET estado_civil_associado = sicoop._canonical('estado_civil', d.estado_civil_associado),
      escolaridade_associado = sicoop._canonical('escolaridade', d.escolaridade_associado)
  WHERE d.id_associado IS NOT NULL
    AND (d.estado_civil_associado, d.escolaridade_associado) IS DISTINCT FROM
        (sicoop._canonical('estado_civil', d.estado_civil_associado), sicoop._canonical('escolaridade', d.escolaridade_associado))
  RETURNING 1)
SELECT count(*) AS rows_updated FROM relabelled)sql"));

    // Read and unchanged are counted before anything changes.
    actions.push_back(sql_action(
        "SELECT count(*) AS rows_read,\n"
        "       count(*) FILTER (WHERE d.sk_associado IS NOT NULL\n"
        "         AND " + dim_historized + " IS NOT DISTINCT FROM " + src_historized + "\n"
        "         AND (d.nome_associado, d.sobrenome_associado, d.data_nascimento_associado)\n"
        "             IS NOT DISTINCT FROM (s.nome, s.sobrenome, s.data_nascimento)) AS rows_unchanged\n"
        "FROM sicoop.trusted_associado s\n"
        "LEFT JOIN sicoop.dim_associado d\n"
        "  ON d.id_associado = s.id_associado AND d.registro_ativo_associado\n"
        "WHERE true" + changed));

    // Type 1 attributes: corrected on every version of the member.
    actions.push_back(sql_action(
        "WITH corrected AS (\n"
        "  UPDATE sicoop.dim_associado d\n"
        "  SET nome_associado = s.nome, sobrenome_associado = s.sobrenome,\n"
        "      data_nascimento_associado = s.data_nascimento, data_hora_atualizacao_registro = $1\n"
        "  FROM sicoop.trusted_associado s\n"
        "  WHERE d.id_associado = s.id_associado" + changed + "\n"
        "    AND (d.nome_associado, d.sobrenome_associado, d.data_nascimento_associado)\n"
        "        IS DISTINCT FROM (s.nome, s.sobrenome, s.data_nascimento)\n"
        "  RETURNING 1)\n"
        "SELECT count(*) AS rows_updated FROM corrected"));

    // A second change at the very instant the current version opened: correct it in place.
    actions.push_back(sql_action(
        "WITH corrected AS (\n"
        "  UPDATE sicoop.dim_associado d\n"
        "  SET estado_civil_associado = s.estado_civil, escolaridade_associado = s.escolaridade,\n"
        "      idade_atual_associado = sicoop.age_years(s.data_nascimento, ($1 AT TIME ZONE $3)::date),\n"
        "      data_hora_atualizacao_registro = $1, run_id = $2\n"
        "  FROM sicoop.trusted_associado s\n"
        "  WHERE d.id_associado = s.id_associado AND d.registro_ativo_associado" + changed + "\n"
        "    AND d.inicio_vigencia_registro_associado = $1\n"
        "    AND " + dim_historized + " IS DISTINCT FROM " + src_historized + "\n"
        "  RETURNING 1)\n"
        "SELECT count(*) AS rows_updated FROM corrected"));

    // Changed members: close the current version at T (the new one is inserted below).
    actions.push_back(sql_action(
        "WITH closed AS (\n"
        "  UPDATE sicoop.dim_associado d\n"
        "  SET fim_vigencia_registro_associado = $1, registro_ativo_associado = false,\n"
        "      data_hora_atualizacao_registro = $1, run_id = $2\n"
        "  FROM sicoop.trusted_associado s\n"
        "  WHERE d.id_associado = s.id_associado AND d.registro_ativo_associado" + changed + "\n"
        "    AND d.inicio_vigencia_registro_associado < $1\n"
        "    AND " + dim_historized + " IS DISTINCT FROM " + src_historized + "\n"
        "  RETURNING 1)\n"
        "SELECT count(*) AS rows_updated FROM closed"));

    // Members gone from the source: close the current version, open none. A current version
    // opened at this very instant never held: it goes, and the member's remaining versions are
    // stamped so that load_fato re-keys the movements that pointed at it.
    actions.push_back(sql_action(
        "WITH dropped AS (\n"
        "  DELETE FROM sicoop.dim_associado d\n"
        "  WHERE d.registro_ativo_associado AND d.id_associado IS NOT NULL\n"
        "    AND d.inicio_vigencia_registro_associado = $1\n"
        "    AND NOT EXISTS (SELECT 1 FROM sicoop.trusted_associado s WHERE s.id_associado = d.id_associado)\n"
        "  RETURNING d.id_associado),\n"
        "stamped AS (\n"
        "  UPDATE sicoop.dim_associado p SET run_id = $2\n"
        "  WHERE p.id_associado IN (SELECT id_associado FROM dropped)\n"
        "  RETURNING 1)\n"
        "SELECT count(*) AS rows_deleted FROM dropped"));
    actions.push_back(sql_action(
        "WITH closed AS (\n"
        "  UPDATE sicoop.dim_associado d\n"
        "  SET fim_vigencia_registro_associado = $1, registro_ativo_associado = false,\n"
        "      data_hora_atualizacao_registro = $1, run_id = $2\n"
        "  WHERE d.registro_ativo_associado AND d.id_associado IS NOT NULL\n"
        "    AND d.inicio_vigencia_registro_associado < $1\n"
        "    AND NOT EXISTS (SELECT 1 FROM sicoop.trusted_associado s WHERE s.id_associado = d.id_associado)\n"
        "  RETURNING 1)\n"
        "SELECT count(*) AS rows_deleted FROM closed"));

    // Members without a current version (new, changed, or back): open one.
    actions.push_back(sql_action(
        "WITH opened AS (\n"
        "  INSERT INTO sicoop.dim_associado (id_associado, nome_associado, sobrenome_associado,\n"
        "      data_nascimento_associado, idade_atual_associado, estado_civil_associado,\n"
        "      escolaridade_associado, inicio_vigencia_registro_associado,\n"
        "      fim_vigencia_registro_associado, registro_ativo_associado, data_hora_atualizacao_registro, run_id)\n"
        "  SELECT s.id_associado, s.nome, s.sobrenome, s.data_nascimento,\n"
        "         sicoop.age_years(s.data_nascimento, ($1 AT TIME ZONE $3)::date), s.estado_civil, s.escolaridade,\n"
        "         CASE WHEN s.id_associado IN (SELECT h.id_associado FROM sicoop.dim_associado h\n"
        "                                      WHERE h.id_associado IS NOT NULL)\n"
        "              THEN $1 ELSE timestamp '1900-01-01' AT TIME ZONE $3 END,\n"
        "         timestamp '9999-12-31' AT TIME ZONE $3, true, $1, $2\n"
        "  FROM sicoop.trusted_associado s\n"
        "  WHERE true" + changed + " AND NOT EXISTS (SELECT 1 FROM sicoop.dim_associado d\n"
        "                    WHERE d.id_associado = s.id_associado AND d.registro_ativo_associado)\n"
        // Surrogate keys in business-key order, byte-wise (as dims.cpp): deterministic.
        "  ORDER BY s.id_associado COLLATE \"C\"\n"
        "  RETURNING 1)\n"
        "SELECT count(*) AS rows_inserted FROM opened"));
    // Whatever happened above, no two versions of a changed member may overlap.
    actions.push_back(sql_action("SELECT sicoop.check_vigencia(CASE WHEN $4 = 0 THEN 0 ELSE $2 - 1 END)"));
    // Fresh statistics after a bulk load, so load_fato joins this table the right way round.
    if (ctx.everything()) actions.push_back(sql_action("ANALYZE sicoop.dim_associado"));
    return actions;
}

}  // namespace sicoop
