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


def phase(name: str, n_rows: int, concurrency: int, store_url: str | None) -> dict:
    """Run one phase in this process and return its figures (peak memory is this process's)."""
    os.environ["SLUICE_BENCH_KEY"] = "bench-not-a-secret"
    tmp = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    store = open_store(store_url or f"duckdb:///{tmp}/bench.duckdb")
    rows = make_rows(n_rows)
    data = tmp / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dataset, _ = import_dataset(store, "bench", data)
    out: dict = {}
    with scripted_upstream(subprocess=True) as url:
        base = load_release(write_release(tmp, "1", url, 0.2))
        cand = load_release(write_release(tmp, "2", url, 0.3))
        for b in (base, cand):
            register(store, b)
        if name == "runner":  # no evaluators, no cache: Sluice's own cost per row
            t0, c0 = time.perf_counter(), cpu_seconds()
            res = asyncio.run(run_release(base, rows, store=store, dataset_version=dataset.version,
                                          dataset_name="bench", concurrency=concurrency, use_cache=False,
                                          progress=False, run_id="bench-runner-only"))
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            out = {"rows_per_s": round(n_rows / wall, 1), "wall_s": round(wall, 2),
                   "overhead_cpu_ms_per_row": round(cpu * 1000 / n_rows, 3),
                   "errors": sum(1 for r in res.records.values() if r["output"].get("error"))}
        else:  # the whole gate: both releases, evaluators, reports
            evaluators = EVALUATORS if name == "gate" else EVALUATORS[:-1]
            policy = tmp / "gate.yaml"
            policy.write_text(yaml.safe_dump({"evaluators": [{"name": n} for n in evaluators],
                                              "cohorts": {"min_rows": 20}}))
            settings = Settings(store=store.url)
            settings.runner.concurrency = concurrency
            opts = gate_flow.GateOptions(candidate=cand.digest, baseline=base.digest, dataset="bench",
                                         policy=str(policy), html=str(tmp / "gate.html"), progress=False)
            from rich.console import Console

            t0, c0 = time.perf_counter(), cpu_seconds()
            outcome = gate_flow.run(store, settings, opts, Console(file=open(os.devnull, "w")))
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            out = {"evaluators": evaluators, "rows_per_s": round(2 * n_rows / wall, 1), "wall_s": round(wall, 2),
                   "cpu_ms_per_row": round(cpu * 1000 / (2 * n_rows), 3), "verdict": outcome.result.verdict}
    store.close()
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--store", default=None, help="store URL (default: a fresh DuckDB file per phase)")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--phase", choices=["runner", "gate-deterministic", "gate"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:  # child process: one phase, figures on stdout
        print(json.dumps(phase(args.phase, args.rows, args.concurrency, args.store)))
        return
    import subprocess

    results: dict = {"rows": args.rows, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                     "python": platform.python_version(), "load_average": os.getloadavg()[0]}
    for name in ("runner", "gate-deterministic", "gate"):
        cmd = [sys.executable, __file__, "--phase", name, "--rows", str(args.rows),
               "--concurrency", str(args.concurrency)] + (["--store", args.store] if args.store else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    r, d, g = results["runner"], results["gate-deterministic"], results["gate"]
    results["targets"] = {"overhead_ms_per_row_max": 2.0, "peak_rss_mb_max": 500,
                          "overhead_met": r["overhead_cpu_ms_per_row"] < 2.0,
                          "memory_met": g["peak_rss_mb"] < 500}
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "gate.json").write_text(json.dumps(results, indent=2) + "\n")
    md = (f"# Gate benchmark ({results['rows']} rows, {results['machine']}, load average "
          f"{results['load_average']:.2f} at start)\n\n"
          "Each phase runs in a fresh process against a scripted upstream in its own process.\n\n"
          "| phase | rows/s | Sluice CPU per row | peak memory | target |\n|---|---|---|---|---|\n"
          f"| runner only (no evaluators, upstream excluded) | {r['rows_per_s']} | "
          f"{r['overhead_cpu_ms_per_row']} ms | {r['peak_rss_mb']} MB | < 2 ms per row |\n"
          f"| gate, 5 deterministic evaluators (2 runs) | {d['rows_per_s']} | {d['cpu_ms_per_row']} ms | "
          f"{d['peak_rss_mb']} MB | |\n"
          f"| gate, 5 deterministic + 1 embedding evaluator (2 runs) | {g['rows_per_s']} | {g['cpu_ms_per_row']} ms | "
          f"{g['peak_rss_mb']} MB | < 500 MB |\n")
    (out / "gate.md").write_text(md)
    print(md)


if __name__ == "__main__":
    sys.exit(main())
