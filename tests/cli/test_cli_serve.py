"""``sluice serve`` as a user starts it: a release whose ``api_key_env`` is unset is warned about at
start-up and answered 503 naming the variable (not 500); a busy port is one error line, exit 3,
and nothing claims to be serving."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time

import httpx

from cli_fixtures import Sluice, error_line, write_release
from sluice.testing.upstream import scripted_upstream

UNSET = "SLUICE_TEST_KEY_THAT_IS_NOT_SET"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def project(tmp_path, upstream_url: str) -> Sluice:
    sluice = Sluice(tmp_path, f"duckdb:///{tmp_path}/s.duckdb")
    folder = write_release(tmp_path, "keyed", "1.0.0", provider_block=(
        f"    provider: openai\n    model: m1\n    base_url: {upstream_url}\n    api_key_env: {UNSET}\n"))
    assert sluice("release", "register", str(folder)).returncode == 0
    (tmp_path / "sluice.yaml").write_text("gateway:\n  deployments:\n    support:\n      stable: keyed@1.0.0\n")
    return sluice


def test_unset_api_key_env_is_warned_about_and_answered_503_naming_it(tmp_path):
    with scripted_upstream() as upstream:
        sluice = project(tmp_path, str(upstream))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k != UNSET} | {"COLUMNS": "200", "NO_COLOR": "1"}
        env.pop("SLUICE_CONFIG", None)
        env.pop("SLUICE_STORE", None)
        proc = subprocess.Popen([sys.executable, "-m", "sluice.cli.main", "--store", sluice.store_url, "serve",
                                 "--port", str(port)], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
        try:
            seen = []
            deadline = time.monotonic() + 60
            while not any("serving on" in s for s in seen) and time.monotonic() < deadline:
                try:
                    seen.append(lines.get(timeout=1))
                except queue.Empty:
                    assert proc.poll() is None, "".join(seen)
            warning = next(s for s in seen if s.startswith("warning:"))
            assert UNSET in warning and "deployment support" in warning and "model m1" in warning
            assert seen.index(warning) < next(i for i, s in enumerate(seen) if "serving on" in s)
            url = f"http://127.0.0.1:{port}"
            for _ in range(100):  # "serving on" precedes uvicorn's start-up: bounded wait for the socket
                try:
                    r = httpx.post(url + "/v1/chat/completions", timeout=30,
                                   json={"model": "support", "messages": [{"role": "user", "content": "hi"}]})
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            assert r.status_code == 503
            assert UNSET in r.json()["error"]["message"]
        finally:
            proc.terminate()
            proc.wait(30)


def test_a_busy_port_is_one_error_line_and_no_serving_claim(tmp_path):
    sluice = Sluice(tmp_path, f"duckdb:///{tmp_path}/s.duckdb")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = sluice("serve", "--port", str(port), timeout=60)
    assert proc.returncode == 3
    assert f"cannot listen on 127.0.0.1:{port}" in error_line(proc)
    assert "serving on" not in proc.stderr and "serving on" not in proc.stdout
    assert json.dumps(proc.stderr).count("error:") == 1
