"""A Python client, as a data scientist's notebook would use sicoop_etl (psycopg 3, Debian's
python3-psycopg): run the pipeline, read an analysts' view, stream the flat file with COPY.
Prints TAP. Usage: client_psycopg.py <conninfo> <output csv>"""
import csv
import sys

import psycopg

conninfo, out_path = sys.argv[1], sys.argv[2]
tests = 0
failed = 0


def ok(cond, what):
    global tests, failed
    tests += 1
    failed += 0 if cond else 1
    print(("ok" if cond else "not ok") + f" {tests} - {what}")


# autocommit: CALL runs outside a transaction block, so each step commits on its own.
with psycopg.connect(conninfo, autocommit=True) as conn:
    conn.execute("SET sicoop.as_of = '2025-08-15'")
    conn.execute("CALL sicoop.run_pipeline()")
    status = conn.execute(
        "SELECT string_agg(status, ',' ORDER BY started_at) FROM sicoop.run_log"
        " WHERE run_id = (SELECT max(run_id) FROM sicoop.run_log)").fetchone()[0]
    ok(status == "succeeded," * 5 + "succeeded", f"psycopg, autocommit: CALL sicoop.run_pipeline() succeeds ({status})")

    rows = conn.execute(
        "SELECT bandeira_cartao, sum(valor_total) FROM sicoop.vw_gasto_bandeira_tipo_cartao GROUP BY 1 ORDER BY 1").fetchall()
    total = conn.execute("SELECT sum(valor_movimentacao) FROM sicoop.fato_movimentacao_cartao").fetchone()[0]
    ok(len(rows) > 0 and sum(r[1] for r in rows) == total,
       f"psycopg: reads spend by card brand ({', '.join(f'{b} {v}' for b, v in rows)}), adding up to the fact's {total}")

    with open(out_path, "wb") as out, conn.cursor() as cur:
        with cur.copy("COPY (SELECT * FROM sicoop.vw_movimentacao_flat) TO STDOUT"
                      " WITH (FORMAT csv, HEADER true, DELIMITER ';', ENCODING 'UTF8')") as copy:
            for chunk in copy:
                out.write(chunk)
    with open(out_path, newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f, delimiter=";"))
    ok(lines[0][:3] == ["nome_associado", "sobrenome_associado", "idade_associado"] and len(lines) == 13,
       f"psycopg: streams the flat file with COPY ({len(lines) - 1} movements, header {';'.join(lines[0][:3])};...)")
    ok(all(not any(ch.isdigit() for ch in row[6][:-4]) for row in lines[1:]),
       "psycopg: the flat file's card numbers are masked")

print(f"1..{tests}")
sys.exit(1 if failed else 0)
