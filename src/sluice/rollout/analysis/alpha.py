"""α for each harm test: the rollout's false-alarm budget split over metrics × cohorts, fixed up front.

Harm (fail) tests are a union of alarms (any one rolls back or holds), so their levels must add up to
at most α: Bonferroni on e-values, valid under any dependence between metrics and cohorts. The family
is fixed when the rollout starts: the plan's cohorts plus ``(all)``, each metric × cohort getting an
equal share of ``(1 − late_share)·α``. A cohort that was not in the plan but shows up in the traffic is
paid from the reserved ``late_share·α``: the k-th such cohort (k = 1, 2, …, in order of first
appearance) gets ``late_share·α / 2^k`` over its metrics, so however many appear, the total never
exceeds α. The order of appearance is kept in the analysis state, so a restart gives the same levels.

Non-inferiority (pass) tests need no split: advancing needs *every* required cell to pass (an
intersection-union test), so the chance of advancing while some cell is worse than its margin is at
most the level of that one cell's test.
"""

from __future__ import annotations

from collections.abc import Sequence

from sluice.rollout.measures import OVERALL

DEFAULT_LATE_SHARE = 0.2


def planned_cohorts(cohorts: Sequence[str] | None) -> list[str]:
    out = [OVERALL]
    for c in cohorts or ():
        if c not in out:
            out.append(c)
    return out


def cell_alpha(alpha: float, n_metrics: int, planned: Sequence[str], late: Sequence[str], cohort: str,
               late_share: float = DEFAULT_LATE_SHARE) -> float:
    """The harm test level of one metric in ``cohort`` (planned, or the k-th late cohort)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_metrics <= 0:
        raise ValueError("no metrics to judge")
    if cohort in planned:
        return (1.0 - late_share) * alpha / (n_metrics * len(planned))
    if cohort not in late:
        raise ValueError(f"cohort {cohort!r} is neither planned nor recorded as late")
    k = list(late).index(cohort) + 1
    return late_share * alpha / (2.0 ** k) / n_metrics


def total_spent(alpha: float, n_metrics: int, planned: Sequence[str], late: Sequence[str],
                late_share: float = DEFAULT_LATE_SHARE) -> float:
    """Σ of every cell's level (≤ α by construction; the tests check it)."""
    cohorts = list(planned) + list(late)
    return n_metrics * sum(cell_alpha(alpha, n_metrics, planned, late, c, late_share) for c in cohorts)
