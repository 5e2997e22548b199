"""Row records turned into aligned arrays (one slot per dataset row), and the per-row diffs.

Every array is in dataset order, so a cohort is a boolean mask and candidate and baseline line
up by position. A row the run lacks is a target error of kind ``missing``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from sluice.dataset.row import Row
from sluice.gate.measures import RowDiff, SideScore
from sluice.release.model import Release
from sluice.runner.record import RowRecord


@dataclass
class SideArrays:
    present: np.ndarray  # the run has the row
    target_error: np.ndarray  # target failed or row missing
    latency: np.ndarray
    prompt_tokens: np.ndarray
    completion_tokens: np.ndarray
    cost: np.ndarray  # NaN where unknown
    error_kinds: list[str] = field(default_factory=list)
    error_examples: dict[str, str] = field(default_factory=dict)  # kind -> its first error message
    valid: dict[str, np.ndarray] = field(default_factory=dict)  # row counts for this evaluator
    passed: dict[str, np.ndarray] = field(default_factory=dict)
    score: dict[str, np.ndarray] = field(default_factory=dict)
    eval_error: dict[str, np.ndarray] = field(default_factory=dict)  # instrument failed or no result


def row_cost(rec: RowRecord, release: Release | None) -> float:
    """The row's cost as reported, else priced from token usage (per 1M tokens), else NaN."""
    if rec.output.cost is not None:
        return float(rec.output.cost)
    prices = release.cost if release is not None else {}
    if "input" in prices or "output" in prices:
        u = rec.output.usage
        return (u.prompt_tokens * prices.get("input", 0.0) + u.completion_tokens * prices.get("output", 0.0)) / 1e6
    return float("nan")


def side_arrays(rows: list[Row], records: Mapping[str, RowRecord], evaluators: Mapping[str, str],
                target_errors: Literal["fail", "exclude"], release: Release | None) -> SideArrays:
    n = len(rows)
    s = SideArrays(present=np.zeros(n, bool), target_error=np.zeros(n, bool), latency=np.zeros(n),
                   prompt_tokens=np.zeros(n), completion_tokens=np.zeros(n), cost=np.full(n, np.nan))
    for name in evaluators:
        s.valid[name], s.passed[name] = np.zeros(n, bool), np.zeros(n, bool)
        s.score[name], s.eval_error[name] = np.zeros(n), np.zeros(n, bool)
    for i, row in enumerate(rows):
        rec = records.get(row.id)
        if rec is None:
            s.target_error[i] = True
            s.error_kinds.append("missing")
            s.error_examples.setdefault("missing", "row missing from the run")
        else:
            s.present[i] = True
            out = rec.output
            s.latency[i] = out.latency_ms
            s.prompt_tokens[i], s.completion_tokens[i] = out.usage.prompt_tokens, out.usage.completion_tokens
            s.cost[i] = row_cost(rec, release)
            if out.error is not None:
                s.target_error[i] = True
                s.error_kinds.append(out.error_kind or "error")
                s.error_examples.setdefault(out.error_kind or "error", out.error)
        for name in evaluators:
            res = rec.evals.get(name) if rec is not None else None
            if res is not None and res.details.get("not_applicable"):
                continue  # the row is outside this evaluator's scope: neither judged nor an error
            if s.target_error[i]:
                s.valid[name][i] = target_errors == "fail"  # a failed row scores 0 and fails
                continue
            if res is None or res.error is not None:
                s.eval_error[name][i] = True
                continue
            s.valid[name][i], s.passed[name][i], s.score[name][i] = True, res.passed, res.score
    return s


def _side_score(rec: RowRecord | None, name: str) -> SideScore:
    res = rec.evals.get(name) if rec is not None else None
    if res is None:
        return SideScore(error="no result" if rec is not None and rec.output.error is None else None)
    return SideScore(score=res.score, passed=res.passed, reason=res.reason, error=res.error)


def _input_of(row: Row) -> Any:
    if isinstance(row.input, dict):
        return row.input
    return [m.model_dump(exclude_none=True) for m in row.input]


def regressed_rows(rows: list[Row], candidate: Mapping[str, RowRecord], baseline: Mapping[str, RowRecord],
                   evaluators: Mapping[str, str], cand: SideArrays, base: SideArrays,
                   limit: int) -> tuple[list[RowDiff], int]:
    """Rows where an evaluator passed on the baseline and failed on the candidate, worst first:
    the first ``limit`` as diffs, and how many there are in all."""
    ranked: list[tuple[int, float, str, int, list[str]]] = []
    for i, row in enumerate(rows):
        regressed = [name for name in evaluators
                     if cand.valid[name][i] and base.valid[name][i] and base.passed[name][i]
                     and not cand.passed[name][i]]
        if regressed:
            drop = sum(float(base.score[n][i] - cand.score[n][i]) for n in evaluators
                       if cand.valid[n][i] and base.valid[n][i])
            ranked.append((-len(regressed), -round(drop, 6), row.id, i, regressed))
    ranked.sort(key=lambda t: t[:3])
    out = []
    for _, neg_drop, _, i, regressed in ranked[:limit]:
        row = rows[i]
        crec, brec = candidate.get(row.id), baseline.get(row.id)
        out.append(RowDiff(
            row_id=row.id, cohort=row.cohort, input=_input_of(row), expected=row.expected_answer,
            candidate_output=crec.output.output if crec else None,
            baseline_output=brec.output.output if brec else None,
            candidate_error=(crec.output.error if crec else "row missing from the candidate run"),
            baseline_error=(brec.output.error if brec else "row missing from the baseline run"),
            regressed=regressed, score_drop=-neg_drop,
            candidate={n: _side_score(crec, n) for n in evaluators},
            baseline={n: _side_score(brec, n) for n in evaluators}))
    return out, len(ranked)
