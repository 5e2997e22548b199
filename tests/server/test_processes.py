"""Real server processes: kill -9 under load loses no acknowledged span; two servers on one
PostgreSQL database share data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

import httpx
import pytest

from sluice.store import open_store
from sluice.telemetry import schema  # noqa: F401 - registers the tables

pytestmark = pytest.mark.slow


@contextmanager
def server_process(store_url: str) -> Iterator[tuple[subprocess.Popen, str]]:
    proc = subprocess.Popen([sys.executable, "-m", "sluice.server", "--store", store_url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("listening "):
            proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {proc.stderr.read()[:2000]}")
        yield proc, line.split()[1]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def batch(client_no: int, request_no: int, spans: int = 50) -> tuple[dict, list[str]]:
    ids = [f"{client_no + 1:08x}{request_no:08x}{k:016x}" for k in range(spans)]  # never the invalid all-zero id
    body = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "load"}}]}, "scopeSpans": [{"spans": [
            {"traceId": t, "spanId": "00000000000000a1", "name": "req", "startTimeUnixNano": "1000",
             "endTimeUnixNano": "5000", "attributes": [{"key": "llm.token_count.prompt", "value": {"intValue": "3"}}]}
            for t in ids]}]}]}
    return body, ids


def test_kill_9_under_load_loses_no_acknowledged_span(tmp_path):
    url = f"duckdb:///{tmp_path}/store.duckdb"
    acked: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()
    with server_process(url) as (proc, base):
        def client(n: int) -> None:
            with httpx.Client(timeout=30) as http:
                for i in range(2000):  # bounded; ends early when the server dies
                    body, ids = batch(n, i)
                    try:
                        r = http.post(base + "/v1/traces", json=body)
                    except httpx.TransportError:
                        return
                    if r.status_code == 200:
                        with lock:
                            acked.extend(ids)
                            if len(acked) >= 20_000:
                                enough.set()

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        assert enough.wait(120), "the server did not acknowledge 20,000 spans"
        os.kill(proc.pid, signal.SIGKILL)  # mid-load: clients still have requests in flight
        for t in threads:
            t.join(60)
    with lock:
        expected = set(acked)
    store = open_store(url)
    try:
        stored = {r[0] for r in store.db.query("SELECT trace_id FROM spans")}
    finally:
        store.close()
    assert len(expected) >= 20_000
    assert expected <= stored, f"{len(expected - stored)} acknowledged spans lost"


@pytest.mark.postgres
def test_two_servers_share_one_postgres(pg_store, pg_database_url):
    with server_process(pg_database_url) as (_, a), server_process(pg_database_url) as (_, b):
        for i, base in enumerate([a, b, a, b, b]):
            body, _ = batch(99, i, spans=10)
            assert httpx.post(base + "/v1/traces", json=body).status_code == 200
        trace = f"{100:08x}{0:08x}{0:016x}"
        assert httpx.post(b + "/api/feedback", json={"trace_id": trace, "kind": "thumbs_down"}).status_code == 200
        for base in (a, b):
            groups = httpx.get(base + "/api/metrics", params={"group_by": "deployment"}).json()["groups"]
            load = next(g for g in groups if g["deployment"] == "load")
            assert (load["requests"], load["input_tokens_per_request"], load["thumbs_down_rate"]) == (50, 3.0, 1 / 50)
            assert httpx.get(base + f"/api/traces/{trace}").json()["feedback"][0]["kind"] == "thumbs_down"
