"""What the comparison measured: plain, serialisable numbers that ``assess`` judges and the reports
show. No decisions live here.

``cohort`` is a cohort name, or ``ALL`` for every row of the dataset.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

ALL = "(all)"


class Interval(BaseModel):
    low: float
    high: float

    def text(self, fmt: str = "{:+.3f}") -> str:
        return f"{fmt.format(self.low)}…{fmt.format(self.high)}"


class EvalMeasure(BaseModel):
    """One evaluator in one cohort, candidate against baseline on the same rows."""

    evaluator: str
    cohort: str
    n_rows: int  # dataset rows in the cohort
    n_paired: int  # rows judged on both sides (evaluator errors excluded)
    n_candidate: int  # rows judged on the candidate side
    n_baseline: int = 0  # rows judged on the baseline side
    eval_errors_candidate: int = 0  # evaluator (instrument) failures, excluded and counted
    eval_errors_baseline: int = 0
    target_errors_candidate: int = 0  # target failed or row missing: counted as a failed row
    target_errors_baseline: int = 0
    both_pass: int = 0
    candidate_only: int = 0  # candidate passes, baseline fails (improvement)
    baseline_only: int = 0  # baseline passes, candidate fails (regression)
    both_fail: int = 0
    pass_rate_candidate: float | None = None  # over candidate-judged rows
    pass_rate_candidate_ci: Interval | None = None  # Wilson
    pass_rate_baseline: float | None = None  # over baseline-judged rows
    pass_rate_baseline_ci: Interval | None = None  # Wilson
    pass_delta: float | None = None  # paired: candidate - baseline
    pass_delta_ci: Interval | None = None  # Newcombe square-and-add
    mcnemar_p: float | None = None
    mean_score_candidate: float | None = None
    mean_score_candidate_ci: Interval | None = None  # BCa bootstrap
    mean_score_baseline: float | None = None
    score_delta: float | None = None
    score_delta_ci: Interval | None = None  # paired BCa bootstrap


class LatencyMeasure(BaseModel):
    """Latency of rows the target answered, per side; paired intervals over rows both answered."""

    cohort: str
    n_candidate: int
    n_baseline: int
    n_paired: int
    candidate_ms: dict[str, float]  # p50, p95, p99 over the rows the candidate answered
    baseline_ms: dict[str, float]
    candidate_ci: dict[str, Interval] = Field(default_factory=dict)  # p95, p99 of the candidate, same rows;
    # absent when too few rows give an order-statistic bound (stats.quantile_min_rows)
    ratio: dict[str, float] = Field(default_factory=dict)  # candidate / baseline, p95 and p99
    ratio_ci: dict[str, Interval] = Field(default_factory=dict)


class CostMeasure(BaseModel):
    cohort: str
    n_rows: int
    prompt_tokens_candidate: float  # per row
    prompt_tokens_baseline: float
    completion_tokens_candidate: float
    completion_tokens_baseline: float
    cost_candidate: float | None = None  # per row; None when no price is known
    cost_baseline: float | None = None
    cost_ratio: float | None = None


class ErrorMeasure(BaseModel):
    """Target failures per side. Missing rows are failures too: a missing case is not a passing case."""

    n_rows: int
    candidate_errors: int
    baseline_errors: int
    candidate_missing: int
    baseline_missing: int
    candidate_kinds: dict[str, int] = Field(default_factory=dict)
    baseline_kinds: dict[str, int] = Field(default_factory=dict)
    candidate_examples: dict[str, str] = Field(default_factory=dict)  # kind -> first message, for the cause
    baseline_examples: dict[str, str] = Field(default_factory=dict)

    @property
    def candidate_rate(self) -> float:
        return self.candidate_errors / self.n_rows if self.n_rows else 0.0

    @property
    def baseline_rate(self) -> float:
        return self.baseline_errors / self.n_rows if self.n_rows else 0.0


class SideScore(BaseModel):
    score: float | None = None
    passed: bool | None = None
    reason: str = ""
    error: str | None = None


class RowDiff(BaseModel):
    """A row that got worse, with what a reviewer needs to see why."""

    row_id: str
    cohort: str
    input: Any
    expected: str | None = None
    candidate_output: str | None = None
    baseline_output: str | None = None
    candidate_error: str | None = None
    baseline_error: str | None = None
    regressed: list[str]  # evaluators that passed on baseline and failed on candidate
    score_drop: float  # sum over evaluators of baseline - candidate score
    candidate: dict[str, SideScore] = Field(default_factory=dict)
    baseline: dict[str, SideScore] = Field(default_factory=dict)


class SideInfo(BaseModel):
    """Which release and run one side of the gate is."""

    ref: str
    digest: str
    run_id: str | None = None


class Measurements(BaseModel):
    candidate: SideInfo
    baseline: SideInfo
    dataset_name: str
    dataset_version: str
    evaluators: dict[str, str]  # name -> version
    confidence: float
    cohorts: dict[str, int]  # name -> rows
    eval: list[EvalMeasure]
    latency: list[LatencyMeasure]
    cost: list[CostMeasure]
    errors: ErrorMeasure
    regressed_rows: list[RowDiff] = Field(default_factory=list)
    regressed_row_count: int = 0
    warnings: list[str] = Field(default_factory=list)

    def eval_for(self, evaluator: str, cohort: str) -> EvalMeasure | None:
        return next((m for m in self.eval if m.evaluator == evaluator and m.cohort == cohort), None)

    def latency_for(self, cohort: str) -> LatencyMeasure | None:
        return next((m for m in self.latency if m.cohort == cohort), None)

    def cost_for(self, cohort: str) -> CostMeasure | None:
        return next((m for m in self.cost if m.cohort == cohort), None)
