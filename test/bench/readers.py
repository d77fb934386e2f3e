#!/usr/bin/python3
"""BI readers for the benchmark: loops over dashboard-style queries on the star schema until
the stop file appears, and prints how long each took (count, p50, p99, max, in ms) as one line.

    readers.py "<libpq conninfo>" <stop file> <label>

Run with Debian's python3 (python3-psycopg). The queries are index lookups and small scans, so
that a lock wait shows up as latency: the same queries on an idle warehouse are the baseline.
Each query may wait at most 1 s for a lock (lock_timeout): those that would wait longer are
counted. (Latency during a first load also includes reading past the rows the load has
written but not committed.)"""
import os
import sys
import time

import psycopg

QUERIES = [
    ("fact by key", "SELECT * FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = %s", ("MOV-0000000042",)),
    ("member's current version", "SELECT * FROM sicoop.dim_associado WHERE id_associado = %s AND registro_ativo_associado", ("ASSOC-00000042",)),
    ("a card", "SELECT * FROM sicoop.dim_cartao WHERE id_cartao = %s", ("CARTAO-00000042",)),
    ("an account", "SELECT * FROM sicoop.dim_conta WHERE id_conta = %s", ("CONTA-00000042",)),
    ("latest days", "SELECT sk_data, dia_da_semana FROM sicoop.dim_data ORDER BY sk_data DESC LIMIT 7", None),
    ("a card's spend", "SELECT count(*), sum(valor_movimentacao) FROM sicoop.fato_movimentacao_cartao WHERE sk_cartao = %s", (42,)),
    ("recent updates", "SELECT count(*) FROM sicoop.fato_movimentacao_cartao WHERE data_hora_atualizacao_registro > now() + interval '1 day'", None),
]


def main():
    conninfo, stop_file, label = sys.argv[1:4]
    latencies = []
    worst = ("", 0.0)
    lock_waits = 0
    with psycopg.connect(conninfo, autocommit=True, application_name="sicoop_bench_reader") as conn:
        # A query that waits more than 1 s for a lock fails: counted, the target being none.
        conn.execute("SET lock_timeout = '1s'")
        while not os.path.exists(stop_file):
            for name, sql, params in QUERIES:
                t0 = time.perf_counter()
                try:
                    conn.execute(sql, params).fetchall()
                except psycopg.errors.LockNotAvailable:
                    lock_waits += 1
                ms = (time.perf_counter() - t0) * 1000
                latencies.append(ms)
                if ms > worst[1]:
                    worst = (name, ms)
            time.sleep(0.05)  # a dashboard, not a load test: the readers must not slow the run
    latencies.sort()
    n = len(latencies)
    pick = lambda q: latencies[min(n - 1, int(q * n))] if n else 0.0
    print(f"  readers {label:<28} {n:8d} queries  p50 {pick(0.5):8.1f} ms  p99 {pick(0.99):8.1f} ms  "
          f"max {latencies[-1] if n else 0.0:8.1f} ms  ({worst[0]})  lock waits > 1 s: {lock_waits}")


if __name__ == "__main__":
    main()
