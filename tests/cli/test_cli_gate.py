"""``sluice gate`` end to end: every exit code of the contract, the reports, the stored record.

Each gate scenario runs once per module (fixtures below); the tests then look at the process
exit code, stdout, stderr, the report files and the store separately, so one broken layer does
not hide the others.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest
from cli_fixtures import error_line, verdict_line

from sluice.store import open_store

GATE = ["gate", "--baseline", "toy@1.0.0", "--dataset", "toy", "-q"]


def gate_id(stdout: str) -> str:
    m = re.search(r"^gate (gate-[0-9a-f]{12}): ", stdout, re.M)
    assert m, f"no verdict line in stdout:\n{stdout}"
    return m.group(1)


@pytest.fixture(scope="module")
def passing(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("pass-reports")
    proc = toy(*GATE, "--candidate", "toy@1.1.0", "--policy", "gate.yaml", "--json", str(out / "g.json"),
               "--junit", str(out / "g.xml"), "--markdown", str(out / "g.md"), "--html", str(out / "g.html"))
    return proc, out


@pytest.fixture(scope="module")
def failing(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("fail-reports")
    proc = toy(*GATE, "--candidate", "toy@2.0.0", "--policy", "gate.yaml", "--json", str(out / "g.json"),
               "--junit", str(out / "g.xml"), "--markdown", str(out / "g.md"), "--html", str(out / "g.html"))
    return proc, out


@pytest.fixture(scope="module")
def not_enough_rows(toy):
    """alpha has 20 rows, one short of the minimum; gamma is required and absent."""
    (toy.root / "gate-rows.yaml").write_text(
        "evaluators: [{name: exact_match, critical: true}]\nthresholds: {max_regression: 0.25}\n"
        "cohorts: {min_rows: 21, require: [alpha, gamma]}\n")
    return toy(*GATE, "--candidate", "toy@1.1.0", "--policy", "gate-rows.yaml", "--json", "rows.json")


# ------------------------------------------------------------------ 0: pass
def test_pass_exits_0(passing):
    proc, _ = passing
    assert proc.returncode == 0, proc.stderr
    assert verdict_line(proc.stdout) == ("pass", 0)
    assert "Traceback" not in proc.stderr


def test_reports_are_written_and_parse(passing):
    proc, out = passing
    report = json.loads((out / "g.json").read_text())
    assert report["schema"] == "sluice.gate.v1"
    assert (report["verdict"], report["exit_code"]) == ("pass", 0)
    assert report["candidate"]["ref"] == "toy@1.1.0" and report["baseline"]["ref"] == "toy@1.0.0"
    assert report["cohorts"] == {"alpha": 20, "beta": 20}
    assert report["regressed_row_count"] == 0
    suites = ET.parse(out / "g.xml").getroot()
    props = {p.get("name"): p.get("value") for p in suites.iter("property")}
    assert props["verdict"] == "pass" and props["exit_code"] == "0"
    assert not list(suites.iter("failure")) and not list(suites.iter("error"))
    names = {c.get("name") for c in suites.iter("testcase")}
    assert {"alpha: pass_rate_delta", "beta: pass_rate_delta"} <= names
    assert "**PASS**" in (out / "g.md").read_text()
    html = (out / "g.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "PASS" in html
    for name in ("g.json", "g.xml", "g.md", "g.html"):
        assert f"report: {out / name}" in proc.stdout


def test_temperature_change_is_warned_about(passing):
    proc, out = passing
    warnings = json.loads((out / "g.json").read_text())["warnings"]
    assert any("temperature" in w and "0.0" in w and "0.2" in w for w in warnings), warnings


# ------------------------------------------------------------------ 1: fail
def test_cohort_regression_exits_1(failing):
    proc, _ = failing
    assert proc.returncode == 1


def test_cohort_regression_is_a_fail_naming_the_cohort(failing):
    proc, out = failing
    assert verdict_line(proc.stdout) == ("fail", 1)
    assert "Traceback" not in proc.stderr
    report = json.loads((out / "g.json").read_text())
    assert (report["verdict"], report["exit_code"]) == ("fail", 1)
    status = {c["id"]: (c["status"], c["value"]) for c in report["checks"]}
    assert status["exact_match/alpha/pass_rate_delta"] == ("pass", 0.0)
    assert status["exact_match/beta/pass_rate_delta"] == ("fail", -1.0)
    assert status["exact_match/(all)/pass_rate_delta"] == ("fail", -0.5)
    assert report["regressed_row_count"] == 20
    assert {r["row_id"] for r in report["regressed_rows"]} \
        == {f"beta-{i:02d}" for i in range(20)}
    beta_reason = next(r for r in report["reasons"] if "'beta'" in r)
    # 20 discordant pairs all one way: exact McNemar p = 2 * 0.5**20 = 1.91e-06
    assert "20 rows regressed, 0 improved" in beta_reason and "p=1.91e-06" in beta_reason


def test_fail_reports_carry_the_failure(failing):
    _, out = failing
    suites = ET.parse(out / "g.xml").getroot()
    props = {p.get("name"): p.get("value") for p in suites.iter("property")}
    assert (props["verdict"], props["exit_code"]) == ("fail", "1")
    failed = {c.get("name") for c in suites.iter("testcase") if c.find("failure") is not None}
    assert failed == {"beta: pass_rate_delta", "(all): pass_rate_delta"}
    assert "**FAIL**" in (out / "g.md").read_text()
    html = (out / "g.html").read_text()
    assert "FAIL" in html and "beta" in html


def test_gate_record_is_stored(toy, failing, passing):
    fail_id, pass_id = gate_id(failing[0].stdout), gate_id(passing[0].stdout)
    report = json.loads((failing[1] / "g.json").read_text())
    store = open_store(toy.store_url)
    try:
        gates = {g.id: g for g in store.list_gates(limit=500)}
    finally:
        store.close()
    record = gates[fail_id]
    assert (record.verdict, record.exit_code) == ("fail", 1)
    assert record.candidate_digest == report["candidate"]["digest"]
    assert record.baseline_digest == report["baseline"]["digest"]
    assert (record.dataset_name, record.dataset_version) == ("toy", report["dataset_version"])
    assert record.policy_digest == report["policy_digest"]
    assert (gates[pass_id].verdict, gates[pass_id].exit_code) == ("pass", 0)
    assert gates[pass_id].candidate_digest != record.candidate_digest


# ------------------------------------------------------------------ 2: inconclusive
def test_too_few_rows_exits_2(not_enough_rows):
    assert not_enough_rows.returncode == 2


def test_too_few_rows_and_a_missing_cohort_are_inconclusive(toy, not_enough_rows):
    assert "Traceback" not in not_enough_rows.stderr
    assert verdict_line(not_enough_rows.stdout) == ("inconclusive", 2)
    report = json.loads((toy.root / "rows.json").read_text())
    assert (report["verdict"], report["exit_code"]) == ("inconclusive", 2)
    reasons = report["reasons"]
    assert any("'alpha'" in r and "20 rows, fewer than the minimum 21" in r for r in reasons), reasons
    assert any("'gamma'" in r and "0 rows" in r for r in reasons), reasons
    assert not any("'beta'" in r for r in reasons), reasons  # not required: skipped, not a reason


# ------------------------------------------------------------------ 3: usage and configuration
def test_unknown_release_ref_exits_3(toy):
    proc = toy(*GATE, "--candidate", "toy@9.9.9")
    assert proc.returncode == 3
    line = error_line(proc)
    assert "toy@9.9.9" in line and "not found" in line and "toy@1.0.0" in line  # lists what exists


def test_bad_policy_names_file_line_and_field(toy):
    (toy.root / "bad-gate.yaml").write_text("evaluators:\n  - name: exact_match\n    critcal: true\n")
    proc = toy(*GATE, "--candidate", "toy@1.1.0", "--policy", "bad-gate.yaml")
    assert proc.returncode == 3
    assert error_line(proc) == "error: bad-gate.yaml:3, field 'evaluators[0].critcal': is not a known field"


def test_unknown_option_exits_3(toy):
    proc = toy(*GATE, "--candidate", "toy@1.1.0", "--no-such-option")
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    assert "--no-such-option" in proc.stderr


# ------------------------------------------------------------------ 4: data
def test_evaluator_version_other_than_the_pin_exits_4(toy):
    """The runs' evaluator version differs from the policy's pin: the runs cannot be compared."""
    (toy.root / "pinned.yaml").write_text("evaluators:\n  - name: exact_match\n    version: '999'\n")
    proc = toy(*GATE, "--candidate", "toy@1.1.0", "--policy", "pinned.yaml")
    assert proc.returncode == 4
    line = error_line(proc)
    assert "evaluators.exact_match.version" in line and "999" in line
