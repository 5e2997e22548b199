"""One correction across every check that can fail the gate: discrete Holm.

A gate runs tens of checks (evaluator x cohort). Each at 2.5% false-fail adds up to a gate that
fails one A/A comparison in five. Holm's step-down procedure keeps the chance that *any* check
fails wrongly at ``alpha`` whatever the dependence between checks.

Most gate checks are exact discrete tests (McNemar on the discordant pairs, a binomial test of a
pass rate): a test on 15 discordant pairs can only produce 16 p-values. The discrete Holm
procedure (Westfall & Wolfinger 1997; Döhler, Durand & Roquain 2018) uses that: at each step the
Bonferroni sum ``m * p`` becomes ``sum_j F_j(p)``, where ``F_j(p)`` is the largest p-value test j
can attain at or below ``p`` (its chance of reaching ``p`` under its null). A test that cannot get
near ``p`` adds almost nothing, so the correction costs far less power than plain Holm while
keeping the same familywise guarantee. Continuous tests use ``F(p) = p`` (plain Holm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sluice.gate.stats import _binomial_cdf


@dataclass(frozen=True)
class Test:
    """One one-sided test: its p-value and the p-values it can attain under the null (sorted
    ascending; ``None`` for a continuous test)."""

    p: float
    support: np.ndarray | None = None

    def attainable(self, u: float) -> float:
        """F(u): the largest attainable p-value <= u (u itself for a continuous test)."""
        if self.support is None:
            return min(u, 1.0)
        i = int(np.searchsorted(self.support, u * (1 + 1e-9), side="right"))
        return float(self.support[i - 1]) if i else 0.0


def mcnemar_harm(regressed: int, improved: int) -> Test:
    """One-sided exact McNemar: is the candidate worse? ``P(X <= improved)``, X ~ Binomial(b + c, 1/2),
    conditional on the ``b + c`` discordant pairs. Under an A/A comparison the discordant pairs are
    exchangeable, so this is exact whatever the rows' difficulty."""
    n = regressed + improved
    if n == 0:
        return Test(1.0, np.array([1.0]))
    if n > 1000:  # exact integers grow quadratically; the log-space recurrence is exact to ~1e-12
        cdf = _binomial_cdf(n, 0.5)
    else:
        cdf = np.minimum(np.cumsum([math.comb(n, i) for i in range(n + 1)], dtype=float) / 2.0**n, 1.0)
    return Test(float(cdf[improved]), cdf)


def binomial_below(successes: int, n: int, threshold: float) -> Test:
    """One-sided exact binomial test of a pass rate below ``threshold``: ``P(X <= k)``, X ~ Bin(n, t)."""
    if n == 0:
        return Test(1.0, np.array([1.0]))
    if threshold <= 0:
        return Test(1.0, np.array([1.0]))
    if threshold >= 1:
        cdf = np.zeros(n + 1)
        cdf[n] = 1.0
        return Test(float(cdf[successes]), np.array([0.0, 1.0]))
    cdf = _binomial_cdf(n, threshold)
    return Test(float(cdf[successes]), cdf)


def discrete_holm(tests: list[Test]) -> list[float]:
    """Holm-adjusted p-values, discrete version; reject test i at level alpha iff result[i] <= alpha.

    Step k (tests sorted by p) compares ``sum over the not-yet-rejected tests j of F_j(p_(k))``
    with alpha; the adjusted p-value is the running maximum of that sum, capped at 1.
    """
    order = sorted(range(len(tests)), key=lambda i: tests[i].p)
    adjusted = [1.0] * len(tests)
    running = 0.0
    for rank, i in enumerate(order):
        u = tests[i].p
        total = sum(tests[j].attainable(u) for j in order[rank:])
        running = max(running, min(1.0, total))
        adjusted[i] = running
    return adjusted
