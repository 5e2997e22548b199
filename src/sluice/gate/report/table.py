"""The rows every report shows: one per evaluator x cohort, with its worst check status.

Kept apart from the renderers so terminal, Markdown, HTML and JUnit agree on what a row says.
"""

from __future__ import annotations

from dataclasses import dataclass

from sluice.gate.check import Check
from sluice.gate.measures import ALL, EvalMeasure, Interval
from sluice.gate.result import GateResult

SEVERITY = {"error": 4, "fail": 3, "inconclusive": 2, "pass": 1, "skipped": 0}
ICON = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️", "skipped": "⏭️", "error": "🛑", "-": "·"}


@dataclass
class TableRow:
    measure: EvalMeasure
    status: str  # worst check status for this evaluator x cohort, or "-" when nothing was checked
    checks: list[Check]

    @property
    def cohort_label(self) -> str:
        return "all rows" if self.measure.cohort == ALL else self.measure.cohort


def worst(statuses: list[str]) -> str:
    return max(statuses, key=lambda s: SEVERITY.get(s, -1)) if statuses else "-"


def table_rows(result: GateResult) -> list[TableRow]:
    rows = []
    for m in result.eval:
        if not (m.n_candidate or m.n_baseline or m.eval_errors_candidate or m.eval_errors_baseline):
            continue  # no row of this cohort is in the evaluator's scope: nothing to show
        checks = [c for c in result.checks if c.evaluator == m.evaluator and c.cohort == m.cohort]
        if not checks:  # a cohort that was not judged carries its row-count check
            checks = [c for c in result.checks if c.metric == "rows" and c.cohort == m.cohort]
        rows.append(TableRow(m, worst([c.status for c in checks]), checks))
    return rows


def rate(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def signed(x: float | None, pct: bool = True) -> str:
    if x is None:
        return "–"
    return f"{x * 100:+.1f} pp" if pct else f"{x:+.3f}"


def interval(ci: Interval | None, pct: bool = True) -> str:
    if ci is None:
        return "–"
    if pct:
        return f"{ci.low * 100:+.1f}…{ci.high * 100:+.1f}"
    return f"{ci.low:+.3f}…{ci.high:+.3f}"


def pvalue(p: float | None) -> str:
    return "–" if p is None else (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")


def ms(x: float | None) -> str:
    return "–" if x is None or x != x else f"{x:,.0f} ms"


def side_line(result: GateResult) -> str:
    return (f"candidate {result.candidate.ref} ({result.candidate.digest[7:19]}) vs baseline {result.baseline.ref} "
            f"({result.baseline.digest[7:19]}) on {result.dataset_name}@{result.dataset_version[7:19]}")
