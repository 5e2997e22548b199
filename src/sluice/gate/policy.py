"""The gate policy (``gate.yaml``): which evaluators matter, what counts as a regression, and how
sure the gate must be before it says pass or fail.

Thresholds inherit field by field: built-in defaults < policy ``thresholds`` < evaluator
``thresholds`` < cohort ``thresholds`` < cohort ``evaluators.<name>``. A field left out inherits;
a field written as ``null`` switches that check off at that level. An empty file (or no file) is
a valid policy: every evaluator found in both runs is judged on its pass rate with
``max_regression: auto``, a margin sized to the rows (docs/gate.md, "Roles, correction and margins").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from sluice.digest import digest_of
from sluice.yamlio import load_yaml, parse_yaml, validate_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Thresholds(_Strict):
    """Per-evaluator limits. Rates and scores are in [0, 1]; regressions are allowed drops (>= 0)."""

    min_pass_rate: float | None = Field(default=None, ge=0, le=1)
    min_mean_score: float | None = Field(default=None, ge=0, le=1)
    max_regression: float | Literal["auto"] | None = Field(
        default=None, description="pass-rate drop allowed, or auto: the drop the judged rows can resolve")
    max_score_regression: float | None = Field(default=None, ge=0, le=1, description="mean-score drop allowed")

    @field_validator("max_regression")
    @classmethod
    def _a_share(cls, v: float | str | None) -> float | str | None:
        if isinstance(v, float) and not 0 <= v <= 1:
            raise ValueError("must be between 0 and 1, or auto")
        return v

    def explicit(self) -> dict[str, float | str | None]:
        """The fields written in the policy (explicit nulls included)."""
        return {k: getattr(self, k) for k in self.model_fields_set}


BUILTIN_THRESHOLDS = Thresholds(max_regression="auto")


def merge_thresholds(*layers: Thresholds) -> Thresholds:
    """Later layers override earlier ones, field by field, only where a field was written."""
    values: dict[str, float | str | None] = {}
    for layer in layers:
        values.update(layer.explicit())
    return Thresholds(**values)


class EvaluatorRule(_Strict):
    """An evaluator the gate runs and judges. ``args`` are passed to the evaluator factory."""

    name: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    version: str | None = None  # pin: refuse to gate when the runs used another version
    critical: bool = False
    thresholds: Thresholds = Field(default_factory=Thresholds)


class CohortRule(_Strict):
    thresholds: Thresholds = Field(default_factory=Thresholds)
    evaluators: dict[str, Thresholds] = Field(default_factory=dict)
    min_rows: int | None = Field(default=None, ge=1)


class CohortPolicy(_Strict):
    min_rows: int = Field(default=20, ge=1, description="rows below which a cohort is not judged")
    require: list[str] = Field(default_factory=list, description="cohorts that must be judged")
    rules: dict[str, CohortRule] = Field(default_factory=dict)


class LatencyRule(_Strict):
    p95_max_ms: float | None = Field(default=None, gt=0)
    p99_max_ms: float | None = Field(default=None, gt=0)
    p95_max_ratio: float | None = Field(default=None, gt=0, description="candidate p95 / baseline p95")
    p99_max_ratio: float | None = Field(default=None, gt=0)


class CostRule(_Strict):
    max_per_row: float | None = Field(default=None, ge=0)
    max_ratio: float | None = Field(default=None, gt=0, description="candidate cost / baseline cost")


class ReportOptions(_Strict):
    max_regressed_rows: int = Field(default=50, ge=0)


class GatePolicy(_Strict):
    version: Literal[1] = 1
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    bootstrap_resamples: int = Field(default=2000, ge=200, le=100_000)
    seed: int = 0
    thresholds: Thresholds = Field(default_factory=Thresholds)
    evaluators: list[EvaluatorRule] = Field(default_factory=list)
    max_noncritical_failures: int = Field(default=0, ge=0)
    cohorts: CohortPolicy = Field(default_factory=CohortPolicy)
    error_budget: float = Field(default=0.05, ge=0, le=1, description="share of rows a target may fail")
    target_errors: Literal["fail", "exclude"] = "fail"
    latency: LatencyRule = Field(default_factory=LatencyRule)
    cost: CostRule = Field(default_factory=CostRule)
    report: ReportOptions = Field(default_factory=ReportOptions)
    _source: str | None = PrivateAttr(default=None)  # the file it was loaded from, for messages

    @property
    def source(self) -> str | None:
        return self._source

    @field_validator("evaluators")
    @classmethod
    def _unique_names(cls, v: list[EvaluatorRule]) -> list[EvaluatorRule]:
        seen: set[str] = set()
        for rule in v:
            if rule.name in seen:
                raise ValueError(f"evaluator '{rule.name}' is listed twice")
            seen.add(rule.name)
        return v

    def rule_for(self, evaluator: str) -> EvaluatorRule | None:
        return next((r for r in self.evaluators if r.name == evaluator), None)

    def is_critical(self, evaluator: str) -> bool:
        rule = self.rule_for(evaluator)
        return bool(rule and rule.critical)

    def thresholds_for(self, evaluator: str, cohort: str | None) -> Thresholds:
        """Effective thresholds for ``evaluator`` overall (cohort None) or in one cohort."""
        layers = [BUILTIN_THRESHOLDS, self.thresholds]
        rule = self.rule_for(evaluator)
        if rule:
            layers.append(rule.thresholds)
        crule = self.cohorts.rules.get(cohort) if cohort is not None else None
        if crule:
            layers.append(crule.thresholds)
            if evaluator in crule.evaluators:
                layers.append(crule.evaluators[evaluator])
        return merge_thresholds(*layers)

    def min_rows_for(self, cohort: str | None) -> int:
        crule = self.cohorts.rules.get(cohort) if cohort is not None else None
        return crule.min_rows if crule and crule.min_rows else self.cohorts.min_rows

    def normalised(self) -> dict[str, Any]:
        """Every default filled in, except thresholds, which keep "unset" apart from "null"."""
        data = self.model_dump(mode="json")
        data["thresholds"] = self.thresholds.explicit()
        for i, rule in enumerate(self.evaluators):
            data["evaluators"][i]["thresholds"] = rule.thresholds.explicit()
        for name, crule in self.cohorts.rules.items():
            data["cohorts"]["rules"][name]["thresholds"] = crule.thresholds.explicit()
            data["cohorts"]["rules"][name]["evaluators"] = {k: t.explicit() for k, t in crule.evaluators.items()}
        return data

    @property
    def digest(self) -> str:
        return digest_of(self.normalised())


def default_policy() -> GatePolicy:
    return GatePolicy()


def _from_data(data: Any, lines: dict, file: str) -> GatePolicy:
    if data is None:  # an empty gate.yaml is the default policy
        return default_policy()
    return validate_model(GatePolicy, data, lines, file)


def load_policy(path: str | Path) -> GatePolicy:
    """Load ``gate.yaml``; errors are one ConfigError naming file:line and field."""
    data, lines = load_yaml(path)
    policy = _from_data(data, lines, str(path))
    policy._source = str(path)
    return policy


def parse_policy(text: str, file: str = "gate.yaml") -> GatePolicy:
    data, lines = parse_yaml(text, file)
    return _from_data(data, lines, file)
