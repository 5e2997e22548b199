"""context_relevance and task_completion on public labelled data (HaluEval QA, held-out cut).

No public set with human relevance or completion labels ships with Sluice; HaluEval's structure
gives labels without inventing any:
  - context_relevance: a question with its own HotpotQA knowledge paragraph (relevant) vs with
    the paragraph of another question of the set (irrelevant);
  - task_completion: expected_answer = HaluEval's right answer; the response is the right answer
    (completed) or the hallucinated one (not).
Balanced accuracy of ``passed``. Rows: HaluEval held-out (tests/evals/data/groundedness/).

    .venv/bin/python bench/labelled_evals_bench.py   → bench/results/labelled_evals.{json,md}
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from sluice.evals import ContextRelevance, TaskCompletion

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "evals" / "data" / "groundedness" / "halueval_heldout.jsonl.gz"


def balanced(pred: list[bool], labels: list[int]) -> dict:
    pos = [p for p, y in zip(pred, labels) if y]
    neg = [not p for p, y in zip(pred, labels) if not y]
    kept, caught = sum(pos) / len(pos), sum(neg) / len(neg)
    return {"balanced_accuracy": round((kept + caught) / 2, 4), "positive_passed": round(kept, 4),
            "negative_failed": round(caught, 4), "rows": len(labels)}


def main() -> None:
    with gzip.open(DATA, "rt") as f:
        rows = [json.loads(x) for x in f]
    questions = [r for r in rows if r["label"] == 1]  # one per question
    rel_fields, rel_labels = [], []
    for i, r in enumerate(questions):
        other = questions[(i + 7) % len(questions)]
        rel_fields += [{"query": r["query"], "context": r["context"]},
                       {"query": r["query"], "context": other["context"]}]
        rel_labels += [1, 0]
    right = {r["id"].split("-")[0]: r["response"] for r in rows if r["label"] == 1}
    tc_fields = [{"response": r["response"], "expected_answer": right[r["id"].split("-")[0]],
                  "query": r["query"]} for r in rows]
    tc_labels = [r["label"] for r in rows]
    results = {}
    for backend in ("lexical", "embedding"):
        ev = ContextRelevance(backend=backend)
        results[f"context_relevance/{backend}"] = balanced(
            [x.passed for x in ev.evaluate_batch(rel_fields)], rel_labels)
    results["task_completion/rules"] = balanced(
        [x.passed for x in TaskCompletion().evaluate_batch(tc_fields)], tc_labels)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "labelled_evals.json").write_text(json.dumps(results, indent=1) + "\n")
    md = ("# context_relevance and task_completion on HaluEval (held-out cut)\n\n"
          "| evaluator / backend | balanced accuracy | positives passed | negatives failed "
          "| rows |\n"
          "|---|---|---|---|---|\n" + "\n".join(
              f"| {k} | {v['balanced_accuracy']:.3f} | {v['positive_passed']:.3f} | "
              f"{v['negative_failed']:.3f} | {v['rows']} |" for k, v in results.items()) + "\n")
    (out / "labelled_evals.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
