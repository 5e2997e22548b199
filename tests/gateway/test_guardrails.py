"""Guardrails on every answer: checks in isolation, then block / repair / log through the gateway."""

from __future__ import annotations

import openai
import orjson
import pytest

from gateway_fixtures import make_release, serving, spans
from sluice.errors import ConfigError
from sluice.evals.base import BaseEvaluator
from sluice.evals.registry import register
from sluice.gateway.guardrails import ResponseView, compile_guardrails
from sluice.release.model import Guardrail
from sluice.testing.upstream import scripted_upstream

MSG = [{"role": "user", "content": "hello"}]


@register("test_broken_instrument")
class BrokenInstrument(BaseEvaluator):
    """Stands for a judge whose endpoint is down: every evaluation raises."""

    requires = ("response",)

    def score(self, fields):
        raise ConnectionError("judge unreachable")
ORDER_SCHEMA = {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}


def guards(*specs):
    return compile_guardrails([Guardrail.model_validate(s) for s in specs], {})


@pytest.mark.parametrize("view, outcome", [
    (ResponseView("my ssn is 123-45-6789"), "block:pii"),
    (ResponseView("card 4111 1111 1111 1111"), "block:pii"),  # passes Luhn
    (ResponseView("order 4111 1111 1111 1112"), "pass"),  # fails Luhn: not a card
    (ResponseView("mail me at a.b@example.com"), "block:pii"),
    (ResponseView("call +1 415-555-0100"), "block:pii"),
    (ResponseView("nothing personal here"), "pass"),
])
def test_pii(view, outcome):
    assert guards({"name": "pii", "type": "pii"}).check(view).outcome() == outcome


def test_json_schema_on_tool_calls_and_structured_output():
    g = guards({"name": "order", "type": "json_schema", "schema": ORDER_SCHEMA, "action": "repair"})
    assert g.check(ResponseView("", (("lookup", '{"order_id": "A1"}'),))).outcome() == "pass"
    bad = g.check(ResponseView("", (("lookup", '{"order_id": 5}'),)))
    assert bad.outcome() == "repair:order" and "order_id: 5 is not of type 'string'" in bad.violations[0].reason
    assert "not valid JSON" in g.check(ResponseView('{"order_id":')).violations[0].reason
    assert g.check(ResponseView('{"order_id": "Z9"}')).action is None
    only_lookup = guards({"name": "o", "type": "json_schema", "schema": ORDER_SCHEMA, "args": {"tool": "lookup"}})
    assert only_lookup.check(ResponseView("", (("other", "{}"),))).action is None


def test_strongest_action_wins_and_offline_evaluator_guardrails_are_skipped():
    g = guards({"name": "words", "type": "blocked_patterns", "patterns": ["secret"], "action": "log"},
               {"name": "ssn", "type": "blocked_patterns", "patterns": [r"\d{3}-\d{2}-\d{4}"]},
               {"name": "judge", "type": "evaluator", "evaluator": "groundedness", "inline": False})
    v = g.check(ResponseView("secret 123-45-6789"))
    assert v.action == "block" and v.outcome() == "block:ssn" and v.skipped == ["judge"]
    assert g.blocking


def test_inline_evaluator_guardrails_judge_the_answer():
    g = guards({"name": "no-refusal", "type": "evaluator", "evaluator": "refusal", "args": {"expect_refusal": False}},
               {"name": "shape", "type": "evaluator", "evaluator": "json_validation", "action": "log",
                "args": {"schema": ORDER_SCHEMA}})
    refused = g.check(ResponseView("I'm sorry, but I can't help with that."))
    assert refused.outcome() == "block:no-refusal"
    assert refused.violations[0].reason.startswith("refusal scored 0.00: refused")
    assert [v.guardrail for v in refused.violations] == ["no-refusal", "shape"]  # not JSON either
    assert g.check(ResponseView('{"order_id": "A1"}')).outcome() == "pass"
    assert g.check(ResponseView('{"order_id": 7}')).outcome() == "log:shape"


def test_inline_evaluator_threshold_not_applicable_and_instrument_errors():
    contains = {"name": "mentions", "type": "evaluator", "evaluator": "contains",
                "args": {"value": ["refund", "invoice"], "mode": "all"}}
    assert guards(contains | {"threshold": 1.0}).check(ResponseView("your refund")).outcome() == "block:mentions"
    assert guards(contains | {"threshold": 0.5}).check(ResponseView("your refund")).outcome() == "pass"
    # groundedness needs the retrieved context, which a gateway request does not carry: not applicable
    assert guards({"name": "g", "type": "evaluator", "evaluator": "groundedness"}).check(
        ResponseView("Paris is in France.")).outcome() == "pass"
    # a tool-call-only answer is acting, not refusing
    no_refusal = {"name": "r", "type": "evaluator", "evaluator": "refusal", "args": {"expect_refusal": False}}
    assert guards(no_refusal).check(ResponseView("", (("lookup", "{}"),))).outcome() == "pass"
    # an evaluator that fails as an instrument blocks nothing and is reported as skipped
    v = guards({"name": "broken", "type": "evaluator", "evaluator": "test_broken_instrument"}).check(ResponseView("hi"))
    assert v.outcome() == "pass" and v.skipped == ["broken"]


def test_inline_evaluator_guardrail_with_a_bad_evaluator_is_a_config_error():
    with pytest.raises(ConfigError, match="guardrail judge: .*unknown evaluator 'toxicity'"):
        guards({"name": "judge", "type": "evaluator", "evaluator": "toxicity"})
    with pytest.raises(ConfigError, match="guardrail r: .*threshold"):
        guards({"name": "r", "type": "evaluator", "evaluator": "refusal", "threshold": 3})


def counting_reply(answers):
    calls = []

    def reply(body):
        calls.append(body)
        return answers[min(len(calls) - 1, len(answers) - 1)]

    return reply, calls


@pytest.mark.parametrize("stream", [False, True])
def test_block_replaces_the_answer(duckdb_store, tmp_path, stream):
    reply, _ = counting_reply(["your ssn is 123-45-6789"])
    with scripted_upstream(reply=reply) as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up, guardrails=[
            {"name": "no-ssn", "type": "pii", "action": "block", "message": "I can't share that."}])
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}}) as (url, _):
            c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
            if stream:
                chunks = list(c.chat.completions.create(model="d", messages=MSG, stream=True))
                text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
                finish = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
            else:
                out = c.chat.completions.create(model="d", messages=MSG)
                text, finish = out.choices[0].message.content, [out.choices[0].finish_reason]
    assert text == "I can't share that." and finish == ["content_filter"]
    [span] = spans(duckdb_store)
    assert span["attributes"]["sluice.guardrail"] == "block:no-ssn"


def test_repair_retries_once(duckdb_store, tmp_path):
    reply, calls = counting_reply([{"content": None, "tool_calls": [{"name": "lookup", "arguments": {"order_id": 5}}]},
                                   {"content": None, "tool_calls": [{"name": "lookup", "arguments": {"order_id": "A"}}]}])
    with scripted_upstream(reply=reply) as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up, guardrails=[
            {"name": "order", "type": "json_schema", "schema": ORDER_SCHEMA, "action": "repair"}])
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}}) as (url, _):
            out = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0).chat.completions.create(
                model="d", messages=MSG)
    assert len(calls) == 2
    assert orjson.loads(out.choices[0].message.tool_calls[0].function.arguments) == {"order_id": "A"}
    [span] = spans(duckdb_store)
    assert span["attributes"]["sluice.guardrail"] == "repaired:order" and span["attributes"]["sluice.attempts"] == 2


def test_log_only_records(duckdb_store, tmp_path):
    reply, _ = counting_reply(["contact a@example.com"])
    with scripted_upstream(reply=reply) as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up, guardrails=[
            {"name": "pii", "type": "pii", "action": "log"}])
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}}) as (url, _):
            c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
            out = c.chat.completions.create(model="d", messages=MSG)
            streamed = "".join(ch.choices[0].delta.content or "" for ch in
                               c.chat.completions.create(model="d", messages=MSG, stream=True) if ch.choices)
    assert out.choices[0].message.content == streamed == "contact a@example.com"
    assert [s["attributes"]["sluice.guardrail"] for s in spans(duckdb_store)] == ["log:pii", "log:pii"]


def test_inline_evaluator_guardrail_blocks_through_the_gateway(duckdb_store, tmp_path):
    reply, _ = counting_reply(["I'm sorry, but I cannot help with that request."])
    with scripted_upstream(reply=reply) as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up, guardrails=[
            {"name": "no-over-refusal", "type": "evaluator", "evaluator": "refusal",
             "args": {"expect_refusal": False}, "message": "Let me connect you with a person."}])
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}}) as (url, _):
            out = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0).chat.completions.create(
                model="d", messages=MSG)
    assert out.choices[0].message.content == "Let me connect you with a person."
    assert out.choices[0].finish_reason == "content_filter"
    [span] = spans(duckdb_store)
    assert span["attributes"]["sluice.guardrail"] == "block:no-over-refusal"
