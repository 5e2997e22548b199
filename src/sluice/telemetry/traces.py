"""Read stored spans back as dicts: one trace for the API and audits, or a filtered list."""

from __future__ import annotations

from typing import Any

import orjson

from sluice.telemetry.feedback import feedback_for
from sluice.telemetry.schema import SPAN_COLUMNS

_COLS = ", ".join(SPAN_COLUMNS)


def span_dict(row: tuple) -> dict[str, Any]:
    d = dict(zip(SPAN_COLUMNS, row))
    d["attributes"] = orjson.loads(d["attributes"]) if d["attributes"] else {}
    return d


def trace_spans(store: Any, trace_id: str) -> list[dict[str, Any]]:
    rows = store.db.query(f"SELECT {_COLS} FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id",
                          [trace_id.lower()])
    return [span_dict(r) for r in rows]


def get_trace(store: Any, trace_id: str) -> dict[str, Any]:
    """Spans, evaluation results and feedback of one trace (feedback may exist without spans)."""
    tid = trace_id.lower()
    evals = store.db.query(
        "SELECT span_id, evaluator, passed, score, label, source FROM span_evals WHERE trace_id = ? "
        "ORDER BY created_at, evaluator", [tid])
    return {
        "trace_id": tid,
        "spans": trace_spans(store, tid),
        "evaluations": [dict(zip(("span_id", "evaluator", "passed", "score", "label", "source"), e)) for e in evals],
        "feedback": feedback_for(store, tid),
    }
