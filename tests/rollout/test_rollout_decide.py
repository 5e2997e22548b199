"""decide(): one test per rule of the decision order (rollout/decide.py docstring)."""

from __future__ import annotations

import pytest

from sluice.rollout.decide import decide
from sluice.rollout.measures import OVERALL, Finding, StepProgress


def F(outcome, cohort=OVERALL, metric="error_rate", critical=False):
    return Finding(metric=metric, cohort=cohort, outcome=outcome, critical=critical, canary_estimate=0.02,
                   stable_estimate=0.02, bound=1.2, margin=0.5, canary_samples=900, stable_samples=8100,
                   rule=f"{outcome} because", evidence=30.0)


def P(**kw):
    base = dict(index=1, kind="weight", elapsed_s=900, min_duration_s=600, max_duration_s=3600,
                min_requests=500, canary_requests=900, stable_requests=8100, last_step=False)
    base.update(kw)
    return StepProgress(**base)


ALL_PASS = [F("pass"), F("pass", metric="cost_per_request"), F("inconclusive", cohort="free")]


def test_all_required_pass_advances_and_last_step_promotes():
    assert decide(P(), ALL_PASS).action == "advance"
    d = decide(P(last_step=True), ALL_PASS)
    assert d.action == "promote" and "error_rate" in d.reason and d.findings == tuple(ALL_PASS)


def test_cohort_pass_required_makes_named_cohorts_block():
    assert decide(P(), ALL_PASS, cohort_pass_required=True).action == "continue"


def test_critical_fail_rolls_back_even_when_paused():
    fs = [F("fail", critical=True), F("pass", metric="cost_per_request")]
    d = decide(P(manual_pause=True), fs)
    assert d.action == "rollback" and "error_rate in all traffic" in d.reason


def test_noncritical_fail_holds():
    d = decide(P(), [F("fail", metric="cost_per_request"), F("pass")])
    assert d.action == "hold" and "cost_per_request" in d.reason


def test_failing_cohorts_only_narrow_when_allowed():
    fs = [F("pass"), F("fail", cohort="free", critical=True), F("pass", cohort="enterprise")]
    d = decide(P(allow_narrow=True), fs)
    assert d.action == "narrow" and d.cohorts_to_drop == ("free",)
    assert decide(P(allow_narrow=False), fs).action == "rollback"
    # all traffic failing too is not a cohort's problem: no narrowing
    both = fs + [F("fail", critical=True)]
    assert decide(P(allow_narrow=True), both).action == "rollback"


def test_manual_pause_holds():
    assert decide(P(manual_pause=True), ALL_PASS).action == "hold"


@pytest.mark.parametrize("kw,words", [(dict(elapsed_s=100), "100 s of 10 min"),
                                      (dict(canary_requests=20), "20 canary / 8100 stable requests of 500")])
def test_step_minimums_not_met_continue(kw, words):
    d = decide(P(**kw), ALL_PASS)
    assert d.action == "continue" and words in d.reason


def test_too_little_traffic_at_max_duration_holds():
    d = decide(P(elapsed_s=4000, canary_requests=20), ALL_PASS)
    assert d.action == "hold" and "too little traffic" in d.reason


def test_inconclusive_continues_then_holds_at_max_duration():
    fs = [F("inconclusive"), F("pass", metric="cost_per_request")]
    assert decide(P(), fs).action == "continue"
    d = decide(P(elapsed_s=3600), fs)
    assert d.action == "hold" and "maximum duration" in d.reason and "inconclusive because" in d.reason


@pytest.mark.parametrize("findings", [[], [F("insufficient")], [F("insufficient"), F("pass", metric="cost")]])
def test_no_data_never_advances(findings):
    assert decide(P(), findings).action == "continue"
    assert decide(P(last_step=True, elapsed_s=10**6, max_duration_s=None), findings).action == "continue"
    assert decide(P(canary_requests=0, stable_requests=0, min_requests=0), findings).action == "continue"


def test_pause_step_advances_on_time_without_traffic_but_not_on_a_failure():
    assert decide(P(kind="pause", canary_requests=0, stable_requests=0), []).action == "advance"
    assert decide(P(kind="pause", elapsed_s=10), []).action == "continue"
    assert decide(P(kind="pause"), [F("fail", metric="cost")]).action == "hold"


def test_a_cohort_beyond_its_margin_blocks_promotion_but_not_advance():
    worse = Finding(metric="error_rate", cohort="enterprise", outcome="inconclusive", critical=True,
                    canary_estimate=0.04, stable_estimate=0.02, bound=2.5, margin=0.5, canary_samples=900,
                    stable_samples=8100, rule="inconclusive: harm e-value 40 (needs 500)", evidence=40.0)
    fs = [F("pass"), F("pass", metric="cost_per_request"), worse]
    d = decide(P(last_step=True), fs)
    assert d.action == "continue" and "enterprise" in d.reason
    assert decide(P(last_step=True), fs, cohort_guard=0).action == "promote"
    assert decide(P(), fs).action == "advance"
    within = Finding(**{**worse.__dict__, "canary_estimate": 0.025, "non_inferiority": 3.0})
    assert decide(P(last_step=True), [F("pass"), within]).action == "promote"
    leaning_worse = Finding(**{**within.__dict__, "non_inferiority": 0.4})
    d = decide(P(last_step=True), [F("pass"), leaning_worse])
    assert d.action == "continue" and "enterprise" in d.reason
    assert decide(P(last_step=True), [F("pass"), leaning_worse], cohort_guard=0.3).action == "promote"
    absolute = Finding(**{**worse.__dict__, "relative": False, "margin": 0.01})
    assert decide(P(last_step=True), [F("pass"), absolute]).action == "continue"
