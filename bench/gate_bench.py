"""Gate benchmark: 2,000 rows against a local scripted upstream (a fake model in its own process).

Measures, on this machine:
  1. the runner alone, no evaluators: rows/s and Sluice's own CPU per row. The upstream runs in a
     separate process, so its time is excluded from our process's CPU time; with the upstream
     answering instantly, our CPU per row is Sluice's overhead per row (rendering, HTTP client,
     cache, batched store writes).
  2. a full gate (candidate and baseline, six deterministic and embedding evaluators): rows/s end
     to end and peak resident memory.
Results go to bench/results/gate.json and bench/results/gate.md (summarised in docs/operations.md).

    .venv/bin/python bench/gate_bench.py [--rows 2000] [--store duckdb:///...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml

from sluice.config import Settings
from sluice.dataset.version import import_dataset
from sluice.demo.corpus import build_rows
from sluice.release.loader import load_release
from sluice.release.registry import register
from sluice.runner import run_release
from sluice.store import open_store
from sluice.testing.upstream import scripted_upstream
from sluice.workflow import gate as gate_flow

EVALUATORS = ["groundedness", "task_completion", "tool_selection_accuracy", "pii_leak", "refusal",
              "answer_similarity"]  # the last one embeds with the bundled MiniLM model


def make_rows(n: int) -> list[dict]:
    base = build_rows()
    rows = []
    for i in range(n):
        r = dict(base[i % len(base)])
        r["id"] = f"{r['id']}-{i:05d}"
        rows.append(r)
    return rows


def write_release(root: Path, version: str, url: str, temperature: float) -> Path:
    folder = root / f"r{version}"
    (folder / "prompts").mkdir(parents=True, exist_ok=True)
    (folder / "prompts" / "answer.jinja").write_text(
        "Question: {{ question }}\n{% for d in context %}[{{ d.id }}] {{ d.text }}\n{% endfor %}")
    (folder / "release.yaml").write_text(yaml.safe_dump({
        "name": "bench", "version": version,
        "components": {"responder": {"provider": "openai", "model": "scripted", "base_url": str(url),
                                     "api_key_env": "SLUICE_BENCH_KEY", "prompt": "prompts/answer.jinja",
                                     "system_prompt": "Answer from the context.",
                                     "params": {"temperature": temperature, "max_tokens": 200}}},
    }))
    return folder


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--store", default=None, help="store URL (default: a fresh DuckDB file)")
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    os.environ["SLUICE_BENCH_KEY"] = "bench-not-a-secret"
    tmp = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    store = open_store(args.store or f"duckdb:///{tmp}/bench.duckdb")
    rows = make_rows(args.rows)
    data = tmp / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dataset, _ = import_dataset(store, "bench", data)
    results: dict = {"rows": args.rows, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                     "python": platform.python_version(), "store": store.url.split("://")[0]}

    with scripted_upstream(subprocess=True) as url:
        base = load_release(write_release(tmp, "1", url, 0.2))
        cand = load_release(write_release(tmp, "2", url, 0.3))
        for b in (base, cand):
            register(store, b)

        # 1. runner alone: no evaluators, no cache
        t0, c0 = time.perf_counter(), cpu_seconds()
        res = asyncio.run(run_release(base, rows, store=store, dataset_version=dataset.version, dataset_name="bench",
                                      concurrency=args.concurrency, use_cache=False, progress=False,
                                      run_id="bench-runner-only"))
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        errors = sum(1 for r in res.records.values() if r["output"].get("error"))
        results["runner"] = {"rows_per_s": round(args.rows / wall, 1), "wall_s": round(wall, 2),
                             "overhead_cpu_ms_per_row": round(cpu * 1000 / args.rows, 3),
                             "wall_ms_per_row": round(wall * 1000 / args.rows, 3), "errors": errors}

        # 2. the whole gate: both releases, six evaluators, reports
        policy = tmp / "gate.yaml"
        policy.write_text(yaml.safe_dump({"evaluators": [{"name": n} for n in EVALUATORS],
                                          "cohorts": {"min_rows": 20}}))
        settings = Settings(store=store.url)
        settings.runner.concurrency = args.concurrency
        opts = gate_flow.GateOptions(candidate=cand.digest, baseline=base.digest, dataset="bench",
                                     policy=str(policy), html=str(tmp / "gate.html"), progress=False)
        t0, c0 = time.perf_counter(), cpu_seconds()
        from rich.console import Console
        outcome = gate_flow.run(store, settings, opts, Console(file=open(os.devnull, "w")))
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        results["gate"] = {"evaluators": EVALUATORS, "rows_per_s": round(2 * args.rows / wall, 1),
                           "wall_s": round(wall, 2), "cpu_ms_per_row": round(cpu * 1000 / (2 * args.rows), 3),
                           "verdict": outcome.result.verdict}
    results["peak_rss_mb"] = round(peak_rss_mb(), 1)
    results["targets"] = {"overhead_ms_per_row_max": 2.0, "peak_rss_mb_max": 500,
                          "overhead_met": results["runner"]["overhead_cpu_ms_per_row"] < 2.0,
                          "memory_met": results["peak_rss_mb"] < 500}
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "gate.json").write_text(json.dumps(results, indent=2) + "\n")
    r, g = results["runner"], results["gate"]
    md = (f"# Gate benchmark ({results['rows']} rows, {results['machine']}, store {results['store']})\n\n"
          f"| measure | value | target |\n|---|---|---|\n"
          f"| runner only: rows/s | {r['rows_per_s']} | |\n"
          f"| runner only: Sluice CPU per row (upstream excluded) | {r['overhead_cpu_ms_per_row']} ms | < 2 ms |\n"
          f"| full gate (2 runs, 6 evaluators): rows/s | {g['rows_per_s']} | |\n"
          f"| full gate: CPU per row | {g['cpu_ms_per_row']} ms | |\n"
          f"| peak resident memory | {results['peak_rss_mb']} MB | < 500 MB |\n")
    (out / "gate.md").write_text(md)
    print(md)
    store.close()


if __name__ == "__main__":
    sys.exit(main())
