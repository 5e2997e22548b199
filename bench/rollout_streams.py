"""Synthetic request streams for the rollout simulation: per-minute counts per cohort and arm.

Every request has a cohort, an arm (canary with probability ``w``), an error (Bernoulli), a latency
(log-normal; what is counted is whether it exceeds the stable arm's frozen p99), an online groundedness
evaluation on a 20 % sample of both arms (fail Bernoulli), a cost (log-normal) and a thumbs-down
(Bernoulli). Drawing per-minute sums from the same laws is exactly equivalent to drawing requests one
by one and summing them (binomial and Poisson thinning), and fast enough for hundreds of runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sluice.rollout.measures import OVERALL, ArmSample, Batch

RATE_PER_S = 10.0
LOOK_S = 60
COHORTS = {"enterprise": 0.25, "team": 0.35, "free": 0.40}
NAMES = list(COHORTS)
Z99 = 2.3263478740408408

BASE = {"error": 0.02, "latency_sigma": 0.5, "latency_factor": 1.0, "eval_share": 0.2, "ground_fail": 0.10,
        "cost_mean": 0.002, "cost_sigma": 0.8, "thumbs_down": 0.015}

# fields of one arm's per-look record
F_N, F_ERR, F_LAT, F_NEVAL, F_GFAIL, F_COST, F_COST2, F_THUMBS = range(8)

METRICS = ["error_rate", "latency_p99", "eval_fail_rate:groundedness", "cost_per_request",
           "feedback_rate:thumbs_down"]


@dataclass(frozen=True)
class Case:
    name: str
    metric: str  # the regressed metric (rule name), "" for A/A
    change: dict = field(default_factory=dict)  # canary parameter → value
    cohort: str | None = None  # None: every cohort


def params(case: Case, cohort: str, canary: bool) -> dict:
    p = dict(BASE)
    if canary and (case.cohort is None or case.cohort == cohort):
        p.update(case.change)
    return p


def arm_draw(rng: np.random.Generator, n: int, p: dict) -> np.ndarray:
    out = np.zeros(8)
    out[F_N] = n
    if n == 0:
        return out
    out[F_ERR] = rng.binomial(n, p["error"])
    # P(latency × factor > stable's p99) for a log-normal latency: 1 − Φ(z99 − ln(factor)/σ)
    p_exceed = 0.5 * math.erfc((Z99 - math.log(p["latency_factor"]) / p["latency_sigma"]) / math.sqrt(2))
    out[F_LAT] = rng.binomial(n, p_exceed)
    n_eval = rng.binomial(n, p["eval_share"])
    out[F_NEVAL] = n_eval
    out[F_GFAIL] = rng.binomial(n_eval, p["ground_fail"])
    mu = math.log(p["cost_mean"]) - p["cost_sigma"] ** 2 / 2
    cost = rng.lognormal(mu, p["cost_sigma"], n)
    out[F_COST], out[F_COST2] = cost.sum(), (cost * cost).sum()
    out[F_THUMBS] = rng.binomial(n, p["thumbs_down"])
    return out


def look(rng: np.random.Generator, case: Case, share: float, dropped: frozenset = frozenset()) -> np.ndarray:
    """One minute of traffic: array [cohort, arm (0 canary, 1 stable), field]."""
    rec = np.zeros((len(NAMES), 2, 8))
    for i, c in enumerate(NAMES):
        n = rng.poisson(RATE_PER_S * LOOK_S * COHORTS[c])
        w = 0.0 if c in dropped else share
        nc = int(rng.binomial(n, w))
        rec[i, 0] = arm_draw(rng, nc, params(case, c, True))
        rec[i, 1] = arm_draw(rng, n - nc, params(case, c, False))
    return rec


def _arm(v: np.ndarray, metric: str) -> ArmSample:
    n = int(v[F_N])
    if metric == "error_rate":
        return ArmSample(n, int(v[F_ERR]))
    if metric == "latency_p99":
        return ArmSample(n, int(v[F_LAT]))
    if metric == "eval_fail_rate:groundedness":
        return ArmSample(int(v[F_NEVAL]), int(v[F_GFAIL]))
    if metric == "cost_per_request":
        return ArmSample(n, 0, float(v[F_COST]), float(v[F_COST2]))
    return ArmSample(n, int(v[F_THUMBS]))


def batches(rec: np.ndarray, share: float, dropped: frozenset = frozenset()) -> list[Batch]:
    """The look's batches: every metric for every (not dropped) cohort and for all traffic."""
    out = []
    rows = [(c, rec[i]) for i, c in enumerate(NAMES) if c not in dropped] + [(OVERALL, rec.sum(axis=0))]
    for cohort, r in rows:
        for m in METRICS:
            out.append(Batch(m, cohort, _arm(r[0], m), _arm(r[1], m), share))
    return out


def value(rec_arm: np.ndarray, metric: str) -> float:
    """One look's value of a metric for one arm (what a Kayenta-style judge compares), NaN without data."""
    a = _arm(rec_arm, metric)
    if a.n == 0:
        return math.nan
    return (a.total if metric == "cost_per_request" else a.events) / a.n
