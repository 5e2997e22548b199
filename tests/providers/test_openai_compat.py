"""The OpenAI-compatible provider against the scripted upstream on loopback."""

from __future__ import annotations

import asyncio
import socket

import pytest

from sluice.errors import ConfigError
from sluice.providers import make_provider
from sluice.providers.base import ChatRequest, ProviderError, classify_status, parse_retry_after
from sluice.providers.openai_compat import OpenAICompatProvider, parse_tool_calls
from sluice.release.model import ModelRef
from sluice.testing.upstream import scripted_upstream


def ask(url: str, text: str, **kw) -> object:
    async def go():
        p = OpenAICompatProvider(model="m1", base_url=url, **kw)
        try:
            return await p.complete(ChatRequest(model="m1", messages=[{"role": "user", "content": text}],
                                                params={"temperature": 0.0}))
        finally:
            await p.aclose()
    return asyncio.run(go())


def fail(url: str, text: str, **kw) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        ask(url, text, **kw)
    return info.value


def test_success_parses_content_usage_and_model():
    with scripted_upstream() as url:
        resp = ask(url, "hello there")
        assert resp.content == "echo: hello there"
        # upstream counts ceil(len/4): prompt "hello there" = 11 chars -> 3, answer 17 chars -> 5
        assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (3, 5, 8)
        assert resp.model == "m1" and resp.finish_reason == "stop"
        assert url.stats()["requests"] == 1


def test_tool_calls_are_decoded_and_bad_arguments_flagged():
    def reply(body):
        return {"content": None, "tool_calls": [{"name": "lookup", "arguments": {"order": 42}},
                                                {"name": "broken", "arguments": "{not json"}]}
    with scripted_upstream(reply=reply) as url:
        resp = ask(url, "where is my order")
    assert [c.name for c in resp.tool_calls] == ["lookup", "broken"]
    assert resp.tool_calls[0].arguments == {"order": 42}
    assert resp.tool_calls[1].arguments == {"_raw": "{not json"}
    assert resp.warnings == ["tool call broken: arguments are not a JSON object"]
    assert resp.finish_reason == "tool_calls"


@pytest.mark.parametrize("marker, kind, status, retryable, fallback_ok", [
    ("[[500]]", "http_5xx", 500, True, True),
    ("[[503]]", "http_5xx", 503, True, True),
    ("[[400]]", "http_4xx", 400, False, False),
    ("[[context]]", "context_length", 400, False, True),
    ("[[reset]]", "connection", None, True, True),
    ("[[malformed]]", "malformed", None, False, False),
    ("[[cut]]", "connection", None, True, True),
])
def test_failures_are_classified(marker, kind, status, retryable, fallback_ok):
    with scripted_upstream() as url:
        err = fail(url, "q " + marker)
    assert (err.kind, err.status, err.retryable, err.fallback_ok) == (kind, status, retryable, fallback_ok)
    assert "Traceback" not in str(err)


def test_429_carries_retry_after():
    with scripted_upstream() as url:
        err = fail(url, "q [[429:2.5]]")
    assert (err.kind, err.status, err.retryable, err.retry_after) == ("rate_limited", 429, True, 2.5)


def test_malformed_body_message_is_clear():
    with scripted_upstream() as url:
        err = fail(url, "[[malformed]]")
    assert "not a valid chat completion" in err.message


def test_timeout_is_retryable():
    with scripted_upstream() as url:
        err = fail(url, "[[slow:2]]", timeout_s=0.2)
    assert (err.kind, err.retryable) == ("timeout", True)


def test_connection_refused_is_retryable_connection_error():
    with socket.socket() as s:  # a port nobody listens on: bind, read it, close
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = fail(f"http://127.0.0.1:{port}/v1", "hi")
    assert (err.kind, err.retryable, err.fallback_ok) == ("connection", True, True)


def test_api_key_read_from_env_at_call_time_and_sent_as_bearer(monkeypatch):
    seen = {}

    def reply(body):
        return "ok"
    with scripted_upstream(reply=reply) as url:
        monkeypatch.setenv("SLUICE_TEST_KEY", "sk-test-123")
        server = url.server
        original = server.chat

        async def spy(headers, raw, writer):
            seen["auth"] = headers.get("authorization")
            return await original(headers, raw, writer)
        server.chat = spy
        assert ask(url, "hi", api_key_env="SLUICE_TEST_KEY").content == "ok"
    assert seen["auth"] == "Bearer sk-test-123"


def test_missing_env_var_is_config_error_naming_it(monkeypatch):
    monkeypatch.delenv("SLUICE_MISSING_KEY", raising=False)
    with scripted_upstream() as url:
        with pytest.raises(ConfigError, match="SLUICE_MISSING_KEY is not set"):
            ask(url, "hi", api_key_env="SLUICE_MISSING_KEY")
        assert url.stats()["requests"] == 0  # nothing was sent without the key


def test_classify_status_rules():
    assert classify_status(408, {}).retryable and classify_status(409, {}).retryable
    assert not classify_status(401, {}).retryable
    assert not classify_status(500, {}, {"x-should-retry": "false"}).retryable
    assert classify_status(400, {"error": {"message": "maximum context length is 4096"}}).kind == "context_length"


def test_parse_retry_after_forms():
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "Thu, 01 Jan 2026 00:00:10 GMT"}, now=1767225600.0) == 10.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_parse_tool_calls_drops_nameless_calls():
    calls, warnings = parse_tool_calls([{"function": {"arguments": "{}"}}])
    assert calls == [] and warnings == ["tool call without a function name dropped"]


def test_make_provider_unknown_provider_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown provider 'anthropicx'"):
        make_provider(ModelRef(provider="anthropicx", model="m"), tmp_path)
