"""Issue 10 item 12: a clean SIGTERM leaves no un-checkpointed DuckDB WAL behind, and the OpenAPI
document needs a key once keys exist."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sluice.auth.keys import create_key
from sluice.server.app import create_app
from sluice.server.runner import running

SPANS = {"resourceSpans": [{"scopeSpans": [{"spans": [
    {"traceId": f"{i + 1:032x}", "spanId": f"{i + 1:016x}", "name": "x", "startTimeUnixNano": "1000",
     "endTimeUnixNano": "2000", "attributes": [{"key": "input.value", "value": {"stringValue": "y" * 2000}}]}
    for i in range(300)]}]}]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("how", ["sluice serve", "python -m sluice.server"])
def test_sigterm_checkpoints_the_embedded_store(tmp_path, how):
    db = tmp_path / "store.duckdb"
    port = _free_port()
    if how == "sluice serve":
        cmd = [sys.executable, "-m", "sluice.cli.main", "serve", "--port", str(port)]
    else:
        cmd = [sys.executable, "-m", "sluice.server", "--store", f"duckdb:///{db}", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={**os.environ, "SLUICE_STORE": f"duckdb:///{db}"})
    base = f"http://127.0.0.1:{port}"
    wal = Path(str(db) + ".wal")
    try:
        for _ in range(600):  # until it serves (bounded: 60 s)
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read()[:2000]
            time.sleep(0.1)
        for _ in range(5):
            assert httpx.post(base + "/v1/traces", json=SPANS, timeout=30).status_code == 200
        assert wal.exists() and wal.stat().st_size > 0  # the spans are in the WAL so far
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert not wal.exists() or wal.stat().st_size == 0


def test_openapi_needs_a_key_once_keys_exist(duckdb_store):
    with running(create_app(duckdb_store)) as url:
        assert httpx.get(url + "/openapi.json").status_code == 200  # an open local store: open docs
    _, ingest = create_key(duckdb_store, "collector", "ingest")
    with running(create_app(duckdb_store)) as url:
        assert httpx.get(url + "/openapi.json").status_code == 401
        r = httpx.get(url + "/openapi.json", headers={"authorization": f"Bearer {ingest}"})
        assert r.status_code == 200 and "/v1/traces" in r.json()["paths"]
