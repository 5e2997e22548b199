"""With ``sluice serve`` holding the embedded store, other commands work through its API instead of
failing with "store in use": keys create/list/revoke, release list/show, dataset list, metrics.
Commands that need the store itself say which server holds it."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from cli_fixtures import GOOD_SCRIPT, Sluice, error_line, toy_rows, write_jsonl, write_release
from test_cli_serve import free_port


@contextmanager
def serving(sluice: Sluice, port: int):
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    env.pop("SLUICE_CONFIG", None)
    env.pop("SLUICE_STORE", None)
    proc = subprocess.Popen([sys.executable, "-m", "sluice.cli.main", "--store", sluice.store_url, "serve",
                             "--port", str(port)], cwd=sluice.root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # bounded: until the server answers
            assert proc.poll() is None, list(lines.queue)
            try:
                if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def test_cli_works_through_a_running_server(tmp_path):
    sluice = Sluice(tmp_path, f"duckdb:///{tmp_path}/s.duckdb")
    folder = write_release(tmp_path, "toy", "1.0.0", script=GOOD_SCRIPT)
    digest = json.loads(sluice("release", "register", str(folder), "--json").stdout)[0]["digest"]
    write_jsonl(tmp_path / "toy.jsonl", toy_rows())
    assert sluice("dataset", "import", "toy", "toy.jsonl").returncode == 0
    announced = Path(f"{tmp_path}/s.duckdb.server")
    with serving(sluice, free_port()) as url:
        assert announced.read_text().strip() == url
        created = sluice("keys", "create", "ops", "--scope", "admin")  # no key yet: the server is open
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip()
        assert key.startswith("sluice_admin_")
        env = {"SLUICE_API_KEY": key}

        listed = sluice("keys", "list", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        assert [(k["name"], k["scope"]) for k in json.loads(listed.stdout)] == [("ops", "admin")]

        releases = sluice("release", "list", env=env)
        assert releases.returncode == 0 and "toy" in releases.stdout and digest[7:19] in releases.stdout
        shown = json.loads(sluice("release", "show", "toy@1.0.0", "--json", env=env).stdout)
        assert shown["digest"] == digest
        datasets = json.loads(sluice("dataset", "list", "--json", env=env).stdout)
        assert [(d["name"], d["rows"]) for d in datasets] == [("toy", 40)]

        now_ns = time.time_ns()
        span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "chat", "startTimeUnixNano": str(now_ns - 10**9),
                "endTimeUnixNano": str(now_ns), "attributes": [
                    {"key": "sluice.release", "value": {"stringValue": digest}},
                    {"key": "sluice.deployment", "value": {"stringValue": "support"}}]}
        r = httpx.post(url + "/v1/traces", json={"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]},
                       headers={"authorization": f"Bearer {key}"}, timeout=30)
        assert r.status_code == 200, r.text
        metrics = sluice("metrics", "--release", "toy@1.0.0", "--since", "1h", "--json", env=env)
        assert metrics.returncode == 0, metrics.stderr
        assert [(g["release"], g["requests"]) for g in json.loads(metrics.stdout)["groups"]] == [(digest, 1)]
        table = sluice("metrics", "--since", "1h", env=env)
        assert "toy@1.0.0" in table.stdout and "support" in table.stdout
        unknown = sluice("metrics", "--release", "toy@9", env=env)
        assert unknown.returncode == 3 and "toy@9" in error_line(unknown)

        key_id = json.loads(listed.stdout)[0]["id"]
        revoked = sluice("keys", "revoke", key_id, env=env)
        assert revoked.returncode == 0, revoked.stderr

        # a command that needs the store itself names the server holding it
        needs_store = sluice("dataset", "import", "toy2", "toy.jsonl")
        assert needs_store.returncode == 3
        line = error_line(needs_store)
        assert f"in use by sluice serve at {url}" in line and "keys" in line
    assert not announced.exists()  # removed when the server stops


def test_audit_works_through_a_running_server(tmp_path):
    """The README tour runs ``sluice audit $TRACE`` while ``sluice serve`` holds the store."""
    sluice = Sluice(tmp_path, f"duckdb:///{tmp_path}/s.duckdb")
    folder = write_release(tmp_path, "toy", "1.0.0", script=GOOD_SCRIPT)
    digest = json.loads(sluice("release", "register", str(folder), "--json").stdout)[0]["digest"]
    with serving(sluice, free_port()) as url:
        now_ns = time.time_ns()
        span = {"traceId": "ef" * 16, "spanId": "cd" * 8, "name": "chat", "startTimeUnixNano": str(now_ns - 10**9),
                "endTimeUnixNano": str(now_ns), "attributes": [
                    {"key": "sluice.release", "value": {"stringValue": digest}},
                    {"key": "sluice.deployment", "value": {"stringValue": "support"}}]}
        r = httpx.post(url + "/v1/traces", json={"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}, timeout=30)
        assert r.status_code == 200, r.text

        one = sluice("audit", "ef" * 16, "--json")
        assert one.returncode == 0, one.stderr
        report = json.loads(one.stdout)
        assert report["found"] is True and "toy" in json.dumps(report)
        shown = sluice("audit", "ef" * 16)
        assert shown.returncode == 0 and "toy@1.0.0" in shown.stdout, shown.stdout + shown.stderr
        unknown = sluice("audit", "01" * 16)
        assert unknown.returncode == 3, unknown.stdout + unknown.stderr

        log = sluice("audit", "log", "--json")
        assert log.returncode == 0, log.stderr
        assert [e["action"] for e in json.loads(log.stdout)["entries"]][:1] == ["release.registered"]
        assert "release.registered" in sluice("audit", "log").stdout
        verify = sluice("audit", "verify")
        assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr


def test_rollout_commands_find_the_server_that_holds_the_store(tmp_path):
    """``sluice rollout …`` while ``sluice serve`` (on a port the config does not name) holds the store:
    the announced URL is used, not an error about the store being in use."""
    sluice = Sluice(tmp_path, f"duckdb:///{tmp_path}/s.duckdb")
    for version in ("1.0.0", "2.0.0"):
        folder = write_release(tmp_path, "toy", version, script=GOOD_SCRIPT)
        assert sluice("release", "register", str(folder)).returncode == 0
    (tmp_path / "rollout.yaml").write_text("deployment: d\ncandidate: toy@2.0.0\nsteps:\n  - weight: {bp: 1000}\n")
    with serving(sluice, free_port()) as url:
        put = httpx.put(url + "/api/deployments/d", json={"stable": "toy@1.0.0"}, timeout=30)
        assert put.status_code == 200, put.text
        listed = sluice("rollout", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["data"] == []
        missing = sluice("rollout", "status", "ro-nope")
        assert missing.returncode == 3 and "ro-nope" in error_line(missing), missing.stderr
        refused = sluice("rollout", "start", "rollout.yaml")  # 412 from the server: the gate's exit code
        assert refused.returncode == 1 and "no passing gate" in error_line(refused), refused.stderr
        started = sluice("rollout", "start", "rollout.yaml", "--force", "--reason", "test", "--json")
        assert started.returncode == 0, started.stderr
        rid = json.loads(started.stdout)["id"]
        again = sluice("rollout", "start", "rollout.yaml", "--force", "--reason", "test")  # 409: one open rollout
        assert again.returncode == 3 and rid in error_line(again), again.stderr
        aborted = sluice("rollout", "abort", rid, "--reason", "enough")
        assert aborted.returncode == 0 and "aborted" in aborted.stdout, aborted.stderr
