"""`sluice rollout ...` as a user runs it: one error line for a missing gate, --force --reason, status,
events, and the exit codes of `wait` (1 rolled back or aborted, 2 held, 7 timeout)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from rollout_setup import project
from sluice.rollout import actions
from sluice.store import open_store

PLAN = """\
deployment: d
candidate: bot@2
steps:
  - weight: {bp: 1000}
"""


def _cli(root, url, *args):
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    for k in ("SLUICE_CONFIG", "SLUICE_STORE", "SLUICE_SERVER"):
        env.pop(k, None)
    return subprocess.run([sys.executable, "-m", "sluice.cli.main", "--store", url, "rollout", *args], cwd=root,
                          env=env, capture_output=True, text=True, timeout=120)


def test_cli_start_status_events_and_wait_codes(tmp_path):
    url = f"duckdb:///{tmp_path}/s.duckdb"
    store = open_store(url)
    project(store, tmp_path)
    store.close()
    (tmp_path / "rollout.yaml").write_text(PLAN)
    (tmp_path / "bad.yaml").write_text(PLAN.replace("bp: 1000", "bp: 0"))

    bad = _cli(tmp_path, url, "start", "bad.yaml")
    assert bad.returncode == 3 and "bad.yaml:4" in bad.stderr and "Traceback" not in bad.stderr
    refused = _cli(tmp_path, url, "start")
    assert refused.returncode == 1 and "error: no passing gate of bot@2" in refused.stderr, refused.stderr
    started = _cli(tmp_path, url, "start", "--force", "--reason", "incident 7", "--json")
    assert started.returncode == 0, started.stderr
    rid = json.loads(started.stdout)["id"]
    status = _cli(tmp_path, url, "status", rid)
    assert status.returncode == 0 and "running" in status.stdout and "step 1/1" in status.stdout
    assert _cli(tmp_path, url, "wait", rid, "--timeout", "1s", "--poll", "0.2").returncode == 7

    store = open_store(url)
    actions.finish(store, actions.get(store, rid), "held", "test", "hold", "a person decides")
    store.close()
    assert _cli(tmp_path, url, "wait", rid, "--timeout", "5s").returncode == 2
    aborted = _cli(tmp_path, url, "abort", rid, "--reason", "enough")
    assert aborted.returncode == 0 and "aborted" in aborted.stdout
    assert _cli(tmp_path, url, "wait", rid).returncode == 1
    events = _cli(tmp_path, url, "events", rid, "--json")
    kinds = [(e["kind"], e["actor"].split(":")[0]) for e in json.loads(events.stdout)["data"]]
    assert kinds == [("start", "cli"), ("forced_start", "cli"), ("hold", "test"), ("abort", "cli")]
    listed = _cli(tmp_path, url, "list")
    assert rid in listed.stdout and "aborted" in listed.stdout
    missing = _cli(tmp_path, url, "status", "ro-nope")
    assert missing.returncode == 3 and "no rollout 'ro-nope'" in missing.stderr
