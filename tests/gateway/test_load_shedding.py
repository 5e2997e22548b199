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
