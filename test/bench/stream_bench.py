#!/usr/bin/python3
"""The streaming benchmark (issue 19): make bench-stream N="1000000" [RATES="100 1000 max"] [DURATION=300] [CATCHUP=100000]

For each history size N, on the project's cluster (test/env.sh start; wal_level = logical), in one run:
  1. a synthetic source of N movements (generate_source.sql), published; a warehouse that
     starts its stream (the slot's snapshot, a first load of the N movements);
  2. for each rate (changes per second): pgbench drives a bounded OLTP load on the source for
     DURATION seconds -- movements inserted (in transactions of 5), updated and deleted, cards and
     members changed -- while a probe commits a marker movement every half second and times
     how long it takes to be visible in the warehouse's fact table (source commit to fact row);
     'max' finds the highest rate the stream sustains (its lag stays bounded) by doubling;
  3. it prints, per rate: the rate the source sustained, changes/s the stream applied,
     freshness p50 / p99 / max, the stream worker's CPU (share of one core) and its CPU per
     1,000 changes (the warehouse's work per change, to compare across N);
  4. the batch comparison at 1,000 changes/s: a second warehouse of the same source runs
     CALL sicoop.run_pipeline() back to back (a schedule as tight as it gets) under the same
     load, and the same probe times its freshness.
  5. CATCHUP=<changes> (issue 25): the catch-up speed instead of 2-4. The stream is stopped,
     pgbench commits about that many changes at the source as fast as it can (30% of its
     transactions change a member among 200, so members repeat often within a batch), the
     stream is started again, and the time until it has applied everything is printed as
     changes/s, with the batches it took and where their time went (run_log.detail).
Figures are printed, never asserted: this machine is shared and noisy.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psycopg

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PGBIN = os.environ.get("SICOOP_PGROOT", "") + "/usr/lib/postgresql/15/bin"
PORT = int(os.environ.get("SICOOP_PGPORT", "5499"))
DURATION = int(os.environ.get("DURATION", "300"))
RATES = os.environ.get("RATES", "100 1000 max").split()
SRC, DW, BATCH = "sicoop_sbench_src", "sicoop_sbench_dw", "sicoop_sbench_batch"
SLOT = "sicoop_sbench"
ENV = dict(os.environ, PGHOST="localhost", PGPORT=str(PORT), PGUSER="postgres")


def connect(db, autocommit=True):
    return psycopg.connect(host="localhost", port=PORT, user="postgres", dbname=db, autocommit=autocommit)


def psql(db, *args, quiet=True):
    cmd = [f"{PGBIN}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, *args]
    subprocess.run(cmd, env=ENV, check=True, stdout=subprocess.DEVNULL if quiet else None)


def val(db, sql):
    with connect(db) as c:
        row = c.execute(sql).fetchone()
        return row[0] if row else None


def stop_stream(db):
    try:
        val(db, "SELECT sicoop.stop_stream()")
    except Exception:
        return
    for _ in range(100):
        if val("postgres", f"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'sicoop_etl stream' AND datname = '{db}'") == 0:
            break
        time.sleep(0.2)


def drop_slot():
    with connect("postgres") as c:
        c.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = %s AND active_pid IS NOT NULL", (SLOT,))
        time.sleep(0.5)
        c.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (SLOT,))


def recreate(db):
    with connect("postgres") as c:
        c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {db}")


# The statements the loads below draw from (pgbench script text): five new movements (ids
# MOV-<prefix><client>-<n>), five movements' amounts, a card's printed name.
def new_movements(prefix):
    return (r"""INSERT INTO movimentacao_cartao
SELECT 'MOV-""" + prefix + r"""' || :client_id || '-' || nextval('bench_seq'), 'CARTAO-' || lpad((1 + (:k + i) % :cards)::text, 8, '0'),
       'compra', 10 + i, localtimestamp
FROM generate_series(1, 5) i;
""")


CHANGE_AMOUNTS = r"""UPDATE movimentacao_cartao SET valor_movimentacao = valor_movimentacao + 1
WHERE id_movimentacao_cartao IN ('MOV-' || lpad(:k::text, 10, '0'), 'MOV-' || lpad((:k + 1)::text, 10, '0'),
                                 'MOV-' || lpad((:k + 2)::text, 10, '0'), 'MOV-' || lpad((:k + 3)::text, 10, '0'),
                                 'MOV-' || lpad((:k + 4)::text, 10, '0'));
"""
RENAME_CARD = r"""UPDATE cartao SET nome_impresso_cartao = 'CARTAO ' || :k WHERE id_cartao = 'CARTAO-' || lpad((1 + :k % :cards)::text, 8, '0');
"""

# The load: one pgbench transaction is a few changes; the mix is mostly new movements.
LOAD_SCRIPT = r"""
\set r random(1, 100)
\set k random(1, :movements)
\if :r <= 70
""" + new_movements("B") + r"""\elif :r <= 90
""" + CHANGE_AMOUNTS + r"""\elif :r <= 95
DELETE FROM movimentacao_cartao WHERE id_movimentacao_cartao IN (
  SELECT id_movimentacao_cartao FROM movimentacao_cartao WHERE id_movimentacao_cartao >= 'MOV-' || lpad(:k::text, 10, '0') LIMIT 5);
\elif :r <= 98
""" + RENAME_CARD + r"""\else
UPDATE associado SET escolaridade = 'Rodada ' || :k WHERE id_associado = 'ASSOC-' || lpad((1 + :k % :members)::text, 8, '0');
\endif
"""
CHANGES_PER_TX = 0.70 * 5 + 0.20 * 5 + 0.05 * 5 + 0.03 + 0.02  # about 4.8


# The catch-up load: the changes of the load above, but 30% of the transactions change a
# member's estado civil or escolaridade among 200 "hot" members (frequent repeats), in their own
# source transactions.
CATCHUP_SCRIPT = r"""
\set r random(1, 100)
\set k random(1, :movements)
\set m random(1, 200)
\if :r <= 50
""" + new_movements("C") + r"""\elif :r <= 65
""" + CHANGE_AMOUNTS + r"""\elif :r <= 70
""" + RENAME_CARD + r"""\elif :r <= 85
UPDATE associado SET estado_civil = CASE WHEN estado_civil ILIKE '%casad%' THEN 'Divorciado' ELSE 'casado' END
WHERE id_associado = 'ASSOC-' || lpad(:m::text, 8, '0');
\else
UPDATE associado SET escolaridade = 'Rodada ' || :k WHERE id_associado = 'ASSOC-' || lpad(:m::text, 8, '0');
\endif
"""
CATCHUP_CHANGES_PER_TX = 0.50 * 5 + 0.15 * 5 + 0.05 + 0.30  # about 3.6


def catchup(n, changes):
    """A backlog of about `changes` changes, committed while the stream is stopped, then drained."""
    stop_stream(DW)
    before = val(DW, "SELECT changes_applied FROM sicoop.stream_status()")
    batches0 = val(DW, "SELECT batches_applied FROM sicoop.stream_status()")
    run0 = val(DW, "SELECT coalesce(max(run_id), 0) FROM sicoop.run_log")
    script = tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False)
    script.write(CATCHUP_SCRIPT)
    script.close()
    members = max(n // 25, 1)
    per_client = max(1, round(changes / CATCHUP_CHANGES_PER_TX / 4))
    t = time.time()
    subprocess.run([f"{PGBIN}/pgbench", "-n", "-f", script.name, "-c", "4", "-j", "2", "-t", str(per_client),
                    "-D", f"movements={n}", "-D", f"cards={members * 6 // 5}", SRC],
                   env=ENV, check=True, stdout=subprocess.DEVNULL)
    target = val(SRC, "SELECT pg_current_wal_lsn()::text")
    print(f"  backlog: {4 * per_client} source transactions committed in {time.time() - t:.1f} s, stream stopped")
    sys.stdout.flush()
    # PROFILE=1 (pg_stat_statements preloaded, track = all): the statements the batches spent most on.
    profile = os.environ.get("PROFILE") == "1"
    if profile:
        psql(DW, "-c", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements", "-c", "SELECT pg_stat_statements_reset()")
    t = time.time()
    val(DW, f"SELECT sicoop.start_stream('{SLOT}')")
    # (stream_state itself: stream_status() looks for the worker in pg_locks, too dear to poll)
    pid, cpu0, memory = None, 0.0, None
    poll = connect(DW)
    while True:
        done, state = poll.execute(
            f"SELECT applied_lsn >= '{target}'::pg_lsn, state || ' ' || coalesce(error_message, '') FROM sicoop.stream_state").fetchone()
        if done:
            break
        if state.startswith("failed") or time.time() - t > 900:
            sys.exit(f"the stream did not catch up: {state}")
        if pid is None:
            pid = val("postgres", f"SELECT pid FROM pg_stat_activity WHERE backend_type = 'sicoop_etl stream' AND datname = '{DW}'")
            cpu0 = worker_cpu_seconds(pid) if pid else 0.0
            if pid:
                memory = PeakMemory(pid)
                memory.start()
        time.sleep(0.1)
    elapsed = time.time() - t
    poll.close()
    try:
        cpu = f"the stream worker used {worker_cpu_seconds(pid) - cpu0:.1f} s of CPU; " if pid else ""
    except OSError:
        cpu = ""
    applied = val(DW, "SELECT changes_applied FROM sicoop.stream_status()") - before
    batches = val(DW, "SELECT batches_applied FROM sicoop.stream_status()") - batches0
    peak = f", peak private memory {memory.finish():.0f} MB" if memory else ""
    print(f"  catch-up: {applied} changes in {batches} batches ({applied / max(batches, 1):.0f} changes per batch) "
          f"in {elapsed:.1f} s: {applied / elapsed:.0f} changes/s ({cpu}load average {os.getloadavg()[0]:.1f}{peak})")
    # Where a batch's time goes: per step, the mean milliseconds over these batches (run_log.detail).
    with connect(DW) as c:
        rows = c.execute("""
SELECT s.key, round(avg((s.value ->> 5)::numeric), 1), round(sum((s.value ->> 5)::numeric) / 1000, 1)
FROM sicoop.run_log l, jsonb_each(l.detail -> 'steps') s
WHERE l.step = 'stream' AND l.run_id > %s GROUP BY 1 ORDER BY min(l.run_id)""", (run0,)).fetchall()
        whole = c.execute("""
SELECT round(avg(extract(epoch FROM l.finished_at - l.started_at) * 1000)::numeric, 1),
       round(sum(extract(epoch FROM l.finished_at - l.started_at))::numeric, 1)
FROM sicoop.run_log l WHERE l.step = 'stream' AND l.run_id > %s""", (run0,)).fetchone()
    print(f"  per batch: {whole[0]} ms in its run ({whole[1]} s in all); steps (mean ms, total s): " +
          ", ".join(f"{k} {ms} ms / {tot} s" for k, ms, tot in rows))
    if profile:
        with connect(DW) as c:
            for calls, total, mean, q in c.execute("""
SELECT calls, round(total_exec_time::numeric / 1000, 2), round(mean_exec_time::numeric, 2),
       regexp_replace(left(query, 150), '\s+', ' ', 'g')
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) 
ORDER BY total_exec_time DESC LIMIT 40""").fetchall():
                print(f"    {total:>7} s {calls:>6} calls {mean:>7} ms  {q}")
    sys.stdout.flush()


def start_load(rate_changes, seconds, n):
    tps = max(1, round(rate_changes / CHANGES_PER_TX))
    script = tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False)
    script.write(LOAD_SCRIPT)
    script.close()
    members = max(n // 25, 1)
    cmd = [f"{PGBIN}/pgbench", "-n", "-f", script.name, "-c", "4", "-j", "2", "-T", str(seconds), "-R", str(tps),
           "-D", f"movements={n}", "-D", f"cards={members * 6 // 5}", "-D", f"members={members}", SRC]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def load_result(proc):
    out = proc.communicate()[0]
    tps = 0.0
    for line in out.splitlines():
        if line.startswith("tps ="):
            tps = float(line.split()[2])
    return tps * CHANGES_PER_TX


class Probe(threading.Thread):
    """Commits a marker movement every half second; times source commit -> visible in the fact."""

    def __init__(self, warehouse, tag):
        super().__init__(daemon=True)
        self.warehouse, self.tag = warehouse, tag
        self.samples, self.lost, self.rounds = [], 0, 0
        self.stop = threading.Event()

    def run(self):
        try:
            self.probe()
        except Exception as e:  # a probe that dies says so
            print(f"  probe failed: {e}", file=sys.stderr)

    def probe(self):
        src, dw = connect(SRC), connect(self.warehouse)
        i = 0
        while not self.stop.is_set():
            i += 1
            self.rounds = i
            key = f"MOV-PROBE-{self.tag}-{i}"
            src.execute("INSERT INTO movimentacao_cartao VALUES (%s, 'CARTAO-00000001', 'probe', 1, localtimestamp)", (key,))
            committed = time.time()
            while True:
                if dw.execute("SELECT 1 FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = %s", (key,)).fetchone():
                    self.samples.append(time.time() - committed)
                    break
                if self.stop.is_set():
                    break  # the measure ended while it was on its way
                if time.time() - committed > 120:
                    self.lost += 1
                    break
                time.sleep(0.01)
            time.sleep(max(0.0, 0.5 - (time.time() - committed)))

    def report(self):
        s = sorted(self.samples)
        if not s:
            return f"no marker arrived ({self.lost} lost, {self.rounds} probes)"
        p = lambda q: s[min(len(s) - 1, int(q * len(s)))]
        return f"p50 {p(0.50):.2f} s, p99 {p(0.99):.2f} s, max {s[-1]:.2f} s ({len(s)} markers{', %d not seen' % self.lost if self.lost else ''})"


def worker_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PeakMemory(threading.Thread):
    """The stream worker's peak private memory (RssAnon: its heap, not the shared buffers it
    touches), sampled every 0.1 s while a measurement runs."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self.stop = pid, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    for line in f:
                        if line.startswith("RssAnon:"):
                            self.peak_kb = max(self.peak_kb, int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.1)

    def finish(self):
        self.stop.set()
        self.join()
        return self.peak_kb / 1024


def stream_counts():
    return val(DW, "SELECT changes_applied FROM sicoop.stream_status()")


def measure_stream(rate, n, seconds):
    pid = val(DW, "SELECT sicoop._stream_worker_pid()")
    cpu0, changes0, t0 = worker_cpu_seconds(pid), stream_counts(), time.time()
    probe = Probe(DW, f"R{rate}T{int(t0) % 1000}")
    memory = PeakMemory(pid)
    memory.start()
    load = start_load(rate, seconds, n)
    probe.start()
    offered = load_result(load)
    # Drain: the stream catches up with what the load committed (the source's position then).
    target = val(SRC, "SELECT pg_current_wal_lsn()::text")
    deadline = time.time() + 120
    drained = False
    while time.time() < deadline:
        drained = val(DW, f"SELECT applied_lsn >= '{target}'::pg_lsn FROM sicoop.stream_state")
        if drained:
            break
        time.sleep(0.5)
    probe.stop.set()
    probe.join()
    peak_mb = memory.finish()
    elapsed = time.time() - t0
    cpu = worker_cpu_seconds(pid) - cpu0
    applied = stream_counts() - changes0
    return {
        "rate": rate, "offered": offered, "applied_per_s": applied / seconds, "applied": applied,
        "freshness": probe.report(), "p99": sorted(probe.samples)[int(0.99 * len(probe.samples))] if probe.samples else 999,
        "cpu_share": cpu / elapsed, "cpu_ms_per_1000": 1000 * 1000 * cpu / max(applied, 1),
        "drained": drained, "peak_mb": peak_mb,
    }


def print_stream(r):
    print(f"  {str(r['rate']):>6} changes/s asked: source sustained {r['offered']:.0f}/s, stream applied {r['applied_per_s']:.0f}/s "
          f"({r['applied']} changes){'' if r['drained'] else ', NOT drained within 120 s'}")
    print(f"         freshness (source commit -> fact row): {r['freshness']}")
    print(f"         stream worker CPU: {100 * r['cpu_share']:.0f}% of one core, {r['cpu_ms_per_1000']:.1f} ms per 1,000 changes; "
          f"peak private memory {r['peak_mb']:.0f} MB")
    sys.stdout.flush()


def measure_batch(n, seconds):
    """The batch pipeline run back to back under the same load: its freshness."""
    recreate(BATCH)
    psql(BATCH, "-c", "SET client_min_messages = warning", "-c", "CREATE EXTENSION sicoop_etl CASCADE",
         "-c", f"SELECT sicoop.connect_source('localhost', {PORT}, '{SRC}', current_user)")
    psql(BATCH, "-c", "SET client_min_messages = warning", "-c", "CALL sicoop.run_pipeline()")
    stop = threading.Event()
    runs = []

    def loop():
        with connect(BATCH) as c:
            c.execute("SET client_min_messages = warning")
            while not stop.is_set():
                t = time.time()
                c.execute("CALL sicoop.run_pipeline()")
                runs.append(time.time() - t)

    runner = threading.Thread(target=loop, daemon=True)
    runner.start()
    probe = Probe(BATCH, f"BATCH{int(time.time()) % 1000}")
    load = start_load(1000, seconds, n)
    probe.start()
    load_result(load)
    time.sleep(15)
    probe.stop.set()
    probe.join()
    stop.set()
    runner.join()
    mean_run = statistics.mean(runs) if runs else 0
    print(f"  batch, CALL sicoop.run_pipeline() back to back at 1000 changes/s: {len(runs)} runs, mean {mean_run:.2f} s;"
          f" freshness {probe.report()}")
    sys.stdout.flush()


def bench(n):
    print(f"== N = {n:,} movements of history ==")
    stop_stream(DW)
    drop_slot()
    recreate(SRC)
    # The source's timestamps are naive local times in the cooperative's zone (README,
    # sicoop.timezone): its sessions' localtimestamp is São Paulo's, as its applications'.
    psql("postgres", "-c", f"ALTER DATABASE {SRC} SET timezone = 'America/Sao_Paulo'")
    t = time.time()
    psql(SRC, "-v", f"n={n}", "-f", os.path.join(REPO, "test/bench/generate_source.sql"))
    psql(SRC, "-c", "CREATE INDEX ON movimentacao_cartao (data_movimentacao)", "-c", "CREATE SEQUENCE bench_seq",
         "-c", "CREATE PUBLICATION sicoop_stream FOR TABLE associado, conta, cartao, movimentacao_cartao")
    print(f"  source generated (and published) in {time.time() - t:.1f} s")
    recreate(DW)
    psql(DW, "-c", "SET client_min_messages = warning", "-c", "CREATE EXTENSION sicoop_etl CASCADE",
         "-c", f"SELECT sicoop.connect_source('localhost', {PORT}, '{SRC}', current_user)")
    t = time.time()
    val(DW, f"SELECT sicoop.start_stream('{SLOT}')")
    while val(DW, "SELECT state FROM sicoop.stream_status()") != "streaming":
        state = val(DW, "SELECT state || ' ' || coalesce(error_message, '') FROM sicoop.stream_status()")
        if state.startswith("failed"):
            sys.exit(f"the stream failed: {state}")
        time.sleep(0.2)
    print(f"  start_stream: the slot's snapshot loaded and streaming in {time.time() - t:.1f} s")
    # Before any rate is measured, the stream has applied a marker committed now: here the
    # warehouse shares the source's cluster, and the slot first decodes the WAL of the first
    # load itself (gigabytes at 10M), which a separate warehouse server would not write there.
    t = time.time()
    with connect(SRC) as src, connect(DW) as dw:
        src.execute("INSERT INTO movimentacao_cartao VALUES ('MOV-PROBE-SYNCED', 'CARTAO-00000001', 'probe', 1, localtimestamp)")
        while not dw.execute("SELECT 1 FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-PROBE-SYNCED'").fetchone():
            if time.time() - t > 1800:
                sys.exit("the stream did not apply a change within 30 minutes of its first sync")
            time.sleep(0.2)
    print(f"  first change after the sync applied in {time.time() - t:.1f} s")
    sys.stdout.flush()
    results = []
    if os.environ.get("CATCHUP"):
        catchup(n, int(os.environ["CATCHUP"]))
        for _ in range(int(os.environ.get("CATCHUP_REPEAT", "1")) - 1):
            catchup(n, int(os.environ["CATCHUP"]))
    for rate in ([] if os.environ.get("CATCHUP") else RATES):
        if rate != "max":
            results.append(measure_stream(int(rate), n, DURATION))
            print_stream(results[-1])
            continue
        # The highest sustainable rate: doubling while the stream keeps up (drained, p99 <= 5 s).
        rate_try, best = int(os.environ.get("MAX_START", "2000")), None
        while rate_try <= 64000:
            r = measure_stream(rate_try, n, max(60, DURATION // 3))
            print_stream(r)
            if not (r["drained"] and r["p99"] <= 5 and r["applied_per_s"] >= 0.9 * r["offered"]):
                break
            best = r
            if r["offered"] < 0.9 * rate_try:
                break  # the source (pgbench on this machine) is the limit
            rate_try *= 2
        if best:
            print(f"  highest rate sustained: {best['applied_per_s']:.0f} changes/s applied (offered {best['offered']:.0f}/s)")
    if os.environ.get("BATCH", "1") == "1" and not os.environ.get("CATCHUP"):
        measure_batch(n, min(DURATION, 120))
    if os.environ.get("KEEP") == "1":
        return results
    stop_stream(DW)
    drop_slot()
    for db in (DW, BATCH, SRC):
        with connect("postgres") as c:
            c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    return results


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [1000000]
    print(f"sicoop_etl streaming benchmark: rates {' '.join(RATES)} changes/s, {DURATION} s each, N = {sizes}")
    for n in sizes:
        bench(n)


if __name__ == "__main__":
    main()
