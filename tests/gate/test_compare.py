import numpy as np
import pytest
from gate_builders import info, make_records, make_rows

from sluice.errors import DataError
from sluice.gate.compare import compare, sampling_differences
from sluice.gate.measures import ALL
from sluice.gate.policy import default_policy, parse_policy
from sluice.release.model import Release


def _ones(n):
    return np.ones(n, dtype=bool)


def test_counts_and_rates_per_cohort():
    rows = make_rows({"a": 10, "b": 10})
    base = {"ev": _ones(20)}
    cand = {"ev": np.array([True] * 10 + [True] * 6 + [False] * 4)}
    ms = compare(default_policy(), rows, make_records(rows, cand), make_records(rows, base), info("c", ["ev"]),
                 info("b", ["ev"]))
    b = ms.eval_for("ev", "b")
    assert (b.n_rows, b.both_pass, b.baseline_only, b.candidate_only) == (10, 6, 4, 0)
    assert b.pass_delta == pytest.approx(-0.4)
    assert b.mcnemar_p == pytest.approx(0.125)
    assert ms.eval_for("ev", "a").pass_delta == 0
    assert ms.eval_for("ev", ALL).n_rows == 20
    assert ms.regressed_row_count == 4 and {d.cohort for d in ms.regressed_rows} == {"b"}


def test_missing_row_is_a_failed_row_not_dropped():
    rows = make_rows({"a": 10})
    cand = make_records(rows, {"ev": _ones(10)})
    del cand["a-3"]
    ms = compare(default_policy(), rows, cand, make_records(rows, {"ev": _ones(10)}), info("c", ["ev"]),
                 info("b", ["ev"]))
    m = ms.eval_for("ev", ALL)
    assert m.n_paired == 10 and m.baseline_only == 1 and m.target_errors_candidate == 1
    assert ms.errors.candidate_missing == 1 and ms.errors.candidate_kinds == {"missing": 1}


def test_target_errors_can_be_excluded_instead():
    rows = make_rows({"a": 10})
    cand = make_records(rows, {"ev": _ones(10)}, errors={"a-1", "a-2"})
    ms = compare(parse_policy("target_errors: exclude"), rows, cand, make_records(rows, {"ev": _ones(10)}),
                 info("c", ["ev"]), info("b", ["ev"]))
    m = ms.eval_for("ev", ALL)
    assert (m.n_paired, m.baseline_only, m.target_errors_candidate) == (8, 0, 2)
    assert ms.errors.candidate_errors == 2 and ms.errors.candidate_kinds == {"http_5xx": 2}


def test_evaluator_errors_are_excluded_and_counted():
    rows = make_rows({"a": 5})
    cand = make_records(rows, {"ev": _ones(5)})
    rec = cand["a-0"]
    cand["a-0"] = rec.model_copy(update={"evals": {"ev": rec.evals["ev"].model_copy(update={"error": "judge down"})}})
    ms = compare(default_policy(), rows, cand, make_records(rows, {"ev": _ones(5)}), info("c", ["ev"]),
                 info("b", ["ev"]))
    m = ms.eval_for("ev", ALL)
    assert (m.n_paired, m.eval_errors_candidate, m.pass_rate_candidate) == (4, 1, 1.0)


def test_refuses_different_evaluator_versions():
    rows = make_rows({"a": 3})
    with pytest.raises(DataError, match="version 2 in the candidate run but 1"):
        compare(default_policy(), rows, make_records(rows, {"ev": _ones(3)}, version="2"),
                make_records(rows, {"ev": _ones(3)}), info("c", ["ev"], version="2"), info("b", ["ev"]))


def test_refuses_different_dataset_versions():
    rows = make_rows({"a": 3})
    recs = make_records(rows, {"ev": _ones(3)})
    with pytest.raises(DataError, match="same dataset version"):
        compare(default_policy(), rows, recs, recs, info("c", ["ev"]), info("b", ["ev"], dataset_version="sha256:x"))


def test_refuses_policy_evaluator_without_results():
    rows = make_rows({"a": 3})
    recs = make_records(rows, {"ev": _ones(3)})
    with pytest.raises(DataError, match="'tone' named by the policy"):
        compare(parse_policy("evaluators: [{name: tone}]"), rows, recs, recs, info("c", ["ev"]), info("b", ["ev"]))


def test_sampling_differences_are_warnings():
    def rel(temp, model):
        return Release.model_validate({"name": "app", "version": "1", "components": {
            "responder": {"model": model, "params": {"temperature": temp, "seed": 1}}}})
    warnings = sampling_differences(rel(0.7, "m2"), rel(0.0, "m1"))
    assert "responder.model differs: candidate m2, baseline m1" in warnings
    assert "responder.params.temperature differs: candidate 0.7, baseline 0.0" in warnings
    assert not any("seed" in w for w in warnings)


def test_latency_and_cost_measures():
    rows = make_rows({"a": 200})
    lat = np.arange(1, 201, dtype=float)
    ms = compare(default_policy(), rows, make_records(rows, {"ev": _ones(200)}, latency=lat * 1.5, cost=0.002),
                 make_records(rows, {"ev": _ones(200)}, latency=lat, cost=0.001), info("c", ["ev"]), info("b", ["ev"]))
    m = ms.latency_for(ALL)
    assert m.baseline_ms["p50"] == pytest.approx(100.5)
    assert m.ratio["p95"] == pytest.approx(1.5)
    assert m.ratio_ci["p95"].low == pytest.approx(1.5) and m.ratio_ci["p95"].high == pytest.approx(1.5)
    assert ms.cost_for(ALL).cost_ratio == pytest.approx(2.0)


def test_score_delta_is_candidate_minus_baseline():
    rows = make_rows({"a": 30})
    rng = np.random.default_rng(4)
    base_scores = rng.uniform(0.6, 1.0, 30)
    cand_scores = base_scores - 0.2
    ms = compare(default_policy(), rows, make_records(rows, {"ev": _ones(30)}, scores={"ev": cand_scores}),
                 make_records(rows, {"ev": _ones(30)}, scores={"ev": base_scores}), info("c", ["ev"]), info("b", ["ev"]))
    m = ms.eval_for("ev", ALL)
    assert m.score_delta == pytest.approx(-0.2)
    assert m.score_delta_ci.high < 0 and m.mean_score_candidate == pytest.approx(float(cand_scores.mean()))


def test_score_delta_pairs_only_rows_judged_on_both_sides():
    """A baseline evaluator error leaves that row out of the paired delta, not in it at score 0."""
    rows = make_rows({"a": 20})
    scores = {"ev": np.full(20, 0.5)}
    base = make_records(rows, {"ev": _ones(20)}, scores=scores)
    for row in rows[:5]:
        rec = base[row.id]
        base[row.id] = rec.model_copy(update={"evals": {"ev": rec.evals["ev"].model_copy(update={"error": "judge down"})}})
    ms = compare(default_policy(), rows, make_records(rows, {"ev": _ones(20)}, scores=scores), base,
                 info("c", ["ev"]), info("b", ["ev"]))
    m = ms.eval_for("ev", ALL)
    assert (m.n_paired, m.n_candidate) == (15, 20)
    assert m.score_delta == 0.0
