"""End to end: the official ``openai`` client, instrumented by OpenInference, calls a scripted local
upstream; the real OTel SDK exporter ships the spans to ``sluice serve``; stored figures and the
metrics are checked exactly, on both store backends."""

from __future__ import annotations

import httpx
import openai
import pytest
from openinference.instrumentation import using_metadata
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sluice.auth.keys import create_key
from sluice.server.app import create_app
from sluice.server.runner import running
from sluice.telemetry import schema  # noqa: F401 - registers the tables
from sluice.telemetry.config import Price, TelemetrySettings
from sluice.telemetry.traces import trace_spans
from sluice.testing.upstream import scripted_upstream

SETTINGS = TelemetrySettings(
    cohort_attributes=["metadata.tier"],
    prices={"gpt-test": Price(input=1.0, output=2.0)},
)


@pytest.fixture
def traced(store):
    """(server URL, store, in-memory copy of exported spans, OpenAI client, admin key)."""
    _, ingest_key = create_key(store, "app", "ingest")
    _, admin_key = create_key(store, "ops", "admin")
    with scripted_upstream() as upstream, running(create_app(store, SETTINGS)) as url:
        tp = TracerProvider(resource=Resource.create({"service.name": "support-bot", "service.version": "rel-2"}))
        memory = InMemorySpanExporter()
        tp.add_span_processor(SimpleSpanProcessor(memory))
        tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
            endpoint=url + "/v1/traces", headers={"Authorization": f"Bearer {ingest_key}"})))
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=tp)
        client = openai.OpenAI(base_url=str(upstream), api_key="test", max_retries=0)
        try:
            yield url, store, memory, client, admin_key
        finally:
            instrumentor.uninstrument()
            tp.shutdown()


def _trace_id(span) -> str:
    return format(span.context.trace_id, "032x")


def test_openinference_spans_are_stored_with_exact_figures(traced):
    url, store, memory, client, admin = traced
    with using_metadata({"tier": "enterprise"}):
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hello world"}])
    with using_metadata({"tier": "free"}):
        stream = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "abcd"}],
                                                stream=True, stream_options={"include_usage": True})
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: abcd"
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "[[500]] x"}])

    exported = memory.get_finished_spans()
    assert len(exported) == 3
    first = trace_spans(store, _trace_id(exported[0]))
    assert len(first) == 1
    s = first[0]
    # "hello world" -> 3 prompt tokens, "echo: hello world" -> 5 completion tokens (upstream counts len/4)
    assert (s["kind"], s["model"], s["input_tokens"], s["output_tokens"], s["total_tokens"]) == ("LLM", "gpt-test", 3, 5, 8)
    assert s["cost"] == pytest.approx((3 * 1.0 + 5 * 2.0) / 1e6)
    assert (s["deployment"], s["release"], s["cohort"], s["status"]) == ("support-bot", "rel-2", "enterprise", "OK")
    assert s["span_id"] == format(exported[0].context.span_id, "016x") and s["parent_id"] == "" and s["is_request"]
    assert s["attributes"]["llm.input_messages.0.message.content"] == "hello world"
    assert s["attributes"]["@resource"]["service.name"] == "support-bot"
    assert s["duration_ms"] == pytest.approx((exported[0].end_time - exported[0].start_time) / 1e6)

    streamed = trace_spans(store, _trace_id(exported[1]))[0]
    assert (streamed["input_tokens"], streamed["output_tokens"], streamed["cohort"]) == (1, 3, "free")
    assert streamed["ttft_ms"] is not None and 0 <= streamed["ttft_ms"] <= streamed["duration_ms"]

    failed = trace_spans(store, _trace_id(exported[2]))[0]
    assert failed["status"] == "ERROR" and "InternalServerError" in failed["error_type"]

    r = httpx.get(url + "/api/metrics", params={"group_by": "deployment,release,cohort", "since": "1h"},
                  headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 200
    groups = {g["cohort"]: g for g in r.json()["groups"]}
    ent, free = groups["enterprise"], groups["free"]
    assert (ent["requests"], ent["error_rate"], ent["tokens_per_request"]) == (1, 0.0, 8.0)
    assert ent["cost_per_request"] == pytest.approx(13e-6)
    assert ent["latency_p50_ms"] == pytest.approx(s["duration_ms"])
    assert (free["requests"], free["error_rate"]) == (2, 0.5)
    assert (free["input_tokens_per_request"], free["output_tokens_per_request"]) == (0.5, 1.5)
    assert free["cost_per_request"] == pytest.approx((1 * 1.0 + 3 * 2.0) / 1e6 / 2)


def test_feedback_before_and_after_its_trace(traced):
    url, store, memory, client, admin = traced
    with using_metadata({"tier": "enterprise"}):
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "one"}])
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "two"}])
    t1, t2 = (_trace_id(s) for s in memory.get_finished_spans())
    late = "ab" * 16  # a trace that has not arrived yet
    auth = {"Authorization": f"Bearer {admin}"}
    for body in ({"trace_id": t1, "kind": "thumbs_down", "comment": "wrong"},
                 {"trace_id": t1, "kind": "thumbs_down"},  # twice on one trace counts once
                 {"trace_id": late, "kind": "escalation", "value": {"ticket": 7}}):
        r = httpx.post(url + "/api/feedback", json=body, headers=auth)
        assert r.status_code == 200, r.text
    assert r.json()["trace_seen"] is False

    def enterprise() -> dict:
        got = httpx.get(url + "/api/metrics", params={"group_by": "cohort"}, headers=auth).json()["groups"]
        return next(g for g in got if g["cohort"] == "enterprise")

    before = enterprise()
    assert (before["requests"], before["thumbs_down_rate"], before["escalation_rate"]) == (2, 0.5, 0.0)
    late_span = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "support-bot"}}]}, "scopeSpans": [{"spans": [{
            "traceId": late.upper(), "spanId": "00000000000000AA", "name": "late", "startTimeUnixNano": "1",
            "endTimeUnixNano": "2", "attributes": [{"key": "metadata", "value": {"stringValue": '{"tier": "enterprise"}'}}],
        }]}]}]}
    r = httpx.post(url + "/v1/traces", json=late_span, headers=auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    after = httpx.get(url + "/api/metrics", params={"group_by": "cohort"}, headers=auth).json()["groups"]
    ent = next(g for g in after if g["cohort"] == "enterprise")
    assert (ent["requests"], ent["thumbs_down_rate"], ent["escalation_rate"]) == (3, pytest.approx(1 / 3), pytest.approx(1 / 3))
