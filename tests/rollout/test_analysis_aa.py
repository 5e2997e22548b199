"""A/A simulation: the whole analysis looked at after every batch raises false alarms at most α of the
time; naive fixed-horizon z-tests peeking at the same streams do not (so the check can fail).

Deterministic (fixed seed, bounded counts), no timing."""

from __future__ import annotations

import math

import numpy as np

from sluice.rollout import analysis
from sluice.rollout.analysis import mixture
from sluice.rollout.measures import OVERALL, ArmSample, Batch, MetricRule

ALPHA = 0.05
COHORTS = ["a", "b"]
RULES = [MetricRule("error_rate", "rate", margin=0.25, critical=True, min_samples=100),
         MetricRule("cost_per_request", "mean", margin=0.1, min_samples=100)]


def _aa_run(rng, looks=120, per_look=200):
    """One A/A canary (shares 10 % then 50 %); returns (analysis ever failed, naive z ever crossed)."""
    state = analysis.initial_state(RULES, ALPHA, cohorts=COHORTS)
    z_crit = 2.394  # one-sided z at the same Bonferroni split: α / (2 metrics × 3 cohorts)
    cum = {}
    failed = naive = False
    for look in range(looks):
        share = 0.1 if look < looks // 2 else 0.5
        split = rng.multinomial(per_look, [0.6, 0.4])
        batches = []
        per_cohort = {}
        for cohort, n in zip(COHORTS, split):
            nc = int(rng.binomial(n, share))
            ns = int(n) - nc
            ec, es = int(rng.binomial(nc, 0.03)), int(rng.binomial(ns, 0.03))
            xc, xs = rng.lognormal(0, 1, nc), rng.lognormal(0, 1, ns)
            per_cohort[cohort] = (ArmSample(nc, ec), ArmSample(ns, es),
                                  ArmSample(nc, 0, float(xc.sum()), float((xc ** 2).sum())),
                                  ArmSample(ns, 0, float(xs.sum()), float((xs ** 2).sum())))
        tot = [ArmSample(sum(v[i].n for v in per_cohort.values()), sum(v[i].events for v in per_cohort.values()),
                         sum(v[i].total for v in per_cohort.values()), sum(v[i].total_sq for v in per_cohort.values()))
               for i in range(4)]
        per_cohort[OVERALL] = tuple(tot)
        for cohort, (rc, rs, mc, ms) in per_cohort.items():
            batches.append(Batch("error_rate", cohort, rc, rs, share))
            batches.append(Batch("cost_per_request", cohort, mc, ms, share))
            c = cum.setdefault(cohort, np.zeros(8))
            c += [rc.n, rc.events, rs.n, rs.events, mc.total, mc.total_sq, ms.total, ms.total_sq]
            if c[0] >= 100 and c[2] >= 100:
                pc, ps = c[1] / c[0], c[3] / c[2]
                var = pc * (1 - pc) / c[0] + ps * (1 - ps) / c[2]
                naive |= var > 0 and mixture.fixed_z(pc - ps, var) > z_crit
                mean_c, mean_s = c[4] / c[0], c[6] / c[2]
                var = (c[5] / c[0] - mean_c ** 2) / c[0] + (c[7] / c[2] - mean_s ** 2) / c[2]
                naive |= mixture.fixed_z(mean_c - mean_s, var) > z_crit
        state = analysis.update(state, batches)
        if any(f.outcome == "fail" for f in analysis.judge(RULES, state)):
            failed = True
    return failed, naive


def test_aa_false_alarms_stay_within_alpha_while_naive_peeking_does_not():
    rng = np.random.default_rng(20261203)
    runs = 60
    results = [_aa_run(rng) for _ in range(runs)]
    false_alarms = sum(f for f, _ in results)
    naive = sum(n for _, n in results)
    assert false_alarms <= math.floor(ALPHA * runs)  # 3 of 60
    assert naive > ALPHA * runs, (false_alarms, naive)  # peeking a fixed-horizon test after every look inflates false alarms
