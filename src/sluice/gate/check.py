"""One check of the gate, and the wording every check shares."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from sluice.gate.measures import ALL, Interval

Status = Literal["pass", "fail", "inconclusive", "skipped", "error"]
Role = Literal["non_inferiority", "harm"]


class Check(BaseModel):
    id: str  # evaluator/cohort/metric, stable across runs
    metric: str
    cohort: str
    evaluator: str | None = None
    status: Status
    critical: bool = False
    value: float | None = None
    interval: Interval | None = None
    threshold: float | None = None
    message: str
    # evaluator checks only (docs/gate.md, "Roles, correction and margins"):
    role: Role | None = None  # non_inferiority: can pass, must show it; harm: fails only on evidence
    p_value: float | None = None  # one-sided: the candidate is below the threshold
    p_adjusted: float | None = None  # discrete Holm across every evaluator check of the gate
    auto_margin: bool = False  # the threshold is max_regression: auto, sized to the judged rows
    rows_needed: int | None = None  # inconclusive: judged rows that would decide it at this threshold


def where(evaluator: str | None, cohort: str) -> str:
    scope = "overall" if cohort == ALL else f"in cohort '{cohort}'"
    return f"{evaluator} {scope}" if evaluator else scope


def num(x: float) -> str:
    return f"{x:.3f}"


def signed(x: float) -> str:
    return f"{x:+.3f}"


def pval(p: float) -> str:
    return f"{p:.3g}"
