"""``sluice serve``, ``python -m sluice.server`` and ``python -m sluice.gateway`` serve the same app:
the module entry points once mounted neither the dashboard nor the rollout, audit or monitor APIs."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import httpx
import pytest

import sluice.server.runner as runner
from sluice.config import Settings
from sluice.server.assemble import assemble
from sluice.store import open_store

# one path of each router assemble() mounts beyond ingest and the read API
EXPECTED = {"/ui", "/api/rollouts", "/api/audit/log", "/api/alerts", "/api/drift/{deployment}",
            "/v1/chat/completions", "/v1/traces", "/healthz"}


def paths(app_or_router) -> set[str]:
    """Every route path, into included routers (FastAPI keeps those as one entry each)."""
    out: set[str] = set()
    for r in app_or_router.routes:
        inner = getattr(r, "original_router", None)
        out |= paths(inner) if inner is not None else {getattr(r, "path", "")}
    return out


@pytest.fixture
def captured(monkeypatch):
    """The app each entry point would serve, instead of serving it."""
    apps: list = []
    monkeypatch.setattr(runner, "serve_until_stopped", lambda app, *a, **k: apps.append(app))
    sock = SimpleNamespace(getsockname=lambda: ("127.0.0.1", 4999))
    monkeypatch.setattr(runner, "bind", lambda *a, **k: sock)
    monkeypatch.setattr(runner, "serve_forever", lambda app, *a, **k: apps.append(app))
    return apps


def test_every_entry_point_mounts_the_same_routes(tmp_path, monkeypatch, captured):
    from sluice.cli import serve as serve_cli
    from sluice.cli.main import main as cli_main
    from sluice.gateway.__main__ import main as gateway_main
    from sluice.server.__main__ import main as server_main

    url = f"duckdb:///{tmp_path}/store.duckdb"
    assert server_main(["--store", url]) == 0
    assert gateway_main(["--store", url]) == 0
    monkeypatch.setattr(serve_cli, "announce", lambda *a: None)
    monkeypatch.setattr(serve_cli.signal, "signal", lambda *a: None)  # not this process's SIGTERM
    monkeypatch.chdir(tmp_path)
    assert cli_main(["--store", url, "serve", "--port", "4999"]) == 0
    assert len(captured) == 3
    store = open_store(url)
    try:
        want = paths(assemble(store, Settings()).app)
    finally:
        store.close()
    assert EXPECTED <= want
    for app in captured:
        assert paths(app) == want


@pytest.mark.slow
def test_python_m_sluice_server_serves_the_dashboard(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "sluice.server", "--store", f"duckdb:///{tmp_path}/s.duckdb"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening "), proc.stderr.read()[:2000]
        base = line.split()[1]
        assert httpx.get(base + "/ui", timeout=30, follow_redirects=True).status_code == 200
        assert httpx.get(base + "/api/rollouts", timeout=30).status_code == 200
    finally:
        proc.kill()
        proc.wait(30)
