"""The few distribution tests drift needs, without SciPy (a test-only dependency here).

``chi2_sf`` is the upper regularised incomplete gamma function (series below a+1, Lentz's
continued fraction above, as in Numerical Recipes §6.2); ``ks_two_sample`` uses the asymptotic
Kolmogorov distribution with Stephens' small-sample correction. ``chi2_sf`` agrees with SciPy to
1e-12; the KS p-value is within 0.02 of SciPy's asymptotic one (the correction is the difference);
tests/monitor/test_drift_stats.py compares both.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence


def total_variation(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Half the L1 distance between two distributions given as shares (each summing to 1)."""
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def shares(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


def chi_square_fit(observed: Mapping[str, int], expected_shares: Mapping[str, float],
                   floor: float = 0.5) -> tuple[float, int, float]:
    """(statistic, degrees of freedom, p-value) of observed counts against expected shares.
    A category the reference never saw gets ``floor`` expected counts, so a new cohort weighs
    heavily instead of dividing by zero."""
    n = sum(observed.values())
    keys = sorted(set(observed) | set(expected_shares))
    if n == 0 or len(keys) < 2:
        return 0.0, 0, 1.0
    stat = 0.0
    for k in keys:
        e = max(expected_shares.get(k, 0.0) * n, floor)
        stat += (observed.get(k, 0) - e) ** 2 / e
    dof = len(keys) - 1
    return stat, dof, chi2_sf(stat, dof)


def chi2_sf(x: float, dof: int) -> float:
    """P(X >= x) for X ~ chi-square(dof)."""
    if x <= 0 or dof <= 0:
        return 1.0
    return _gamma_q(dof / 2.0, x / 2.0)


def _gamma_q(a: float, x: float) -> float:
    gln = math.lgamma(a)
    if x < a + 1.0:  # series for P, then Q = 1 - P
        term = total = 1.0 / a
        ap = a
        for _ in range(1000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - gln))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - gln) * h)


def ks_two_sample(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(D, p-value): the largest gap between the two empirical CDFs, and how likely a gap that
    large is when both samples come from one distribution."""
    if not a or not b:
        return 0.0, 1.0
    xs, ys = sorted(a), sorted(b)
    n, m = len(xs), len(ys)
    d = 0.0
    for v in sorted(set(xs) | set(ys)):
        d = max(d, abs(bisect.bisect_right(xs, v) / n - bisect.bisect_right(ys, v) / m))
    ne = n * m / (n + m)
    lam = (math.sqrt(ne) + 0.12 + 0.11 / math.sqrt(ne)) * d
    return d, _kolmogorov_q(lam)


def _kolmogorov_q(lam: float) -> float:
    if lam < 0.2:
        return 1.0
    total, sign = 0.0, 1.0
    for k in range(1, 101):
        term = sign * math.exp(-2.0 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
        sign = -sign
    return max(0.0, min(1.0, 2.0 * total))


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return float(s[mid]) if len(s) % 2 else (s[mid - 1] + s[mid]) / 2.0
