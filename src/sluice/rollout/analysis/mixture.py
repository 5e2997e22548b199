"""Normal-mixture (mSPRT) tests and confidence sequences for differences of means and of rates.

reference/rollouts.md §4.1. For an estimate ``d`` of a contrast with variance ``V`` and a N(θ0, τ²)
mixing prior the mixture likelihood ratio is

    Λ = sqrt(V / (V + τ²)) · exp(τ² (d − θ0)² / (2 V (V + τ²)))             (two-sided)

and, mixing over the half-normal on the harmful side only (confseq's ``OneSidedNormalMixture``),

    Λ₊ = 2 · sqrt(V / (V + τ²)) · exp(τ² (d − θ0)² / (2 V (V + τ²))) · Φ(τ (d − θ0) / sqrt(V (V + τ²)))

The controller folds looks, not one running estimate: each look gives a concurrent per-look contrast
``d_j`` with variance ``V_j``; ``S = Σ d_j / V_j`` and the information ``I = Σ 1 / V_j`` make a Gaussian
martingale in intrinsic time ``I`` (``S ~ N(θ I, I)``), which stays valid when the canary share changes
between steps and is immune to drifts common to both arms. Then ``d = S / I`` and ``V = 1 / I`` above.
The plug-in variances make this asymptotically valid (Waudby-Smith et al.), hence the minimum samples.
"""

from __future__ import annotations

import math


def norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _log_norm_cdf(x: float) -> float:
    if x > -30:
        return math.log(max(norm_cdf(x), 1e-300))
    # asymptotic: log Φ(x) ≈ −x²/2 − log(−x) − ½ log 2π
    return -0.5 * x * x - math.log(-x) - 0.5 * math.log(2 * math.pi)


def log_msprt(d: float, var: float, tau: float, theta0: float = 0.0) -> float:
    """log Λ, the two-sided normal-mixture likelihood ratio of H0: contrast = θ0."""
    t2 = tau * tau
    return 0.5 * math.log(var / (var + t2)) + t2 * (d - theta0) ** 2 / (2.0 * var * (var + t2))


def log_msprt_one_sided(d: float, var: float, tau: float, theta0: float = 0.0) -> float:
    """log Λ₊ for H0: contrast ≤ θ0 against contrast > θ0 (only evidence of excess counts)."""
    t2 = tau * tau
    z = tau * (d - theta0) / math.sqrt(var * (var + t2))
    return math.log(2.0) + log_msprt(d, var, tau, theta0) + _log_norm_cdf(z)


def half_width(var: float, tau: float, alpha: float) -> float:
    """Always-valid two-sided (1 − α) half-width around the estimate: the inverted two-sided mixture."""
    t2 = tau * tau
    return math.sqrt(var * (var + t2) / t2 * (math.log((var + t2) / var) + 2.0 * math.log(1.0 / alpha)))


def fixed_z(d: float, var: float) -> float:
    """The fixed-horizon z statistic, for comparison only (it is not valid under repeated looks)."""
    return d / math.sqrt(var)


def tuned_tau(info: float, alpha: float) -> float:
    """τ that makes the boundary tightest at information ``info`` (confseq ``best_rho``)."""
    la = math.log(1.0 / alpha)
    return math.sqrt((2.0 * la + math.log(1.0 + 2.0 * la)) / info)


def fold(acc: dict, d: float, var: float) -> dict:
    """Add one look's contrast estimate ``d`` (variance ``var``) to ``{"S": Σ d/V, "I": Σ 1/V}``."""
    if not (var > 0 and math.isfinite(var) and math.isfinite(d)):
        raise ValueError(f"a look's contrast needs a positive finite variance (d={d}, V={var})")
    return {"S": acc.get("S", 0.0) + d / var, "I": acc.get("I", 0.0) + 1.0 / var}


def estimate(acc: dict) -> tuple[float, float] | None:
    """(contrast estimate, its variance) from the folded looks, or None before any."""
    info = acc.get("I", 0.0)
    if info <= 0:
        return None
    return acc["S"] / info, 1.0 / info
