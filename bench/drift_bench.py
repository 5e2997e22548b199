"""Drift detection: false alarms on unshifted traffic, detection of each kind of shift, and the
time one ``sluice drift`` takes.

    .venv/bin/python bench/drift_bench.py [--trials 20] [--rows 200] [--live 100]

Each trial builds a support dataset (``--rows`` rows, cohorts free/enterprise 50/50, questions from
six templates with random orders, items and cities), gates a release on it, writes ``--live``
gateway request spans for the deployment and runs ``drift_report`` (real MiniLM, in-memory DuckDB).
Streams: ``same`` (the dataset's distribution, fresh draws), ``cohort`` (80 % enterprise),
``new-cohort`` (10 % of a cohort the dataset lacks), ``longer`` (the same questions with a long
preamble), ``topic`` (a third of the questions about cooking). Writes bench/results/drift.json
and drift.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import orjson

from sluice.dataset.version import import_dataset
from sluice.gateway import deployment_store
from sluice.gateway.config import Deployment
from sluice.monitor.drift_data import drift_report
from sluice.release.loader import load_release
from sluice.release.registry import register
from sluice.store import GateRecord, open_store
from sluice.telemetry.normalize import Normalizer
from sluice.telemetry.otlp import RawSpan
from sluice.telemetry.schema import SPAN_COLUMNS

ITEMS = ["headphones", "kettle", "backpack", "desk lamp", "keyboard", "blender", "jacket", "monitor", "tent", "drill"]
CITIES = ["Lyon", "Porto", "Leeds", "Graz", "Turin", "Ghent"]
SUPPORT = ["where is my order {n}", "how do I return the {item} I bought last week",
           "my {item} arrived broken, can I get a refund", "can I change the delivery address for order {n}",
           "when will the {item} be back in stock", "how much is shipping to {city}"]
COOKING = ["how long should I roast a {n} kg chicken", "what can I use instead of eggs in a {item} cake",
           "give me a quick weeknight recipe with {item}"]
FOODS = ["lemon", "chocolate", "carrot", "spinach", "chickpeas", "salmon"]
PREAMBLE = ("Hello, I have been a loyal customer for many years and I have always been happy with your service, "
            "but today I need some help with something that has been bothering me for a few days. ")
STREAMS = ("same", "cohort", "new-cohort", "longer", "topic")


def question(rng: random.Random) -> str:
    return rng.choice(SUPPORT).format(n=rng.randint(1000, 9999), item=rng.choice(ITEMS), city=rng.choice(CITIES))


def live_stream(kind: str, rng: random.Random, n: int) -> list[tuple[str, str]]:
    out = []
    for _ in range(n):
        cohort = "free" if rng.random() < 0.5 else "enterprise"
        text = question(rng)
        if kind == "cohort":
            cohort = "enterprise" if rng.random() < 0.8 else "free"
        elif kind == "new-cohort" and rng.random() < 0.1:
            cohort = "trial"
        elif kind == "longer":
            text = PREAMBLE + text
        elif kind == "topic" and rng.random() < 1 / 3:
            text = rng.choice(COOKING).format(n=rng.randint(1, 3), item=rng.choice(FOODS))
        out.append((cohort, text))
    return out


def setup(root: Path, rows: int, seed: int):
    store = open_store("duckdb:///:memory:")
    rng = random.Random(seed)
    data = [{"id": f"r{i}", "input": [{"role": "user", "content": question(rng)}],
             "cohort": "free" if i % 2 else "enterprise"} for i in range(rows)]
    (root / "d.jsonl").write_text("\n".join(json.dumps(r) for r in data) + "\n")
    record, _ = import_dataset(store, "support", root / "d.jsonl")
    folder = root / "rel"
    folder.mkdir(exist_ok=True)
    (folder / "release.yaml").write_text("name: bot\nversion: '1'\ncomponents:\n  responder:\n    model: m\n"
                                         "    base_url: http://127.0.0.1:9/v1\n")
    rel, _ = register(store, load_release(folder))
    store.put_gate(GateRecord(id="gate-1", candidate_digest=rel.digest, baseline_digest="sha256:0",
                              dataset_name="support", dataset_version=record.version, policy_digest="sha256:p",
                              verdict="pass", exit_code=0))
    deployment_store.put(store, "helpdesk", Deployment(stable="bot@1"))
    return store


def write(store, inputs: list[tuple[str, str]]) -> None:
    now, spans = time.time_ns(), []
    for i, (cohort, text) in enumerate(inputs):
        body = orjson.dumps({"model": "helpdesk", "messages": [{"role": "user", "content": text}]}).decode()
        attrs = {"sluice.request": True, "sluice.deployment": "helpdesk", "sluice.route": "stable",
                 "sluice.cohort": cohort, "input.value": body, "openinference.span.kind": "LLM"}
        start = now - (len(inputs) - i) * 1_000_000
        spans.append(RawSpan(f"{i + 1:032x}", f"{i + 1:016x}", "", "g", start, start + 10**6, 1, "", attrs, {}, []))
    rows, _ = Normalizer().rows(spans)
    store.db.insert_rows(f"spans ({', '.join(SPAN_COLUMNS)})", rows)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--rows", type=int, default=200)
    p.add_argument("--live", type=int, default=100)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "drift"))
    args = p.parse_args()
    results = {k: {"flagged": 0, "checks": {}, "seconds": []} for k in STREAMS}
    with tempfile.TemporaryDirectory() as tmp:
        for trial in range(args.trials):
            for kind in STREAMS:
                store = setup(Path(tmp), args.rows, seed=trial)
                write(store, live_stream(kind, random.Random(1000 + trial), args.live))
                t = time.perf_counter()
                report = drift_report(store, "helpdesk", since="1h")
                results[kind]["seconds"].append(time.perf_counter() - t)
                results[kind]["flagged"] += report["stale"]
                for name, check in report["checks"].items():
                    results[kind]["checks"][name] = results[kind]["checks"].get(name, 0) + check["flagged"]
                store.close()
    summary = {"trials": args.trials, "dataset_rows": args.rows, "live_inputs": args.live,
               "loadavg": os.getloadavg(), "streams": {
                   k: {"flagged_share": v["flagged"] / args.trials,
                       "checks_flagged_share": {c: n / args.trials for c, n in sorted(v["checks"].items())},
                       "median_s": statistics.median(v["seconds"]), "max_s": max(v["seconds"])}
                   for k, v in results.items()}}
    Path(args.out + ".json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"# Drift detection ({args.trials} trials, {args.rows} dataset rows, {args.live} live inputs, "
             f"load {summary['loadavg'][0]:.1f})", "",
             "| stream | flagged | cohort mix | input length | novelty | median s | max s |", "|---|---|---|---|---|---|---|"]
    for k, v in summary["streams"].items():
        c = v["checks_flagged_share"]
        lines.append(f"| {k} | {v['flagged_share']:.0%} | {c.get('cohort_mix', 0):.0%} | {c.get('input_tokens', 0):.0%} "
                     f"| {c.get('novelty', 0):.0%} | {v['median_s']:.2f} | {v['max_s']:.2f} |")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
