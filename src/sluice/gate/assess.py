"""The gate's judgement: ``assess(policy, measurements) -> Verdict``, a pure function.

Each threshold becomes one check with status pass / fail / inconclusive / skipped / error. The
interval, not the point estimate, decides (docs/gate.md, "Verdict rules"); evaluator checks have
roles and one correction across the whole gate (``eval_checks``):

- evaluator checks overall are non-inferiority checks (pass on the bound, else inconclusive);
  evaluator checks per cohort look for evidence of harm; either fails only on a drop that stays
  significant after the discrete Holm correction.
- "at most t" (latency quantile, latency ratio): pass when the upper bound <= t, fail when the
  lower bound > t, otherwise inconclusive.
- cost is a budget over the whole contract: its point estimate is compared directly.

The verdict: exit 5 when either side's target errors exceed the error budget (the reasons are
then the cause alone); otherwise fail when a critical check fails or more than
``max_noncritical_failures`` other checks fail; otherwise inconclusive when any check is
inconclusive; otherwise pass.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from sluice.errors import ExitCode
from sluice.gate import stats
from sluice.gate.check import Check, Status, num, where
from sluice.gate.eval_checks import drafts_for, judge
from sluice.gate.measures import ALL, Interval, Measurements
from sluice.gate.policy import GatePolicy

__all__ = ["Check", "Status", "Verdict", "assess", "where"]


class Verdict(BaseModel):
    verdict: Literal["pass", "fail", "inconclusive"]
    exit_code: int
    reasons: list[str]  # why the verdict is not pass (or notes on tolerated failures)
    checks: list[Check] = Field(default_factory=list)


_VERB = {"pass": "within the maximum", "fail": "above the maximum", "inconclusive": "straddles the maximum"}


def _at_most(label: str, metric: str, value: float | None, ci: Interval | None, limit: float, pct: str,
             missing: str) -> Check:
    if value is None or ci is None:
        status: Status = "inconclusive"
        text = f"overall: {label} {missing}; cannot compare with {num(limit)}"
    else:
        status = "pass" if ci.high <= limit else "fail" if ci.low > limit else "inconclusive"
        text = f"overall: {label} {num(value)} ({pct} CI {num(ci.low)}…{num(ci.high)}) {_VERB[status]} {num(limit)}"
    return Check(id=f"-/{ALL}/{metric}", metric=metric, cohort=ALL, status=status, critical=True, value=value,
                 interval=ci, threshold=limit, message=text)


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


def _judged_measures(policy: GatePolicy, ms: Measurements, judged: set[str]) -> tuple[list[Check], list]:
    """Evaluator x cohort pairs with enough *judged* rows (both sides), and a rows check for the
    others: an evaluator that applies to 3 rows of a 60-row cohort is not judged on those 3."""
    checks, drafts = [], []
    for m in ms.eval:
        if m.cohort not in judged or not (m.n_candidate or m.n_baseline or m.eval_errors_candidate
                                          or m.eval_errors_baseline):
            continue  # cohort too small, or no row of it is in the evaluator's scope
        minimum = policy.min_rows_for(None if m.cohort == ALL else m.cohort)
        if m.n_paired < minimum:
            status: Status = "inconclusive" if m.cohort == ALL else "skipped"
            checks.append(Check(id=f"{m.evaluator}/{m.cohort}/rows", metric="rows", cohort=m.cohort,
                                evaluator=m.evaluator, status=status, value=float(m.n_paired),
                                threshold=float(minimum), critical=policy.is_critical(m.evaluator),
                                message=f"{where(m.evaluator, m.cohort)}: {m.n_paired} judged rows, fewer than the "
                                        f"minimum {minimum}; not judged"))
            continue
        drafts.extend(drafts_for(policy, m))
    return checks, drafts


def _latency_checks(policy: GatePolicy, ms: Measurements) -> list[Check]:
    out: list[Check] = []
    lat, lim, conf = ms.latency_for(ALL), policy.latency, policy.confidence
    pct = f"{conf * 100:g}%"
    for key, p, limit in (("p95", 0.95, lim.p95_max_ms), ("p99", 0.99, lim.p99_max_ms)):
        if limit is not None:
            need = stats.quantile_min_rows(p, conf)
            n = lat.n_candidate if lat else 0
            missing = (f"has too few answered rows for a {pct} bound ({n}; at least {need} needed)" if n
                       else "has no answered rows")
            out.append(_at_most(f"{key} latency (ms)", f"latency_{key}_ms", lat.candidate_ms.get(key) if lat else None,
                                lat.candidate_ci.get(key) if lat else None, limit, pct, missing))
    for key, p, limit in (("p95", 0.95, lim.p95_max_ratio), ("p99", 0.99, lim.p99_max_ratio)):
        if limit is not None:
            n = lat.n_paired if lat else 0
            need = stats.quantile_min_rows(p, 1 - (1 - conf) / 2)
            missing = ("has no rows both sides answered" if not n
                       else f"has too few rows both sides answered for a {pct} bound ({n}; at least {need} needed)"
                       if key == "p99" and n < need else "is undefined (the baseline quantile is 0)")
            out.append(_at_most(f"{key} latency ratio candidate/baseline", f"latency_{key}_ratio",
                                lat.ratio.get(key) if lat else None, lat.ratio_ci.get(key) if lat else None,
                                limit, pct, missing))
    return out


def _cost_checks(policy: GatePolicy, ms: Measurements) -> list[Check]:
    out: list[Check] = []
    cost = ms.cost_for(ALL)
    cc, cb = (cost.cost_candidate, cost.cost_baseline) if cost else (None, None)
    ratio = cost.cost_ratio if cost else None
    if ratio is None and cc is not None and cb == 0:  # a free baseline: any cost is an unbounded ratio
        ratio = 1.0 if cc == 0 else float("inf")
    for metric, label, value, limit in (("cost_per_row", "cost per row", cc, policy.cost.max_per_row),
                                        ("cost_ratio", "cost ratio candidate/baseline", ratio, policy.cost.max_ratio)):
        if limit is None:
            continue
        if value is None:
            status: Status = "inconclusive"
            side = "candidate" if cc is None else "baseline"
            text = f"overall: {label} is unknown (the {side} reported no cost and its release has no prices)"
        else:
            status = "pass" if value <= limit else "fail"
            verb = "within" if status == "pass" else "above the maximum"
            shown = (f"{value:.6g}" if value != float("inf")
                     else f"unbounded (baseline free, candidate {cc:.6g} per row)")
            if metric == "cost_ratio" and cb == 0 and cc == 0:
                shown = "1 (both free)"
            text = f"overall: {label} {shown} {verb} {limit:.6g}"
            value = None if value == float("inf") else value
        out.append(Check(id=f"-/{ALL}/{metric}", metric=metric, cohort=ALL, status=status, critical=True,
                         value=value, threshold=limit, message=text))
    return out


def _cause(kinds: dict[str, int], examples: dict[str, str]) -> str:
    """``connection ×40 (scripted model x connection failed: refused)``, most frequent kind first."""
    parts = []
    for kind, count in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))[:3]:
        example = examples.get(kind)
        parts.append(f"{kind} ×{count}" + (f" ({example[:200]})" if example else ""))
    return "; ".join(parts) or "no error kind recorded"


def _error_checks(policy: GatePolicy, ms: Measurements) -> list[Check]:
    out: list[Check] = []
    e = ms.errors
    for side, count, rate, missing, kinds, examples in (
            ("candidate", e.candidate_errors, e.candidate_rate, e.candidate_missing, e.candidate_kinds,
             e.candidate_examples),
            ("baseline", e.baseline_errors, e.baseline_rate, e.baseline_missing, e.baseline_kinds,
             e.baseline_examples)):
        share = f"{count} of {e.n_rows} rows ({rate:.1%}, {missing} missing)"
        if rate > policy.error_budget:
            status: Status = "error"
            text = (f"{side} target failed: {_cause(kinds, examples)}; {side} target errors: {share} exceeds the "
                    f"error budget {policy.error_budget:.1%}")
        else:
            status = "pass"
            text = f"{side} target errors: {share} within the error budget {policy.error_budget:.1%}"
        out.append(Check(id=f"-/{ALL}/{side}_errors", metric=f"{side}_error_rate", cohort=ALL, status=status,
                         critical=True, value=rate, threshold=policy.error_budget, message=text))
    return out


def assess(policy: GatePolicy, measurements: Measurements) -> Verdict:
    checks, judged = _cohort_gate(policy, measurements)
    row_checks, drafts = _judged_measures(policy, measurements, judged)
    checks.extend(row_checks)
    checks.extend(judge(policy, drafts))
    if ALL in judged:
        checks.extend(_latency_checks(policy, measurements))
        checks.extend(_cost_checks(policy, measurements))
    checks.extend(_error_checks(policy, measurements))

    # failures that say where come first: a cohort's drop before the overall figure it moves
    failed = sorted((c for c in checks if c.status == "fail"), key=lambda c: c.cohort == ALL)
    critical_failed = [c for c in failed if c.critical]
    noncritical_failed = [c for c in failed if not c.critical]
    errored = [c for c in checks if c.status == "error"]
    inconclusive = [c for c in checks if c.status == "inconclusive"]
    fails = bool(critical_failed) or len(noncritical_failed) > policy.max_noncritical_failures

    if errored:  # the run itself failed: its cause first, and not the checks that follow from it
        reasons = [c.message for c in errored]
        derived = len(failed) + len(inconclusive)
        if derived:
            reasons.append(f"{derived} other checks failed or were inconclusive on the rows the target failed; "
                           "they are in the JSON report and not repeated here")
    else:
        reasons = [c.message for c in failed] if fails else [
            f"tolerated (max_noncritical_failures={policy.max_noncritical_failures}): {c.message}"
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
