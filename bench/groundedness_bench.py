"""Groundedness benchmark: every backend and two trivial baselines on the same labelled data.

Sets (label 1 = grounded answer, 0 = hallucinated):
  - halueval_dev: ../shared/data/halueval_qa_dev.jsonl (500 questions × right/hallucinated answer;
    tuned on, so optimistic);
  - halueval_dev_length_matched: its pairs whose two answers differ by at most 2 words, where
    answer length says nothing (the length baseline falls to chance there);
  - halueval_heldout: 100 other HaluEval questions never trained or tuned on;
  - halueval_heldout_augmented: answers of every length for those questions (the context
    sentence stating the answer, the answer restated in other words, a wrong name of the context
    as the answer or swapped into the sentence, a number changed, a negation added);
  - summedits_news / summedits_scitldr: SummEdits domains never trained on (paraphrased faithful
    summaries vs minimally edited unfaithful ones).
Baselines, each given the threshold that is best on the set itself (an oracle, so generous):
  - length: grounded when the answer has at most T words;
  - containment: grounded when at least T of the answer's words occur in the context.
Each backend runs in its own process so its peak resident memory is its own.
Balanced accuracy = mean of "grounded kept" and "hallucinated caught".

    .venv/bin/python bench/groundedness_bench.py [--limit N]   (make bench-groundedness)
Results: bench/results/groundedness.json and groundedness.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETS_DIR = ROOT / "tests" / "evals" / "data" / "groundedness"
RESULTS = ROOT / "bench" / "results"
BACKENDS = {"crossencoder": {"backend": "crossencoder"},
            "crossencoder (1 core)": {"backend": "crossencoder"},
            "crossencoder (no fact checks)": {"backend": "crossencoder", "require_facts": False},
            "verifier": {"backend": "verifier"}, "lexical": {"backend": "lexical"},
            "embedding": {"backend": "embedding", "embedder": "minilm"}}
# Backends measured pinned to one CPU core (the latency target is per core).
ONE_CORE = {"crossencoder (1 core)"}
SETS = ("halueval_dev", "halueval_dev_length_matched", "halueval_heldout",
        "halueval_heldout_augmented", "summedits_news", "summedits_scitldr")
CHUNK = 64
_WORD = re.compile(r"\w+")


def shared_dev() -> Path | None:
    for base in (ROOT.parent / "shared", Path("/work/shared")):
        p = base / "data" / "halueval_qa_dev.jsonl"
        if p.is_file():
            return p
    return None


def load_sets(limit: int | None) -> dict[str, list[dict]]:
    sets: dict[str, list[dict]] = {}
    dev = shared_dev()
    if dev is not None:
        rows = []
        for r in (json.loads(x) for x in dev.read_text().splitlines() if x.strip()):
            for label, key in ((1, "right_answer"), (0, "hallucinated_answer")):
                rows.append({"query": r["question"], "context": [r["knowledge"].strip()],
                             "response": r[key], "label": label, "pair": r["id"]})
        sets["halueval_dev"] = rows
        n_words = {}
        for r in rows:
            n_words.setdefault(r["pair"], []).append(len(_WORD.findall(r["response"])))
        sets["halueval_dev_length_matched"] = [
            r for r in rows if abs(n_words[r["pair"]][0] - n_words[r["pair"]][1]) <= 2]
    for name in SETS[2:]:
        with gzip.open(SETS_DIR / f"{name}.jsonl.gz", "rt") as f:
            sets[name] = [json.loads(x) for x in f]
    if limit:
        sets = {k: v[:limit] for k, v in sets.items()}
    return sets


def balanced(pred: list[bool], labels: list[int]) -> dict:
    pos = [p for p, y in zip(pred, labels) if y == 1]
    neg = [p for p, y in zip(pred, labels) if y == 0]
    kept = sum(pos) / len(pos) if pos else 0.0
    caught = sum(not p for p in neg) / len(neg) if neg else 0.0
    return {"balanced_accuracy": round((kept + caught) / 2, 4), "kept": round(kept, 4),
            "caught": round(caught, 4), "rows": len(labels)}


def best_threshold(values: list[float], labels: list[int], grounded_if_low: bool) -> dict:
    best = None
    for t in sorted(set(values)):
        pred = [(v <= t) if grounded_if_low else (v >= t) for v in values]
        res = balanced(pred, labels)
        if best is None or res["balanced_accuracy"] > best["balanced_accuracy"]:
            best = {**res, "threshold": t}
    return best or {}


def baselines(rows: list[dict]) -> dict:
    labels = [r["label"] for r in rows]
    lengths = [float(len(_WORD.findall(r["response"]))) for r in rows]
    contain = []
    for r in rows:
        ctx = {w.lower() for d in r["context"] for w in _WORD.findall(d)}
        ws = [w.lower() for w in _WORD.findall(r["response"])]
        contain.append(sum(w in ctx for w in ws) / len(ws) if ws else 1.0)
    return {"length": best_threshold(lengths, labels, True),
            "containment": best_threshold(contain, labels, False)}


def clear_caches() -> None:
    """Cold text caches, so no set is scored faster for texts an earlier one embedded."""
    from sluice.evals.backends import embedding

    for emb in embedding._embedders.values():
        emb.cache = embedding._LRU(emb.cache.size)
    from sluice.evals.backends import crossenc

    if crossenc._model is not None:
        crossenc._model._cache.clear()


def run_backend(name: str, limit: int | None) -> dict:
    """Score every set with one backend (in this process) and return its figures."""
    from sluice.evals import Groundedness

    if name in ONE_CORE:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    ev = Groundedness(**BACKENDS[name])
    out: dict = {"backend": name, "sets": {}}
    all_chunks: list[float] = []
    # One row at a time, cold caches: the latency an online evaluation sees (HaluEval rows:
    # a paragraph of context, a short answer).
    ev.evaluate_batch([{"response": "warm-up", "context": ["the model loads"], "query": "q?"}])
    singles = []
    for r in load_sets(limit).get("halueval_heldout", [])[:100]:
        clear_caches()
        t = time.perf_counter()
        ev.evaluate_batch([{"response": r["response"], "context": r["context"],
                            "query": r.get("query")}])
        singles.append(1000 * (time.perf_counter() - t))
    for set_name, rows in load_sets(limit).items():
        clear_caches()
        fields = [{"response": r["response"], "context": r["context"], "query": r.get("query")}
                  for r in rows]
        results, per_row = [], []
        t0 = time.perf_counter()
        for start in range(0, len(fields), CHUNK):
            chunk = fields[start:start + CHUNK]
            t = time.perf_counter()
            results += ev.evaluate_batch(chunk)
            per_row.append(1000 * (time.perf_counter() - t) / len(chunk))
        total = time.perf_counter() - t0
        errors = sum(r.error is not None for r in results)
        res = balanced([r.passed for r in results], [r["label"] for r in rows])
        res.update({"errors": errors, "ms_per_row": round(1000 * total / len(rows), 2),
                    "ms_per_row_median_chunk": round(statistics.median(per_row), 2)})
        out["sets"][set_name] = res
        all_chunks += per_row
    out["ms_per_row_median_batched"] = round(statistics.median(all_chunks), 2)
    out["ms_per_row_median_single"] = round(statistics.median(singles), 2) if singles else None
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def markdown(results: dict) -> str:
    sets = [s for s in SETS if s in results["baselines"]]
    head = "| backend | " + " | ".join(sets) + " | ms/row (batched, median) | ms/row (one row) " \
           "| peak memory |\n|" + "---|" * (len(sets) + 4) + "\n"
    lines = []
    for b in results["backends"]:
        cells = [f"{b['sets'][s]['balanced_accuracy']:.3f} ({b['sets'][s]['kept']:.2f} / "
                 f"{b['sets'][s]['caught']:.2f})" for s in sets]
        mark = " *" if b.get("measured") else ""
        lines.append(f"| {b['backend']}{mark} | " + " | ".join(cells) +
                     f" | {b['ms_per_row_median_batched']} | {b['ms_per_row_median_single']} | "
                     f"{b['peak_rss_mb']} MB |")
    for name in ("length", "containment"):
        cells = [f"{results['baselines'][s][name]['balanced_accuracy']:.3f} "
                 f"(≤ {results['baselines'][s][name]['threshold']:g})" if name == "length" else
                 f"{results['baselines'][s][name]['balanced_accuracy']:.3f} "
                 f"(≥ {results['baselines'][s][name]['threshold']:.2f})" for s in sets]
        lines.append(f"| baseline: {name} (oracle threshold) | " + " | ".join(cells) +
                     " | | | |")
    ms = "| backend | " + " | ".join(sets) + " |\n|" + "---|" * (len(sets) + 1) + "\n" + "\n".join(
        f"| {b['backend']} | " + " | ".join(str(b["sets"][s]["ms_per_row"]) for s in sets) + " |"
        for b in results["backends"])
    rows = " · ".join(f"{s} {len_}" for s, len_ in results["rows"].items())
    return ("# Groundedness benchmark\n\nBalanced accuracy (grounded kept / hallucinated caught); "
            f"rows: {rows}.\nMachine: {results['machine']}, load average at start "
            f"{results['load_average']}.\n\n" + head + "\n".join(lines)
            + ("\n\n\\* measured in an earlier run of this benchmark (load average then "
               f"{next(b['measured'] for b in results['backends'] if b.get('measured'))}); "
               "the others in this one."
               if any(b.get("measured") for b in results["backends"]) else "") +
            "\n\nms per row by set (batches of 64, cold caches per set; one row = a HaluEval "
            "held-out row alone, cold caches, median of 100):\n\n" + ms + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=None, help="rows per set (a quick run)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--backends", help="comma-separated subset of the backends (default: all)")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_backend(args.one, args.limit)))
        return
    sets = load_sets(args.limit)
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
               "load_average": [round(x, 2) for x in os.getloadavg()],
               "rows": {k: len(v) for k, v in sets.items()},
               "baselines": {k: baselines(v) for k, v in sets.items()}, "backends": []}
    names = args.backends.split(",") if args.backends else list(BACKENDS)
    for name in names:
        cmd = [sys.executable, __file__, "--one", name]
        if args.limit:
            cmd += ["--limit", str(args.limit)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=1800)
        results["backends"].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"{name}: done", file=sys.stderr)
    if args.backends and (RESULTS / "groundedness.json").is_file():
        # A partial run keeps the other backends' last figures (their rows say when measured).
        previous = json.loads((RESULTS / "groundedness.json").read_text())
        ran = {b["backend"] for b in results["backends"]}
        kept = [{**b, "measured": b.get("measured", previous.get("load_average"))}
                for b in previous["backends"] if b["backend"] not in ran]
        results["backends"] = [b for b in results["backends"]] + kept
        order = list(BACKENDS)
        results["backends"].sort(key=lambda b: order.index(b["backend"])
                                 if b["backend"] in order else len(order))
    results["not_run"] = {"nli": "no NLI weights ship with Sluice (bring a model folder)",
                          "llm_judge": "needs a judge model endpoint"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "groundedness.json").write_text(json.dumps(results, indent=1) + "\n")
    md = markdown(results)
    (RESULTS / "groundedness.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
