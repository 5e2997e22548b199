"""``sluice serve`` itself serves the dashboard and its packaged assets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sluice_serve_mounts_the_dashboard(tmp_path):
    port = _free_port()
    env = dict(os.environ, NO_COLOR="1")
    env.pop("SLUICE_CONFIG", None)
    proc = subprocess.Popen([sys.executable, "-m", "sluice.cli.main", "--store", f"duckdb:///{tmp_path}/s.duckdb",
                             "serve", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stderr.read()[:2000]
            assert time.monotonic() < deadline, "sluice serve did not start"
            time.sleep(0.2)
        page = httpx.get(base + "/ui", follow_redirects=True, timeout=30)
        assert page.status_code == 200 and "<h1>Deployments</h1>" in page.text
        lib = httpx.get(base + "/ui/static/uPlot.iife.min.js", timeout=30)
        assert lib.status_code == 200 and "uPlot (v1.6.32)" in lib.text[:100]
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
