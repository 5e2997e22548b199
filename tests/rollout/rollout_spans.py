"""Spans for rollout tests, written straight into the store as the gateway or an app would send them."""

from __future__ import annotations

import itertools
import time
from typing import Any

from sluice.gateway.spans import RequestRecord
from sluice.telemetry.normalize import Normalizer
from sluice.telemetry.otlp import RawSpan
from sluice.telemetry.writer import SpanBatch, _sink_for

_ids = itertools.count(1)


def trace_id() -> str:
    return "%032x" % next(_ids)


def gateway_span(*, deployment: str, arm: str, release: str, start_s: float, cohort: str = "default",
                 route: str | None = None, error: bool = False, duration_ms: float = 100.0,
                 guardrail: str = "pass", tokens: int | None = None, cost: float | None = None,
                 trace: str | None = None) -> RawSpan:
    rec = RequestRecord(trace_id=trace or trace_id(), span_id="%016x" % next(_ids), parent_id="",
                        start_ns=int(start_s * 1e9), started=time.perf_counter(), deployment=deployment,
                        route=route or arm, arm=arm, release=release, cohort=cohort, guardrail=guardrail,
                        fallback_used=(route == "fallback"))
    if error:
        rec.status, rec.error_type = "error", "upstream_error"
    if tokens is not None:
        rec.usage = {"prompt_tokens": tokens // 2, "completion_tokens": tokens - tokens // 2, "total_tokens": tokens}
    rec.cost = cost
    span = rec.span()
    span.end_ns = span.start_ns + int(duration_ms * 1e6)
    return span


def app_span(*, deployment: str, release: str, start_s: float, attributes: dict[str, Any] | None = None,
             error: bool = False, cohort: str = "default") -> RawSpan:
    """A root LLM span an app sends over OTLP: release and deployment from its resource and metadata."""
    a = {"openinference.span.kind": "LLM", "llm.model_name": "m", "metadata": f'{{"cohort": "{cohort}"}}',
         **(attributes or {})}
    return RawSpan(trace_id=trace_id(), span_id="%016x" % next(_ids), parent_id="", name="chat",
                   start_ns=int(start_s * 1e9), end_ns=int(start_s * 1e9) + 50_000_000,
                   status_code=2 if error else 1, status_message="", attributes=a,
                   resource={"service.name": deployment, "service.version": release})


def put(store: Any, spans: list[RawSpan]) -> None:
    """Committed when this returns, through the span writer's own sink (columnar on DuckDB)."""
    rows, evals = Normalizer().rows(spans)
    batch = SpanBatch.from_rows(rows, evals)
    sink = _sink_for(store)
    try:
        if store.db.dialect.name == "postgres":
            sink.write([batch])
        else:
            with store.db.lock:  # the sink's cursor shares the store's DuckDB database
                sink.write([batch])
    finally:
        sink.close()


def put_eval(store: Any, trace: str, evaluator: str, passed: bool, at: float) -> None:
    store.db.execute("INSERT INTO span_evals (trace_id, span_id, evaluator, passed, score, label, source, created_at) "
                     "VALUES (?, NULL, ?, ?, ?, NULL, 'online', ?)", [trace, evaluator, passed, 1.0 if passed else 0.0,
                                                                       at])


def put_feedback(store: Any, trace: str, kind: str, at: float) -> None:
    store.db.execute("INSERT INTO feedback (id, trace_id, kind, value, comment, created_at) VALUES (?, ?, ?, NULL, "
                     "NULL, ?)", ["fb%d" % next(_ids), trace, kind, at])
