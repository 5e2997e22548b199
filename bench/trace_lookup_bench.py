"""Trace lookup by id (``get_trace``: the audit, ``/api/traces/{id}``, the trace page) on 10M spans.

    make bench-trace-lookup        # = .venv/bin/python bench/trace_lookup_bench.py

DuckDB's span table has no index on ``trace_id``; a lookup used to read the whole column (one
full scan). ``get_trace`` now cuts the read by time when the trace's evaluations or feedback (or
a ``hint_ns``) say where it lies, and falls back to the full read. This compares both on a copy of
the dashboard bench's cached store (``make bench-dashboard`` generates it once; the copy is
taken so the cache is never changed). That store's feedback and evaluations carry
``created_at = 0``; the copy sets them to the trace's start + 60 s, as a real app records them
after the answer. Its trace ids are sequential, so DuckDB's min/max zone maps on ``trace_id``
already prune most row groups of a full read; with random (W3C) ids they prune nothing and a
full read costs more (not measured here), while the time-cut read does not change. The unknown
id lies inside the stored id range (a non-hex last character) so zone maps cannot skip it.
Median and slowest of ``--repeat`` after one warm-up. Results: bench/results/trace_lookup.json
and trace_lookup.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sluice.store import open_store  # noqa: E402
from sluice.telemetry import schema  # noqa: E402,F401 - registers the tables
from sluice.telemetry.feedback import feedback_for  # noqa: E402
from sluice.telemetry.traces import get_trace, trace_spans  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def full_read(store, tid: str) -> dict:
    """The lookup before: every query by trace_id alone."""
    evals = store.db.query("SELECT span_id, evaluator, passed, score, label, source FROM span_evals "
                           "WHERE trace_id = ? ORDER BY created_at, evaluator", [tid])
    return {"spans": trace_spans(store, tid), "evaluations": evals, "feedback": feedback_for(store, tid)}


def timed(fn, repeat: int) -> tuple[float, float, int]:
    spans = len(fn()["spans"])  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), max(times), spans


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default=os.path.expanduser("~/.cache/sluice-bench/dashboard-10000000.duckdb"))
    ap.add_argument("--work", default="/tmp/sluice-trace-lookup-bench.duckdb")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if not Path(args.source).exists():
        raise SystemExit(f"{args.source} is missing: run 'make bench-dashboard' once to generate it")
    shutil.copyfile(args.source, args.work)
    Path(args.work + ".wal").unlink(missing_ok=True)
    store = open_store(f"duckdb:///{args.work}")
    try:
        for table in ("feedback", "span_evals"):
            store.db.execute(f"UPDATE {table} SET created_at = s.first / 1e9 + 60 FROM (SELECT trace_id, "
                             "min(start_ns) AS first FROM spans GROUP BY trace_id) s "
                             f"WHERE s.trace_id = {table}.trace_id")
        mid = store.db.query_one("SELECT (min(start_ns) + max(start_ns)) // 2 FROM spans")[0]
        fb = store.db.query_one("SELECT f.trace_id FROM feedback f JOIN spans s USING (trace_id) "
                                "WHERE s.start_ns >= ? ORDER BY s.start_ns LIMIT 1", [mid])[0]
        ev = store.db.query_one("SELECT e.trace_id FROM span_evals e JOIN spans s USING (trace_id) "
                                "WHERE s.start_ns >= ? AND e.trace_id NOT IN (SELECT trace_id FROM feedback) "
                                "ORDER BY s.start_ns LIMIT 1", [mid])[0]
        bare, bare_start = store.db.query_one(
            "SELECT trace_id, start_ns FROM spans WHERE start_ns >= ? AND is_request AND trace_id NOT IN "
            "(SELECT trace_id FROM feedback UNION SELECT trace_id FROM span_evals) ORDER BY start_ns LIMIT 1", [mid])
        count = store.db.query_one("SELECT count(*) FROM spans")[0]
        cases = [("with feedback (mid-week)", fb, None), ("with an online evaluation (mid-week)", ev, None),
                 ("no evaluation or feedback, page hint ?t=", bare, bare_start),
                 ("no evaluation or feedback, no hint (mid-week)", bare, None), ("unknown id", bare[:-1] + "g", None)]
        rows = []
        for label, tid, hint in cases:
            before = timed(lambda: full_read(store, tid), args.repeat)
            after = timed(lambda: get_trace(store, tid, hint_ns=hint), args.repeat)
            assert before[2] == after[2], (label, before, after)
            rows.append({"case": label, "trace_id": tid, "spans": after[2], "full_read_ms": round(before[0], 1),
                         "full_read_max_ms": round(before[1], 1), "bounded_ms": round(after[0], 1),
                         "bounded_max_ms": round(after[1], 1)})
            print(rows[-1], flush=True)
    finally:
        store.close()
        Path(args.work).unlink(missing_ok=True)
        Path(args.work + ".wal").unlink(missing_ok=True)
    load = os.getloadavg()[0]
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "trace_lookup.json").write_text(json.dumps({"at": stamp, "spans": count, "load": load,
                                                           "repeat": args.repeat, "cases": rows}, indent=2) + "\n")
    lines = [f"# Trace lookup by id with {count:,} spans (embedded DuckDB)", "",
             f"{stamp}, load average {load:.2f}; median and slowest of {args.repeat} after one warm-up "
             "(`make bench-trace-lookup`). Full read: every query by `trace_id` alone (before); bounded: "
             "`get_trace` (telemetry/traces.py).", "",
             "| trace | spans | full read median | slowest | bounded median | slowest |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['spans']} | {r['full_read_ms']:.0f} ms | {r['full_read_max_ms']:.0f} ms | "
              f"{r['bounded_ms']:.0f} ms | {r['bounded_max_ms']:.0f} ms |" for r in rows]
    (RESULTS / "trace_lookup.md").write_text("\n".join(lines) + "\n")
    print((RESULTS / "trace_lookup.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
