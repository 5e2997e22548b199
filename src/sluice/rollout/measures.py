"""The contract between what the rollout controller measures and what the analysis judges.

The controller (``rollout/collect``) turns spans, online evaluation results and feedback into
``Batch`` records: counts per arm for one metric and one cohort over one look's window, with the
canary's share of traffic in that window. The analysis (``rollout/analysis``) is pure: it folds
batches into a JSON-serialisable state (so a restarted server resumes the same test) and returns one
``Finding`` per metric × cohort. ``rollout/decide`` turns findings plus the step's progress into one
``Decision``. The simulation bench drives exactly these functions, so what it measures is what the
server does:

    state = analysis.initial_state(rules, alpha)
    state = analysis.update(state, batches)           # after every look
    findings = analysis.judge(rules, state)           # anytime-valid: may be called after every look
    decision = decide(progress, findings, plan_step)  # continue | advance | promote | hold | narrow | rollback
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

OVERALL = "(all)"
"""The cohort name for all traffic together, as the gate's reports spell it."""

Kind = Literal["rate", "mean"]
"""``rate``: a 0/1 event per trial (error, fallback, guardrail block, evaluator fail, feedback of a kind,
latency above the stable arm's frozen quantile). ``mean``: a value per request (cost, tokens, TTFT)."""

Outcome = Literal["fail", "pass", "inconclusive", "insufficient"]
"""``fail``: evidence that the canary is worse than stable beyond the rule's ``harm_margin`` (0 by
default: any proven deterioration, a deterioration test). ``pass``: evidence that it is not worse than
the ``margin`` (non-inferiority shown). ``inconclusive``: neither yet. ``insufficient``: fewer samples
than the rule's minimum in either arm, so nothing may be concluded (no data is never success)."""

Action = Literal["continue", "advance", "promote", "hold", "narrow", "rollback"]


@dataclass(frozen=True)
class MetricRule:
    """One metric to judge, from the plan's ``analysis.metrics``; higher values are worse for every metric."""

    metric: str  # error_rate, fallback_rate, guardrail_block_rate, latency_p95, latency_p99, ttft_p95,
    # tokens_per_request, cost_per_request, eval_fail_rate:<evaluator>, feedback_rate:<kind>
    kind: Kind
    margin: float  # tolerated degradation of canary against stable
    relative: bool = True  # margin as a fraction of the stable arm's value (True) or in the metric's units
    critical: bool = False  # a critical failure rolls back; a non-critical one holds
    min_samples: int = 200  # trials per arm and cohort before any conclusion
    harm_margin: float = 0.0  # fail when shown worse than stable by more than this (units of ``margin``);
    # 0 = any proven deterioration fails, even one inside ``margin`` (a deterioration test)


@dataclass(frozen=True)
class ArmSample:
    """One arm's counts over one window: ``n`` trials, ``events`` for rates, ``total``/``total_sq`` for means."""

    n: int = 0
    events: int = 0
    total: float = 0.0
    total_sq: float = 0.0


@dataclass(frozen=True)
class Batch:
    """Both arms of one metric × cohort over the same (concurrent) window of one look."""

    metric: str
    cohort: str
    canary: ArmSample
    stable: ArmSample
    canary_share: float  # the canary's share of this cohort's traffic in the window (0 < w < 1)


@dataclass(frozen=True)
class Finding:
    """The judgement of one metric × cohort, explaining itself: estimates, bound, margin, samples, rule."""

    metric: str
    cohort: str
    outcome: Outcome
    critical: bool
    canary_estimate: float | None
    stable_estimate: float | None
    bound: float | None  # the anytime-valid bound on (canary − stable) or on the rate ratio, per ``rule``
    margin: float
    canary_samples: int
    stable_samples: int
    rule: str  # the rule that fired, in words with its figures, e.g. "e-value 52.3 ≥ 1/α = 40"
    evidence: float = 1.0  # the e-value (or 1/p) behind the outcome
    relative: bool = True  # whether ``margin`` is a fraction of the stable arm's value (as in the rule)
    non_inferiority: float = 1.0  # the non-inferiority test's e-value now (not its running maximum)


@dataclass(frozen=True)
class StepProgress:
    """Where the current step stands, as the controller sees it when it asks for a decision."""

    index: int
    kind: Literal["mirror", "weight", "pause", "analysis"]
    elapsed_s: float
    min_duration_s: float
    max_duration_s: float | None
    min_requests: int  # per arm
    canary_requests: int
    stable_requests: int
    last_step: bool
    allow_narrow: bool = False
    manual_pause: bool = False


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str  # one line a person can read
    findings: tuple[Finding, ...] = ()
    cohorts_to_drop: tuple[str, ...] = field(default=())  # for ``narrow``
