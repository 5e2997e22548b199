"""initial_state / update / judge: state is JSON, findings explain themselves, minimums hold, no data never passes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sluice.rollout import analysis
from sluice.rollout.measures import OVERALL, ArmSample, Batch, MetricRule

RULES = [MetricRule("error_rate", "rate", margin=0.5, critical=True),
         MetricRule("cost_per_request", "mean", margin=0.1),
         MetricRule("eval_fail_rate:groundedness", "rate", margin=0.05, relative=False)]


def _looks(rng, n_looks, per_look, share, p_stable, p_canary, cost_canary=1.0, cohorts=(OVERALL,)):
    """Synthetic looks: rates by binomial draws, costs exponential (mean ``cost_canary`` on the canary)."""
    for _ in range(n_looks):
        batch = []
        for cohort in cohorts:
            nc = int(rng.binomial(per_look, share))
            ns = per_look - nc
            batch.append(Batch("error_rate", cohort, ArmSample(nc, int(rng.binomial(nc, p_canary))),
                               ArmSample(ns, int(rng.binomial(ns, p_stable))), share))
            xc, xs = rng.exponential(cost_canary, nc), rng.exponential(1.0, ns)
            batch.append(Batch("cost_per_request", cohort, ArmSample(nc, 0, float(xc.sum()), float((xc ** 2).sum())),
                               ArmSample(ns, 0, float(xs.sum()), float((xs ** 2).sum())), share))
            batch.append(Batch("eval_fail_rate:groundedness", cohort, ArmSample(nc // 5, int(rng.binomial(nc // 5, 0.1))),
                               ArmSample(ns // 5, int(rng.binomial(ns // 5, 0.1))), share))
        yield batch


def _run(looks, cohorts=None):
    state = analysis.initial_state(RULES, 0.05, cohorts=cohorts)
    for b in looks:
        state = analysis.update(state, b)
    return state


def _by(findings):
    return {(f.metric, f.cohort): f for f in findings}


def test_fresh_state_is_insufficient_everywhere_and_json():
    state = analysis.initial_state(RULES, 0.05, cohorts=["free"])
    assert json.loads(json.dumps(state)) == state
    findings = analysis.judge(RULES, state)
    assert [(f.metric, f.cohort) for f in findings] == [(r.metric, c) for r in RULES for c in (OVERALL, "free")]
    assert {f.outcome for f in findings} == {"insufficient"}
    assert all(f.canary_estimate is None and f.canary_samples == 0 for f in findings)


def test_healthy_canary_passes_and_a_broken_one_fails():
    rng = np.random.default_rng(7)
    good = _by(analysis.judge(RULES, _run(_looks(rng, 200, 400, 0.5, 0.02, 0.02))))
    assert {f.outcome for f in good.values()} == {"pass"}, [f.rule for f in good.values()]
    f = good[("error_rate", OVERALL)]
    assert f.canary_estimate == pytest.approx(0.02, abs=0.005) and f.bound < 1.5
    assert "non-inferior" in f.rule and f.evidence >= 20 and f.non_inferiority > 1

    bad = _by(analysis.judge(RULES, _run(_looks(rng, 200, 400, 0.5, 0.02, 0.04, cost_canary=1.3))))
    err, cost = bad[("error_rate", OVERALL)], bad[("cost_per_request", OVERALL)]
    assert err.outcome == "fail" and err.critical and err.bound > 1.0 and "harm" in err.rule
    assert err.non_inferiority < 1  # doubled errors: the data lean towards "worse than 1.5×"
    assert err.evidence >= 1 / (0.8 * 0.05 / 3)
    assert cost.outcome == "fail" and not cost.critical and cost.bound > 0  # canary − stable lower bound
    assert bad[("eval_fail_rate:groundedness", OVERALL)].outcome in ("pass", "inconclusive")


def test_minimum_samples_block_any_conclusion():
    rng = np.random.default_rng(3)
    state = _run(_looks(rng, 60, 400, 0.5, 0.02, 0.2))  # a huge regression, 12,000 per arm
    assert _by(analysis.judge(RULES, state))[("error_rate", OVERALL)].outcome == "fail"
    strict = [MetricRule("error_rate", "rate", margin=0.5, critical=True, min_samples=50_000)] + RULES[1:]
    f = _by(analysis.judge(strict, state))[("error_rate", OVERALL)]
    assert f.outcome == "insufficient" and "needs 50000" in f.rule
    f = _by(analysis.judge(RULES, state, min_samples_by_cohort={OVERALL: 10**6}))[("error_rate", OVERALL)]
    assert f.outcome == "insufficient"


def test_update_does_not_mutate_and_restart_resumes_identically():
    rng = np.random.default_rng(11)
    looks = list(_looks(rng, 40, 300, 0.1, 0.02, 0.03))
    state = analysis.initial_state(RULES, 0.05)
    before = json.dumps(state)
    one = analysis.update(state, looks[0])
    assert json.dumps(state) == before
    straight = _run(looks)
    resumed = json.loads(json.dumps(_run(looks[:17])))  # stored, server restarted
    for b in looks[17:]:
        resumed = analysis.update(resumed, b)
    assert analysis.judge(RULES, resumed) == analysis.judge(RULES, straight)
    assert one["cells"]["error_rate"][OVERALL]["looks"] == 1


def test_late_cohort_gets_a_reserved_smaller_alpha_and_dropped_cohorts_vanish():
    state = analysis.initial_state(RULES, 0.05, cohorts=["free"])
    b = Batch("error_rate", "newcomer", ArmSample(10, 0), ArmSample(90, 1), 0.1)
    state = analysis.update(state, [b])
    assert state["late"] == ["newcomer"]
    planned = state["cells"]["error_rate"]["free"]["alpha"]
    late = state["cells"]["error_rate"]["newcomer"]["alpha"]
    assert late < planned and late == pytest.approx(0.2 * 0.05 / 2 / 3)
    assert ("error_rate", "newcomer") in _by(analysis.judge(RULES, state))
    dropped = analysis.drop_cohorts(state, ["newcomer"])
    assert ("error_rate", "newcomer") not in _by(analysis.judge(RULES, dropped))


@pytest.mark.parametrize("bad,msg", [
    (Batch("latency_p50", OVERALL, ArmSample(1), ArmSample(1), 0.5), "does not judge"),
    (Batch("error_rate", OVERALL, ArmSample(3, 4), ArmSample(1), 0.5), "4 events in 3 trials"),
    (Batch("cost_per_request", OVERALL, ArmSample(3, 0, math.nan), ArmSample(1), 0.5), "not finite"),
])
def test_bad_batches_are_refused_with_one_clear_line(bad, msg):
    with pytest.raises(ValueError, match=msg):
        analysis.update(analysis.initial_state(RULES, 0.05), [bad])


def test_bad_rules_are_refused():
    with pytest.raises(ValueError, match="listed twice"):
        analysis.initial_state([RULES[0], RULES[0]], 0.05)
    with pytest.raises(ValueError, match="harm_margin"):
        analysis.initial_state([MetricRule("error_rate", "rate", margin=0.1, harm_margin=0.2)], 0.05)
    with pytest.raises(ValueError, match="alpha"):
        analysis.initial_state(RULES, 1.5)
