"""Fault handling against scripted loopback upstreams: every failure ends in the right fallback or
a clear error, nothing hangs, and every request leaves a span."""

from __future__ import annotations

import asyncio
import socket
import threading

import httpx
import openai
import pytest

from gateway_fixtures import make_release, serving, spans
from sluice.testing.upstream import scripted_upstream

MSG = [{"role": "user", "content": "hello"}]
BACKUP = [{"model": "m-backup"}]


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=20)


def closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"


def models_called(up) -> list[str]:
    return [e["model"] for e in up.stats()["log"]]


@pytest.mark.parametrize("mode, primary_calls", [("500", 2), ("context", 1), ("429:30", 1)])
def test_failures_fall_back(duckdb_store, tmp_path, mode, primary_calls):
    # 500: retried once then fallback; context length: straight to fallback; 429 asking for
    # longer than max_retry_after_s: straight to fallback, no waiting
    with scripted_upstream(modes={"m-primary": mode}) as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up, fallbacks=BACKUP)
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}, "retries": 1}) as (url, _):
            raw = client(url).chat.completions.with_raw_response.create(model="d", messages=MSG)
            assert raw.parse().choices[0].message.content == "echo: hello"
        assert models_called(up) == ["m-primary"] * primary_calls + ["m-backup"]
    assert raw.headers["x-sluice-route"] == "fallback"
    [span] = spans(duckdb_store)
    assert span["route"] == "fallback" and span["fallback_used"] and span["model"] == "m-backup"
    assert span["attributes"]["sluice.attempts"] == primary_calls + 1


def test_connection_refused_falls_back(duckdb_store, tmp_path):
    with scripted_upstream() as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", closed_port_url(),
                           fallbacks=[{"model": "m-backup", "base_url": str(up)}])
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}, "retries": 0}) as (url, _):
            out = client(url).chat.completions.create(model="d", messages=MSG)
    assert out.model == "m-backup"
    [span] = spans(duckdb_store)
    assert "m-primary: connection" in span["attributes"]["sluice.upstream_errors"]


def test_429_with_short_retry_after_is_retried_on_the_same_model(duckdb_store, tmp_path):
    with scripted_upstream(modes={"m-primary": "429:0.05x1"}) as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up, fallbacks=BACKUP)
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}, "retries": 2}) as (url, _):
            raw = client(url).chat.completions.with_raw_response.create(model="d", messages=MSG)
        assert models_called(up) == ["m-primary", "m-primary"]
    assert raw.headers["x-sluice-route"] == "stable"


def test_all_upstreams_rate_limited_is_a_429_without_client_retry(duckdb_store, tmp_path):
    with scripted_upstream(default_mode="429:30") as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up, fallbacks=BACKUP)
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}}) as (url, _):
            r = httpx.post(url + "/v1/chat/completions", json={"model": "d", "messages": MSG})
    assert r.status_code == 429 and r.headers["x-should-retry"] == "false" and r.headers["retry-after"] == "30"
    assert r.json()["error"]["type"] == "rate_limit_error"


def test_malformed_upstream_body_is_a_clear_502(duckdb_store, tmp_path):
    with scripted_upstream(modes={"m-primary": "malformed"}) as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up, fallbacks=BACKUP)
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}}) as (url, _):
            with pytest.raises(openai.InternalServerError) as e:
                client(url).chat.completions.create(model="d", messages=MSG)
    assert e.value.status_code == 502 and e.value.body["code"] == "upstream_malformed"
    assert "not a valid chat completion" in e.value.body["message"]
    [span] = spans(duckdb_store)
    assert span["status"] == "ERROR" and span["error_type"] == "malformed"


def test_slow_upstream_hits_the_model_timeout_then_falls_back(duckdb_store, tmp_path):
    with scripted_upstream(modes={"m-primary": "slow:5"}) as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up, fallbacks=BACKUP, timeout_s=0.3)
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}, "retries": 0}) as (url, _):
            out = client(url).chat.completions.create(model="d", messages=MSG)
    assert out.model == "m-backup"
    assert spans(duckdb_store)[0]["attributes"]["sluice.upstream_errors"] == '["m-primary: timeout"]'


@pytest.mark.parametrize("stream", [False, True])
def test_deadline_ends_a_slow_request_with_504(duckdb_store, tmp_path, stream):
    with scripted_upstream(default_mode="slow:5") as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up, fallbacks=BACKUP)
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}, "deadline_s": 0.4}) as (url, _):
            r = httpx.post(url + "/v1/chat/completions", json={"model": "d", "messages": MSG, "stream": stream},
                           timeout=20)
    assert r.status_code == 504 and r.json()["error"]["code"] == "deadline_exceeded"
    [span] = spans(duckdb_store)
    assert span["error_type"] == "timeout"


def test_stream_falls_back_before_the_first_byte(duckdb_store, tmp_path):
    with scripted_upstream(modes={"m-primary": "500"}) as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up, fallbacks=BACKUP)
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}, "retries": 0}) as (url, _):
            with client(url).chat.completions.with_streaming_response.create(model="d", messages=MSG,
                                                                             stream=True) as resp:
                route = resp.headers["x-sluice-route"]
                text = "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices)
    assert route == "fallback" and text == "echo: hello"
    assert spans(duckdb_store)[0]["model"] == "m-backup"


def test_stream_cut_after_the_first_byte_is_an_in_stream_error(duckdb_store, tmp_path):
    with scripted_upstream(modes={"m-primary": "cut"}) as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up, fallbacks=BACKUP)
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}}) as (url, _):
            received = []
            with pytest.raises(openai.APIError) as e:
                for chunk in client(url).chat.completions.create(
                        model="d", stream=True, messages=[{"role": "user", "content": "a fairly long question"}]):
                    received.append(chunk)
        assert models_called(up) == ["m-primary"]  # committed: no fallback after the first byte
    assert "failed mid-stream" in e.value.message
    assert "".join(c.choices[0].delta.content or "" for c in received if c.choices) == "echo: a "
    [span] = spans(duckdb_store)
    assert span["status"] == "ERROR" and span["error_type"] == "connection" and span["route"] == "stable"


class StallingUpstream:
    """Sends a role chunk and one content chunk, then stalls; records when its client hangs up."""

    def __init__(self):
        self.closed = threading.Event()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            srv = self.loop.run_until_complete(asyncio.start_server(self.handle, "127.0.0.1", 0))
            self.url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/v1"
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)

    async def handle(self, reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        length = int([ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0].split(b":")[1])
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for delta in (b'{"role":"assistant","content":""}', b'{"content":"partial"}'):
            event = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":' \
                    + delta + b',"finish_reason":null}]}\n\n'
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
        await writer.drain()
        try:
            await asyncio.wait_for(reader.read(), 30)  # returns b"" when the gateway closes the connection
        finally:
            self.closed.set()

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_client_disconnect_mid_stream_closes_the_upstream(duckdb_store, tmp_path):
    up = StallingUpstream()
    try:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up.url, model="m")
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}}) as (url, _):
            with httpx.stream("POST", url + "/v1/chat/completions", timeout=20,
                              json={"model": "d", "messages": MSG, "stream": True}) as r:
                first = next(r.iter_lines())
            assert "partial" in first or first.startswith("data:")
            assert up.closed.wait(10)  # the gateway let go of the upstream once the client left
    finally:
        up.stop()
    [span] = spans(duckdb_store)
    assert span["status"] == "ERROR" and span["error_type"] == "client_disconnected"


def test_circuit_breaker_skips_a_failing_upstream(duckdb_store, tmp_path):
    with scripted_upstream(modes={"m-primary": "500"}) as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up, fallbacks=BACKUP)
        settings = {"deployments": {"d": {"stable": ref}}, "retries": 0, "breaker_failures": 2,
                    "breaker_cooldown_s": 600}
        with serving(duckdb_store, settings) as (url, gw):
            for _ in range(5):
                assert client(url).chat.completions.create(model="d", messages=MSG).model == "m-backup"
            assert gw.breakers.opened == 1
        assert models_called(up).count("m-primary") == 2
    assert len(spans(duckdb_store)) == 5


def test_a_plain_400_is_the_callers_error_and_never_falls_back(duckdb_store, tmp_path):
    """Another model would get the same bad request: a 4xx other than context length, 408, 409
    and 429 goes back to the client as it is, without retry or fallback."""
    with scripted_upstream(modes={"m-primary": "400"}) as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up, fallbacks=BACKUP)
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}, "retries": 2}) as (url, _):
            with pytest.raises(openai.BadRequestError) as e:
                client(url).chat.completions.create(model="d", messages=MSG)
        assert models_called(up) == ["m-primary"]
    assert e.value.status_code == 400
    [span] = spans(duckdb_store)
    assert span["status"] == "ERROR" and not span["fallback_used"]
