"""Issue 10 item 5: well-formed upstream JSON of the wrong shape is a 502 ``upstream_malformed``
(no fallback, as documented) recorded as an error on the span and in metrics — never a 500 with
a traceback recorded as 200/OK; any unexpected exception is an error on the span and in metrics."""

from __future__ import annotations

import json

import httpx
import pytest

from gateway_fixtures import make_release, serving, spans
from odd_upstream import completion, odd_upstream
from sluice.gateway.answer_shape import chunk_problem, completion_problem

CHAT = {"model": "d", "messages": [{"role": "user", "content": "hello"}]}
BAD_BODIES = {
    "message a string": completion(message="hi there"),
    "usage strings": completion(usage={"prompt_tokens": "3", "completion_tokens": "2", "total_tokens": "5"}),
    "numeric content": completion(message={"role": "assistant", "content": 42}),
    "bad tool_calls": completion(message={"role": "assistant", "content": None, "tool_calls": ["x"]}),
    "tool_calls an object": completion(message={"role": "assistant", "content": None, "tool_calls": {"a": 1}}),
    "choices a string": json.dumps({"id": "c", "choices": "abc"}).encode(),
    "choice a number": json.dumps({"id": "c", "choices": [7]}).encode(),
    "usage a list": completion(usage=[1, 2]),
}


def _sse(*chunks: dict) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


BAD_STREAMS = {
    "delta a string": _sse({"choices": [{"index": 0, "delta": "oops"}]}),
    "choices a string": _sse({"choices": "abc"}),
    "numeric content": _sse({"choices": [{"index": 0, "delta": {"content": 5}}]}),
    "usage strings": _sse({"choices": [], "usage": {"prompt_tokens": "x"}}),
}


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_a_wrong_shape_is_a_502_recorded_as_an_error(duckdb_store, tmp_path, name):
    with odd_upstream(lambda h, b: (200, BAD_BODIES[name], "application/json")) as base:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", base, fallbacks=[{"model": "m-second"}])
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}}) as (url, _gw):
            r = httpx.post(url + "/v1/chat/completions", json=CHAT, timeout=30)
            metrics = httpx.get(url + "/metrics").text
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "upstream_malformed"
    assert 'status="502"' in metrics and 'status="200"' not in metrics
    [span] = spans(duckdb_store)
    assert span["status"] == "ERROR" and span["error_type"] == "malformed"
    assert span["attributes"]["sluice.attempts"] == 1  # malformed: no fallback


@pytest.mark.parametrize("name", sorted(BAD_STREAMS))
def test_a_wrong_shape_in_a_stream_is_a_502(duckdb_store, tmp_path, name):
    with odd_upstream(lambda h, b: (200, BAD_STREAMS[name], "text/event-stream")) as base:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", base)
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}}) as (url, _gw):
            r = httpx.post(url + "/v1/chat/completions", json={**CHAT, "stream": True}, timeout=30)
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "upstream_malformed"
    [span] = spans(duckdb_store)
    assert span["status"] == "ERROR" and span["error_type"] == "malformed"


def test_an_unexpected_exception_is_an_error_on_the_span_and_in_metrics(duckdb_store, tmp_path, monkeypatch):
    import sluice.gateway.dispatch as dispatch

    def broken(*a, **kw):
        raise RuntimeError("a bug nobody foresaw")

    monkeypatch.setattr(dispatch, "answered", broken)
    with odd_upstream(lambda h, b: (200, completion(), "application/json")) as base:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", base)
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}}) as (url, _gw):
            r = httpx.post(url + "/v1/chat/completions", json=CHAT, timeout=30)
            metrics = httpx.get(url + "/metrics").text
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error" and "Traceback" not in r.text and "bug" not in r.text
    assert 'status="500"' in metrics
    [span] = spans(duckdb_store)
    assert span["status"] == "ERROR" and span["error_type"] == "internal_error"


def test_good_shapes_pass():
    assert completion_problem(json.loads(completion())) is None
    calls = {"role": "assistant", "content": None,
             "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    assert completion_problem(json.loads(completion(message=calls))) is None
    assert chunk_problem({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "x"}]}}]}) is None
    assert chunk_problem({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}) is None
