"""Benchmark: 2,000 rows × the default deterministic evaluators (+ answer_similarity on MiniLM).

Not a test (speed is measured, not asserted). Run: .venv/bin/python tests/evals/bench_evaluators.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from sluice.dataset.row import Row
from sluice.evals import build, evaluate_rows
from sluice.runner.record import RowOutput

DATA = Path(__file__).parent / "data"


def main(n: int = 2000) -> None:
    g = [json.loads(x) for x in (DATA / "groundedness.jsonl").read_text().splitlines()]
    pairs = []
    for i in range(n):
        ex = g[i % len(g)]
        row = Row(id=str(i), input=[{"role": "user", "content": f"Question {i} about the policy?"}],
                  context=ex["context"] * 3, expected_answer=ex["response"][:40])
        out = RowOutput(row_id=str(i), output=ex["response"] + f" Ref {i}.", latency_ms=100 + i,
                        cost=0.0001)
        pairs.append((row, out))
    specs = ["groundedness", "context_relevance", "pii_leak", "refusal", "contains",
             {"name": "latency_budget", "max_ms": 1500}, {"name": "json_validation"},
             {"name": "answer_similarity", "backend": "lexical"}]
    for spec in specs + [{"name": "answer_similarity"}]:
        ev = build(spec)
        t = time.perf_counter()
        evaluate_rows([ev], pairs)
        dt = time.perf_counter() - t
        print(f"{ev.name:28s} {dt:7.3f} s  {1000 * dt / n:7.3f} ms/row")
    t = time.perf_counter()
    evaluate_rows([build(s) for s in specs[:6]], pairs)
    print(f"6 deterministic together     {time.perf_counter() - t:7.3f} s")


if __name__ == "__main__":
    main()
