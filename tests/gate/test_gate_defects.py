"""Defects of issue 8, each through ``run_gate`` (what ``sluice gate`` calls) where it can be.

Every test here failed before its fix.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from gate_builders import info, make_records, make_rows
from pydantic import ValidationError

from sluice.gate import run_gate
from sluice.gate.compare import compare
from sluice.gate.measures import ALL
from sluice.gate.policy import default_policy, parse_policy
from sluice.runner.record import RowOutput


def _ones(n):
    return np.ones(n, dtype=bool)


def _gate(policy, rows, cand, base, evs=("ev",)):
    return run_gate(policy, rows, cand, base, info("c", list(evs)), info("b", list(evs)))


def test_twenty_perfect_rows_do_not_prove_a_minimum_mean_score_of_0_9():
    rows = make_rows({"a": 20})
    recs = make_records(rows, {"ev": _ones(20)})
    result = _gate(parse_policy("thresholds: {min_mean_score: 0.9, max_regression: null}"), rows, recs, recs)
    ci = result.eval_for("ev", ALL).mean_score_candidate_ci
    assert ci.low == pytest.approx(0.8316, abs=1e-4) and ci.high == 1.0  # was 1.000…1.000
    assert result.verdict == "inconclusive"


def test_identical_twenty_row_runs_do_not_prove_a_score_delta_within_0_05():
    rows = make_rows({"a": 20})
    scores = {"ev": np.full(20, 0.7)}
    recs = make_records(rows, {"ev": _ones(20)}, scores=scores)
    result = _gate(parse_policy("thresholds: {max_score_regression: 0.05, max_regression: null}"), rows, recs,
                   make_records(rows, {"ev": _ones(20)}, scores=scores))
    ci = result.eval_for("ev", ALL).score_delta_ci
    assert ci.low < -0.15 and ci.high > 0.15  # was 0…0
    assert result.verdict == "inconclusive"


def test_cohort_size_counts_judged_rows_and_one_judged_row_cannot_fail_the_gate():
    """A 25-row cohort where the evaluator applies to one row, and that row regressed."""
    rows = make_rows({"main": 200, "billing": 25})
    base = make_records(rows, {"ev": _ones(225)})
    cand = make_records(rows, {"ev": np.array([True] * 200 + [False] + [True] * 24)})
    for side in (base, cand):
        for row in rows[201:]:
            rec = side[row.id]
            res = rec.evals["ev"].model_copy(update={"details": {"not_applicable": True}})
            side[row.id] = rec.model_copy(update={"evals": {"ev": res}})
    result = _gate(parse_policy("thresholds: {max_regression: 0.05}"), rows, cand, base)
    billing = next(c for c in result.checks if c.cohort == "billing" and c.evaluator == "ev")
    assert (billing.metric, billing.status) == ("rows", "skipped")
    assert "1 judged rows, fewer than the minimum 20" in billing.message
    assert result.verdict == "pass", result.reasons


@pytest.mark.parametrize("bad", [math.nan, -5.0, math.inf])
def test_row_output_refuses_a_latency_that_is_not_a_duration(bad):
    with pytest.raises(ValidationError, match="latency_ms must be a finite number >= 0"):
        RowOutput(row_id="r", latency_ms=bad)


def test_candidate_quantile_and_its_interval_come_from_the_same_rows():
    """The baseline failed on the 20 rows where the candidate was slowest: the candidate's p95
    (all rows it answered) used to carry an interval from the paired rows only, far below it."""
    rows = make_rows({"a": 200})
    lat = np.full(200, 100.0)
    lat[:20] = 1000.0
    slow = {r.id for r in rows[:20]}
    ms = compare(parse_policy("latency: {p95_max_ms: 500}"), rows, make_records(rows, {"ev": _ones(200)}, latency=lat),
                 make_records(rows, {"ev": _ones(200)}, errors=slow), info("c", ["ev"]), info("b", ["ev"]))
    m = ms.latency_for(ALL)
    assert m.candidate_ms["p95"] == 1000.0
    assert m.candidate_ci["p95"].low <= m.candidate_ms["p95"] <= m.candidate_ci["p95"].high


def test_an_evaluators_intervals_do_not_depend_on_the_other_evaluators():
    """The seed is the policy seed and the cohort (docs/gate.md): one resample matrix per cohort
    serves every evaluator, so adding an evaluator leaves the others' intervals as they were."""
    rows = make_rows({"a": 60})
    rng = np.random.default_rng(3)
    scores = {"x": rng.random(60), "y": rng.random(60)}
    passes = {k: v > 0.3 for k, v in scores.items()}
    base_scores = {k: np.clip(v + rng.normal(0, 0.1, 60), 0, 1) for k, v in scores.items()}
    policy = default_policy()

    def ci(names):
        ms = compare(policy, rows, make_records(rows, {n: passes[n] for n in names}, scores=scores),
                     make_records(rows, {n: passes[n] for n in names}, scores=base_scores),
                     info("c", names), info("b", names))
        return ms.eval_for("x", "a").score_delta_ci

    assert ci(["x"]) == ci(["x", "y"])
