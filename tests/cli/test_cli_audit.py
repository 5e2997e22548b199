"""``sluice audit log|verify`` on the toy project: registrations and gate runs are in the log,
with the local user as actor, and the chain verifies."""

from __future__ import annotations

import getpass
import json
import re


def test_gate_run_and_registrations_are_logged(toy):
    proc = toy("gate", "--baseline", "toy@1.0.0", "--candidate", "toy@2.0.0", "--dataset", "toy", "-q",
               "--policy", "gate.yaml")
    assert proc.returncode == 1, proc.stderr
    gate_id = re.search(r"^gate (gate-[0-9a-f]{12}): ", proc.stdout, re.M).group(1)
    log = toy("audit", "log", "--json")
    assert log.returncode == 0, log.stderr
    entries = json.loads(log.stdout)["entries"]
    registered = [e["subject"] for e in entries if e["action"] == "release.registered"]
    assert registered == ["toy@1.0.0", "toy@1.1.0", "toy@2.0.0"]
    gate = next(e for e in entries if e["action"] == "gate.run" and e["subject"] == gate_id)
    assert gate["actor"] == f"cli:{getpass.getuser()}"
    assert gate["after"]["verdict"] == "fail" and gate["after"]["candidate_ref"] == "toy@2.0.0"
    assert gate["after"]["dataset"] == f"toy@{toy.dataset_version}"
    human = toy("audit", "log")
    assert human.returncode == 0 and gate_id in human.stdout and "verdict=fail" in human.stdout
    verify = toy("audit", "verify")
    assert verify.returncode == 0 and "audit log intact" in verify.stdout
    bad = toy("audit", "log", "--since", "last tuesday")
    assert bad.returncode == 3 and "--since" in bad.stderr and "Traceback" not in bad.stderr
