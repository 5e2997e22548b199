"""The two judges the rollout analysis is compared with, on the same streams.

- Fixed horizon: a one-sided z-test per metric × cohort at the same per-cell α as the sequential
  harm test (the same Bonferroni split), sized for 80 % power against the injected effect at the 10 %
  canary weight, and looked at exactly once, when that many requests have been seen.
- Kayenta-style (NetflixACAJudge's MannWhitneyClassifier): every interval the per-minute values of each
  arm since the start are compared with a Mann–Whitney 98 % confidence interval for the location shift;
  the metric is High when the interval's lower end is above 0.25 × |Hodges–Lehmann estimate|. The CI is
  the normal-approximation order statistics of the pairwise differences (as R's ``wilcox.test`` without
  tie correction); a High in any interval counts as an alarm.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

import rollout_streams as rs

Z = NormalDist()


def arm_variance(metric: str, p: dict) -> tuple[float, float]:
    """(per-trial variance, trials per request) of a metric under the parameters ``p``."""
    if metric == "error_rate":
        return p["error"] * (1 - p["error"]), 1.0
    if metric == "latency_p99":
        q = 0.5 * math.erfc((rs.Z99 - math.log(p["latency_factor"]) / p["latency_sigma"]) / math.sqrt(2))
        return q * (1 - q), 1.0
    if metric == "eval_fail_rate:groundedness":
        return p["ground_fail"] * (1 - p["ground_fail"]), p["eval_share"]
    if metric == "cost_per_request":
        return (math.exp(p["cost_sigma"] ** 2) - 1) * p["cost_mean"] ** 2, 1.0
    return p["thumbs_down"] * (1 - p["thumbs_down"]), 1.0


def arm_mean(metric: str, p: dict) -> float:
    if metric == "error_rate":
        return p["error"]
    if metric == "latency_p99":
        return 0.5 * math.erfc((rs.Z99 - math.log(p["latency_factor"]) / p["latency_sigma"]) / math.sqrt(2))
    if metric == "eval_fail_rate:groundedness":
        return p["ground_fail"]
    if metric == "cost_per_request":
        return p["cost_mean"]
    return p["thumbs_down"]


def fixed_horizon_requests(case: rs.Case, alpha_cell: float, share: float, power: float = 0.8) -> int:
    """Total requests (all cohorts, both arms) a one-sided z-test at ``alpha_cell`` needs for ``power``."""
    cohort = case.cohort or rs.NAMES[0]
    pc, ps = rs.params(case, cohort, True), rs.params(case, cohort, False)
    vc, per_req = arm_variance(case.metric, pc)
    vs, _ = arm_variance(case.metric, ps)
    delta = arm_mean(case.metric, pc) - arm_mean(case.metric, ps)
    z = Z.inv_cdf(1 - alpha_cell) + Z.inv_cdf(power)
    # cohort requests m: canary trials m·share·per_req, stable m·(1−share)·per_req
    m = z * z * (vc / share + vs / (1 - share)) / (delta * delta) / per_req
    cohort_share = rs.COHORTS[case.cohort] if case.cohort else 1.0
    return math.ceil(m / cohort_share)


def z_harm(rec_sum: np.ndarray, metric: str) -> float:
    """One-sided z of canary − stable from cumulative per-arm sums."""
    c, s = rs._arm(rec_sum[0], metric), rs._arm(rec_sum[1], metric)
    if c.n < 2 or s.n < 2:
        return 0.0
    if metric == "cost_per_request":
        mc, ms = c.total / c.n, s.total / s.n
        vc, vs = c.total_sq / c.n - mc * mc, s.total_sq / s.n - ms * ms
    else:
        mc, ms = c.events / c.n, s.events / s.n
        vc, vs = mc * (1 - mc), ms * (1 - ms)
    var = vc / c.n + vs / s.n
    return (mc - ms) / math.sqrt(var) if var > 0 else 0.0


def mann_whitney_ci(x: np.ndarray, y: np.ndarray, conf: float = 0.98) -> tuple[float, float, float]:
    """(lower, upper, Hodges–Lehmann estimate) of the shift x − y."""
    d = np.sort((x[:, None] - y[None, :]).ravel())
    nx, ny = len(x), len(y)
    n = nx * ny
    z = Z.inv_cdf(0.5 + conf / 2)
    k = int(math.floor(n / 2 - z * math.sqrt(nx * ny * (nx + ny + 1) / 12.0)))
    k = max(k, 0)
    return float(d[k]), float(d[min(n - 1 - k, n - 1)]), float(np.median(d))


def kayenta_high(canary_values: list[float], stable_values: list[float], tolerance: float = 0.25,
                 conf: float = 0.98) -> bool:
    x = np.array([v for v in canary_values if not math.isnan(v)])
    y = np.array([v for v in stable_values if not math.isnan(v)])
    if len(x) < 2 or len(y) < 2 or np.array_equal(np.sort(x), np.sort(y)):
        return False
    lo, _, est = mann_whitney_ci(x, y, conf)
    return lo > tolerance * abs(est)
