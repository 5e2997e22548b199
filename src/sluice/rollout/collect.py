"""What one look measures: canary and stable counts per metric × cohort over the same window.

A look covers ``[since_ns, until_ns)`` of request spans of the deployment (``until`` lags the clock
by the controller's settle time, so spans still in the writer's queue land in the next look, not
nowhere). Evaluation results and feedback are counted by when they were *recorded* in the same
window, attributed to the arm and cohort of their trace, so late feedback is counted once, in the
look that first sees it. Both arms always share the window: the comparison is concurrent.

The arm of a span: the gateway's ``sluice.arm`` (a canary request that fell back to the stable model
is still the canary's), else its route, else — for traces apps send over OTLP — its release
attribute matched against the candidate's and the stable release's digest, reference or version.
During a mirror step the canary arm is the shadow copies of stable requests.

Latency and time to first token are judged as exceedance rates: the share of requests slower than
the stable arm's quantile, frozen once per step and cohort from the step's first stable requests
(re-estimating it from every window would break the test's validity, reference/rollouts.md §4.3).

Blocking store reads: the controller runs ``collect`` in a worker thread.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from sluice.rollout.measures import OVERALL, ArmSample, Batch, MetricRule

FREEZE_MIN = 50  # stable requests needed before a latency quantile is frozen
_QUANTILE = {"latency_p95": ("duration_ms", 0.95), "latency_p99": ("duration_ms", 0.99),
             "ttft_p95": ("ttft_ms", 0.95), "ttft_p99": ("ttft_ms", 0.99)}


@dataclass
class Arms:
    """How spans of this rollout are told apart."""

    deployment: str
    candidate: frozenset[str]  # digest, ref, version of the candidate
    stable: frozenset[str]
    mirror: bool = False  # the canary arm is the shadow copies

    @staticmethod
    def names(digest: str, ref: str) -> frozenset[str]:
        out = {digest, ref}
        if "@" in ref:
            out.add(ref.split("@", 1)[1])
        return frozenset(x for x in out if x)

    def arm_of(self, arm_attr: str | None, route: str, release: str) -> str | None:
        """``canary``, ``stable`` or None (not part of this comparison)."""
        arm = arm_attr or route
        if self.mirror:
            if arm == "shadow":
                return "canary" if release in self.candidate else None
            return "stable" if arm == "stable" else None
        if arm in ("canary", "stable"):
            return arm
        if arm in ("", "fallback"):  # app traces, or spans from before ``sluice.arm``
            if release in self.candidate:
                return "canary"
            if release in self.stable:
                return "stable"
        return None


@dataclass
class Request:
    trace_id: str
    arm: str
    cohort: str
    error: bool
    fallback: bool
    blocked: bool
    duration_ms: float
    ttft_ms: float | None
    tokens: float | None
    cost: float | None


@dataclass
class Look:
    """One look's measurements, and the quantiles frozen while taking it."""

    batches: list[Batch]
    canary_requests: int
    stable_requests: int
    frozen: dict[str, dict[str, float]] = field(default_factory=dict)


def _json_text(dialect: str, key: str, column: str = "attributes") -> str:
    if dialect == "postgres":
        return f"({column}::json ->> '{key}')"
    return f"json_extract_string({column}, '$.\"{key}\"')"


def requests_in(store: Any, arms: Arms, since_ns: int, until_ns: int) -> list[Request]:
    """The deployment's request spans in the window that belong to one of the two arms."""
    d = store.db.dialect.name
    rows = store.db.query(
        f"SELECT trace_id, {_json_text(d, 'sluice.arm')}, route, release, cohort, status, fallback_used, "
        f"{_json_text(d, 'sluice.guardrail')}, duration_ms, ttft_ms, total_tokens, cost FROM spans "
        "WHERE deployment = ? AND is_request AND start_ns >= ? AND start_ns < ?",
        [arms.deployment, since_ns, until_ns])
    out = []
    for trace, arm_attr, route, release, cohort, status, fb, guard, dur, ttft, tok, cost in rows:
        arm = arms.arm_of(arm_attr, route or "", release or "")
        if arm is None:
            continue
        out.append(Request(trace, arm, cohort or "default", status == "ERROR", bool(fb),
                           bool(guard) and str(guard).startswith("block"), float(dur or 0.0),
                           None if ttft is None else float(ttft), None if tok is None else float(tok),
                           None if cost is None else float(cost)))
    return out


def _recorded_against(store: Any, arms: Arms, sql_tail: str, params: list[Any]) -> list[tuple]:
    """Rows of evals/feedback joined to the deployment's request spans, with the span's arm fields."""
    d = store.db.dialect.name
    return store.db.query(
        f"SELECT x.k, x.v, x.trace_id, {_json_text(d, 'sluice.arm', 's.attributes')}, "
        f"s.route, s.release, s.cohort FROM ({sql_tail}) x JOIN spans s ON s.trace_id = x.trace_id "
        "WHERE s.deployment = ? AND s.is_request", params + [arms.deployment])


def evals_in(store: Any, arms: Arms, evaluators: list[str], since_s: float, until_s: float) -> list[tuple]:
    """(evaluator, passed, arm, cohort) of online results recorded in the window."""
    if not evaluators:
        return []
    marks = ", ".join("?" * len(evaluators))
    rows = _recorded_against(
        store, arms, f"SELECT evaluator AS k, passed AS v, trace_id FROM span_evals WHERE passed IS NOT NULL "
        f"AND evaluator IN ({marks}) AND created_at >= ? AND created_at < ?", [*evaluators, since_s, until_s])
    return [(k, bool(v), arm, cohort) for k, v, _, arm, cohort in _with_arms(arms, rows)]


def feedback_in(store: Any, arms: Arms, kinds: list[str], since_s: float, until_s: float) -> list[tuple]:
    """(kind, trace_id, arm, cohort), one per trace and kind, of feedback recorded in the window."""
    if not kinds:
        return []
    marks = ", ".join("?" * len(kinds))
    rows = _recorded_against(
        store, arms, f"SELECT DISTINCT kind AS k, 1 AS v, trace_id FROM feedback WHERE kind IN ({marks}) "
        "AND created_at >= ? AND created_at < ?", [*kinds, since_s, until_s])
    return sorted({(k, trace, arm, cohort) for k, _, trace, arm, cohort in _with_arms(arms, rows)})


def _with_arms(arms: Arms, rows: list[tuple]) -> list[tuple]:
    """(k, v, trace_id, arm, cohort) of the rows recorded against a trace of either arm."""
    out = []
    for k, v, trace, arm_attr, route, release, cohort in rows:
        arm = arms.arm_of(arm_attr, route or "", release or "")
        if arm is not None:
            out.append((k, v, trace, arm, cohort or "default"))
    return out


def quantile(values: list[float], q: float) -> float:
    """The empirical quantile (the smallest value with at least ``q`` of the sample at or below it)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def _rate(canary: list[bool], stable: list[bool]) -> tuple[ArmSample, ArmSample]:
    return ArmSample(n=len(canary), events=sum(canary)), ArmSample(n=len(stable), events=sum(stable))


def _mean(canary: list[float], stable: list[float]) -> tuple[ArmSample, ArmSample]:
    return (ArmSample(n=len(canary), total=sum(canary), total_sq=sum(v * v for v in canary)),
            ArmSample(n=len(stable), total=sum(stable), total_sq=sum(v * v for v in stable)))


def measure(rules: Iterable[MetricRule], cohorts: list[str], reqs: list[Request], evals: list[tuple],
            feedback: list[tuple], frozen: dict[str, dict[str, float]]) -> Look:
    """Pure: the look's batches from its rows. ``frozen`` (metric -> cohort -> threshold) is read and
    extended: a quantile not yet frozen is frozen from this look's stable requests, and that
    metric × cohort has no batch in this look (its threshold came from the same data)."""
    frozen = {m: dict(c) for m, c in frozen.items()}
    by_cohort: dict[str, list[Request]] = defaultdict(list)
    for r in reqs:
        by_cohort[OVERALL].append(r)
        by_cohort[r.cohort].append(r)
    batches: list[Batch] = []
    for rule in rules:
        for cohort in [OVERALL, *cohorts]:
            rs = by_cohort.get(cohort, [])
            pair = _pair(rule.metric, cohort, rs, evals, feedback, frozen)
            if pair is None:
                continue
            c, s = pair
            if c.n == 0 and s.n == 0:
                continue
            share = c.n / (c.n + s.n)
            batches.append(Batch(rule.metric, cohort, c, s, min(max(share, 1e-6), 1 - 1e-6)))
    n_c = sum(1 for r in reqs if r.arm == "canary")
    return Look(batches, n_c, len(reqs) - n_c, frozen)


def _pair(metric: str, cohort: str, rs: list[Request], evals: list[tuple], feedback: list[tuple],
          frozen: dict[str, dict[str, float]]) -> tuple[ArmSample, ArmSample] | None:
    def split(fn):
        return [fn(r) for r in rs if r.arm == "canary"], [fn(r) for r in rs if r.arm == "stable"]

    if metric == "error_rate":
        return _rate(*split(lambda r: r.error))
    if metric == "fallback_rate":
        return _rate(*split(lambda r: r.fallback))
    if metric == "guardrail_block_rate":
        return _rate(*split(lambda r: r.blocked))
    if metric in _QUANTILE:
        column, q = _QUANTILE[metric]
        attr = "duration_ms" if column == "duration_ms" else "ttft_ms"
        have = [r for r in rs if getattr(r, attr) is not None]
        limit = frozen.get(metric, {}).get(cohort)
        if limit is None:
            stable = [getattr(r, attr) for r in have if r.arm == "stable"]
            if len(stable) >= FREEZE_MIN:
                frozen.setdefault(metric, {})[cohort] = quantile(stable, q)
            return None
        return _rate([getattr(r, attr) > limit for r in have if r.arm == "canary"],
                     [getattr(r, attr) > limit for r in have if r.arm == "stable"])
    if metric in ("tokens_per_request", "cost_per_request"):
        attr = "tokens" if metric == "tokens_per_request" else "cost"
        c = [getattr(r, attr) for r in rs if r.arm == "canary" and getattr(r, attr) is not None]
        s = [getattr(r, attr) for r in rs if r.arm == "stable" and getattr(r, attr) is not None]
        return _mean(c, s)
    if metric.startswith("eval_fail_rate:"):
        name = metric.split(":", 1)[1]
        mine = [(ok, arm) for ev, ok, arm, coh in evals if ev == name and (cohort == OVERALL or coh == cohort)]
        return _rate([not ok for ok, arm in mine if arm == "canary"], [not ok for ok, arm in mine if arm == "stable"])
    if metric.startswith("feedback_rate:"):
        kind = metric.split(":", 1)[1]
        traces = {arm: {t for k, t, a, coh in feedback if k == kind and a == arm and (cohort == OVERALL or coh == cohort)}
                  for arm in ("canary", "stable")}
        c, s = split(lambda r: r.trace_id)
        # trials: this look's requests; events: feedback recorded now, for traces of any look
        return (ArmSample(n=len(c), events=min(len(traces["canary"]), len(c))),
                ArmSample(n=len(s), events=min(len(traces["stable"]), len(s))))
    return None


def collect(store: Any, arms: Arms, rules: list[MetricRule], cohorts: list[str], since_ns: int, until_ns: int,
            frozen: dict[str, dict[str, float]]) -> Look:
    """Read the window's rows and measure them (blocking: call it from a worker thread)."""
    reqs = requests_in(store, arms, since_ns, until_ns)
    evaluators = [r.metric.split(":", 1)[1] for r in rules if r.metric.startswith("eval_fail_rate:")]
    kinds = [r.metric.split(":", 1)[1] for r in rules if r.metric.startswith("feedback_rate:")]
    since_s, until_s = since_ns / 1e9, until_ns / 1e9
    evals = evals_in(store, arms, evaluators, since_s, until_s)
    fb = feedback_in(store, arms, kinds, since_s, until_s)
    return measure(rules, cohorts, reqs, evals, fb, frozen)
