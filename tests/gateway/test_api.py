"""The OpenAI wire format through the official client: completions, streams, models, headers,
release rendering, and bad input answered with 4xx in the OpenAI error format."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from gateway_fixtures import make_release, serving, spans
from sluice.testing.upstream import scripted_upstream


def echo_request(body):
    """The upstream answers with what it received: system prompt and sampling params."""
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), None)
    return orjson.dumps({"system": system, "temperature": body.get("temperature"), "model": body.get("model"),
                         "n_messages": len(body["messages"]), "seed": body.get("seed")}).decode()


@pytest.fixture
def echo_upstream():
    with scripted_upstream(reply=echo_request) as url:
        yield url


def client(url: str, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, **kw)


def test_non_stream_renders_the_release(duckdb_store, tmp_path, echo_upstream):
    ref = make_release(duckdb_store, tmp_path, "bot", "1", echo_upstream, model="up-model", system="RELEASE SYSTEM",
                       params={"temperature": 0.3})
    with serving(duckdb_store, {"deployments": {"support": {"stable": ref}}}) as (url, gw):
        raw = client(url).chat.completions.with_raw_response.create(
            model="support", temperature=1.5, seed=7,
            messages=[{"role": "system", "content": "client system"}, {"role": "user", "content": "hi"}])
        done = raw.parse()
    seen = orjson.loads(done.choices[0].message.content)
    # the release's system prompt replaced the client's; release params win, others pass through
    assert seen == {"system": "RELEASE SYSTEM", "temperature": 0.3, "model": "up-model", "n_messages": 2, "seed": 7}
    release = gw.deployments["support"].stable
    assert raw.headers["x-sluice-release"] == release.digest
    assert raw.headers["x-sluice-route"] == "stable"
    trace_id = raw.headers["x-sluice-trace-id"]
    [span] = spans(duckdb_store)
    assert span["trace_id"] == trace_id and span["deployment"] == "support" and span["release"] == release.digest
    assert span["route"] == "stable" and span["status"] == "OK" and span["is_request"]
    assert span["input_tokens"] == done.usage.prompt_tokens and span["output_tokens"] == done.usage.completion_tokens
    assert span["attributes"]["sluice.attempts"] == 1


@pytest.mark.parametrize("include_usage", [True, False])
def test_stream(duckdb_store, tmp_path, upstream, include_usage):
    ref = make_release(duckdb_store, tmp_path, "bot", "1", upstream)
    with serving(duckdb_store, {"deployments": {"support": {"stable": ref}}}) as (url, _):
        kw = {"stream_options": {"include_usage": True}} if include_usage else {}
        with client(url).chat.completions.with_streaming_response.create(
                model="support", stream=True, messages=[{"role": "user", "content": "tell me a long story"}],
                **kw) as resp:
            assert resp.headers["x-sluice-route"] == "stable"
            assert resp.headers["content-type"].startswith("text/event-stream")
            chunks = list(resp.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: tell me a long story"
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == (1 if include_usage else 0)
    [span] = spans(duckdb_store)
    assert span["status"] == "OK" and span["ttft_ms"] is not None
    assert span["output_tokens"] == 7  # usage is traced even when the client did not ask for it
    assert span["attributes"]["output.value"] == text


def test_models_lists_deployments(duckdb_store, tmp_path, upstream):
    ref = make_release(duckdb_store, tmp_path, "bot", "1", upstream)
    with serving(duckdb_store, {"deployments": {"b": {"stable": ref}, "a": {"stable": ref}}}) as (url, _):
        assert [m.id for m in client(url).models.list()] == ["a", "b"]


def test_template_release_renders_the_last_user_message(duckdb_store, tmp_path, upstream):
    ref = make_release(duckdb_store, tmp_path, "bot", "1", upstream, prompt="Q: {{ question }}")
    with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}}) as (url, _):
        out = client(url).chat.completions.create(model="d", messages=[{"role": "user", "content": "why"}])
    assert out.choices[0].message.content == "echo: Q: why"


@pytest.mark.parametrize("body, headers, status, code, text", [
    (b"{not json", {}, 400, "invalid_request", "not valid JSON"),
    (b"[1, 2]", {}, 400, "invalid_request", "must be a JSON object"),
    (b'{"messages": [{"role": "user", "content": "x"}]}', {}, 400, "invalid_request", "'model' is required"),
    (b'{"model": "support"}', {}, 400, "invalid_request", "'messages' is required"),
    (b'{"model": "support", "messages": ["x"]}', {}, 400, "invalid_request", "messages[0]"),
    (b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}', {}, 404, "model_not_found",
     "'nope' does not exist"),
    (b'{"model": "support", "messages": [{"role": "user", "content": "' + b"x" * 3000 + b'"}]}', {}, 413,
     "request_too_large", "exceeds the limit"),
    (b'{"model": "support", "messages": [{"role": "user", "content": "x"}]}', {"x-sluice-release": "zzz@9"}, 400,
     "unknown_release", "none of deployment support's releases"),
])
def test_bad_input_gets_openai_errors(duckdb_store, tmp_path, upstream, body, headers, status, code, text):
    ref = make_release(duckdb_store, tmp_path, "bot", "1", upstream)
    with serving(duckdb_store, {"deployments": {"support": {"stable": ref}}, "max_body_bytes": 2000}) as (url, _):
        r = httpx.post(url + "/v1/chat/completions", content=body, headers={"content-type": "application/json", **headers})
    assert r.status_code == status
    err = r.json()["error"]
    assert err["code"] == code and text in err["message"] and set(err) == {"message", "type", "param", "code"}
    assert r.headers["x-should-retry"] == "false" and r.headers["x-sluice-trace-id"]
    [span] = spans(duckdb_store)  # bad requests are traced too
    assert span["status"] == "ERROR" and span["attributes"]["http.response.status_code"] == status


def test_oversized_streamed_body_is_413(duckdb_store, tmp_path, upstream):
    ref = make_release(duckdb_store, tmp_path, "bot", "1", upstream)
    with serving(duckdb_store, {"deployments": {"support": {"stable": ref}}, "max_body_bytes": 1000}) as (url, _):
        r = httpx.post(url + "/v1/chat/completions", content=iter([b"{", b" " * 1500, b"}"]))
    assert r.status_code == 413


def test_official_client_raises_typed_errors(duckdb_store, tmp_path, upstream):
    ref = make_release(duckdb_store, tmp_path, "bot", "1", upstream)
    with serving(duckdb_store, {"deployments": {"support": {"stable": ref}}}) as (url, _):
        with pytest.raises(openai.NotFoundError) as e:
            client(url).chat.completions.create(model="missing", messages=[{"role": "user", "content": "x"}])
    assert e.value.body["code"] == "model_not_found"


def test_unknown_release_in_settings_is_a_config_error(duckdb_store):
    from sluice.errors import ConfigError
    from sluice.gateway.app import make_gateway
    from sluice.gateway.config import GatewaySettings

    settings = GatewaySettings.model_validate({"deployments": {"support": {"stable": "ghost@1"}}})
    with pytest.raises(ConfigError) as e:
        make_gateway(settings, duckdb_store)
    assert e.value.location.field == "gateway.deployments.support.stable" and "ghost@1" in str(e.value)
