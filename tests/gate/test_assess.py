"""One small test per verdict rule, on hand-built measurements."""

from sluice.gate.assess import assess
from sluice.gate.measures import (ALL, CostMeasure, ErrorMeasure, EvalMeasure, Interval, LatencyMeasure,
                                  Measurements, SideInfo)
from sluice.gate.policy import parse_policy


def ev(name="ev", cohort=ALL, delta=0.0, lo=-0.01, hi=0.01, rate=0.9, rate_lo=0.85, rate_hi=0.95, n=100):
    return EvalMeasure(evaluator=name, cohort=cohort, n_rows=n, n_paired=n, n_candidate=n, pass_rate_candidate=rate,
                       pass_rate_candidate_ci=Interval(low=rate_lo, high=rate_hi), pass_delta=delta,
                       pass_delta_ci=Interval(low=lo, high=hi), mcnemar_p=1.0, score_delta=delta,
                       score_delta_ci=Interval(low=lo, high=hi))


def measurements(evals, cohorts=None, errors=(0, 0), latency=None, cost=None, n=100):
    return Measurements(
        candidate=SideInfo(ref="c", digest="sha256:c"), baseline=SideInfo(ref="b", digest="sha256:b"),
        dataset_name="d", dataset_version="sha256:d", evaluators={e.evaluator: "1" for e in evals}, confidence=0.95,
        cohorts=cohorts or {"default": n}, eval=evals, latency=latency or [], cost=cost or [],
        errors=ErrorMeasure(n_rows=n, candidate_errors=errors[0], baseline_errors=errors[1], candidate_missing=0,
                            baseline_missing=0))


def test_pass_when_lower_bound_clears_allowed_regression():
    v = assess(parse_policy(""), measurements([ev(lo=-0.015, hi=0.02)]))
    assert (v.verdict, v.exit_code, v.reasons) == ("pass", 0, [])


def test_fail_when_upper_bound_below_allowed_regression():
    v = assess(parse_policy(""), measurements([ev(cohort="billing", delta=-0.18, lo=-0.27, hi=-0.09)],
                                              cohorts={"billing": 100}))
    assert (v.verdict, v.exit_code) == ("fail", 1)
    assert "ev in cohort 'billing': pass-rate delta -0.180 (95% CI -0.270…-0.090) below allowed -0.020" in v.reasons[0]


def test_inconclusive_when_interval_straddles_threshold():
    v = assess(parse_policy(""), measurements([ev(delta=-0.01, lo=-0.05, hi=0.03)]))
    assert (v.verdict, v.exit_code) == ("inconclusive", 2)
    assert "straddles allowed -0.020" in v.reasons[0]


def test_min_pass_rate_judged_on_the_bound():
    policy = parse_policy("thresholds: {min_pass_rate: 0.9, max_regression: null}")
    assert assess(policy, measurements([ev(rate=0.95, rate_lo=0.91, rate_hi=0.98)])).verdict == "pass"
    assert assess(policy, measurements([ev(rate=0.92, rate_lo=0.88, rate_hi=0.95)])).verdict == "inconclusive"
    failed = assess(policy, measurements([ev(rate=0.8, rate_lo=0.72, rate_hi=0.86)]))
    assert failed.verdict == "fail" and "below the minimum 0.900" in failed.reasons[0]


def test_small_cohort_is_not_judged_and_only_blocks_when_required():
    evals = [ev(), ev(cohort="tiny", delta=-0.5, lo=-0.9, hi=-0.2, n=5)]
    loose = assess(parse_policy(""), measurements(evals, cohorts={"default": 95, "tiny": 5}))
    assert loose.verdict == "pass"
    assert any(c.cohort == "tiny" and c.status == "skipped" for c in loose.checks)
    strict = assess(parse_policy("cohorts: {require: [tiny]}"), measurements(evals, cohorts={"default": 95, "tiny": 5}))
    assert strict.verdict == "inconclusive"
    assert "cohort 'tiny': 5 rows, fewer than the minimum 20" in strict.reasons[0]


def test_required_cohort_absent_is_inconclusive():
    v = assess(parse_policy("cohorts: {require: [enterprise]}"), measurements([ev()]))
    assert v.verdict == "inconclusive" and "cohort 'enterprise': 0 rows" in v.reasons[0]


def test_critical_evaluator_fails_alone_noncritical_within_allowance():
    policy = parse_policy("max_noncritical_failures: 1\nevaluators: [{name: safety, critical: true}, {name: tone}]")
    bad = dict(delta=-0.2, lo=-0.3, hi=-0.1)
    assert assess(policy, measurements([ev("safety", **bad), ev("tone")])).verdict == "fail"
    tolerated = assess(policy, measurements([ev("safety"), ev("tone", **bad)]))
    assert tolerated.verdict == "pass" and tolerated.reasons[0].startswith("tolerated")


def test_noncritical_failures_beyond_allowance_fail():
    policy = parse_policy("max_noncritical_failures: 1")
    bad = dict(delta=-0.2, lo=-0.3, hi=-0.1)
    v = assess(policy, measurements([ev("a", **bad), ev("b", **bad)]))
    assert v.verdict == "fail" and len(v.reasons) == 2


def test_error_budget_exceeded_exits_5():
    v = assess(parse_policy("error_budget: 0.05"), measurements([ev()], errors=(6, 0)))
    assert (v.verdict, v.exit_code) == ("inconclusive", 5)
    assert "candidate target errors: 6 of 100 rows (6.0%, 0 missing) exceeds the error budget 5.0%" in v.reasons[0]
    failing = assess(parse_policy(""), measurements([ev(delta=-0.2, lo=-0.3, hi=-0.1)], errors=(0, 20)))
    assert (failing.verdict, failing.exit_code) == ("fail", 5)


def test_latency_ratio_rule_on_the_bound():
    def lat(lo, hi):
        return [LatencyMeasure(cohort=ALL, n_candidate=100, n_baseline=100, n_paired=100,
                               candidate_ms={"p95": 300.0}, baseline_ms={"p95": 250.0},
                               candidate_ci={"p95": Interval(low=280, high=330)}, ratio={"p95": 1.2},
                               ratio_ci={"p95": Interval(low=lo, high=hi)})]
    policy = parse_policy("latency: {p95_max_ratio: 1.25}")
    assert assess(policy, measurements([ev()], latency=lat(1.1, 1.24))).verdict == "pass"
    assert assess(policy, measurements([ev()], latency=lat(1.1, 1.3))).verdict == "inconclusive"
    assert assess(policy, measurements([ev()], latency=lat(1.3, 1.4))).verdict == "fail"
    assert assess(parse_policy("latency: {p95_max_ms: 320}"), measurements([ev()], latency=lat(1, 1))).verdict \
        == "inconclusive"


def test_cost_rule_on_the_point_estimate_and_unknown_cost():
    def cost(value):
        return [CostMeasure(cohort=ALL, n_rows=100, prompt_tokens_candidate=1, prompt_tokens_baseline=1,
                            completion_tokens_candidate=1, completion_tokens_baseline=1, cost_candidate=value,
                            cost_baseline=0.001, cost_ratio=None if value is None else value / 0.001)]
    policy = parse_policy("cost: {max_per_row: 0.002}")
    assert assess(policy, measurements([ev()], cost=cost(0.0015))).verdict == "pass"
    assert assess(policy, measurements([ev()], cost=cost(0.003))).verdict == "fail"
    assert assess(policy, measurements([ev()], cost=cost(None))).verdict == "inconclusive"


def test_overall_below_min_rows_is_inconclusive():
    v = assess(parse_policy(""), measurements([ev(n=10)], cohorts={"default": 10}, n=10))
    assert v.verdict == "inconclusive"
