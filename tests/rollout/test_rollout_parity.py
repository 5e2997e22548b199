"""Config parity: app-sent canary spans whose settings differ from the gated release are named by field."""

from __future__ import annotations

from rollout_spans import app_span, gateway_span, put
from sluice.rollout import parity

MANIFEST = {"components": {"responder": {"model": "m", "params": {"temperature": 0.2, "max_tokens": 256},
                                         "prompt": "prompt.j2", "context_budget": 4000}},
            "tools": [{"name": "lookup"}, {"name": "refund"}]}
FILES = {"prompt.j2": "sha256:abc"}


def test_expected_fields_from_the_release():
    assert parity.expected_of(MANIFEST, FILES) == {"temperature": 0.2, "max_tokens": 256, "context_budget": 4000,
                                                   "prompt_digest": "sha256:abc", "tools": ["lookup", "refund"]}


def test_each_differing_field_is_named_and_silence_is_no_evidence():
    expected = parity.expected_of(MANIFEST, FILES)
    same = {"gen_ai.request.temperature": 0.2, "llm.invocation_parameters": '{"max_tokens": 256}'}
    assert parity.mismatches(expected, [same, {}]) == []
    hot = {"llm.invocation_parameters": '{"temperature": 0.9, "max_tokens": 256}', "sluice.prompt_digest": "abc",
           "llm.tools.0.tool.json_schema": '{"type": "function", "function": {"name": "lookup"}}'}
    got = parity.mismatches(expected, [hot, same])
    assert [(m["field"], m["gated"], m["seen"], m["spans"]) for m in got] == [
        ("temperature", 0.2, 0.9, 1), ("tools", ["lookup", "refund"], ["lookup"], 1)]


def test_check_reads_app_spans_of_the_canary_only(store):
    put(store, [app_span(deployment="d", release="bot@2", start_s=5, attributes={"gen_ai.request.max_tokens": 1024}),
                app_span(deployment="d", release="bot@1", start_s=5, attributes={"gen_ai.request.max_tokens": 9}),
                gateway_span(deployment="d", arm="canary", release="bot@2", start_s=5)])
    got = parity.check(store, "d", frozenset({"bot@2"}), MANIFEST, FILES, 0, int(10e9))
    assert [(m["field"], m["seen"]) for m in got] == [("max_tokens", 1024)]
    assert parity.check(store, "d", frozenset({"bot@2"}), MANIFEST, FILES, int(10e9), int(20e9)) == []
