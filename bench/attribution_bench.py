"""What trace attribution (telemetry/attribution.py) costs the span writer.

    .venv/bin/python bench/attribution_bench.py [--spans 200000] [--batch 20000] [--json bench/results/attribution.json]

Writes the same pre-normalised batches through ``SpanWriter`` into a fresh embedded store twice
per shape, once as shipped and once with the attribution step bypassed (the columns as the
normaliser made them), and reports the writer thread's CPU seconds per span and spans/s for:

- ``roots``: every span its own trace, attributed from its resource (the ingest benchmark's shape,
  the worst case: one ``trace_attribution`` row per span);
- ``agents``: traces of one attributed root and four children, children written one batch before
  their root (what the OTel SDK does), so every child is fixed up by an UPDATE.

Single process, no HTTP: the figure isolates the writer. Run on a quiet machine
(``flock /tmp/sluice-cpu.lock …`` when others share it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time

from sluice.store import open_store
from sluice.telemetry import attribution_sql, schema  # noqa: F401 - registers the tables
from sluice.telemetry.normalize import Normalizer
from sluice.telemetry.otlp import RawSpan
from sluice.telemetry.writer import SpanBatch, SpanWriter

T0 = 1_800_000_000 * 10**9
LLM = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 120,
       "gen_ai.usage.output_tokens": 40, "input.value": "Where is my order?", "output.value": "On its way."}
RESOURCE = {"service.name": "bench-app", "service.version": "rel-1"}


def roots(n: int) -> list[list[RawSpan]]:
    return [[RawSpan(f"{i + 1:032x}", f"{i + 1:016x}", "", "ChatCompletion", T0 + i, T0 + i + 10**8, 1, "",
                     LLM, RESOURCE, []) for i in range(n)]]


def agents(n: int) -> list[list[RawSpan]]:
    """Children of trace k in one write, their roots in the next."""
    traces = n // 5
    children, parents = [], []
    for t in range(traces):
        tid, root = f"{t + 1:032x}", f"{t + 1:08x}00000000"
        parents.append(RawSpan(tid, root, "", "invoke_agent", T0 + t, T0 + t + 10**9, 1, "",
                               {"gen_ai.operation.name": "invoke_agent", "sluice.cohort": f"c{t % 5}"}, RESOURCE, []))
        children += [RawSpan(tid, f"{t + 1:08x}{c + 1:08x}", root, "chat", T0 + t + c, T0 + t + c + 10**8, 1, "",
                             LLM, RESOURCE, []) for c in range(4)]
    return [children, parents]


def run(shape: str, spans: int, batch: int, bypass: bool) -> dict:
    groups = roots(spans) if shape == "roots" else agents(spans)
    normalizer = Normalizer()
    batches = []
    for group in groups:  # normalised up front: only the writer is measured
        for k in range(0, len(group), batch):
            rows, evals = normalizer.rows(group[k:k + batch])
            batches.append(SpanBatch.from_rows(rows, evals))
    with tempfile.TemporaryDirectory() as d:
        store = open_store(f"duckdb:///{d}/bench.duckdb")
        original = attribution_sql.TraceAttribution.apply
        if bypass:
            def passthrough(self, conn, group_columns):
                cols = lambda name: attribution_sql.concat(group_columns, schema.SPAN_COLUMNS.index(name))  # noqa: E731
                return attribution_sql.Plan(cols("deployment"), cols("release"),
                                            [c or "default" for c in cols("cohort")], [0] * sum(
                                                len(c[0]) for c in group_columns))
            attribution_sql.TraceAttribution.apply = passthrough
        try:
            writer = SpanWriter(store, batch_max_spans=batch).start()
            cpu = {}
            started = time.perf_counter()
            for b in batches:
                writer.submit_batch(b).wait(600)
            elapsed = time.perf_counter() - started
            cpu["writer_s"] = _thread_cpu(writer)
            writer.close()
            unattributed = store.db.query_one("SELECT count(*) FROM spans WHERE unattributed <> 0")[0]
            default = store.db.query_one("SELECT count(*) FROM spans WHERE cohort = 'default'")[0]
        finally:
            attribution_sql.TraceAttribution.apply = original
            store.close()
    total = sum(b.count for b in batches)
    return {"shape": shape, "attribution": not bypass, "spans": total, "seconds": round(elapsed, 3),
            "spans_per_s": round(total / elapsed), "writer_cpu_us_per_span": round(cpu["writer_s"] / total * 1e6, 2),
            "left_unattributed": unattributed, "cohort_default": default}


def _thread_cpu(writer: SpanWriter) -> float:
    """CPU seconds of the writer thread (Linux: /proc/self/task/<tid>/stat, utime + stime)."""
    import os

    tid = writer._native_id
    with open(f"/proc/self/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spans", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=20_000)
    ap.add_argument("--json", help="append the results to this file (JSON lines)")
    args = ap.parse_args()
    results = []
    for shape in ("roots", "agents"):
        for bypass in (True, False):
            r = run(shape, args.spans, args.batch, bypass)
            results.append(r)
            print(json.dumps(r))
    if args.json:
        with open(args.json, "a") as f:
            for r in results:
                f.write(json.dumps(r | {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
