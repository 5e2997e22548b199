"""Two-counter e-processes for event rates (errors, evaluator fails, refunds): exact for rare events.

Condition on events. If the canary's per-request rate is ``r`` times the stable arm's and a look saw
``n_c`` canary and ``n_s`` stable requests, each event of that look is the canary's with probability
``q(r) = s·r / (s·r + 1 − s)``, where ``s = n_c / (n_c + n_s)`` is the look's exposure share. Only the
two event counters per look and the exposure share enter, so a share that changes between steps (10 %,
then 50 %) is handled exactly, and the comparison is always against the concurrent stable arm.

The likelihood of every ratio on a fixed grid is kept (log, relative to ``r = 1``). A prior over the
grid points beyond a null ratio ``r0`` gives the mixture e-value

    E(r0) = Σ_i w_i · L(r_i) / L(r0)

which is a nonnegative supermartingale for every true ratio on the null side (the likelihood ratio of
``q(r_i)`` against ``q(r0)`` is monotone), so by Ville's inequality ``P(∃t: E_t ≥ 1/α) ≤ α`` however
often it is looked at. Given the per-look event totals, the exact null law of the canary's count is
hypergeometric for Bernoulli trials at equal rates, which is less spread than the binomial used here,
so A/A validity holds exactly; at a null ratio ``r0 ≠ 1`` the binomial is the Poisson (rare event)
approximation (docs/rollouts.md, "Analysis").

``beta_mixture_evalue`` is the closed form of reference/rollouts.md §4.2 for one fixed share (kept for
the worked example and the tests); the grid form is what the controller runs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

# log-spaced ratios from 1/20 to 20, dense near 1 where margins and real regressions live
_STEPS = [0.02, 0.05, 0.08, 0.12, 0.16, 0.2, 0.25, 0.3, 0.35, 0.4, 0.47, 0.55, 0.63, 0.72, 0.82, 0.95,
          1.1, 1.3, 1.5, 1.75, 2.0, 2.3, 2.6, 3.0]
BASE_GRID: tuple[float, ...] = tuple(sorted({1.0} | {math.exp(u) for u in _STEPS} | {math.exp(-u) for u in _STEPS}))


def grid_for(nulls: Sequence[float]) -> list[float]:
    """The base grid with the tests' null ratios inserted (their likelihood must be exact, not interpolated)."""
    for r in nulls:
        if not (r > 0 and math.isfinite(r)):
            raise ValueError(f"a null rate ratio must be positive and finite, got {r}")
    return sorted(set(BASE_GRID) | {float(r) for r in nulls})


def share_prob(share: float, ratio: float) -> float:
    """P(an event is the canary's) when the canary has ``share`` of the exposure and ``ratio`` times the rate."""
    return share * ratio / (share * ratio + 1.0 - share)


def fold(loglik: list[float], grid: Sequence[float], canary_events: int, stable_events: int,
         share: float) -> list[float]:
    """Add one look (``canary_events`` of ``canary_events + stable_events`` at exposure share ``share``)."""
    if canary_events + stable_events == 0:
        return list(loglik)
    if not 0.0 < share < 1.0:
        raise ValueError(f"events need both arms exposed (share {share})")
    out = []
    for ll, r in zip(loglik, grid):
        q = share_prob(share, r)
        out.append(ll + canary_events * math.log(q / share) + stable_events * math.log((1.0 - q) / (1.0 - share)))
    return out


def _logsumexp(xs: Sequence[float]) -> float:
    m = max(xs)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(x - m) for x in xs))


def prior(grid: Sequence[float], null: float, side: str) -> list[float]:
    """Prior weights over the grid points strictly beyond ``null`` (``side`` "above" or "below").

    Weights fall off with the log-distance from the null (∝ 1/(1+d/0.7)²), so mass sits on the effects
    a rollout has to catch quickly (ratios 1.2–3) without giving up large ones."""
    return list(_prior(tuple(grid), null, side))


@functools.lru_cache(maxsize=256)
def _prior(grid: tuple[float, ...], null: float, side: str) -> tuple[float, ...]:
    w = []
    for r in grid:
        beyond = r > null if side == "above" else r < null
        w.append(1.0 / (1.0 + abs(math.log(r / null)) / 0.7) ** 2 if beyond else 0.0)
    total = sum(w)
    if total <= 0:
        raise ValueError(f"no grid ratio {side} {null}")
    return tuple(x / total for x in w)


@functools.lru_cache(maxsize=256)
def _log_prior(grid: tuple[float, ...], null: float, side: str) -> tuple[tuple[int, float], ...]:
    return tuple((i, math.log(w)) for i, w in enumerate(_prior(grid, null, side)) if w > 0)


def log_evalue(loglik: Sequence[float], grid: Sequence[float], null: float, side: str) -> float:
    """log E(null): the prior-mixed likelihood of ratios beyond ``null`` over the likelihood at ``null``."""
    g = tuple(grid)
    i0 = g.index(null)
    return _logsumexp([lw + loglik[i] for i, lw in _log_prior(g, null, side)]) - loglik[i0]


def confidence_set(loglik: Sequence[float], grid: Sequence[float], alpha: float) -> tuple[float, float]:
    """The grid ratios not rejected at level ``alpha`` (two-sided mixture over the whole grid): (low, high).

    E(ρ) = Σ w_i L(r_i) / L(ρ) is an e-value for ``r = ρ``; the set {ρ : E(ρ) < 1/α} covers the true ratio
    at every look with probability ≥ 1 − α. Returned as its smallest and largest grid point."""
    n = len(grid)
    w = [1.0 / (1.0 + abs(math.log(r)) / 0.7) ** 2 for r in grid]
    total = sum(w)
    logm = _logsumexp([ll + math.log(wi / total) for ll, wi in zip(loglik, w)])
    keep = [r for r, ll in zip(grid, loglik) if logm - ll < math.log(1.0 / alpha)]
    if not keep:  # the truth lies between grid points; the maximum-likelihood point is the best answer
        best = max(range(n), key=lambda i: loglik[i])
        return grid[best], grid[best]
    return min(keep), max(keep)


def one_sided_bound(loglik: Sequence[float], grid: Sequence[float], alpha: float, side: str) -> float:
    """The one-sided confidence bound on the ratio that matches the tests: ``side="lower"`` gives the
    smallest grid ratio ρ whose "canary ≤ ρ" null is not rejected at ``alpha`` (harm shown against every
    smaller ρ); ``side="upper"`` the largest ρ whose "canary ≥ ρ" null is not rejected. The evidence
    falls as ρ moves towards the data, so a bisection over the grid finds it."""
    limit = math.log(1.0 / alpha)
    if side == "lower":
        def rejected(i: int) -> bool:
            return log_evalue(loglik, grid, grid[i], "above") >= limit
        lo, hi = 0, len(grid) - 1  # the last point has nothing above it: never rejected
        if not rejected(lo):
            return grid[lo]
        while hi - lo > 1:  # invariant: rejected(lo), not rejected(hi)
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if rejected(mid) else (lo, mid)
        return grid[hi]

    def rejected_up(i: int) -> bool:
        return log_evalue(loglik, grid, grid[i], "below") >= limit
    lo, hi = 0, len(grid) - 1  # the first point has nothing below it: never rejected
    if not rejected_up(hi):
        return grid[hi]
    while hi - lo > 1:  # invariant: not rejected_up(lo), rejected_up(hi)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if rejected_up(mid) else (mid, hi)
    return grid[lo]


def beta_mixture_evalue(canary_events: int, stable_events: int, share: float, a: float = 1.0,
                        b: float = 1.0) -> float:
    """Closed-form two-counter e-value for a fixed share ``w`` (reference §4.2 Option B):
    ``E = [B(a + N_c, b + N_s) / B(a, b)] / (w^N_c (1 − w)^N_s)``."""
    def lbeta(x: float, y: float) -> float:
        return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)

    log_e = (lbeta(a + canary_events, b + stable_events) - lbeta(a, b)
             - canary_events * math.log(share) - stable_events * math.log(1.0 - share))
    return math.exp(log_e)
