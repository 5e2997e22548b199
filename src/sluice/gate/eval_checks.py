"""Evaluator checks: two roles, one correction, margins sized to the data.

- The overall check of an evaluator (every row) is a **non-inferiority** check: it passes only
  when the interval's bound clears the threshold, and is inconclusive (saying how many rows would
  decide it) when it does not.
- A cohort check looks for **evidence of harm**: it fails only when a one-sided test shows the
  candidate below the threshold, after the discrete Holm correction across every evaluator check
  of the gate, and the interval lies wholly below the threshold; otherwise it passes. A cohort of
  50 rows cannot show non-inferiority at any useful margin, but it can show a real drop.
- The overall check fails on the same evidence rule, so no check can fail on noise more often,
  all together, than ``1 - confidence``.
- ``max_regression: auto``: the overall check passes when the drop is shown to be smaller than
  the margin the rows can resolve (``margins.auto_margin``); any significant drop fails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from sluice.gate.check import Check, num, pval, signed, where
from sluice.gate.margins import auto_margin, rows_to_decide
from sluice.gate.measures import ALL, EvalMeasure, Interval
from sluice.gate.multiplicity import Test, binomial_below, discrete_holm, mcnemar_harm
from sluice.gate.policy import GatePolicy
from sluice.gate.stats import z_value


@dataclass
class Draft:
    """A check before the correction: what it measured and how it is judged."""

    measure: EvalMeasure
    metric: str
    label: str
    value: float
    ci: Interval
    threshold: float  # the check passes (non-inferiority) when ci.low >= threshold
    fail_threshold: float  # and fails on evidence that the candidate is below this one
    test: Test
    per_row_sd: float
    signed: bool = False
    auto: bool = False
    extra: str = ""


def _continuous(value: float, ci: Interval, threshold: float, confidence: float) -> Test:
    """One-sided normal test of ``value < threshold`` with the standard error read off the
    interval's upper half (the side that matters for harm)."""
    se = (ci.high - value) / z_value(confidence)
    if se <= 0:
        return Test(0.0 if value < threshold else 1.0)
    return Test(NormalDist().cdf((value - threshold) / se))


def drafts_for(policy: GatePolicy, m: EvalMeasure) -> list[Draft]:
    t = policy.thresholds_for(m.evaluator, None if m.cohort == ALL else m.cohort)
    conf, z = policy.confidence, z_value(policy.confidence)
    out: list[Draft] = []
    if t.min_pass_rate is not None and m.pass_rate_candidate is not None and m.pass_rate_candidate_ci:
        p, n = m.pass_rate_candidate, m.n_candidate
        out.append(Draft(m, "pass_rate", "pass rate", p, m.pass_rate_candidate_ci, t.min_pass_rate, t.min_pass_rate,
                         binomial_below(round(p * n), n, t.min_pass_rate), math.sqrt(p * (1 - p))))
    if t.min_mean_score is not None and m.mean_score_candidate is not None and m.mean_score_candidate_ci:
        v, ci = m.mean_score_candidate, m.mean_score_candidate_ci
        out.append(Draft(m, "mean_score", "mean score", v, ci, t.min_mean_score, t.min_mean_score,
                         _continuous(v, ci, t.min_mean_score, conf),
                         (ci.high - ci.low) / (2 * z) * math.sqrt(m.n_candidate)))
    if t.max_regression is not None and m.pass_delta is not None and m.pass_delta_ci:
        b, c, n = m.baseline_only, m.candidate_only, m.n_paired
        auto = t.max_regression == "auto"
        margin = auto_margin(m.both_pass + b, n, conf) if auto else float(t.max_regression)
        test = mcnemar_harm(b, c)
        extra = f" ({b} rows regressed, {c} improved, one-sided McNemar p={pval(test.p)})"
        out.append(Draft(m, "pass_rate_delta", "pass-rate delta", m.pass_delta, m.pass_delta_ci, -margin,
                         0.0 if auto else -margin, test, math.sqrt(max((b + c) / n - m.pass_delta**2, 1 / n)),
                         signed=True, auto=auto, extra=extra))
    if t.max_score_regression is not None and m.score_delta is not None and m.score_delta_ci:
        v, ci = m.score_delta, m.score_delta_ci
        out.append(Draft(m, "score_delta", "mean-score delta", v, ci, -t.max_score_regression,
                         -t.max_score_regression, _continuous(v, ci, -t.max_score_regression, conf),
                         (ci.high - ci.low) / (2 * z) * math.sqrt(m.n_paired), signed=True))
    return out


def judge(policy: GatePolicy, drafts: list[Draft]) -> list[Check]:
    """Correct across every draft at once, then give each its status and its sentence."""
    alpha = 1 - policy.confidence
    adjusted = discrete_holm([d.test for d in drafts])
    return [_finish(policy, d, p_adj, alpha, len(drafts)) for d, p_adj in zip(drafts, adjusted)]


def _finish(policy: GatePolicy, d: Draft, p_adj: float, alpha: float, family: int) -> Check:
    m, ci = d.measure, d.ci
    fmt = signed if d.signed else num
    role = "non_inferiority" if m.cohort == ALL else "harm"
    pct = f"{policy.confidence * 100:g}%"
    n = m.n_paired if d.signed else m.n_candidate
    kind = "allowed" if d.signed else "the minimum"
    margin = f" (auto margin for {n} paired rows)" if d.auto else ""
    head = f"{where(m.evaluator, m.cohort)}: {d.label} {fmt(d.value)} ({pct} CI {fmt(ci.low)}…{fmt(ci.high)})"
    corrected = f"Holm-adjusted p={pval(p_adj)} across {family} checks"
    rows_needed = None
    if p_adj <= alpha and ci.high < d.fail_threshold:
        status = "fail"
        if d.auto:
            text = f"{head}: a significant drop (max_regression auto: any significant drop fails){d.extra}; {corrected}"
        else:
            text = f"{head} below {kind} {fmt(d.fail_threshold)}{d.extra}; {corrected}"
    elif role == "harm":
        status = "pass"
        text = f"{head}: no significant drop below {kind} {fmt(d.fail_threshold)}{d.extra}; {corrected}"
    elif ci.low >= d.threshold:
        status = "pass"
        text = f"{head} {'within allowed' if d.signed else 'at least the minimum'} {fmt(d.threshold)}{margin}{d.extra}"
    else:
        status = "inconclusive"
        rows_needed = rows_to_decide(d.value, d.threshold, d.per_row_sd, policy.confidence)
        settle = (f"; about {rows_needed:,} judged rows would decide it at this threshold ({n:,} now)"
                  if rows_needed is not None else "; the estimate sits on the threshold")
        text = f"{head} straddles {kind} {fmt(d.threshold)}{margin}{d.extra}{settle}"
    return Check(id=f"{m.evaluator}/{m.cohort}/{d.metric}", metric=d.metric, cohort=m.cohort, evaluator=m.evaluator,
                 status=status, critical=policy.is_critical(m.evaluator), value=d.value, interval=ci,
                 threshold=d.threshold if status != "fail" else d.fail_threshold, message=text, role=role,
                 p_value=d.test.p, p_adjusted=p_adj, auto_margin=d.auto, rows_needed=rows_needed)
