"""Margins sized to the data, and how many rows would settle a check.

``max_regression: auto`` (the built-in default) asks: what drop in pass rate can these rows tell
apart from no drop? For n paired rows whose baseline passes with rate p, the per-row difference
of two independent runs has variance about ``2 p (1 - p)``; the margin is

    m = max(0.02, (z_{1 - alpha/2} + z_{0.999}) * sqrt(2 p (1 - p) / n))

so that an unchanged candidate clears it with probability 0.999 by the normal approximation
(about 0.99 with Newcombe's interval, which is wider), and a gate of 3 to 5 evaluators passes
all its overall checks about 19 times in 20 (bench/gate_sim.py). It depends on the baseline
only, never on how the candidate did: a worse candidate cannot widen its own margin. 300 rows
at p = 0.85 give 0.148, 2,400 rows 0.052, 10,000 rows 0.026.
"""

from __future__ import annotations

import math

from sluice.gate.stats import z_value

FLOOR = 0.02  # the smallest drop worth a verdict, whatever the size of the dataset
POWER_Z = 3.090232306167813  # z_{0.999}: an unchanged candidate clears an auto margin ~99% of the time


def auto_margin(baseline_passes: int, n: int, confidence: float) -> float:
    """The pass-rate drop ``n`` paired rows can resolve, for the baseline's pass rate (smoothed
    as (k + 1) / (n + 2) so that 100% does not give a zero margin)."""
    if n <= 0:
        return 1.0
    p = (baseline_passes + 1) / (n + 2)
    return min(1.0, max(FLOOR, (z_value(confidence) + POWER_Z) * math.sqrt(2 * p * (1 - p) / n)))


def rows_to_decide(estimate: float, threshold: float, per_row_sd: float, confidence: float) -> int | None:
    """Rows at which the interval around ``estimate`` would clear ``threshold`` on one side,
    if the estimate and the per-row spread stayed as they are; None when the estimate sits on
    the threshold (no number of rows settles it)."""
    gap = abs(estimate - threshold)
    if gap < 1e-9:
        return None
    return math.ceil((z_value(confidence) * max(per_row_sd, 1e-6) / gap) ** 2)
