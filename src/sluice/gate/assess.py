"""The gate's judgement: ``assess(policy, measurements) -> Verdict``, a pure function.

Each threshold becomes one check with status pass / fail / inconclusive / skipped / error. The
interval, not the point estimate, decides (docs/gate.md, "Verdict rules"):

- "at least t" (min pass rate, min mean score, delta >= -allowed regression):
  pass when the lower bound >= t, fail when the upper bound < t, otherwise inconclusive.
- "at most t" (latency quantile, latency ratio): pass when the upper bound <= t, fail when the
  lower bound > t, otherwise inconclusive.
- cost is a budget over the whole contract: its point estimate is compared directly.

The verdict: exit 5 when either side's target errors exceed the error budget; otherwise fail
when a critical check fails or more than ``max_noncritical_failures`` other checks fail;
otherwise inconclusive when any check is inconclusive; otherwise pass.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from sluice.errors import ExitCode
from sluice.gate.measures import ALL, EvalMeasure, Interval, Measurements
from sluice.gate.policy import GatePolicy

Status = Literal["pass", "fail", "inconclusive", "skipped", "error"]


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


class Verdict(BaseModel):
    verdict: Literal["pass", "fail", "inconclusive"]
    exit_code: int
    reasons: list[str]  # why the verdict is not pass (or notes on tolerated failures)
    checks: list[Check] = Field(default_factory=list)


def where(evaluator: str | None, cohort: str) -> str:
    scope = "overall" if cohort == ALL else f"in cohort '{cohort}'"
    return f"{evaluator} {scope}" if evaluator else scope


def _num(x: float) -> str:
    return f"{x:.3f}"


def _signed(x: float) -> str:
    return f"{x:+.3f}"


def _at_least(value: float | None, ci: Interval | None, t: float) -> Status:
    if value is None or ci is None:
        return "inconclusive"
    if ci.low >= t:
        return "pass"
    return "fail" if ci.high < t else "inconclusive"


def _at_most(value: float | None, ci: Interval | None, t: float) -> Status:
    if value is None or ci is None:
        return "inconclusive"
    if ci.high <= t:
        return "pass"
    return "fail" if ci.low > t else "inconclusive"


_VERB = {
    ("min", "pass"): "at least the minimum", ("min", "fail"): "below the minimum",
    ("min", "inconclusive"): "straddles the minimum",
    ("max", "pass"): "within the maximum", ("max", "fail"): "above the maximum",
    ("max", "inconclusive"): "straddles the maximum",
    ("delta", "pass"): "within allowed", ("delta", "fail"): "below allowed",
    ("delta", "inconclusive"): "straddles allowed",
}


def _bound_check(policy: GatePolicy, metric: str, label: str, evaluator: str | None, cohort: str,
                 value: float | None, ci: Interval | None, threshold: float, kind: Literal["min", "max"],
                 critical: bool, signed: bool = False, extra: str = "") -> Check:
    status = (_at_least if kind == "min" else _at_most)(value, ci, threshold)
    fmt = _signed if signed else _num
    pct = f"{policy.confidence * 100:g}%"
    if value is None or ci is None:
        text = f"{where(evaluator, cohort)}: {label} has no judged rows; cannot compare with {fmt(threshold)}"
    else:
        text = (f"{where(evaluator, cohort)}: {label} {fmt(value)} ({pct} CI {fmt(ci.low)}…{fmt(ci.high)}) "
                f"{_VERB[('delta' if signed else kind, status)]} {fmt(threshold)}{extra}")
    return Check(id=f"{evaluator or '-'}/{cohort}/{metric}", metric=metric, cohort=cohort, evaluator=evaluator,
                 status=status, critical=critical, value=value, interval=ci, threshold=threshold, message=text)


def _eval_checks(policy: GatePolicy, m: EvalMeasure) -> list[Check]:
    t = policy.thresholds_for(m.evaluator, None if m.cohort == ALL else m.cohort)
    crit = policy.is_critical(m.evaluator)
    out: list[Check] = []
    if not (m.n_candidate or m.n_baseline or m.eval_errors_candidate or m.eval_errors_baseline):
        return out  # no row of this cohort is in the evaluator's scope (e.g. no expected tool)
    if t.min_pass_rate is not None:
        out.append(_bound_check(policy, "pass_rate", "pass rate", m.evaluator, m.cohort, m.pass_rate_candidate,
                                m.pass_rate_candidate_ci, t.min_pass_rate, "min", crit))
    if t.min_mean_score is not None:
        out.append(_bound_check(policy, "mean_score", "mean score", m.evaluator, m.cohort, m.mean_score_candidate,
                                m.mean_score_candidate_ci, t.min_mean_score, "min", crit))
    if t.max_regression is not None:
        extra = ""
        if m.mcnemar_p is not None:
            extra = (f" ({m.baseline_only} rows regressed, {m.candidate_only} improved, "
                     f"McNemar p={m.mcnemar_p:.3g})")
        out.append(_bound_check(policy, "pass_rate_delta", "pass-rate delta", m.evaluator, m.cohort, m.pass_delta,
                                m.pass_delta_ci, -t.max_regression, "min", crit, signed=True, extra=extra))
    if t.max_score_regression is not None:
        out.append(_bound_check(policy, "score_delta", "mean-score delta", m.evaluator, m.cohort, m.score_delta,
                                m.score_delta_ci, -t.max_score_regression, "min", crit, signed=True))
    return out


def _cohort_gate(policy: GatePolicy, ms: Measurements) -> tuple[list[Check], set[str]]:
    """Row-count checks; returns them and the cohorts that are judged."""
    checks: list[Check] = []
    judged: set[str] = set()
    sizes = {ALL: ms.errors.n_rows} | ms.cohorts
    for cohort in [ALL] + sorted(set(ms.cohorts) | set(policy.cohorts.require)):
        n = sizes.get(cohort, 0)
        minimum = policy.min_rows_for(None if cohort == ALL else cohort)
        if n >= minimum:
            judged.add(cohort)
            continue
        required = cohort == ALL or cohort in policy.cohorts.require
        status: Status = "inconclusive" if required else "skipped"
        note = "" if required else " (not a required cohort)"
        checks.append(Check(id=f"-/{cohort}/rows", metric="rows", cohort=cohort, status=status, value=float(n),
                            threshold=float(minimum),
                            message=f"{where(None, cohort)}: {n} rows, fewer than the minimum {minimum}; "
                                    f"not judged{note}"))
    return checks, judged


def _latency_cost_checks(policy: GatePolicy, ms: Measurements) -> list[Check]:
    out: list[Check] = []
    lat, lim = ms.latency_for(ALL), policy.latency
    for key, limit in (("p95", lim.p95_max_ms), ("p99", lim.p99_max_ms)):
        if limit is not None:
            value = lat.candidate_ms.get(key) if lat and key in lat.candidate_ci else None
            out.append(_bound_check(policy, f"latency_{key}_ms", f"{key} latency (ms)", None, ALL, value,
                                    lat.candidate_ci.get(key) if lat else None, limit, "max", True))
    for key, limit in (("p95", lim.p95_max_ratio), ("p99", lim.p99_max_ratio)):
        if limit is not None:
            out.append(_bound_check(policy, f"latency_{key}_ratio", f"{key} latency ratio candidate/baseline", None,
                                    ALL, lat.ratio.get(key) if lat else None, lat.ratio_ci.get(key) if lat else None,
                                    limit, "max", True))
    cost = ms.cost_for(ALL)
    for metric, label, value, limit in (
            ("cost_per_row", "cost per row", cost.cost_candidate if cost else None, policy.cost.max_per_row),
            ("cost_ratio", "cost ratio candidate/baseline", cost.cost_ratio if cost else None, policy.cost.max_ratio)):
        if limit is None:
            continue
        if value is None:
            status: Status = "inconclusive"
            text = f"overall: {label} is unknown (no cost reported and no prices in the release)"
        else:
            status = "pass" if value <= limit else "fail"
            text = f"overall: {label} {value:.6g} {'within' if status == 'pass' else 'above the maximum'} {limit:.6g}"
        out.append(Check(id=f"-/{ALL}/{metric}", metric=metric, cohort=ALL, status=status, critical=True,
                         value=value, threshold=limit, message=text))
    return out


def _error_checks(policy: GatePolicy, ms: Measurements) -> list[Check]:
    out: list[Check] = []
    e = ms.errors
    for side, count, rate, missing in (("candidate", e.candidate_errors, e.candidate_rate, e.candidate_missing),
                                       ("baseline", e.baseline_errors, e.baseline_rate, e.baseline_missing)):
        status: Status = "error" if rate > policy.error_budget else "pass"
        verb = "exceeds" if status == "error" else "within"
        out.append(Check(id=f"-/{ALL}/{side}_errors", metric=f"{side}_error_rate", cohort=ALL, status=status,
                         critical=True, value=rate, threshold=policy.error_budget,
                         message=f"{side} target errors: {count} of {e.n_rows} rows ({rate:.1%}, {missing} missing) "
                                 f"{verb} the error budget {policy.error_budget:.1%}"))
    return out


def assess(policy: GatePolicy, measurements: Measurements) -> Verdict:
    checks, judged = _cohort_gate(policy, measurements)
    for m in measurements.eval:
        if m.cohort in judged:
            checks.extend(_eval_checks(policy, m))
    if ALL in judged:
        checks.extend(_latency_cost_checks(policy, measurements))
    checks.extend(_error_checks(policy, measurements))

    failed = [c for c in checks if c.status == "fail"]
    critical_failed = [c for c in failed if c.critical]
    noncritical_failed = [c for c in failed if not c.critical]
    errored = [c for c in checks if c.status == "error"]
    inconclusive = [c for c in checks if c.status == "inconclusive"]
    fails = bool(critical_failed) or len(noncritical_failed) > policy.max_noncritical_failures

    reasons = [c.message for c in errored]
    if fails:
        reasons += [c.message for c in failed]
    else:
        reasons += [f"tolerated (max_noncritical_failures={policy.max_noncritical_failures}): {c.message}"
                    for c in noncritical_failed]
    reasons += [c.message for c in inconclusive]

    verdict: Literal["pass", "fail", "inconclusive"]
    if fails:
        verdict, code = "fail", ExitCode.FAIL
    elif inconclusive or errored:
        verdict, code = "inconclusive", ExitCode.INCONCLUSIVE
    else:
        verdict, code = "pass", ExitCode.PASS
    if errored:
        code = ExitCode.UPSTREAM
    return Verdict(verdict=verdict, exit_code=int(code), reasons=reasons, checks=checks)
