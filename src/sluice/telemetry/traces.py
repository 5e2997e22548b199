"""Read stored spans back as dicts: one trace for the API and audits, or a filtered list."""

from __future__ import annotations

import time
from typing import Any

import orjson

from sluice.telemetry.feedback import feedback_for
from sluice.telemetry.schema import SPAN_COLUMNS

_COLS = ", ".join(SPAN_COLUMNS)
_EVAL_COLS = ("span_id", "evaluator", "passed", "score", "label", "source")
HOUR_NS = 3600 * 10**9
DAY_NS = 24 * HOUR_NS


def span_dict(row: tuple) -> dict[str, Any]:
    d = dict(zip(SPAN_COLUMNS, row))
    d["attributes"] = orjson.loads(d["attributes"]) if d["attributes"] else {}
    return d


def trace_spans(store: Any, trace_id: str) -> list[dict[str, Any]]:
    rows = store.db.query(f"SELECT {_COLS} FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id",
                          [trace_id.lower()])
    return [span_dict(r) for r in rows]


def get_trace(store: Any, trace_id: str, hint_ns: int | None = None) -> dict[str, Any]:
    """Spans, evaluation results and feedback of one trace (feedback may exist without spans).

    ``hint_ns``: a time near the trace (a span's ``start_ns``, as search results pass along); the
    trace's evaluations and feedback give more hints (see ``_spans``)."""
    tid = trace_id.lower()
    evals = store.db.query(
        f"SELECT {', '.join(_EVAL_COLS)}, created_at FROM span_evals WHERE trace_id = ? "
        "ORDER BY created_at, evaluator", [tid])
    feedback = feedback_for(store, tid)
    seen = [e[-1] for e in evals] + [f["created_at"] for f in feedback]
    return {
        "trace_id": tid,
        "spans": _spans(store, tid, hint_ns, seen),
        "evaluations": [dict(zip(_EVAL_COLS, e)) for e in evals],
        "feedback": feedback,
    }


def _spans(store: Any, tid: str, hint_ns: int | None, seen_at_s: list[float]) -> list[dict[str, Any]]:
    """The trace's spans without reading the whole ``trace_id`` column when it can be helped.

    DuckDB's span table has no index on ``trace_id`` (an ART index would cost ingest; one full
    read is 0.5-1.5 s at 10M spans), but a cut on the time-ordered ``start_ns`` lets it skip the
    row groups outside it. So look near ``hint_ns``, then in the day before the trace's first
    evaluation or feedback (both come after the trace), then the last hour, the last day, and only
    then everywhere. Once spans are found, the trace is read within a day either side of its first
    span (a trace longer than that would lose its far spans). PostgreSQL has a B-tree on trace_id."""
    if store.db.dialect.name == "postgres":
        return trace_spans(store, tid)
    now = time.time_ns()
    ranges: list[tuple[int, int | None]] = []
    if hint_ns is not None:
        ranges.append((hint_ns - HOUR_NS, hint_ns + HOUR_NS))
    if seen_at_s:
        first_seen = int(min(seen_at_s) * 1e9)
        ranges.append((first_seen - DAY_NS, first_seen + HOUR_NS))
    ranges += [(now - HOUR_NS, None), (now - DAY_NS, now - HOUR_NS)]
    for low, high in ranges:
        sql = f"SELECT start_ns FROM spans WHERE trace_id = ? AND start_ns >= ?"
        params: list[Any] = [tid, low]
        if high is not None:
            sql += " AND start_ns < ?"
            params.append(high)
        found = store.db.query(sql, params)
        if found:
            first = min(r[0] for r in found)
            rows = store.db.query(f"SELECT {_COLS} FROM spans WHERE trace_id = ? AND start_ns >= ? AND start_ns < ? "
                                  "ORDER BY start_ns, span_id", [tid, first - DAY_NS, first + DAY_NS])
            return [span_dict(r) for r in rows]
    return trace_spans(store, tid)
