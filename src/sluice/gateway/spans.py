"""One span per gateway request (and per mirrored shadow call), written through the shared
``SpanWriter``'s bounded queue.

Attributes follow OpenInference (``llm.*``, ``input.value``…), OpenTelemetry GenAI (``gen_ai.*``)
and Sluice's own ``sluice.*`` keys that the telemetry normaliser maps onto typed columns
(deployment, release, route, cohort, fallback, cache hit, ttft). Submission never blocks and never
fails a request: when the queue is full or the writer is closed the span is dropped and counted.
Spans reach the writer in slices (``SpanSink``) and linger in its queue (up to its ``linger_s``)
so one DuckDB transaction carries many spans; committing each span on its own cost ~2 ms of CPU
per request.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from sluice.telemetry.otlp_model import RawSpan
from sluice.telemetry.writer import Backpressure, WriterClosed

log = logging.getLogger("sluice.gateway")
_rng = random.Random()


def new_trace_id() -> str:
    return "%032x" % _rng.getrandbits(128)


def new_span_id() -> str:
    return "%016x" % _rng.getrandbits(64)


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace id, parent span id) from a W3C ``traceparent`` header, None when absent or invalid."""
    if not value:
        return None
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    trace_id, parent = parts[1].lower(), parts[2].lower()
    try:
        int(trace_id, 16), int(parent, 16)
    except ValueError:
        return None
    if trace_id == "0" * 32 or parent == "0" * 16:
        return None
    return trace_id, parent


@dataclass
class RequestRecord:
    """Everything the span of one request says; filled in as the request proceeds."""

    trace_id: str
    span_id: str
    parent_id: str
    start_ns: int
    started: float  # perf_counter at arrival
    deployment: str
    route: str = ""
    arm: str = ""  # the arm routing chose (stable, canary, shadow): a canary request answered by a fallback stays canary
    release: str = ""
    release_ref: str = ""
    cohort: str = "default"
    user: str | None = None
    session: str | None = None
    model: str | None = None
    provider: str | None = None
    stream: bool = False
    status: str = "ok"  # ok | error
    error_type: str | None = None
    error_message: str | None = None
    fallback_used: bool = False
    attempts: int = 0
    upstream_s: float = 0.0
    ttft_s: float | None = None
    guardrail: str = "pass"
    pinned: bool = False
    input_text: str | None = None
    output_text: str | None = None
    usage: dict[str, Any] | None = None
    cost: float | None = None
    http_status: int = 200
    errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def span(self) -> RawSpan:
        elapsed = time.perf_counter() - self.started
        a: dict[str, Any] = {
            "openinference.span.kind": "LLM",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": self.deployment,
            "sluice.request": True,
            "sluice.deployment": self.deployment or UNKNOWN_DEPLOYMENT,
            "sluice.release": self.release,
            "sluice.release_ref": self.release_ref,
            "sluice.route": self.route,
            "sluice.arm": self.arm or self.route,
            "sluice.cohort": self.cohort,
            "sluice.fallback_used": self.fallback_used,
            "sluice.cache_hit": self.route == "cache",
            "sluice.guardrail": self.guardrail,
            "sluice.attempts": self.attempts,
            "sluice.stream": self.stream,
            "sluice.upstream_ms": round(self.upstream_s * 1000.0, 3),
            "sluice.overhead_ms": round(max(elapsed - self.upstream_s, 0.0) * 1000.0, 3),
            "http.response.status_code": self.http_status,
        }
        if self.model:
            a["llm.model_name"] = self.model
        if self.provider:
            a["llm.provider"] = self.provider
        if self.pinned:
            a["sluice.pinned"] = True
        if self.user:
            a["user.id"] = self.user
        if self.session:
            a["session.id"] = self.session
        if self.ttft_s is not None:
            a["sluice.ttft_ms"] = round(self.ttft_s * 1000.0, 3)
        if self.usage:
            prompt = self.usage.get("prompt_tokens")
            completion = self.usage.get("completion_tokens")
            a["llm.token_count.prompt"] = prompt
            a["llm.token_count.completion"] = completion
            a["llm.token_count.total"] = self.usage.get("total_tokens")
            cached = (self.usage.get("prompt_tokens_details") or {}).get("cached_tokens")
            if cached is not None:
                a["llm.token_count.prompt_details.cache_read"] = cached
        if self.cost is not None:
            a["sluice.cost"] = self.cost
        if self.input_text is not None:
            a["input.value"] = self.input_text
            a["input.mime_type"] = "application/json"
        if self.output_text is not None:
            a["output.value"] = self.output_text
        if self.errors:
            a["sluice.upstream_errors"] = orjson.dumps(self.errors).decode()
        if self.error_type:
            a["error.type"] = self.error_type
        a.update(self.extra)
        end_ns = self.start_ns + int(elapsed * 1e9)
        return RawSpan(trace_id=self.trace_id, span_id=self.span_id, parent_id=self.parent_id,
                       name=f"gateway {self.deployment}" + (" shadow" if self.route == "shadow" else ""),
                       start_ns=self.start_ns, end_ns=end_ns, status_code=2 if self.status == "error" else 1,
                       status_message=self.error_message or "", attributes=a,
                       resource={"service.name": "sluice-gateway"})


UNKNOWN_DEPLOYMENT = "_unknown"  # no or no such deployment: the label Prometheus uses too


class SpanSink:
    """Fire-and-forget submission to the writer, in slices; counts what it had to drop.

    On the event loop, spans wait in a short list and go to the writer together, either when
    ``slice_spans`` are waiting or ``slice_s`` after the first of them: one normalisation pass
    and one queue entry per slice instead of per request, off the request that made the span
    (its response is already sent), and far fewer objects kept alive in the writer's queue (so
    fewer and shorter garbage collections on the loop). Outside an event loop, and on
    ``flush()`` (the gateway's shutdown, before the writer drains), spans are submitted at once.
    """

    def __init__(self, writer: Any | None, *, slice_spans: int = 64, slice_s: float = 0.05):
        self.writer = writer
        self.slice_spans = slice_spans
        self.slice_s = slice_s
        self.submitted = 0
        self.dropped = 0
        self._pending: list[tuple[Any, RawSpan]] = []
        self._timer: asyncio.TimerHandle | None = None

    def submit(self, record: RequestRecord, writer: Any | None = None) -> None:
        w = writer or self.writer
        if w is None:
            self.dropped += 1
            return
        try:
            span = record.span()
        except Exception:  # noqa: BLE001 - tracing must never fail a request
            self.dropped += 1
            log.exception("gateway span dropped")
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._send(w, [span])
            return
        self._pending.append((w, span))
        if len(self._pending) >= self.slice_spans:
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.slice_s, self.flush)

    def flush(self) -> None:
        """Hand every waiting span to its writer now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, []
        if not pending:
            return
        writer = pending[0][0]
        if all(w is writer for w, _ in pending):
            self._send(writer, [sp for _, sp in pending])
            return
        for w, sp in pending:  # more than one writer (one gateway mounted in several apps)
            self._send(w, [sp])

    def _send(self, writer: Any, spans: list[RawSpan]) -> None:
        try:
            writer.submit(spans, linger=True)  # nobody waits: let the writer batch it
            self.submitted += len(spans)
        except (Backpressure, WriterClosed):
            self.dropped += len(spans)
        except Exception:  # noqa: BLE001 - tracing must never fail a request
            if len(spans) > 1:  # keep the spans that can be written
                for sp in spans:
                    self._send(writer, [sp])
                return
            self.dropped += 1
            log.exception("gateway span dropped")


def now_ns() -> int:
    return time.time_ns()
