"""The ceiling on detecting a small cohort's regression when A/A gates may fail only 5 % of the time.

Exact numbers, no simulation: the power of the exact one-sided McNemar test (the uniformly most
powerful unbiased test for paired pass/fail rows) on one cohort of ``--rows`` rows whose pass
rate drops from ``--base`` to ``--cand``, at the per-check level that keeps an A/A gate's false
fail at 5 % over ``k`` independent harm checks (Bonferroni 0.05 / k), and the per-check level
that 85 % detection would need with what it does to the A/A fail rate (1 - (1 - level)^k).

    .venv/bin/python bench/gate_power_bound.py        # results in bench/results/gate_power_bound.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scipy.stats import binom

RESULTS = Path(__file__).resolve().parent / "results"


def power(level: float, rows: int, base: float, cand: float) -> float:
    """P(reject) of the exact one-sided McNemar test at ``level``; rows independent across arms."""
    worse = base * (1 - cand)  # baseline passes, candidate fails
    better = (1 - base) * cand
    discordant = worse + better
    total = 0.0
    for n in range(1, rows + 1):
        k = next((k for k in range(n + 1) if binom.sf(k - 1, n, 0.5) <= level), None)
        if k is not None:
            total += binom.pmf(n, rows, discordant) * binom.sf(k - 1, n, worse / discordant)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--base", type=float, default=0.9)
    ap.add_argument("--cand", type=float, default=0.6)
    args = ap.parse_args()
    lines = ["# Detection ceiling for one regressed cohort (exact McNemar)", "",
             f"One cohort of {args.rows} rows, pass rate {args.base} → {args.cand}, rows independent; "
             "`bench/gate_power_bound.py`.", "",
             "| harm checks k | per-check level 0.05/k | detected |", "|---|---|---|"]
    for k in (15, 20, 24, 25):
        lines.append(f"| {k} | {0.05 / k:.4f} | {power(0.05 / k, args.rows, args.base, args.cand):.1%} |")
    lines += ["", "| per-check level | detected | A/A fail over 15 / 24 checks |", "|---|---|---|"]
    for level in (0.005, 0.01, 0.02, 0.03):
        aa = [1 - (1 - level) ** k for k in (15, 24)]
        lines.append(f"| {level} | {power(level, args.rows, args.base, args.cand):.1%} | {aa[0]:.0%} / {aa[1]:.0%} |")
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gate_power_bound.md").write_text(text)


if __name__ == "__main__":
    main()
