"""User-outcome feedback joined to traces, and online evaluation results recorded after the fact.

Feedback is stored as it comes, whether or not its trace has arrived: the join happens at query
time (``metrics``, ``sampling``), so late traces pick up early feedback without any bookkeeping.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sluice.evals.result import EvalResult
from sluice.telemetry import values

FeedbackKind = Literal["thumbs_down", "thumbs_up", "escalation", "refund", "manual_override"]


class Feedback(BaseModel):
    """The body of ``POST /api/feedback``."""

    model_config = ConfigDict(extra="forbid")
    trace_id: str = Field(min_length=1, max_length=64)
    kind: FeedbackKind
    value: Any = None
    comment: str | None = Field(default=None, max_length=10_000)

    @field_validator("value")
    @classmethod
    def _bounded(cls, v: Any) -> Any:
        if values.depth(v) > values.MAX_DEPTH:
            raise ValueError(f"is nested more than {values.MAX_DEPTH} levels deep")
        return v

    @field_validator("trace_id")
    @classmethod
    def _hex(cls, v: str) -> str:
        v = v.strip().lower()
        if len(v) != 32 or any(c not in "0123456789abcdef" for c in v):
            raise ValueError("must be a 32-character hex trace id")
        return v


def record_feedback(store: Any, fb: Feedback) -> str:
    """Store one feedback event; returns its id. Committed when this returns."""
    fid = uuid.uuid4().hex
    store.db.execute(
        "INSERT INTO feedback (id, trace_id, kind, value, comment, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [fid, fb.trace_id, fb.kind, None if fb.value is None else values.dumps(fb.value),
         fb.comment, time.time()],
    )
    return fid


def feedback_for(store: Any, trace_id: str) -> list[dict[str, Any]]:
    rows = store.db.query(
        "SELECT id, kind, value, comment, created_at FROM feedback WHERE trace_id = ? ORDER BY created_at, id",
        [trace_id.lower()],
    )
    return [{"id": r[0], "kind": r[1], "value": orjson.loads(r[2]) if r[2] is not None else None,
             "comment": r[3], "created_at": r[4]} for r in rows]


def record_online_eval(store: Any, trace_id: str, result: EvalResult, *, span_id: str | None = None) -> None:
    """An evaluator run on a production trace (sampled online evaluation); counted by ``metrics``.
    A result with ``error`` set is kept but not judged (``passed`` NULL), never counted as a fail."""
    store.db.execute(
        "INSERT INTO span_evals (trace_id, span_id, evaluator, passed, score, label, source, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [trace_id.lower(), span_id, result.evaluator, None if result.error else result.passed, result.score,
         result.error, "online", time.time()],
    )
