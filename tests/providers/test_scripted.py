"""The scripted (fake) model: matching order, errors per attempt, usage estimate, script errors."""

from __future__ import annotations

import asyncio

import pytest

from sluice.errors import ConfigError
from sluice.providers import make_provider
from sluice.providers.base import ChatRequest, ProviderError
from sluice.providers.scripted import ScriptedProvider, estimate_tokens, load_script, parse_script
from sluice.release.model import ModelRef

SCRIPT = """
responses:
  - row_id: r1
    content: "row one for {cohort}"
  - cohort: enterprise
    pattern: refund
    content: enterprise refund
  - pattern: "(?i)refund"
    content: "refund policy: 30 days"
    usage: {prompt_tokens: 7, completion_tokens: 3, total_tokens: 10}
  - pattern: weather
    tool_calls: [{name: get_weather, arguments: {city: Paris}}]
  - pattern: flaky
    content: finally
    errors: [{status: 500}, {status: 429, retry_after: 0.5}]
  - pattern: huge
    errors: [{kind: context_length}]
default:
  content: "I do not know: {last_user}"
"""


def call(p: ScriptedProvider, text: str, row_id=None, cohort=None, model="fake"):
    req = ChatRequest(model=model, messages=[{"role": "user", "content": text}],
                      metadata={"row_id": row_id, "cohort": cohort})
    return asyncio.run(p.complete(req))


@pytest.fixture
def provider():
    return ScriptedProvider(parse_script(SCRIPT, "script.yaml"), model="fake")


def test_row_id_wins_over_rules(provider):
    assert call(provider, "refund please", row_id="r1", cohort="enterprise").content == "row one for enterprise"


def test_rules_in_file_order_with_cohort_and_pattern(provider):
    assert call(provider, "a refund", cohort="enterprise").content == "enterprise refund"
    assert call(provider, "a REFUND", cohort="free").content == "refund policy: 30 days"
    assert call(provider, "hello", cohort="free").content == "I do not know: hello"


def test_given_usage_is_used_and_missing_usage_is_estimated(provider):
    assert call(provider, "refund").usage.total_tokens == 10
    resp = call(provider, "hello")  # prompt 5 chars -> 2 tokens; answer "I do not know: hello" 20 chars -> 5
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (2, 5, 7)
    assert estimate_tokens("") == 0 and estimate_tokens("abcde") == 2


def test_tool_calls(provider):
    resp = call(provider, "weather in Paris?")
    assert [(c.name, c.arguments) for c in resp.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert resp.finish_reason == "tool_calls"


def test_errors_fail_the_first_attempts_then_answer(provider):
    with pytest.raises(ProviderError) as first:
        call(provider, "flaky", row_id="x")
    assert (first.value.status, first.value.retryable) == (500, True)
    with pytest.raises(ProviderError) as second:
        call(provider, "flaky", row_id="x")
    assert (second.value.status, second.value.retry_after) == (429, 0.5)
    assert call(provider, "flaky", row_id="x").content == "finally"
    # attempts are counted per (model, row): another model starts afresh
    with pytest.raises(ProviderError):
        call(provider, "flaky", row_id="x", model="other")


def test_context_length_error_allows_fallback(provider):
    with pytest.raises(ProviderError) as info:
        call(provider, "huge")
    assert (info.value.kind, info.value.retryable, info.value.fallback_ok) == ("context_length", False, True)


def test_latency_is_a_real_sleep():
    p = ScriptedProvider(parse_script("- content: slow\n  latency_ms: 30\n", "s.yaml"))

    async def timed():
        loop = asyncio.get_running_loop()
        t = loop.time()
        await p.complete(ChatRequest(model="m", messages=[]))
        return loop.time() - t
    assert asyncio.run(timed()) >= 0.03  # asyncio.sleep never wakes early


def test_jsonl_script_and_make_provider_from_bundle_files(tmp_path):
    text = '{"pattern": "hi", "content": "hello"}\n\n{"default": true, "content": "?"}\n'
    ref = ModelRef(provider="scripted", model="fake", script="model.jsonl")
    p = make_provider(ref, None, files={"model.jsonl": text.encode()})
    assert call(p, "hi there").content == "hello" and call(p, "bye").content == "?"
    (tmp_path / "model.jsonl").write_text(text)
    assert call(make_provider(ref, tmp_path), "bye").content == "?"


@pytest.mark.parametrize("text, name, message", [
    ("responses:\n  - content: a\n    latency_ms: -1\n", "s.yaml",
     "s.yaml:3, field 'responses[0].latency_ms': Input should be greater than or equal to 0"),
    ("responses:\n  - contnet: a\n", "s.yaml", "s.yaml:2, field 'responses[0].contnet': is not a known field"),
    ("- errors: [{status: 500, kind: timeout}]\n", "s.yaml", "give status or kind"),
    ("answers: []\n", "s.yaml", "s.yaml:1, field 'answers': is not a known field"),
    ('{"content": "a"}\n{"content": \n', "s.jsonl", "s.jsonl:2: invalid JSON"),
])
def test_script_errors_name_file_line_and_field(text, name, message):
    with pytest.raises(ConfigError) as info:
        parse_script(text, name)
    assert message in str(info.value)


def test_missing_script_file_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read script"):
        load_script(tmp_path / "nope.yaml")


def test_scripted_latency_is_reported_and_recorded_by_the_runner():
    """A busy machine slows the wall clock, not the script: the run records the scripted latency."""
    from sluice.release.model import Release
    from sluice.runner.messages import make_renderer
    from sluice.runner.pacing import RateLimits, RetryPolicy
    from sluice.runner.targets import CallContext, ChatTarget
    from sluice.dataset.row import Row
    from sluice.providers.http import make_client

    script = b"- default: true\n  content: hi\n  latency_ms: 12.5\n"
    release = Release.model_validate({"name": "r", "version": "1", "components": {"responder": {
        "provider": "scripted", "model": "m", "script": "s.yaml"}}})
    files = {"s.yaml": script}
    row = Row(id="x", input=[{"role": "user", "content": "hello"}])

    async def go():
        client = make_client()
        try:
            ctx = CallContext(policy=RetryPolicy(retries=0), limits=RateLimits(None), client=client, files=files)
            target = ChatTarget(release, ctx, make_renderer(release, files))
            return await target.run(row, {})
        finally:
            await client.aclose()

    out = asyncio.run(go())
    assert (out.output, out.latency_ms) == ("hi", 12.5)
