"""What running one release on one dataset row produced."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field, field_validator

from sluice.dataset.row import ContextDoc, ToolCall
from sluice.evals.result import EvalResult
from sluice.redaction import redact, redact_value


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class RowOutput(BaseModel):
    """The target's answer for one row, with cost and timing.

    ``context`` is set when the target reports the documents it retrieved (http and python
    targets); otherwise evaluators use the row's own context.
    """

    row_id: str
    output: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    context: list[ContextDoc] | None = None
    usage: Usage = Field(default_factory=Usage)
    cost: float | None = None
    latency_ms: float = 0.0
    model: str | None = None  # the model that answered (a fallback's name when one did)
    fallback_from: list[str] = Field(default_factory=list)  # models that failed before it, in order
    error: str | None = None
    error_kind: str | None = None  # timeout | connection | http_4xx | http_5xx | rate_limited | context_length | malformed | target | config
    attempts: int = 1
    cached: bool = False
    raw: dict[str, Any] = Field(default_factory=dict)

    @field_validator("output", "error")
    @classmethod
    def _no_secrets(cls, v: str | None) -> str | None:
        """Upstream text is kept in run rows and the gate's reports: never a secret Sluice holds."""
        return redact(v)

    @field_validator("raw")
    @classmethod
    def _no_secrets_raw(cls, v: dict[str, Any]) -> dict[str, Any]:
        return redact_value(v) if v else v

    @field_validator("latency_ms")
    @classmethod
    def _real_duration(cls, v: float) -> float:
        """A NaN would vanish from the latency statistics and a negative one would flatter them."""
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"latency_ms must be a finite number >= 0, got {v}")
        return v

    @property
    def ok(self) -> bool:
        return self.error is None


class RowRecord(BaseModel):
    """A stored row of a run: the output and every evaluator's result on it."""

    output: RowOutput
    evals: dict[str, EvalResult] = Field(default_factory=dict)
    cohort: str = "default"
