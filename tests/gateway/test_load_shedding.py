"""Beyond ``max_in_flight`` chat requests, the gateway answers 503 + retry-after at once instead of
queueing; the requests it admitted are answered normally."""

from __future__ import annotations

import threading
import time

import httpx

from gateway_fixtures import make_release, serving, spans
from sluice.testing.upstream import scripted_upstream

CHAT = {"model": "d", "messages": [{"role": "user", "content": "hello"}]}


def test_requests_beyond_the_in_flight_limit_are_shed(duckdb_store, tmp_path):
    with scripted_upstream(default_mode="slow:2") as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up, timeout_s=30)
        settings = {"deployments": {"d": {"stable": ref}}, "max_in_flight": 2, "shed_retry_after_s": 3}
        with serving(duckdb_store, settings) as (url, gw):
            answers: list[httpx.Response] = []
            slow = [threading.Thread(target=lambda: answers.append(httpx.post(url + "/v1/chat/completions", json=CHAT,
                                                                              timeout=30))) for _ in range(2)]
            for t in slow:
                t.start()
            for _ in range(500):  # until both are admitted (bounded: 10 s)
                if gw.in_flight == 2:
                    break
                time.sleep(0.02)
            assert gw.in_flight == 2
            shed = httpx.post(url + "/v1/chat/completions", json=CHAT, timeout=30)
            for t in slow:
                t.join()
            assert shed.status_code == 503
            assert (shed.headers["retry-after"], shed.headers["x-should-retry"]) == ("3", "true")
            assert shed.json()["error"]["code"] == "overloaded"
            assert [a.status_code for a in answers] == [200, 200]
            assert gw.in_flight == 0
            assert httpx.post(url + "/v1/chat/completions", json=CHAT, timeout=30).status_code == 200
            assert (gw.stats()["shed"], gw.stats()["requests"]) == (1, 4)
            assert "sluice_gateway_shed_total 1" in httpx.get(url + "/metrics").text
    assert len(spans(duckdb_store)) == 3  # the shed request leaves no span


def test_no_limit_when_zero(duckdb_store, tmp_path):
    with scripted_upstream() as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up)
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}, "max_in_flight": 0}) as (url, gw):
            assert httpx.post(url + "/v1/chat/completions", json=CHAT).status_code == 200
            assert gw.stats()["shed"] == 0


def test_requests_are_shed_while_the_event_loop_lags(duckdb_store, tmp_path):
    """Issue 10 item 8: CPU saturation shows as event-loop lag, not as requests in flight. A
    coroutine hogging the server's loop stands in for it; no timing is asserted, only that a
    request arriving while the loop lags is refused at once and that admission resumes."""
    import asyncio

    with scripted_upstream() as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up)
        settings = {"deployments": {"d": {"stable": ref}}, "shed_lag_ms": 30, "shed_retry_after_s": 0.25}
        with serving(duckdb_store, settings) as (url, gw):
            async def hog() -> None:  # every turn of the loop takes 100 ms, for 3 s
                end = time.monotonic() + 3.0
                while time.monotonic() < end:
                    time.sleep(0.1)
                    await asyncio.sleep(0)

            hogging = asyncio.run_coroutine_threadsafe(hog(), gw.shedder.loop)
            for _ in range(500):  # until the monitor has cut the admitted share (bounded: 10 s)
                if gw.shedder.share < 0.2 or hogging.done():
                    break
                time.sleep(0.02)
            assert gw.shedder.share < 0.2
            shed = httpx.post(url + "/v1/chat/completions", json=CHAT, timeout=30)
            hogging.result(timeout=30)
            assert shed.status_code == 503 and shed.json()["error"]["code"] == "overloaded"
            assert (shed.headers["retry-after"], shed.headers["retry-after-ms"]) == ("1", "250")
            assert "event loop" in shed.json()["error"]["message"]
            for _ in range(100):  # admission resumes once the lag is gone (bounded: ~10 s)
                r = httpx.post(url + "/v1/chat/completions", json=CHAT, timeout=30)
                if r.status_code == 200:
                    break
                time.sleep(0.1)
            assert r.status_code == 200
            assert gw.stats()["shed_lag"] >= 1
            assert "sluice_gateway_shed_lag_total" in httpx.get(url + "/metrics").text


def test_the_lag_decision_and_retry_headers():
    from sluice.gateway.protocol import retry_after_headers
    from sluice.gateway.shedding import overloaded

    assert overloaded([0.05, 0.04, 0.06], 0.03) and overloaded([0.0, 0.05, 0.04, 0.06], 0.03)
    assert not overloaded([0.05, 0.001, 0.06], 0.03) and not overloaded([0.05, 0.06], 0.03)
    assert not overloaded([0.5, 0.5, 0.5], 0.0)
    assert retry_after_headers(0.25) == [(b"retry-after", b"1"), (b"retry-after-ms", b"250")]
    assert retry_after_headers(2.5) == [(b"retry-after", b"3"), (b"retry-after-ms", b"2500")]


def test_the_admitted_share_shrinks_under_saturation_and_grows_back():
    """AIMD: cut by a factor while the loop's CPU share is over the limit or the lag lasts, grow
    back while both are calm, hold in between; never below MIN_SHARE, never above 1."""
    from sluice.gateway.shedding import MIN_SHARE, steer

    assert steer(1.0, 0.95, False, 0.9) < 1.0 and steer(1.0, 0.5, True, 0.9) < 1.0
    assert steer(0.5, 0.5, False, 0.9) > 0.5 and steer(0.5, 0.85, False, 0.9) == 0.5
    assert steer(1.0, 0.1, False, 0.9) == 1.0
    share = 1.0
    for _ in range(200):
        share = steer(share, 1.0, False, 0.9)
    assert share == MIN_SHARE
    for _ in range(200):
        share = steer(share, 0.2, False, 0.9)
    assert share == 1.0
    assert steer(0.5, 1.0, False, 0.0) > 0.5  # no CPU limit: only lag cuts the share


def test_a_standing_queue_of_admitted_requests_cuts_the_share():
    """CoDel's rule: admitted requests that all waited past the target for the loop, tick after
    tick for a whole window, mean a standing queue; a burst (one short wait in the window) does not."""
    from sluice.gateway.config import GatewaySettings
    from sluice.gateway.shedding import WAIT_TARGET_S, WAIT_WINDOW, Shedder

    shedder = Shedder(GatewaySettings(shed_lag_ms=30))
    for tick in range(WAIT_WINDOW):
        shedder.waited(WAIT_TARGET_S * 4)
        shedder.waited(WAIT_TARGET_S * 2)
        if tick == 2:
            shedder.waited(WAIT_TARGET_S / 10)  # one request went straight through: no standing queue
        shedder.tick(0.0, 0.5)
    assert not shedder.queueing() and shedder.share == 1.0
    for _ in range(WAIT_WINDOW):
        shedder.waited(WAIT_TARGET_S * 2)
        shedder.tick(0.0, 0.5)
    assert shedder.queueing() and shedder.share < 1.0
    cut = shedder.share
    for _ in range(WAIT_WINDOW):
        shedder.tick(0.0, 0.5)  # nothing admitted in these ticks: no wait, no queue
    assert not shedder.queueing() and shedder.share > cut
    off = Shedder(GatewaySettings(shed_lag_ms=0))  # the one switch turns the queue signal off too
    for _ in range(WAIT_WINDOW):
        off.waited(1.0)
        off.tick(0.0, 1.0)
    assert not off.queueing() and off.share == 1.0


def test_a_share_is_spread_evenly_over_requests():
    from sluice.gateway.config import GatewaySettings
    from sluice.gateway.shedding import Shedder

    shedder = Shedder(GatewaySettings(shed_lag_ms=30))
    shedder.share = 0.25
    verdicts = [shedder.early_refusal(True) is None for _ in range(100)]
    assert sum(verdicts) == 25 and verdicts[3::4] == [True] * 25
    assert (shedder.shed, shedder.shed_early) == (75, 75)


def _raw(url: str):
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(url)
    return socket.create_connection((u.hostname, u.port), timeout=30)


def _chat_request(extra: str = "", body: bytes | None = None) -> bytes:
    import json

    body = json.dumps(CHAT).encode() if body is None else body
    return (f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{extra}"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


def _read_response(sock, buf: bytes = b"") -> tuple[int, dict[str, str], bytes, bytes]:
    """One HTTP/1.1 response with a content-length: (status, headers, body, bytes after it)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a response"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    need = int(headers["content-length"])
    while len(rest) < need:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a body"
        rest += chunk
    return int(lines[0].split()[1]), headers, rest[:need], rest[need:]


def _hold_share(gw, share: float) -> None:
    """Stop the monitor (it would steer the share) and fix the admitted share."""
    import asyncio

    asyncio.run_coroutine_threadsafe(gw.shedder.stop(), gw.shedder.loop).result(timeout=10)
    gw.shedder.share = share


def test_past_saturation_the_protocol_refuses_before_any_request_handling(duckdb_store, tmp_path):
    """Issue 10 item 8: a refusal must cost far less than an answer. The 503 is written by the HTTP
    protocol once the head is parsed: the body is skipped, the keep-alive connection serves the
    next request, other endpoints still answer, and nothing reaches the gateway's handler."""
    import json

    with scripted_upstream() as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up)
        settings = {"deployments": {"d": {"stable": ref}}, "shed_lag_ms": 30, "shed_retry_after_s": 0.5}
        with serving(duckdb_store, settings) as (url, gw):
            _hold_share(gw, 0.0)
            with _raw(url) as sock:
                big = json.dumps({**CHAT, "messages": [{"role": "user", "content": "x" * 200_000}]}).encode()
                sock.sendall(_chat_request(body=big))  # a body spread over many reads is skipped whole
                status, headers, body, rest = _read_response(sock)
                assert status == 503 and json.loads(body)["error"]["code"] == "overloaded"
                assert (headers["retry-after"], headers["retry-after-ms"], headers["x-should-retry"]) == ("1", "500",
                                                                                                          "true")
                assert "connection" not in headers  # kept alive
                sock.sendall(_chat_request() + b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")  # pipelined
                status2, _, _, rest = _read_response(sock, rest)
                status3, _, health, _ = _read_response(sock, rest)
                assert (status2, status3) == (503, 200) and json.loads(health)["status"] == "ok"
                gw.shedder.share = 1.0
                sock.sendall(_chat_request())
                status4, _, answer, _ = _read_response(sock)
                assert status4 == 200 and json.loads(answer)["choices"][0]["message"]["content"]
            with _raw(url) as sock:  # a client waiting for 100-continue gets the 503 and the close
                gw.shedder.share = 0.0
                sock.sendall(_chat_request(extra="expect: 100-continue\r\n").split(b"\r\n\r\n")[0] + b"\r\n\r\n")
                status5, headers5, _, _ = _read_response(sock)
                assert status5 == 503 and headers5["connection"] == "close"
                assert sock.recv(1) == b""
            stats = gw.stats()
            assert (stats["shed"], stats["shed_early"], stats["in_flight"]) == (3, 3, 0)
            text = httpx.get(url + "/metrics").text
            assert "sluice_gateway_shed_early_total 3" in text and "sluice_gateway_admitted_share_ratio" in text
    assert len(spans(duckdb_store)) == 1  # only the answered request left a span


def test_a_pipelined_request_is_never_answered_ahead_of_the_one_before_it(duckdb_store, tmp_path):
    """Behind an unfinished request on the same connection the protocol does not refuse early (its
    503 would overtake the first answer); the gateway's own admission refuses it, in order."""
    with scripted_upstream(default_mode="slow:0.5") as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up, timeout_s=30)
        settings = {"deployments": {"d": {"stable": ref}}, "shed_lag_ms": 30}
        with serving(duckdb_store, settings) as (url, gw):
            _hold_share(gw, 1.0)
            with _raw(url) as sock:
                sock.sendall(_chat_request())
                for _ in range(500):  # until the first is in flight (bounded: 10 s)
                    if gw.in_flight == 1:
                        break
                    time.sleep(0.02)
                gw.shedder.share = 0.0
                sock.sendall(_chat_request())
                first, _, _, rest = _read_response(sock)
                second, _, body, _ = _read_response(sock, rest)
            assert (first, second) == (200, 503)
            assert gw.stats()["shed_early"] == 0 and gw.stats()["shed"] == 1
