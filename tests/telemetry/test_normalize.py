"""Attribute normalisation: OpenInference, traceAI legacy and current, OTel GenAI, attribution, prices."""

from __future__ import annotations

import orjson
import pytest

from sluice.telemetry.config import Price, TelemetrySettings
from sluice.telemetry.normalize import Normalizer
from sluice.telemetry.otlp import RawSpan
from sluice.telemetry.schema import SPAN_COLUMNS


def raw(attrs: dict, resource: dict | None = None, *, parent: str = "", status: int = 0, events=None) -> RawSpan:
    return RawSpan("a" * 32, "b" * 16, parent, "span", 1_000_000_000, 1_250_000_000, status, "", attrs,
                   resource or {}, events or [])


def norm(attrs: dict, resource: dict | None = None, settings: TelemetrySettings | None = None, **kw) -> dict:
    rows, evals = Normalizer(settings).rows([raw(attrs, resource, **kw)])
    row = dict(zip(SPAN_COLUMNS, rows[0]))
    row["attributes"] = orjson.loads(row["attributes"])
    row["_evals"] = evals
    return row


def test_openinference():
    r = norm({"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o", "llm.provider": "openai",
              "llm.token_count.prompt": 10, "llm.token_count.completion": 4, "llm.token_count.total": 14,
              "llm.cost.total": 0.5, "session.id": "s1", "user.id": "u1", "input.value": "hi"})
    assert (r["kind"], r["model"], r["provider"], r["input_tokens"], r["output_tokens"], r["total_tokens"]) == (
        "LLM", "gpt-4o", "openai", 10, 4, 14)
    assert (r["cost"], r["session_id"], r["user_id"], r["duration_ms"]) == (0.5, "s1", "u1", 250.0)
    assert r["attributes"] == {"input.value": "hi"}  # typed attributes leave the JSON column


def test_traceai_legacy():
    r = norm({"fi.span.kind": "TOOL", "tool.name": "search", "llm.model_name": "m", "graph.node.name": "plan"})
    assert (r["kind"], r["tool_name"], r["agent_step"], r["model"]) == ("TOOL", "search", "plan", "m")


def test_traceai_current_and_genai():
    r = norm({"gen_ai.span.kind": "LLM", "gen_ai.request.model": "req-model", "gen_ai.response.model": "resp-model",
              "gen_ai.provider.name": "anthropic", "gen_ai.usage.input_tokens": 7, "gen_ai.usage.output_tokens": 3,
              "gen_ai.cost.input": 0.25, "gen_ai.cost.output": 0.5, "gen_ai.conversation.id": "c9",
              "gen_ai.server.time_to_first_token": 0.12})
    assert (r["kind"], r["model"], r["provider"]) == ("LLM", "resp-model", "anthropic")
    assert (r["input_tokens"], r["output_tokens"], r["total_tokens"], r["cost"]) == (7, 3, 10, 0.75)
    assert (r["session_id"], r["ttft_ms"]) == ("c9", pytest.approx(120.0))


@pytest.mark.parametrize("operation, kind", [("chat", "LLM"), ("embeddings", "EMBEDDING"),
                                             ("execute_tool", "TOOL"), ("invoke_agent", "AGENT")])
def test_kind_from_genai_operation(operation, kind):
    assert norm({"gen_ai.operation.name": operation})["kind"] == kind


def test_unknown_kind_and_defaults():
    r = norm({})
    # "" = not attributed: the writer inherits from the trace's attributed ancestor, else "default"
    assert (r["kind"], r["deployment"], r["release"], r["route"], r["cohort"]) == ("UNKNOWN", "", "", "", "")
    assert r["is_request"] and not r["fallback_used"] and not r["cache_hit"]


def test_attribution_from_configured_attributes():
    settings = TelemetrySettings(release_attributes=["resource.service.version"], cohort_attributes=["metadata.tier"],
                                 deployment_attributes=["app.deployment"])
    r = norm({"metadata": '{"tier": "enterprise"}', "app.deployment": "support", "service.version": "span-level"},
             {"service.version": "2.1.0"}, settings)
    assert (r["release"], r["cohort"], r["deployment"]) == ("2.1.0", "enterprise", "support")


def test_sluice_gateway_attributes():
    r = norm({"sluice.route": "fallback", "sluice.cache_hit": True, "sluice.request": True, "sluice.ttft_ms": 42.0,
              "sluice.release": "sha256:abc", "sluice.deployment": "chat", "sluice.cohort": "free"}, parent="c" * 16)
    assert (r["route"], r["fallback_used"], r["cache_hit"], r["is_request"], r["ttft_ms"]) == (
        "fallback", True, True, True, 42.0)
    assert (r["release"], r["deployment"], r["cohort"]) == ("sha256:abc", "chat", "free")
    assert not norm({}, parent="c" * 16)["is_request"]


def test_price_table_applies_only_without_cost():
    settings = TelemetrySettings(prices={"gpt-4o": Price(input=2.5, output=10.0), "gpt-4o-mini": Price(input=0.15, output=0.6)})
    priced = norm({"llm.model_name": "gpt-4o-mini-2024-07-18", "llm.token_count.prompt": 1000,
                   "llm.token_count.completion": 500}, settings=settings)
    assert priced["cost"] == pytest.approx((1000 * 0.15 + 500 * 0.6) / 1e6)  # longest prefix wins
    explicit = norm({"llm.model_name": "gpt-4o", "llm.token_count.prompt": 1000, "llm.cost.total": 0.9},
                    settings=settings)
    assert explicit["cost"] == 0.9
    assert norm({"llm.model_name": "other", "llm.token_count.prompt": 5}, settings=settings)["cost"] is None


def test_errors_from_status_attribute_and_exception_event():
    assert norm({"error.type": "timeout"})["status"] == "ERROR"
    r = norm({}, status=2, events=[("exception", 1_100_000_000, {"exception.type": "ValueError"})])
    assert (r["status"], r["error_type"]) == ("ERROR", "ValueError")
    assert r["attributes"]["@events"][0]["name"] == "exception"


def test_first_token_event():
    r = norm({}, events=[("First Token Stream Event", 1_080_000_000, {})])
    assert r["ttft_ms"] == pytest.approx(80.0)


def test_evaluations_become_eval_rows():
    r = norm({"openinference.span.kind": "EVALUATOR", "gen_ai.evaluation.name": "faithfulness",
              "gen_ai.evaluation.score.value": 0.2, "gen_ai.evaluation.score.label": "fail"})
    assert [e[2:6] for e in r["_evals"]] == [("faithfulness", False, 0.2, "fail")]
    r = norm({"evaluations.0.evaluation.name": "tone", "evaluations.0.evaluation.label": "pass",
              "evaluations.1.evaluation.name": "length", "evaluations.1.evaluation.score": 0.7})
    assert [e[2:6] for e in r["_evals"]] == [("tone", True, None, "pass"), ("length", None, 0.7, None)]


def test_nul_characters_are_dropped_from_typed_text():
    assert norm({"llm.model_name": "gp\x00t"})["model"] == "gpt"


TRACEAI_RESOURCE = {"project_name": "support-agent", "project_type": "observe", "project_version_name": "1.0.0",
                    "metadata": '{"cohort": "enterprise"}',
                    "semantic_convention": "fi"}


def test_traceai_resource_attribution():
    r = norm({"gen_ai.span.kind": "LLM"}, TRACEAI_RESOURCE)
    assert (r["deployment"], r["release"], r["cohort"]) == ("support-agent", "1.0.0", "enterprise")


def test_span_attributes_take_precedence_over_the_resource():
    r = norm({"metadata": '{"cohort": "free"}', "sluice.deployment": "chat", "sluice.release": "2.0.0"},
             TRACEAI_RESOURCE)
    assert (r["deployment"], r["release"], r["cohort"]) == ("chat", "2.0.0", "free")
    # a span metadata without the key falls back to the resource's metadata
    assert norm({"metadata": '{"other": 1}'}, TRACEAI_RESOURCE)["cohort"] == "enterprise"


def test_model_from_request_parameters_when_absent():
    settings = TelemetrySettings(prices={"gpt-4o-mini": Price(input=0.15, output=0.6)})
    params = '{"model": "gpt-4o-mini", "stream": true}'
    r = norm({"gen_ai.span.kind": "LLM", "gen_ai.request.parameters": params, "gen_ai.usage.input_tokens": 1000,
              "gen_ai.usage.output_tokens": 100}, settings=settings)
    assert r["model"] == "gpt-4o-mini"
    assert r["cost"] == pytest.approx((1000 * 0.15 + 100 * 0.6) / 1e6)
    assert r["attributes"]["gen_ai.request.parameters"] == params  # kept as sent
    assert norm({"gen_ai.request.model": "m1", "gen_ai.request.parameters": params})["model"] == "m1"


def test_genai_evaluation_attributes_and_events():
    r = norm({"gen_ai.operation.name": "chat", "gen_ai.evaluation.name": "relevance",
              "gen_ai.evaluation.score.value": 0.9, "gen_ai.evaluation.score.label": "pass"})
    assert r["kind"] == "LLM"
    assert [e[1:6] for e in r["_evals"]] == [("b" * 16, "relevance", True, 0.9, "pass")]
    event = ("gen_ai.evaluation.result", 1_200_000_000,
             {"gen_ai.evaluation.name": "faithfulness", "gen_ai.evaluation.score.value": 0.1,
              "gen_ai.evaluation.score.label": "fail", "gen_ai.evaluation.explanation": "made up"})
    other = ("gen_ai.evaluation.result", 1_200_000_000,
             {"gen_ai.evaluation.name": "tone", "gen_ai.evaluation.target_span_id": "c" * 16})
    r = norm({"gen_ai.operation.name": "chat"}, events=[event, other, ("log", 1, {})])
    assert [e[1:6] for e in r["_evals"]] == [("b" * 16, "faithfulness", False, 0.1, "fail"),
                                             ("c" * 16, "tone", None, None, None)]


def test_openinference_token_counts_win_over_gen_ai_usage_on_the_same_span():
    """A span instrumented twice carries both spellings; OpenInference's ``llm.token_count.*``
    comes first (normalize.INPUT_KEYS)."""
    r = norm({"llm.token_count.prompt": 10, "gen_ai.usage.input_tokens": 99,
              "llm.token_count.completion": 4, "gen_ai.usage.output_tokens": 88,
              "llm.token_count.total": 14, "gen_ai.usage.total_tokens": 187})
    assert (r["input_tokens"], r["output_tokens"], r["total_tokens"]) == (10, 4, 14)
