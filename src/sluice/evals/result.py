"""What an evaluator returns."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class EvalResult(BaseModel):
    """A score in [0, 1], a pass/fail judgement, a reason a human can read, and details.

    ``evaluator`` and ``version`` name what produced it, so results from different evaluator
    versions are never compared. ``error`` marks an instrument failure (a judge that did not
    answer): such a result is reported separately, never counted as a zero.
    """

    model_config = ConfigDict(frozen=True)
    score: float
    passed: bool
    reason: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
    evaluator: str = ""
    version: str = ""
    error: str | None = None

    @field_validator("score")
    @classmethod
    def _unit_interval(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0 or v != v:
            raise ValueError(f"score must be within [0, 1], got {v}")
        return float(v)
