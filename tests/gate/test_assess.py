"""One small test per verdict rule, on hand-built measurements."""

import pytest
from scipy.stats import binom

from sluice.gate.assess import assess
from sluice.gate.margins import auto_margin
from sluice.gate.measures import (ALL, CostMeasure, ErrorMeasure, EvalMeasure, Interval, LatencyMeasure,
                                  Measurements, SideInfo)
from sluice.gate.policy import parse_policy


def ev(name="ev", cohort=ALL, delta=0.0, lo=-0.01, hi=0.01, rate=0.9, rate_lo=0.85, rate_hi=0.95, n=100,
       regressed=None, improved=0):
    """One evaluator's measure; the discordant counts follow ``delta`` unless given."""
    regressed = round(-delta * n) + improved if regressed is None else regressed
    return EvalMeasure(evaluator=name, cohort=cohort, n_rows=n, n_paired=n, n_candidate=n, pass_rate_candidate=rate,
                       pass_rate_candidate_ci=Interval(low=rate_lo, high=rate_hi), pass_delta=delta,
                       pass_delta_ci=Interval(low=lo, high=hi), baseline_only=regressed, candidate_only=improved,
                       both_pass=n - regressed - 10, both_fail=10 - improved, mcnemar_p=1.0, score_delta=delta,
                       score_delta_ci=Interval(low=lo, high=hi))


def measurements(evals, cohorts=None, errors=(0, 0), latency=None, cost=None, n=100):
    return Measurements(
        candidate=SideInfo(ref="c", digest="sha256:c"), baseline=SideInfo(ref="b", digest="sha256:b"),
        dataset_name="d", dataset_version="sha256:d", evaluators={e.evaluator: "1" for e in evals}, confidence=0.95,
        cohorts=cohorts or {"default": n}, eval=evals, latency=latency or [], cost=cost or [],
        errors=ErrorMeasure(n_rows=n, candidate_errors=errors[0], baseline_errors=errors[1], candidate_missing=0,
                            baseline_missing=0))


FIXED = "thresholds: {max_regression: 0.02}"


def test_pass_when_lower_bound_clears_allowed_regression():
    v = assess(parse_policy(FIXED), measurements([ev(lo=-0.015, hi=0.02)]))
    assert (v.verdict, v.exit_code, v.reasons) == ("pass", 0, [])


def test_fail_when_a_significant_drop_lies_below_allowed_regression():
    v = assess(parse_policy(FIXED), measurements([ev(cohort="billing", delta=-0.18, lo=-0.27, hi=-0.09)],
                                                 cohorts={"billing": 100}))
    assert (v.verdict, v.exit_code) == ("fail", 1)
    assert v.reasons[0].startswith(
        "ev in cohort 'billing': pass-rate delta -0.180 (95% CI -0.270…-0.090) below allowed -0.020 "
        "(18 rows regressed, 0 improved, one-sided McNemar p=3.81e-06); Holm-adjusted p=3.81e-06 across 1 checks")


def test_inconclusive_when_interval_straddles_threshold_with_the_rows_that_would_decide():
    v = assess(parse_policy(FIXED), measurements([ev(delta=-0.01, lo=-0.05, hi=0.03, regressed=6, improved=5)]))
    assert (v.verdict, v.exit_code) == ("inconclusive", 2)
    assert "straddles allowed -0.020" in v.reasons[0]
    check = next(c for c in v.checks if c.metric == "pass_rate_delta")
    # per-row sd sqrt(11/100 - 0.01^2) = 0.3315; (1.96 * 0.3315 / 0.01)^2 = 4221.4
    assert check.rows_needed == 4222 and "about 4,222 judged rows would decide it" in check.message


def test_cohort_checks_fail_only_on_evidence_and_otherwise_pass():
    """The same wide interval is inconclusive overall (non-inferiority) and a pass in a cohort
    (evidence of harm): 60 rows cannot show a drop under 0.02, but they show no drop either."""
    wide = dict(delta=-0.02, lo=-0.12, hi=0.08, regressed=8, improved=7, n=60)
    v = assess(parse_policy(FIXED), measurements([ev(**wide), ev(cohort="billing", **wide)],
                                                 cohorts={"billing": 60}, n=60))
    by_cohort = {c.cohort: c for c in v.checks if c.metric == "pass_rate_delta"}
    assert (by_cohort[ALL].role, by_cohort[ALL].status) == ("non_inferiority", "inconclusive")
    assert (by_cohort["billing"].role, by_cohort["billing"].status) == ("harm", "pass")
    assert "no significant drop below allowed -0.020" in by_cohort["billing"].message


def test_a_drop_below_the_margin_that_is_not_significant_after_correction_does_not_fail():
    # 9 regressed, 1 improved in 40 rows: one-sided p = 0.0107 alone; with 9 more checks of 30 discordant
    # pairs each (each can attain 0.0081 <= 0.0107) the discrete Holm sum is 0.0107 + 9 * 0.0081 > 0.05
    drop = dict(delta=-0.2, lo=-0.33, hi=-0.05, regressed=9, improved=1, n=40)
    alone = assess(parse_policy(FIXED), measurements([ev(cohort="c0", **drop)], cohorts={"c0": 40}))
    assert alone.verdict == "fail"
    many = [ev(cohort="c0", **drop)] + [ev(cohort=f"c{i}", delta=0.0, lo=-0.1, hi=0.1, regressed=15, improved=15,
                                           n=60) for i in range(1, 10)]
    v = assess(parse_policy(FIXED), measurements(many, cohorts={f"c{i}": 60 for i in range(10)}))
    check = next(c for c in v.checks if c.cohort == "c0")
    assert check.status == "pass" and check.p_adjusted > 0.05 > check.p_value


def test_auto_margin_is_sized_to_the_judged_rows():
    m = ev(delta=-0.03, lo=-0.06, hi=0.025, regressed=24, improved=15, n=300)
    m.both_pass = 231  # the baseline passes 231 + 24 = 255 of 300 rows (0.85)
    check = next(c for c in assess(parse_policy(""), measurements([m], n=300)).checks if c.metric == "pass_rate_delta")
    p = 256 / 302
    assert check.auto_margin and check.threshold == pytest.approx(-(1.959964 + 3.090232) * (2 * p * (1 - p) / 300) ** 0.5)
    assert check.threshold == pytest.approx(-0.1481, abs=1e-4)
    assert check.status == "pass" and "auto margin for 300 paired rows" in check.message
    assert auto_margin(3000, 3000, 0.95) == 0.02  # every row passing leaves nothing to resolve: the floor
    assert auto_margin(2040, 2400, 0.95) == pytest.approx(0.0521, abs=1e-4)


def test_min_pass_rate_judged_on_the_bound():
    policy = parse_policy("thresholds: {min_pass_rate: 0.9, max_regression: null}")
    assert assess(policy, measurements([ev(rate=0.95, rate_lo=0.91, rate_hi=0.98)])).verdict == "pass"
    assert assess(policy, measurements([ev(rate=0.92, rate_lo=0.88, rate_hi=0.95)])).verdict == "inconclusive"
    failed = assess(policy, measurements([ev(rate=0.8, rate_lo=0.72, rate_hi=0.86)]))
    assert failed.verdict == "fail" and "below the minimum 0.900" in failed.reasons[0]
    check = failed.checks[-3]
    assert check.metric == "pass_rate" and check.p_value == pytest.approx(binom.cdf(80, 100, 0.9))


def test_small_cohort_is_not_judged_and_only_blocks_when_required():
    evals = [ev(), ev(cohort="tiny", delta=-0.5, lo=-0.9, hi=-0.2, n=5)]
    loose = assess(parse_policy(FIXED), measurements(evals, cohorts={"default": 95, "tiny": 5}))
    assert loose.verdict == "pass"
    assert any(c.cohort == "tiny" and c.status == "skipped" for c in loose.checks)
    strict = assess(parse_policy("cohorts: {require: [tiny]}"), measurements(evals, cohorts={"default": 95, "tiny": 5}))
    assert strict.verdict == "inconclusive"
    assert "cohort 'tiny': 5 rows, fewer than the minimum 20" in strict.reasons[0]


def test_required_cohort_absent_is_inconclusive():
    v = assess(parse_policy("cohorts: {require: [enterprise]}"), measurements([ev()]))
    assert v.verdict == "inconclusive" and "cohort 'enterprise': 0 rows" in v.reasons[0]


def test_critical_evaluator_fails_alone_noncritical_within_allowance():
    policy = parse_policy("max_noncritical_failures: 1\nevaluators: [{name: safety, critical: true}, {name: tone}]\n"
                          + FIXED)
    bad = dict(delta=-0.2, lo=-0.3, hi=-0.1)
    assert assess(policy, measurements([ev("safety", **bad), ev("tone")])).verdict == "fail"
    tolerated = assess(policy, measurements([ev("safety"), ev("tone", **bad)]))
    assert tolerated.verdict == "pass" and tolerated.reasons[0].startswith("tolerated")


def test_noncritical_failures_beyond_allowance_fail():
    policy = parse_policy("max_noncritical_failures: 1\n" + FIXED)
    bad = dict(delta=-0.2, lo=-0.3, hi=-0.1)
    v = assess(policy, measurements([ev("a", **bad), ev("b", **bad)]))
    assert v.verdict == "fail" and len(v.reasons) == 2


def test_error_budget_exceeded_exits_5():
    v = assess(parse_policy("error_budget: 0.05\n" + FIXED), measurements([ev()], errors=(6, 0)))
    assert (v.verdict, v.exit_code) == ("inconclusive", 5)
    assert "candidate target errors: 6 of 100 rows (6.0%, 0 missing) exceeds the error budget 5.0%" in v.reasons[0]
    failing = assess(parse_policy(FIXED), measurements([ev(delta=-0.2, lo=-0.3, hi=-0.1)], errors=(0, 20)))
    assert (failing.verdict, failing.exit_code) == ("fail", 5)


def test_exit_5_leads_with_the_cause_and_drops_the_checks_that_follow_from_it():
    ms = measurements([ev(cohort=c, delta=-0.5, lo=-0.6, hi=-0.4) for c in ("a", "b", "c")],
                      cohorts={"a": 100, "b": 100, "c": 100}, errors=(100, 0))
    ms.errors.candidate_kinds = {"connection": 97, "timeout": 3}
    ms.errors.candidate_examples = {"connection": "openai http://127.0.0.1:9/v1 connection failed: refused",
                                    "timeout": "openai http://127.0.0.1:9/v1 timed out"}
    v = assess(parse_policy(FIXED), ms)
    assert v.exit_code == 5 and len(v.reasons) == 2, v.reasons
    assert v.reasons[0].startswith("candidate target failed: connection ×97 (openai http://127.0.0.1:9/v1 connection "
                                   "failed: refused); timeout ×3")
    assert v.reasons[1].startswith("3 other checks failed or were inconclusive")


def test_latency_ratio_rule_on_the_bound():
    def lat(lo, hi):
        return [LatencyMeasure(cohort=ALL, n_candidate=100, n_baseline=100, n_paired=100,
                               candidate_ms={"p95": 300.0}, baseline_ms={"p95": 250.0},
                               candidate_ci={"p95": Interval(low=280, high=330)}, ratio={"p95": 1.2},
                               ratio_ci={"p95": Interval(low=lo, high=hi)})]
    policy = parse_policy("latency: {p95_max_ratio: 1.25}\n" + FIXED)
    assert assess(policy, measurements([ev()], latency=lat(1.1, 1.24))).verdict == "pass"
    assert assess(policy, measurements([ev()], latency=lat(1.1, 1.3))).verdict == "inconclusive"
    assert assess(policy, measurements([ev()], latency=lat(1.3, 1.4))).verdict == "fail"
    assert assess(parse_policy("latency: {p95_max_ms: 320}\n" + FIXED),
                  measurements([ev()], latency=lat(1, 1))).verdict == "inconclusive"


def test_p99_below_the_rows_an_order_statistic_bound_needs_is_not_judged():
    lat = [LatencyMeasure(cohort=ALL, n_candidate=300, n_baseline=300, n_paired=300, candidate_ms={"p99": 500.0},
                          baseline_ms={"p99": 500.0})]
    v = assess(parse_policy("latency: {p99_max_ms: 2000, p99_max_ratio: 2}\n" + FIXED),
               measurements([ev()], latency=lat, n=300))
    ms_check, ratio_check = (c for c in v.checks if c.metric.startswith("latency_p99"))
    assert ms_check.status == ratio_check.status == "inconclusive"
    assert "too few answered rows for a 95% bound (300; at least 368 needed)" in ms_check.message
    assert "at least 437 needed" in ratio_check.message


def test_cost_rule_on_the_point_estimate_and_unknown_cost():
    def cost(value):
        return [CostMeasure(cohort=ALL, n_rows=100, prompt_tokens_candidate=1, prompt_tokens_baseline=1,
                            completion_tokens_candidate=1, completion_tokens_baseline=1, cost_candidate=value,
                            cost_baseline=0.001, cost_ratio=None if value is None else value / 0.001)]
    policy = parse_policy("cost: {max_per_row: 0.002}\n" + FIXED)
    assert assess(policy, measurements([ev()], cost=cost(0.0015))).verdict == "pass"
    assert assess(policy, measurements([ev()], cost=cost(0.003))).verdict == "fail"
    assert assess(policy, measurements([ev()], cost=cost(None))).verdict == "inconclusive"


def test_a_free_baseline_makes_any_cost_an_unbounded_ratio_not_an_unknown_one():
    def cost(cand):
        return [CostMeasure(cohort=ALL, n_rows=100, prompt_tokens_candidate=1, prompt_tokens_baseline=1,
                            completion_tokens_candidate=1, completion_tokens_baseline=1, cost_candidate=cand,
                            cost_baseline=0.0, cost_ratio=None)]
    policy = parse_policy("cost: {max_ratio: 2}\n" + FIXED)
    paid = assess(policy, measurements([ev()], cost=cost(0.001)))
    assert paid.verdict == "fail" and "unbounded (baseline free, candidate 0.001 per row)" in paid.reasons[0]
    assert assess(policy, measurements([ev()], cost=cost(0.0))).verdict == "pass"


def test_overall_below_min_rows_is_inconclusive():
    v = assess(parse_policy(""), measurements([ev(n=10)], cohorts={"default": 10}, n=10))
    assert v.verdict == "inconclusive"


def test_min_rows_counts_judged_rows_not_dataset_rows():
    """A 25-row cohort where the evaluator applies to one row is not judged on that row."""
    one = ev(cohort="billing", delta=-1.0, lo=-1.0, hi=-0.2, n=1, regressed=1, improved=0)
    one.n_rows = 25
    v = assess(parse_policy(FIXED), measurements([ev(), one], cohorts={"default": 75, "billing": 25}))
    assert v.verdict == "pass", v.reasons
    rows = next(c for c in v.checks if c.cohort == "billing")
    assert (rows.metric, rows.status) == ("rows", "skipped")
    assert "ev in cohort 'billing': 1 judged rows, fewer than the minimum 20" in rows.message
