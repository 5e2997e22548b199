"""End to end with traceAI (FutureAGI's ``traceai-openai`` + ``fi-instrumentation-otel``) as a user
runs it: ``register(project_name=..., project_version_name=..., metadata=...)`` with ``FI_BASE_URL``
pointing at Sluice, the official ``openai`` client calling a scripted local upstream. Spans land
on ``/tracer/v1/traces`` attributed from the resource, streaming spans priced (the model is only
in ``gen_ai.request.parameters``), and an app's root span attributes its children even though
the SDK exports them first."""

from __future__ import annotations

import openai
import pytest
from fi_instrumentation import register
from traceai_openai import OpenAIInstrumentor

from sluice.auth.keys import create_key
from sluice.server.app import create_app
from sluice.server.runner import running
from sluice.telemetry import schema  # noqa: F401 - registers the tables
from sluice.telemetry.config import Price, TelemetrySettings
from sluice.telemetry.traces import get_trace, trace_spans
from sluice.testing.upstream import scripted_upstream

SETTINGS = TelemetrySettings(prices={"gpt-test": Price(input=1.0, output=2.0)})


@pytest.fixture
def traceai(store, monkeypatch, request):
    """(store, tracer provider, OpenAI client) with traceAI exporting to a Sluice server; the
    ``register`` metadata is the indirect parameter (default: cohort enterprise)."""
    metadata = getattr(request, "param", {"cohort": "enterprise"})
    _, ingest_key = create_key(store, "app", "ingest")
    with scripted_upstream() as upstream, running(create_app(store, SETTINGS)) as url:
        monkeypatch.setenv("FI_BASE_URL", url)  # the exporter posts to {FI_BASE_URL}/tracer/v1/traces
        monkeypatch.setenv("FI_API_KEY", ingest_key)  # sent as X-Api-Key
        monkeypatch.setenv("FI_SECRET_KEY", "not-used-by-sluice")
        tp = register(project_name="support-agent", project_version_name="1.0.0",
                      metadata=metadata, batch=False, verbose=False)
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=tp)
        client = openai.OpenAI(base_url=str(upstream), api_key="test", max_retries=0)
        try:
            yield store, tp, client
        finally:
            instrumentor.uninstrument()
            tp.shutdown()


def _only_span(store, trace_id: str) -> dict:
    spans = trace_spans(store, trace_id)
    assert len(spans) == 1, spans
    return spans[0]


def _trace_ids(store) -> list[str]:
    return [r[0] for r in store.db.query("SELECT trace_id FROM spans ORDER BY start_ns")]


def test_traceai_spans_are_attributed_from_the_resource(traceai):
    store, tp, client = traceai
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hello world"}])
    stream = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "abcd"}],
                                            stream=True, stream_options={"include_usage": True})
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: abcd"
    tp.force_flush()
    plain, streamed = (_only_span(store, t) for t in _trace_ids(store))
    for s in (plain, streamed):
        assert (s["deployment"], s["release"], s["cohort"], s["kind"]) == ("support-agent", "1.0.0", "enterprise",
                                                                         "LLM")
        assert s["attributes"]["@resource"]["project_name"] == "support-agent"
    # "hello world" -> 3 prompt tokens, "echo: hello world" -> 5 completion tokens (upstream counts len/4)
    assert (plain["model"], plain["input_tokens"], plain["output_tokens"]) == ("gpt-test", 3, 5)
    assert plain["cost"] == pytest.approx((3 * 1.0 + 5 * 2.0) / 1e6)
    # the streaming span: model from gen_ai.request.parameters, so it is priced too
    assert (streamed["model"], streamed["input_tokens"], streamed["output_tokens"]) == ("gpt-test", 1, 3)
    assert streamed["cost"] == pytest.approx((1 * 1.0 + 3 * 2.0) / 1e6)


@pytest.mark.parametrize("traceai", [{}], indirect=True)
def test_a_root_span_attributes_children_exported_before_it(traceai):
    store, tp, client = traceai
    tracer = tp.get_tracer("app")
    with tracer.start_as_current_span("agent", attributes={"gen_ai.operation.name": "invoke_agent",
                                                           "sluice.cohort": "beta"}):
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hello world"}])
        tp.force_flush()  # the LLM child is stored before its root exists
        (trace_id,) = _trace_ids(store)
        assert _only_span(store, trace_id)["cohort"] == "default"  # for now
    tp.force_flush()
    spans = {s["name"]: s for s in trace_spans(store, trace_id)}
    assert set(spans) == {"agent", "ChatCompletion"}
    # the resource attributes both; the child takes its root's cohort once the root arrives
    for s in spans.values():
        assert (s["deployment"], s["release"], s["cohort"]) == ("support-agent", "1.0.0", "beta"), s["name"]
    rows = store.db.query("SELECT cohort, SUM(input_tokens), COUNT(*) FROM spans GROUP BY cohort")
    assert [tuple(r) for r in rows] == [("beta", 3, 2)]


def test_genai_evaluation_events_and_attributes_become_evaluations(traceai):
    """OTel GenAI evaluation results, as the OTel SDK exports them (via the traceAI provider)."""
    store, tp, client = traceai
    tracer = tp.get_tracer("app")
    with tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat"}) as span:
        span.add_event("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "relevance",
                                                     "gen_ai.evaluation.score.value": 0.25,
                                                     "gen_ai.evaluation.score.label": "fail"})
        trace_id = format(span.get_span_context().trace_id, "032x")
        span_id = format(span.get_span_context().span_id, "016x")
    with tracer.start_as_current_span("judge", attributes={
            "gen_ai.evaluation.name": "tone", "gen_ai.evaluation.score.value": 0.9,
            "gen_ai.evaluation.score.label": "pass", "gen_ai.evaluation.target_span_id": span_id}):
        pass
    tp.force_flush()
    evals = get_trace(store, trace_id)["evaluations"]
    assert [(e["span_id"], e["evaluator"], e["passed"], e["score"], e["label"]) for e in evals] == [
        (span_id, "relevance", False, 0.25, "fail")]
    rows = store.db.query("SELECT span_id, evaluator, passed, score FROM span_evals WHERE evaluator = 'tone'")
    assert [tuple(r) for r in rows] == [(span_id, "tone", True, 0.9)]
