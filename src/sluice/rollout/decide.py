"""One decision per look: the step's progress plus the analysis' findings → ``Decision``. Pure.

In order (the first that applies wins):

1. A cohort failing while all traffic together does not, and the plan allows narrowing → ``narrow``
   (drop the failing cohorts through ``never_cohorts``; the rest carries on).
2. A critical failure → ``rollback``. Safety first: this also applies during a manual pause.
3. A manual pause → ``hold``.
4. A non-critical failure → ``hold`` (a person decides).
5. The step's minimum duration or minimum requests per arm not reached → ``continue`` (``hold`` once
   the maximum duration has passed without them: too little traffic to judge).
6. A pause step (not the last) whose duration has passed → ``advance``.
7. Every required finding ``pass`` (non-inferiority shown) → ``advance``, or ``promote`` on the last
   step. Required: every metric on all traffic ``(all)``, and on each cohort too when
   ``cohort_pass_required``. Named cohorts are always guarded by their harm tests (rules 1, 2, 4), and,
   before a promotion, a cohort whose own non-inferiority e-value is below ``cohort_guard`` (default 1:
   its data lean towards "worse than the margin") or whose point estimate is beyond the margin holds
   it back until its harm test decides or the evidence turns: a regression confined to one cohort is
   diluted in all traffic, where non-inferiority can be shown before the cohort's own test fires.
   ``cohort_guard=0`` turns this off.
8. Still not shown at the step's maximum duration → ``hold``; otherwise ``continue``.

No data never advances: with no findings, or any required finding ``insufficient`` or
``inconclusive``, rule 7 cannot fire.
"""

from __future__ import annotations

from collections.abc import Iterable

from sluice.rollout.measures import OVERALL, Decision, Finding, StepProgress


def _where(f: Finding) -> str:
    return "all traffic" if f.cohort == OVERALL else f"cohort {f.cohort!r}"


def _say(f: Finding) -> str:
    return f"{f.metric} in {_where(f)}: {f.rule}"


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def held_back(f: Finding, guard: float) -> bool:
    """A named cohort holds a promotion back while its own non-inferiority e-value is below ``guard``, or
    its point estimate is beyond the margin — unless it has too little data to say anything."""
    if f.outcome in ("pass", "insufficient"):
        return False
    return f.non_inferiority < guard or beyond_margin(f)


def beyond_margin(f: Finding) -> bool:
    """The cohort's point estimate is worse than the margin allows (not a test: a brake on promotion)."""
    if f.canary_estimate is None or f.stable_estimate is None or f.outcome == "pass":
        return False
    if f.relative:
        return f.canary_estimate > (1.0 + f.margin) * f.stable_estimate
    return f.canary_estimate > f.stable_estimate + f.margin


def decide(progress: StepProgress, findings: Iterable[Finding], plan_step: object = None, *,
           cohort_pass_required: bool = False, cohort_guard: float = 1.0) -> Decision:
    """The action for this look and one line saying why. ``plan_step`` is accepted for the controller's
    convenience and not read: everything the decision needs is in ``progress``."""
    fs = tuple(findings)
    p = progress
    fails = [f for f in fs if f.outcome == "fail"]
    if fails:
        cohorts = sorted({f.cohort for f in fails})
        critical = [f for f in fails if f.critical]
        if p.allow_narrow and OVERALL not in cohorts:
            return Decision("narrow", f"dropping cohort(s) {', '.join(cohorts)} from the canary: "
                            + "; ".join(_say(f) for f in fails), fs, tuple(cohorts))
        if critical:
            return Decision("rollback", "critical failure: " + "; ".join(_say(f) for f in critical), fs)
    if p.manual_pause:
        return Decision("hold", "paused by hand", fs)
    if fails:
        return Decision("hold", "failure (not critical), a person decides: " + "; ".join(_say(f) for f in fails), fs)
    over_max = p.max_duration_s is not None and p.elapsed_s >= p.max_duration_s
    short = []
    if p.elapsed_s < p.min_duration_s:
        short.append(f"{_fmt_s(p.elapsed_s)} of {_fmt_s(p.min_duration_s)} minimum")
    if p.kind != "pause" and min(p.canary_requests, p.stable_requests) < p.min_requests:
        short.append(f"{p.canary_requests} canary / {p.stable_requests} stable requests of {p.min_requests} per arm")
    if short:
        if over_max:
            return Decision("hold", "maximum duration reached with too little traffic: " + ", ".join(short), fs)
        return Decision("continue", "step not long enough yet: " + ", ".join(short), fs)
    if p.kind == "pause" and not p.last_step:
        return Decision("advance", f"pause of {_fmt_s(p.min_duration_s)} over, no failure", fs)
    required = [f for f in fs if cohort_pass_required or f.cohort == OVERALL]
    pending = [f for f in required if f.outcome != "pass"]
    if p.last_step and cohort_guard > 0:
        pending += [f for f in fs if f.cohort != OVERALL and f not in required and held_back(f, cohort_guard)]
    if required and not pending:
        action = "promote" if p.last_step else "advance"
        return Decision(action, f"all {len(required)} required finding(s) non-inferior: "
                        + "; ".join(f"{f.metric} ({_where(f)}) e={f.evidence:.3g}" for f in required), fs)
    if not required:
        why = "no findings: nothing has been measured"
    else:
        why = "; ".join(_say(f) for f in pending[:3]) + (f"; and {len(pending) - 3} more" if len(pending) > 3 else "")
    if over_max:
        return Decision("hold", f"still not shown at the maximum duration {_fmt_s(p.max_duration_s or 0)}: {why}", fs)
    return Decision("continue", f"waiting for evidence: {why}", fs)
