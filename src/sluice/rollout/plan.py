"""A rollout plan (``rollout.yaml``, or the same object as JSON through the API): which release goes
to which deployment, the steps it takes, and what is judged on the way.

    deployment: support
    candidate: support-bot@1.1
    dataset: support-golden          # the gate record must be on this dataset (optional)
    alpha: 0.05                      # family-wise false-alarm rate, split over metrics × cohorts
    cohorts: [enterprise, free]      # judged on their own as well as all traffic together
    allow_narrow: true               # a failing cohort may be dropped instead of rolling back
    online_eval: {sample_rate: 0.1}
    analysis:                        # background analysis, across every step
      metrics:
        - {metric: error_rate, margin: 0.25, critical: true}
        - {metric: latency_p99, margin: 0.5}
        - {metric: eval_fail_rate:groundedness, margin: 0.05, relative: false}
    steps:
      - mirror: {percent: 100}
        min_duration: 1m
      - weight: {bp: 1000}
        min_requests: 300
        min_duration: 5m
        max_duration: 2h
      - pause: {until: manual}
      - weight: {bp: 5000}

Every error is one line naming the file, line and field (``sluice.yamlio``). Plans are pure data:
``to_rules`` turns the analysis block into the ``measures.MetricRule`` list the analysis judges.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sluice.errors import ConfigError
from sluice.rollout.measures import MetricRule
from sluice.telemetry.timespec import parse_duration
from sluice.yamlio import load_yaml, parse_yaml, validate_model, validation_error

RATE_METRICS = ("error_rate", "fallback_rate", "guardrail_block_rate", "latency_p95", "latency_p99",
                "ttft_p95", "ttft_p99")
MEAN_METRICS = ("tokens_per_request", "cost_per_request")
FEEDBACK_KINDS = ("thumbs_down", "thumbs_up", "escalation", "refund", "manual_override")
_EVAL = re.compile(r"^eval_fail_rate:[A-Za-z0-9_.\-]+$")
_FEEDBACK = re.compile(r"^feedback_rate:(" + "|".join(FEEDBACK_KINDS) + ")$")


def metric_kind(metric: str) -> Literal["rate", "mean"]:
    """``rate`` or ``mean`` for a known metric name; ``ValueError`` naming the choices otherwise."""
    if metric in RATE_METRICS or _EVAL.match(metric) or _FEEDBACK.match(metric):
        return "rate"
    if metric in MEAN_METRICS:
        return "mean"
    raise ValueError(f"unknown metric '{metric}': use one of {', '.join(RATE_METRICS + MEAN_METRICS)}, "
                     f"eval_fail_rate:<evaluator> or feedback_rate:<{'|'.join(FEEDBACK_KINDS)}>")


def _seconds(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool):
        raise ValueError("a duration is a number of seconds or text like 30s, 5m, 1h")
    if isinstance(v, (int, float)):
        if v < 0:
            raise ValueError("a duration cannot be negative")
        return float(v)
    try:
        return parse_duration(str(v).strip())
    except ConfigError as e:
        raise ValueError(e.message) from None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rule(Strict):
    metric: str
    margin: float = Field(ge=0, description="tolerated degradation (a fraction of stable when relative)")
    relative: bool = True
    critical: bool = False
    min_samples: int = Field(default=200, ge=1)
    harm_margin: float = Field(default=0.0, ge=0, description="fail only when worse than stable by more than "
                               "this (units of margin); 0: any proven deterioration fails")

    @field_validator("metric")
    @classmethod
    def _known(cls, v: str) -> str:
        metric_kind(v)
        return v

    @model_validator(mode="after")
    def _harm(self) -> "Rule":
        if self.harm_margin > self.margin:
            raise ValueError("harm_margin cannot be larger than margin")
        return self


class Analysis(Strict):
    metrics: list[Rule] = Field(default_factory=list)

    @field_validator("metrics")
    @classmethod
    def _unique(cls, v: list[Rule]) -> list[Rule]:
        seen = [r.metric for r in v]
        dup = sorted({m for m in seen if seen.count(m) > 1})
        if dup:
            raise ValueError(f"metric(s) {', '.join(dup)} listed twice")
        return v


class Mirror(Strict):
    percent: float = Field(gt=0, le=100)


class Weight(Strict):
    bp: int = Field(ge=1, le=10_000, description="canary share in basis points (below 10000: stable must stay "
                    "to compare with; passing the last step promotes)")


class Pause(Strict):
    duration: float | None = None
    until: Literal["manual"] | None = None

    @field_validator("duration", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float | None:
        return _seconds(v)

    @model_validator(mode="after")
    def _one(self) -> "Pause":
        if (self.duration is None) == (self.until is None):
            raise ValueError("a pause has either a duration or 'until: manual'")
        return self


class Step(Strict):
    mirror: Mirror | None = None
    weight: Weight | None = None
    pause: Pause | None = None
    analysis: Analysis | None = None
    min_requests: int | None = Field(default=None, ge=0, description="per arm, before the step may advance")
    min_duration: float | None = None
    max_duration: float | None = None

    @field_validator("min_duration", "max_duration", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float | None:
        return _seconds(v)

    @field_validator("weight")
    @classmethod
    def _judgeable(cls, v: "Weight | None") -> "Weight | None":
        if v is not None and v.bp >= 10_000:
            raise ValueError("a weight of 10000 bp leaves no stable traffic to compare the canary with; "
                             "end the plan at a judged share (e.g. 5000): passing the last step promotes")
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> "Step":
        kinds = [k for k in ("mirror", "weight", "pause", "analysis") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a step is exactly one of mirror, weight, pause, analysis"
                             + (f" (got {', '.join(kinds)})" if kinds else ""))
        if self.min_duration is not None and self.max_duration is not None and self.max_duration < self.min_duration:
            raise ValueError("max_duration is shorter than min_duration")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("mirror", "weight", "pause", "analysis") if getattr(self, k) is not None)


class OnlineEval(Strict):
    sample_rate: float = Field(default=0.0, ge=0, le=1, description="share of traces evaluated, same in both arms")
    evaluators: list[str | dict[str, Any]] | None = Field(default=None, description="names or {name, args}; "
                                                         "default: the evaluators of the gate record's candidate run")


class Plan(Strict):
    deployment: str = Field(min_length=1, max_length=200)
    candidate: str = Field(min_length=1)
    dataset: str | None = None
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    cohorts: list[str] = Field(default_factory=list)
    cohort_min_samples: dict[str, int] = Field(default_factory=dict)
    allow_narrow: bool = False
    min_requests: int = Field(default=200, ge=0, description="per arm, default for every traffic step")
    min_duration: float = 0.0
    max_duration: float | None = None
    online_eval: OnlineEval = Field(default_factory=OnlineEval)
    analysis: Analysis = Field(default_factory=Analysis)
    steps: list[Step] = Field(min_length=1)
    webhook: str | None = Field(default=None, description="URL that receives every decision (overrides config)")

    @field_validator("min_duration", "max_duration", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float | None:
        return _seconds(v)

    @field_validator("cohorts")
    @classmethod
    def _cohorts(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a cohort is listed twice")
        return v

    @model_validator(mode="after")
    def _coherent(self) -> "Plan":
        unknown = sorted(set(self.cohort_min_samples) - set(self.cohorts))
        if unknown:
            raise ValueError(f"cohort_min_samples names cohort(s) not in cohorts: {', '.join(unknown)}")
        return self

    @field_validator("steps")
    @classmethod
    def _some_weight(cls, v: list[Step]) -> list[Step]:
        if not any(s.weight for s in v):
            raise ValueError("the steps never give the canary any weight, so nothing could be promoted")
        return v

    # what the controller needs --------------------------------------------------------------
    def step_metrics(self, index: int) -> list[Rule]:
        """Background analysis plus the step's own ``analysis`` block (the step's wins on a name)."""
        rules = {r.metric: r for r in self.analysis.metrics}
        step = self.steps[index]
        if step.analysis is not None:
            rules.update({r.metric: r for r in step.analysis.metrics})
        return list(rules.values())

    def all_rules(self) -> list[MetricRule]:
        """Every metric any step judges, as ``measures.MetricRule``; fixed for the rollout so α is split once."""
        rules: dict[str, Rule] = {r.metric: r for r in self.analysis.metrics}
        for s in self.steps:
            if s.analysis is not None:
                for r in s.analysis.metrics:
                    rules.setdefault(r.metric, r)
        return [to_rule(r) for r in rules.values()]

    def min_requests_of(self, index: int) -> int:
        s = self.steps[index]
        return self.min_requests if s.min_requests is None else s.min_requests

    def durations_of(self, index: int) -> tuple[float, float | None]:
        s = self.steps[index]
        lo = self.min_duration if s.min_duration is None else s.min_duration
        if s.pause is not None and s.pause.duration is not None:
            lo = max(lo, s.pause.duration)
        hi = self.max_duration if s.max_duration is None else s.max_duration
        return lo, hi

    def weight_at(self, index: int) -> int:
        """The canary's weight while step ``index`` runs: the last weight step at or before it (0 before any)."""
        bp = 0
        for s in self.steps[: index + 1]:
            if s.weight is not None:
                bp = s.weight.bp
        return bp

    def mirror_at(self, index: int) -> float:
        """The shadow percent while step ``index`` runs: mirroring lasts until the first weight step."""
        pct = 0.0
        for s in self.steps[: index + 1]:
            if s.mirror is not None:
                pct = s.mirror.percent
            if s.weight is not None:
                pct = 0.0
        return pct


def to_rule(r: Rule) -> MetricRule:
    return MetricRule(metric=r.metric, kind=metric_kind(r.metric), margin=r.margin, relative=r.relative,
                      critical=r.critical, min_samples=r.min_samples, harm_margin=r.harm_margin)


def default_analysis() -> list[Rule]:
    """What a plan without ``analysis`` judges, with absolute margins (a relative margin on a rate of
    zero can never be shown to hold): errors (critical), fallbacks, guardrail blocks, p99 latency."""
    return [Rule(metric="error_rate", margin=0.02, relative=False, critical=True),
            Rule(metric="fallback_rate", margin=0.05, relative=False),
            Rule(metric="guardrail_block_rate", margin=0.02, relative=False),
            Rule(metric="latency_p99", margin=0.02, relative=False)]


def _finish(plan: Plan) -> Plan:
    if not plan.analysis.metrics and not any(s.analysis for s in plan.steps):
        plan.analysis.metrics = default_analysis()
    return plan


def load_plan(path: str | Path) -> Plan:
    """Read and validate ``rollout.yaml``; errors name file, line and field."""
    data, lines = load_yaml(path)
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: a rollout plan is a mapping")
    return _finish(validate_model(Plan, data, lines, str(path)))


def parse_plan(text: str, source: str = "rollout.yaml") -> Plan:
    """A plan from YAML (or JSON, which is YAML) text."""
    data, lines = parse_yaml(text, source)
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{source}: a rollout plan is a mapping")
    return _finish(validate_model(Plan, data, lines, source))


def plan_from_json(data: Any, source: str = "plan") -> Plan:
    """A plan from an already-parsed JSON object (the API's inline form)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a rollout plan is an object")
    try:
        return _finish(Plan.model_validate(data))
    except ValidationError as e:
        err = validation_error(e, {}, source)
        raise ConfigError(err.message, err.location) from None
