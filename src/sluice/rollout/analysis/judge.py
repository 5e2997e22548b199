"""Rules × state → one ``Finding`` per metric × cohort, each explaining itself in one line.

Order of judgement per cell: fewer samples than the minimum in either arm is ``insufficient`` (nothing
may be concluded, whatever the e-values say); harm shown (the harm e-value ever reached 1/α of the cell)
is ``fail``; non-inferiority shown (its e-value ever reached 1/pass_alpha) is ``pass``; otherwise
``inconclusive``. The bound reported is the anytime-valid confidence bound at the cell's level on the
rate ratio (ratio tests) or on canary − stable in the metric's units (normal tests): the lower bound at
the cell's harm level when the canary failed, the upper bound at ``pass_alpha`` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from sluice.rollout.analysis import eprocess, mixture
from sluice.rollout.analysis.state import log_evalues
from sluice.rollout.measures import Finding, MetricRule


def _fmt(x: float) -> str:
    if x == 0 or 1e-3 <= abs(x) < 1e5:
        return f"{x:.4g}"
    return f"{x:.3g}"


def _e(log_e: float) -> str:
    return _fmt(math.exp(min(log_e, 700.0)))


def _estimate(arm: dict, kind: str) -> float | None:
    if arm["n"] == 0:
        return None
    return (arm["events"] if kind == "rate" else arm["total"]) / arm["n"]


def _bound(cell: dict, mode: str, level: float, side: str) -> float | None:
    """The one-sided anytime-valid bound behind the outcome: ``lower`` for harm, ``upper`` otherwise."""
    if mode == "ratio":
        if cell["canary"]["events"] + cell["stable"]["events"] == 0:
            return None
        return eprocess.one_sided_bound(cell["loglik"], cell["grid"], level, side)
    est = mixture.estimate(cell["diff"])
    if est is None or cell["tau"] is None:
        return None
    d, v = est
    h = mixture.half_width(v, cell["tau"]["fail"], 2 * level)  # one side of a two-sided 1 − 2·level set
    return d - h if side == "lower" else d + h


def _margin_words(rule: MetricRule, harm: bool) -> str:
    m = rule.harm_margin if harm else rule.margin
    if rule.relative:
        return f"{1 + m:.3g}× stable"
    return f"stable {'+' if m >= 0 else ''}{_fmt(m)}"


def judge_cell(rule: MetricRule, cell: dict, pass_alpha: float, min_samples: int | None = None) -> Finding:
    need = rule.min_samples if min_samples is None else min_samples
    c, s = cell["canary"], cell["stable"]
    level = cell["alpha"]
    lf, lp = cell["max_log_fail"], cell["max_log_pass"]
    now_pass = math.exp(min(log_evalues(cell)[1], 700.0))
    failing = lf >= math.log(1.0 / level)
    mode = cell["fail_mode"] if failing else cell["pass_mode"]
    kind = "rate ratio" if mode == "ratio" else "canary − stable"
    if c["n"] < need or s["n"] < need:
        outcome, evidence = "insufficient", math.exp(min(lf, 700.0))
        text = f"insufficient: {c['n']} canary / {s['n']} stable samples, needs {need} per arm"
        bound = _bound(cell, mode, pass_alpha, "upper")
    elif failing:
        outcome, evidence = "fail", math.exp(min(lf, 700.0))
        bound = _bound(cell, mode, level, "lower")
        text = (f"harm: e-value {_e(lf)} ≥ 1/α = {_fmt(1 / level)} against canary ≤ {_margin_words(rule, True)}"
                + (f"; {kind} ≥ {_fmt(bound)}" if bound is not None else ""))
    elif lp >= math.log(1.0 / pass_alpha):
        outcome, evidence = "pass", math.exp(min(lp, 700.0))
        bound = _bound(cell, mode, pass_alpha, "upper")
        text = (f"non-inferior: e-value {_e(lp)} ≥ 1/α = {_fmt(1 / pass_alpha)} against canary ≥ "
                f"{_margin_words(rule, False)}" + (f"; {kind} ≤ {_fmt(bound)}" if bound is not None else ""))
    else:
        outcome, evidence = "inconclusive", math.exp(min(lf, 700.0))
        bound = _bound(cell, mode, pass_alpha, "upper")
        text = (f"inconclusive: harm e-value {_e(lf)} (needs {_fmt(1 / level)}), non-inferiority e-value "
                f"{_e(lp)} (needs {_fmt(1 / pass_alpha)})")
    return Finding(metric=rule.metric, cohort=cell["cohort"], outcome=outcome, critical=rule.critical,
                   canary_estimate=_estimate(c, rule.kind), stable_estimate=_estimate(s, rule.kind),
                   bound=bound, margin=rule.margin, canary_samples=c["n"], stable_samples=s["n"],
                   rule=text, evidence=evidence, relative=rule.relative,
                   non_inferiority=now_pass)


def judge(rules: Sequence[MetricRule], state: dict, *,
          min_samples_by_cohort: Mapping[str, int] | None = None) -> list[Finding]:
    """One finding per rule × cohort in the state (planned cohorts first, then late ones, in order),
    leaving out cohorts narrowed away. ``min_samples_by_cohort`` overrides a rule's minimum per cohort."""
    overrides = dict(min_samples_by_cohort or {})
    known = {r["metric"] for r in state["rules"]}
    findings = []
    order = list(state["planned"]) + list(state["late"])
    for rule in rules:
        if rule.metric not in known:
            raise ValueError(f"rule {rule.metric!r} is not in the analysis state (the plan changed?)")
        cells = state["cells"][rule.metric]
        for cohort in order:
            if cohort in state["dropped"] or cohort not in cells:
                continue
            findings.append(judge_cell(rule, cells[cohort], state["pass_alpha"], overrides.get(cohort)))
    return findings
