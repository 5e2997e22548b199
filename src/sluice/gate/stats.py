"""The statistics of the offline gate: paired, exact where it is cheap, and always an interval.

Candidate and baseline answer the *same* rows, so every comparison is paired: the per-row
differences carry far less noise than two independent samples would. Gate decisions use the
bounds of these intervals, never the point estimate alone (see docs/gate.md).

- pass/fail: exact McNemar test (two-sided binomial test on the discordant pairs) and Newcombe's
  hybrid score ("square-and-add") interval for the paired difference of pass rates, with the
  continuity-corrected correlation term (Newcombe 1998, method 10).
- one pass rate: Wilson score interval.
- scores: BCa bootstrap over rows (seeded, vectorised), exact jackknife acceleration for the mean;
  a sample without spread gets a bounded, distribution-free interval instead of a point.
- latency: empirical quantiles; order-statistic (binomial) bounds for a quantile, which are exact
  for any continuous distribution; a paired percentile bootstrap for the ratio of p95s.

numpy only at run time; everything is a pure function of its inputs and the seed.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()


def z_value(confidence: float) -> float:
    """The two-sided normal critical value for ``confidence`` (1.959964 for 0.95)."""
    return _NORMAL.inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for one proportion; (0, 1) when there is no data."""
    if n <= 0:
        return (0.0, 1.0)
    z = z_value(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: P(X <= min(b, c)) doubled, X ~ Binomial(b + c, 1/2).

    ``b`` and ``c`` are the discordant counts (candidate-only passes, baseline-only passes).
    Computed in exact integer arithmetic, so it stays accurate for thousands of pairs.
    """
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**n)


def paired_pass_diff_interval(both: int, cand_only: int, base_only: int, neither: int,
                              confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's square-and-add interval for p_candidate - p_baseline on paired pass/fail data.

    The 2x2 table: ``both`` pass, ``cand_only`` (candidate passes, baseline fails), ``base_only``,
    ``neither``. Wilson limits of each marginal pass rate are combined with the estimated
    correlation between the two rates (continuity-corrected as in Newcombe 1998), which is what
    makes the interval paired: identical runs give a narrow interval around 0.
    """
    n = both + cand_only + base_only + neither
    if n == 0:
        return (-1.0, 1.0)
    p1 = (both + cand_only) / n
    p2 = (both + base_only) / n
    l1, u1 = wilson_interval(both + cand_only, n, confidence)
    l2, u2 = wilson_interval(both + base_only, n, confidence)
    margins = ((both + cand_only), (base_only + neither), (both + base_only), (cand_only + neither))
    psi = 0.0
    if all(m > 0 for m in margins):
        cross = both * neither - cand_only * base_only
        scale = math.sqrt(math.prod(margins))
        if cross > n / 2:
            psi = (cross - n / 2) / scale
        elif cross < 0:
            psi = cross / scale
    d = p1 - p2
    lower = d - math.sqrt(max(0.0, (p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * psi * (p1 - l1) * (u2 - p2)))
    upper = d + math.sqrt(max(0.0, (p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * psi * (p2 - l2) * (u1 - p1)))
    return (max(-1.0, lower), min(1.0, upper))


def bootstrap_indices(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """A (resamples, n) matrix of row indices drawn with replacement."""
    return rng.integers(0, n, size=(resamples, n), dtype=np.int32 if n < 2**31 else np.int64)


def resample_count_slices(n: int, resamples: int, rng: np.random.Generator, step: int = 250):
    """How often each of ``n`` rows appears in each bootstrap resample, ``step`` resamples at a time.

    Yields (r, n) matrices whose rows sum to ``n``. Slices, not one (resamples, n) matrix: at
    2,000 x 2,000 rows the whole matrix and its index temporaries cost ~100 MB of peak memory.
    """
    for start in range(0, resamples, step):
        r = min(step, resamples - start)
        idx = rng.integers(0, n, size=(r, n), dtype=np.int64)
        idx += np.arange(r, dtype=np.int64)[:, None] * n
        yield np.bincount(idx.ravel(), minlength=r * n).reshape(r, n).astype(float)


def resampled_means(values: np.ndarray, weights: np.ndarray, resamples: int,
                    rng: np.random.Generator) -> np.ndarray:
    """``bootstrap_means`` of every column over ``resamples`` resamples of the rows: (resamples, k).

    One draw of resamples serves every column (every evaluator of a cohort), so the columns'
    intervals come from the same resamples and the work is a few matrix products.
    """
    return np.concatenate([bootstrap_means(counts, values, weights)
                           for counts in resample_count_slices(values.shape[0], resamples, rng)])


def bootstrap_means(counts: np.ndarray, values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Resampled weighted means of each column: (resamples, n) x (n, k) -> (resamples, k).

    ``weights`` is 1 for rows that count and 0 for excluded ones (an evaluator error), so each
    resample averages over the valid rows it happened to draw; a resample without any is NaN.
    """
    num = counts @ (values * weights)
    den = counts @ weights
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def no_spread_interval(theta: float, n: int, bounds: tuple[float, float],
                       confidence: float = 0.95) -> tuple[float, float]:
    """An interval for the mean of ``n`` values that all equal ``theta``, each bounded by ``bounds``.

    The bootstrap of such a sample is a point, which would claim certainty 20 rows cannot give.
    Up to a share ``q = 1 - (alpha/2)^(1/n)`` of the population (the Clopper-Pearson bound for
    0 of n) could differ from ``theta`` without showing in the sample; at worst those sit at the
    far bound. 20 perfect scores in [0, 1] give 0.832…1, the exact bound for 20 of 20.
    """
    lo, hi = bounds
    q = 1 - ((1 - confidence) / 2) ** (1 / n)
    return (theta - q * (theta - lo), theta + q * (hi - theta))


def bca_interval(boot: np.ndarray, sample: np.ndarray, confidence: float = 0.95,
                 bounds: tuple[float, float] = (0.0, 1.0)) -> tuple[float, float]:
    """BCa interval for the mean of ``sample`` from its resampled means ``boot``.

    Bias correction z0 comes from the share of resampled means below the observed mean (ties
    count half); the acceleration from the exact jackknife of the mean, ``(sum - x_i)/(n - 1)``.
    A sample without spread (one row, or all values equal) gets ``no_spread_interval`` within
    ``bounds`` (the range a value can take: [0, 1] for scores, [-1, 1] for paired differences).
    """
    x = np.asarray(sample, dtype=float)
    n = x.size
    if n == 0:
        return (math.nan, math.nan)
    theta = float(x.mean())
    boot = boot[~np.isnan(boot)]
    if n == 1 or float(np.ptp(x)) == 0.0 or boot.size == 0:
        return no_spread_interval(theta, n, bounds, confidence)
    resamples = boot.size
    below = np.count_nonzero(boot < theta) + 0.5 * np.count_nonzero(boot == theta)
    prop = min(max(below / resamples, 1 / (2 * resamples)), 1 - 1 / (2 * resamples))
    z0 = _NORMAL.inv_cdf(prop)
    jack = (x.sum() - x) / (n - 1)
    dev = jack.mean() - jack
    den = 6.0 * float(np.sum(dev**2)) ** 1.5
    accel = float(np.sum(dev**3)) / den if den > 0 else 0.0
    alpha = (1 - confidence) / 2
    tails = []
    for tail in (alpha, 1 - alpha):
        z = z0 + _NORMAL.inv_cdf(tail)
        tails.append(_NORMAL.cdf(z0 + z / (1 - accel * z)))
    lo, hi = np.quantile(boot, tails)
    return (float(lo), float(hi))


def mean_interval(values: np.ndarray, resamples: int, seed_parts: list[int], confidence: float = 0.95,
                  bounds: tuple[float, float] = (-1.0, 1.0)) -> tuple[float, float]:
    """BCa bootstrap interval for the mean of ``values``; for a paired difference pass the
    per-row differences ``candidate - baseline`` (rows are then resampled as pairs)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (math.nan, math.nan)
    boot = resampled_means(x[:, None], np.ones((x.size, 1)), resamples, np.random.default_rng(seed_parts))[:, 0]
    return bca_interval(boot, x, confidence, bounds)


def _binomial_cdf(n: int, p: float) -> np.ndarray:
    """P(Binomial(n, p) <= k) for k = 0..n, from log-pmf recurrences (numpy only)."""
    k = np.arange(n, dtype=float)
    steps = np.log((n - k) / (k + 1)) + math.log(p) - math.log1p(-p)
    logpmf = np.concatenate([[n * math.log1p(-p)], n * math.log1p(-p) + np.cumsum(steps)])
    return np.minimum(np.cumsum(np.exp(logpmf)), 1.0)


def quantile_min_rows(p: float, confidence: float = 0.95) -> int:
    """Fewest rows for which ``quantile_bounds`` has an upper bound: ``p^n <= (1 - confidence)/2``
    (367 for p99 and 72 for p95 at 95%)."""
    return math.ceil(math.log((1 - confidence) / 2) / math.log(p))


def quantile_bounds(values: np.ndarray, p: float, confidence: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free interval for the p-quantile: order statistics ``x_(l) <= q_p <= x_(u)``.

    ``u`` is the smallest rank with P(Binomial(n, p) <= u - 1) >= 1 - alpha/2, ``l`` the largest with
    P(Binomial(n, p) <= l - 1) <= alpha/2; coverage is at least ``confidence`` for any continuous
    distribution. The percentile bootstrap is not: in the tail it covers far less than it says.
    None when there are too few rows for an upper bound (``quantile_min_rows``).
    """
    x = np.sort(np.asarray(values, dtype=float))
    n = x.size
    if n == 0 or n < quantile_min_rows(p, confidence):
        return None
    a = (1 - confidence) / 2
    cdf = _binomial_cdf(n, p)  # cdf[j] = P(B <= j)
    u = int(np.searchsorted(cdf, 1 - a - 1e-12)) + 1  # smallest u with cdf[u - 1] >= 1 - a
    below = np.flatnonzero(cdf <= a)
    lo = x[int(below[-1])] if below.size else -math.inf  # rank l = j + 1 where cdf[j] = P(B <= l - 1)
    return (float(lo), float(x[min(u, n) - 1]))


def quantiles(values: np.ndarray, probs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> list[float]:
    """Empirical quantiles (linear interpolation, numpy's default); NaN when empty."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return [math.nan] * len(probs)
    return [float(q) for q in np.quantile(x, probs)]


def quantile_intervals(candidate: np.ndarray, baseline: np.ndarray, probs: tuple[float, ...], resamples: int,
                       seed_parts: list[int], confidence: float = 0.95
                       ) -> dict[float, tuple[tuple[float, float], tuple[float, float]]]:
    """Paired percentile-bootstrap intervals, per quantile p, for the candidate's p-quantile and
    for the ratio candidate/baseline of p-quantiles.

    Percentile (not BCa): the jackknife is unreliable for quantiles. Rows are resampled as pairs,
    so a slow prompt slows both arms in the same resample.
    """
    c = np.asarray(candidate, dtype=float)
    b = np.asarray(baseline, dtype=float)
    out: dict[float, tuple[tuple[float, float], tuple[float, float]]] = {}
    if c.size == 0:
        return {p: ((math.nan, math.nan), (math.nan, math.nan)) for p in probs}
    rng = np.random.default_rng(seed_parts)
    qc = np.empty((len(probs), resamples))  # resampled p-quantiles, built 250 resamples at a time
    qb = np.empty((len(probs), resamples))  # so 2,000 x 2,000 rows never sit in memory at once
    for start in range(0, resamples, 250):
        idx = bootstrap_indices(c.size, min(250, resamples - start), rng)
        qc[:, start:start + idx.shape[0]] = np.quantile(c[idx], probs, axis=1)
        qb[:, start:start + idx.shape[0]] = np.quantile(b[idx], probs, axis=1)
    alpha = (1 - confidence) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(qb > 0, qc / qb, np.nan)
    for i, p in enumerate(probs):
        cand_ci = np.quantile(qc[i], [alpha, 1 - alpha])
        r = ratio[i][~np.isnan(ratio[i])]
        ratio_ci = np.quantile(r, [alpha, 1 - alpha]) if r.size else np.array([math.nan, math.nan])
        out[p] = ((float(cand_ci[0]), float(cand_ci[1])), (float(ratio_ci[0]), float(ratio_ci[1])))
    return out
