"""Audit findings on keys (issue 10, items 1, 2, 4, 11): bogus tokens cost no memory, oversized
heads are refused before any lookup, no key check touches the store on the event loop, revoking
the last key closes the server, every entry point refuses an open non-loopback bind, and clients
refused at the door write no rows but are counted."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from urllib.parse import urlparse

import httpx
import pytest

from gateway_fixtures import make_release, serving, spans
from sluice.auth.keys import MAX_TOKEN_BYTES, KeyRing, create_key, revoke_key

CHAT = {"model": "d", "messages": [{"role": "user", "content": "hello"}]}


def test_bogus_tokens_leave_nothing_behind(duckdb_store):
    _, real = create_key(duckdb_store, "app", "gateway")
    ring = KeyRing(duckdb_store)
    ring.verify("sluice_gateway_000000000000_warmup")
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i in range(300):  # 300 distinct 64 KB tokens: 19 MB if anything kept them
            assert ring.verify(f"sluice_gateway_{i:012d}_" + "x" * 65536) is None
            assert ring.verify(f"sluice_gateway_{i:012d}_{'y' * 40}") is None
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    kept = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
    assert kept < 1_000_000
    assert ring.verify(real).scope == "gateway"
    assert ring.verify(real + "x" * MAX_TOKEN_BYTES) is None  # absurdly long: refused unread


def _raw_request(url: str, head: bytes) -> bytes:
    u = urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(head)
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            chunks.append(data)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


def test_an_oversized_request_head_is_refused_with_431(duckdb_store):
    with serving(duckdb_store, {}) as (url, _):
        big = b"GET /healthz HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sluice_admin_0_" + b"a" * 40_000 + b"\r\n\r\n"
        assert _raw_request(url, big).startswith(b"HTTP/1.1 431 ")
        many = b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 100)
                                                                  for i in range(400)) + b"\r\n"
        assert _raw_request(url, many).startswith(b"HTTP/1.1 431 ")
        # a normal head, and a large body behind it in the same packet, are fine
        assert httpx.get(url + "/healthz", headers={"x-big": "v" * 20_000}).status_code == 200
        body = b'{"model": "nope", "messages": [{"role": "user", "content": "' + b"z" * 60_000 + b'"}]}'
        r = httpx.post(url + "/v1/chat/completions", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 404


class _Recording:
    """A store ``Database`` proxy remembering which threads called it."""

    def __init__(self, db):
        self._db = db
        self.threads: list[str] = []

    def __getattr__(self, name):
        attr = getattr(self._db, name)
        if name in ("query", "query_one", "execute", "executemany"):
            def call(*a, **kw):
                self.threads.append(threading.current_thread().name)
                return attr(*a, **kw)
            return call
        return attr


def test_key_checks_never_query_the_store_on_the_event_loop(store, tmp_path, upstream):
    ref = make_release(store, tmp_path, "bot", "1", upstream)
    _, admin = create_key(store, "ops", "admin")
    with serving(store, {"deployments": {"d": {"stable": ref}}}) as (url, _):
        recording = _Recording(store.db)
        store.db = recording
        try:
            for i in range(20):
                bogus = {"authorization": f"Bearer sluice_admin_{i:012d}_nothere"}
                assert httpx.post(url + "/v1/chat/completions", json=CHAT, headers=bogus).status_code == 401
                assert httpx.get(url + "/api/metrics", headers=bogus).status_code == 401
                assert httpx.post(url + "/v1/traces", json={"resourceSpans": []}, headers=bogus).status_code == 401
                assert httpx.get(url + "/v1/models", headers=bogus).status_code == 401
            assert httpx.get(url + "/v1/models", headers={"authorization": f"Bearer {admin}"}).status_code == 200
        finally:
            store.db = recording._db
    assert "sluice-server" not in recording.threads  # the event loop's thread


def test_revoking_the_last_key_keeps_the_server_closed(store, tmp_path, upstream):
    ref = make_release(store, tmp_path, "bot", "1", upstream)
    rec, admin = create_key(store, "ops", "admin")
    with serving(store, {"deployments": {"d": {"stable": ref}}}) as (url, _):
        assert httpx.get(url + "/api/metrics").status_code == 401
        revoke_key(store, rec.id)
        for _ in range(200):  # until the revocation has reached the server (bounded: ~20 s)
            if httpx.get(url + "/api/metrics", headers={"authorization": f"Bearer {admin}"}).status_code == 401:
                break
            time.sleep(0.1)
        assert httpx.get(url + "/api/metrics", headers={"authorization": f"Bearer {admin}"}).status_code == 401
        assert httpx.get(url + "/api/metrics").status_code == 401
        assert httpx.get(url + "/v1/models").status_code == 401
        assert httpx.post(url + "/v1/chat/completions", json=CHAT).status_code == 401
    assert KeyRing(store).enforced()  # and after a restart


def test_a_key_created_while_serving_is_accepted_soon(duckdb_store):
    with serving(duckdb_store, {}) as (url, _):
        _, admin = create_key(duckdb_store, "ops", "admin")
        for _ in range(200):  # bounded: ~20 s
            if httpx.get(url + "/v1/models", headers={"authorization": f"Bearer {admin}"}).status_code == 200 \
                    and httpx.get(url + "/v1/models").status_code == 401:
                break
            time.sleep(0.1)
        assert httpx.get(url + "/v1/models", headers={"authorization": f"Bearer {admin}"}).status_code == 200
        assert httpx.get(url + "/v1/models").status_code == 401


@pytest.mark.parametrize("module", ["sluice.server", "sluice.gateway"])
def test_every_entry_point_refuses_an_open_non_loopback_bind(tmp_path, module):
    store = f"duckdb:///{tmp_path}/open.duckdb"
    try:
        done = subprocess.run([sys.executable, "-m", module, "--store", store, "--host", "0.0.0.0", "--port", "0"],
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"python -m {module} served on 0.0.0.0 with no API key")
    assert done.returncode == 3
    assert "refusing to bind 0.0.0.0 with no API key" in done.stderr and "Traceback" not in done.stderr


def test_refused_clients_write_no_spans_and_are_counted(duckdb_store, tmp_path, upstream):
    ref = make_release(duckdb_store, tmp_path, "bot", "1", upstream)
    _, admin = create_key(duckdb_store, "ops", "admin")
    _, ingest = create_key(duckdb_store, "collector", "ingest")
    with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}}) as (url, _):
        assert httpx.post(url + "/v1/chat/completions", json=CHAT).status_code == 401
        assert httpx.post(url + "/v1/chat/completions", json=CHAT,
                          headers={"authorization": "Bearer sluice_admin_000000000000_no"}).status_code == 401
        assert httpx.post(url + "/v1/chat/completions", json=CHAT,
                          headers={"authorization": f"Bearer {ingest}"}).status_code == 403
        assert httpx.get(url + "/api/metrics").status_code == 401
        text = httpx.get(url + "/metrics", headers={"authorization": f"Bearer {admin}"}).text
        assert "sluice_auth_rejected_total 4" in text
    assert spans(duckdb_store) == []
