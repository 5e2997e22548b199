"""Builders for synthetic candidate/baseline runs: rows, records and run metadata."""

from __future__ import annotations

import numpy as np

from sluice.dataset.row import Row
from sluice.evals.result import EvalResult
from sluice.gate.compare import EvaluatorSpec, RunInfo
from sluice.runner.record import RowOutput, RowRecord, Usage


def make_rows(cohorts: dict[str, int]) -> list[Row]:
    rows = []
    for cohort, n in cohorts.items():
        for i in range(n):
            rows.append(Row(id=f"{cohort}-{i}", input=[{"role": "user", "content": f"question {i} of {cohort}"}],
                            expected_answer=f"answer {i}", cohort=cohort))
    return rows


def make_records(rows: list[Row], passes: dict[str, np.ndarray], *, scores: dict[str, np.ndarray] | None = None,
                 latency: np.ndarray | None = None, errors: set[str] = frozenset(), version: str = "1",
                 cost: float | None = 0.001, tokens: tuple[int, int] = (100, 20)) -> dict[str, RowRecord]:
    out = {}
    for i, row in enumerate(rows):
        evals = {}
        for name, p in passes.items():
            s = float(scores[name][i]) if scores and name in scores else float(p[i])
            evals[name] = EvalResult(score=s, passed=bool(p[i]), evaluator=name, version=version,
                                     reason=f"{name} says {'yes' if p[i] else 'no'}")
        err = row.id in errors
        output = RowOutput(row_id=row.id, output=None if err else f"output for {row.id}",
                           latency_ms=float(latency[i]) if latency is not None else 100.0,
                           usage=Usage(prompt_tokens=tokens[0], completion_tokens=tokens[1],
                                       total_tokens=sum(tokens)),
                           cost=cost, error="HTTP 503" if err else None, error_kind="http_5xx" if err else None)
        out[row.id] = RowRecord(output=output, evals={} if err else evals, cohort=row.cohort)
    return out


def info(side: str, evaluators: list[str], version: str = "1", dataset_version: str = "sha256:abc") -> RunInfo:
    return RunInfo(ref=f"app@{side}", digest=f"sha256:{side}", dataset_name="contract",
                   dataset_version=dataset_version,
                   evaluators=[EvaluatorSpec(name=e, version=version) for e in evaluators])
