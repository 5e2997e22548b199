"""Ingest and metrics-query benchmark for the telemetry part.

    # sustained OTLP/HTTP ingest into a server process (embedded DuckDB by default)
    .venv/bin/python bench/ingest_bench.py ingest --seconds 20 [--store postgresql://…]
    # the metrics query for one deployment over N stored spans
    .venv/bin/python bench/ingest_bench.py query --spans 1000000 10000000 [--store postgresql://…]

``ingest`` starts ``python -m sluice.server`` as its own process, posts pre-encoded protobuf
export requests (OpenInference-style LLM spans, 13 attributes each,
prompt and answer text unique per span) from client threads on kept-alive ``http.client``
connections (cheap, so the load generator leaves the cores to the server), and
reports acknowledged spans/s (a 200 means committed), request latency p50/p99, the CPU seconds
the server and its decode workers spent per span (robust when other work shares the machine), the
whole machine's busy CPU per span, the load average before and after, and the server's
summed RSS sampled every second (bounded memory shows as a flat line). ``--json FILE`` appends the
figures to FILE (bench/results/ingest.json). ``query`` fills a fresh store
with synthetic spans in bulk (SQL generators, not the ingest path) and times
``compute_metrics`` for one deployment grouped by release × route × cohort.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psutil
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sluice.store import open_store
from sluice.telemetry import schema  # noqa: F401 - registers the tables
from sluice.telemetry.metrics import MetricsQuery, compute_metrics
from sluice.telemetry.writer import DUCKDB_MEMORY_LIMIT_BYTES


def export_body(seed: int, spans: int) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for k, v in (("service.name", "bench-app"), ("service.version", f"rel-{seed % 2}")):
        kv = rs.resource.attributes.add()
        kv.key, kv.value.string_value = k, v
    scope = rs.scope_spans.add()
    now = time.time_ns()
    for i in range(spans):
        sp = scope.spans.add()
        sp.trace_id = seed.to_bytes(8, "big") + (i + 1).to_bytes(8, "big")
        sp.span_id = (i + 1).to_bytes(8, "big")
        sp.name = "ChatCompletion"
        sp.start_time_unix_nano, sp.end_time_unix_nano = now, now + 120_000_000 + i * 1000
        sp.status.code = 1
        question = f"Hello, I bought a kettle last week (order {seed}-{i}) and it leaks. What is your refund policy?"
        for key, value in (("openinference.span.kind", "LLM"), ("llm.model_name", "gpt-4o-mini"),
                           ("llm.provider", "openai"), ("input.value", question),
                           ("output.value", f"Refunds for order {seed}-{i} are accepted within 30 days of delivery "
                                            "when the item is unused and in its original packaging; the money goes "
                                            "back to the original payment method within five working days."),
                           ("llm.input_messages.0.message.role", "user"),
                           ("llm.input_messages.0.message.content", question),
                           ("metadata", '{"cohort": "%s"}' % ("enterprise" if i % 3 else "free")),
                           ("session.id", f"s{i % 100}"), ("user.id", f"u{i % 1000}")):
            kv = sp.attributes.add()
            kv.key, kv.value.string_value = key, value
        for key, value in (("llm.token_count.prompt", 42), ("llm.token_count.completion", 17),
                           ("llm.token_count.total", 59)):
            kv = sp.attributes.add()
            kv.key, kv.value.int_value = key, value
    return req.SerializeToString()


def ingest(args) -> dict:
    store_url = args.store or f"duckdb:///{tempfile.mkdtemp(prefix='sluice-bench-')}/bench.duckdb"
    cmd = [sys.executable, "-m", "sluice.server", "--store", store_url]
    if args.workers is not None:
        conf = os.path.join(tempfile.mkdtemp(prefix="sluice-bench-"), "telemetry.yaml")
        with open(conf, "w") as f:
            f.write(f"ingest_workers: {args.workers}\n")
        cmd += ["--telemetry", conf]
    env = dict(os.environ)
    if args.python_decoder:
        env["SLUICE_OTLP_FAST"] = "0"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    host, port = proc.stdout.readline().split()[1].removeprefix("http://").rsplit(":", 1)
    bodies = [export_body(seed, args.batch) for seed in range(1, 9)]  # encoded once, before the clock starts
    latencies: list[float] = []
    acked = [0]
    failed: dict[int, int] = {}
    lock = threading.Lock()
    rss: list[float] = []
    server = psutil.Process(proc.pid)
    headers = {"content-type": "application/x-protobuf"}

    def client(n: int) -> None:
        # http.client on a kept-alive connection: the body goes out with one sendall, so the load
        # generator costs little of the two cores it shares with the server
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        i = n
        while time.monotonic() < stop:
            t = time.perf_counter()
            conn.request("POST", "/v1/traces", bodies[i % len(bodies)], headers)
            r = conn.getresponse()
            r.read()
            dt = time.perf_counter() - t
            with lock:
                if r.status == 200:
                    acked[0] += args.batch
                    latencies.append(dt * 1000)
                else:
                    failed[r.status] = failed.get(r.status, 0) + 1
            i += args.clients
        conn.close()

    def tree() -> list[psutil.Process]:
        return [server, *server.children(recursive=True)]

    cpu_seen: dict[int, float] = {}

    def record_cpu(procs: list[psutil.Process]) -> None:
        for p in procs:
            try:
                t = p.cpu_times()
                cpu_seen[p.pid] = t.user + t.system
            except psutil.Error:
                pass

    def sample() -> None:
        while time.monotonic() < stop:
            procs = tree()
            rss.append(sum(p.memory_info().rss for p in procs) / 2**20)
            record_cpu(procs)
            time.sleep(1)

    load_before = os.getloadavg()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    threads.append(threading.Thread(target=sample))
    record_cpu(tree())
    cpu_before = dict(cpu_seen)  # start-up (imports, forkserver) is not ingest work
    own_before = resource.getrusage(resource.RUSAGE_SELF)
    machine_before = psutil.cpu_times()
    t0 = time.monotonic()
    stop = t0 + args.seconds
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    own_after = resource.getrusage(resource.RUSAGE_SELF)
    machine_after = psutil.cpu_times()
    record_cpu(tree())
    load_after = os.getloadavg()
    proc.terminate()
    proc.wait(60)
    latencies.sort()
    cpu = sum(cpu_seen.values()) - sum(cpu_before.values())
    client_cpu = (own_after.ru_utime + own_after.ru_stime) - (own_before.ru_utime + own_before.ru_stime)
    # everything that ran on the machine meanwhile: server, PostgreSQL's backends, the client, others
    machine_busy = sum(machine_after) - sum(machine_before) - (
        (machine_after.idle + machine_after.iowait) - (machine_before.idle + machine_before.iowait))
    result = {
        "label": args.label, "store": "postgresql" if store_url.startswith("postgres") else "duckdb",
        "decoder": "python" if args.python_decoder else "compiled (if built)",
        "workers": args.workers, "batch": args.batch, "clients": args.clients, "seconds": round(elapsed, 1),
        "spans": acked[0], "spans_per_s": round(acked[0] / elapsed), "non_200": failed,
        "latency_ms_p50": round(latencies[len(latencies) // 2], 1) if latencies else None,
        "latency_ms_p99": round(latencies[min(int(len(latencies) * 0.99), len(latencies) - 1)], 1) if latencies else None,
        "server_cpu_s": round(cpu, 1), "server_processes": len(cpu_seen),
        "server_cpu_us_per_span": round(cpu / max(acked[0], 1) * 1e6, 1),
        "client_cpu_us_per_span": round(client_cpu / max(acked[0], 1) * 1e6, 1),
        "machine_cpu_us_per_span": round(machine_busy / max(acked[0], 1) * 1e6, 1),
        "machine_cores_busy": round(machine_busy / elapsed, 2),
        "rss_mib_per_s": [round(x) for x in rss], "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
    }
    print(f"store            {store_url.split('@')[-1]}")
    print(f"batch x clients  {args.batch} spans/request x {args.clients} clients, {elapsed:.1f} s, "
          f"workers {args.workers if args.workers is not None else 'default'}, "
          f"decoder {'python' if args.python_decoder else 'compiled if built'}")
    print(f"acknowledged     {acked[0]} spans = {acked[0] / elapsed:,.0f} spans/s (non-200 replies: {failed or 0})")
    print(f"request latency  p50 {result['latency_ms_p50']} ms, p99 {result['latency_ms_p99']} ms")
    print(f"server CPU       {cpu:.1f} s in {len(cpu_seen)} processes = {result['server_cpu_us_per_span']} µs per span; "
          f"load generator {result['client_cpu_us_per_span']} µs per span")
    print(f"machine CPU      {result['machine_cpu_us_per_span']} µs per span, {result['machine_cores_busy']} of "
          f"{os.cpu_count()} cores busy (everything: server, database server, load generator, other work)")
    print(f"load average     before {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in load_after)}")
    print(f"server RSS MiB   first {rss[0]:.0f}, max {max(rss):.0f}, last {rss[-1]:.0f}, summed over the server "
          f"and its workers (per second: {' '.join(f'{x:.0f}' for x in rss)})")
    if args.json:
        runs = []
        if os.path.exists(args.json):
            with open(args.json) as f:
                runs = json.load(f)
        runs.append(result)
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=1)
    return result


def fill(store, n: int) -> None:
    """Synthetic spans: 4 deployments, 2 releases, 3 routes, 4 cohorts, one per millisecond."""
    cols = ", ".join(schema.SPAN_COLUMNS)
    pg = store.db.dialect.name == "postgres"
    gen = "generate_series(CAST(0 AS BIGINT), CAST(? AS BIGINT) - 1) AS g(i)" if pg else "range(?) AS g(i)"
    mod, div = "%", ("/" if pg else "//")  # integer division
    store.db.execute(f"""
        INSERT INTO spans ({cols})
        SELECT lpad(to_hex(i), 32, '0'), lpad(to_hex(i), 16, '0'), '', 'ChatCompletion', 'LLM',
               1700000000000000000 + i * 1000000, 50 + (i * 7919) {mod} 1000, CASE WHEN i {mod} 50 = 0 THEN 'ERROR' ELSE 'OK' END,
               NULL, 'gpt-4o-mini', 'openai', 42, 17, 59, 0.0001,
               'dep-' || (i {mod} 4), 'rel-' || ((i {div} 4) {mod} 2), (ARRAY['stable', 'canary', 'fallback'])[(i {mod} 3) + 1],
               (ARRAY['free', 'pro', 'enterprise', 'internal'])[((i {div} 3) {mod} 4) + 1],
               i {mod} 3 = 2, i {mod} 10 = 0, NULL, NULL, NULL, NULL, 20 + i {mod} 200, true, 'bench', '{{}}', 0
        FROM {gen}""", [n])
    if pg:
        schema.ensure_indexes(store)
        store.db.execute("ANALYZE spans")
    else:
        store.db.execute("CHECKPOINT")


def query(args) -> None:
    for n in args.spans:
        tmp = tempfile.mkdtemp(prefix="sluice-bench-")
        store = open_store(args.store or f"duckdb:///{tmp}/q.duckdb")
        if store.db.dialect.name == "postgres":
            store.db.execute("TRUNCATE spans, feedback, span_evals")
        else:  # the memory cap `sluice serve` runs under (its span writer sets it database-wide)
            store.db.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT_BYTES // 2**20}MiB'")
        t = time.perf_counter()
        fill(store, n)
        load_s = time.perf_counter() - t
        q = MetricsQuery(deployment="dep-1", group_by=("release", "route", "cohort"))
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            rows = compute_metrics(store, q)
            times.append((time.perf_counter() - t) * 1000)
        print(f"{store.db.dialect.name:8} {n:>11,} spans (loaded in {load_s:.1f} s): metrics for one deployment "
              f"({sum(r['requests'] for r in rows):,} requests, {len(rows)} groups) "
              f"median {statistics.median(times):.0f} ms, min {min(times):.0f} ms over {args.repeat} runs")
        store.close()


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("ingest")
    i.add_argument("--store")
    i.add_argument("--seconds", type=float, default=20)
    i.add_argument("--batch", type=int, default=1000)
    i.add_argument("--clients", type=int, default=4)
    i.add_argument("--workers", type=int, default=None, help="ingest_workers for the server (default: its own)")
    i.add_argument("--python-decoder", action="store_true", help="SLUICE_OTLP_FAST=0: the pure-Python reference")
    i.add_argument("--label", default="")
    i.add_argument("--json", default=None, help="append the run's figures to this JSON file")
    q = sub.add_parser("query")
    q.add_argument("--store")
    q.add_argument("--spans", type=int, nargs="+", default=[1_000_000, 10_000_000])
    q.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    ingest(args) if args.cmd == "ingest" else query(args)


if __name__ == "__main__":
    main()
