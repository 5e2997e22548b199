"""``sluice gate`` end to end: every exit code of the contract, the reports, the stored record.

Each gate scenario runs once per module (fixtures below); the tests then look at the process
exit code, stdout, stderr, the report files and the store separately, so one broken layer does
not hide the others.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sluice.store import open_store

from cli_fixtures import error_line

# sluice/cli/main.py calls ``app(..., standalone_mode=False)`` and ignores its return value: under
# standalone_mode=False click *returns* the code of a ``typer.Exit`` raised by a command instead of
# exiting, so every verdict other than pass leaves the process with status 0.
EXIT_CODE_DISCARDED = pytest.mark.xfail(
    strict=True, reason="cli/main.py:52 discards the exit code app() returns for typer.Exit; sluice exits 0")
# The usage errors typer raises are typer._click exceptions (typer vendors click), not
# click.ClickException, so main.py re-raises them: a traceback and exit 1 instead of one line and 3.
CLICK_USAGE_ERRORS_UNCAUGHT = pytest.mark.xfail(
    strict=True, reason="cli/main.py:64 checks click.ClickException, typer raises typer._click.exceptions")

GATE = ["gate", "--baseline", "toy@1.0.0", "--dataset", "toy", "-q"]


def gate_id(stdout: str) -> str:
    m = re.search(r"^gate (gate-[0-9a-f]{12}): (pass|fail|inconclusive) \(exit (\d)\)$", stdout, re.M)
    assert m, f"no verdict line in stdout:\n{stdout}"
    return m.group(1)


def verdict_line(stdout: str) -> tuple[str, int]:
    m = re.search(r"^gate gate-[0-9a-f]{12}: (\w+) \(exit (\d)\)$", stdout, re.M)
    assert m, f"no verdict line in stdout:\n{stdout}"
    return m.group(1), int(m.group(2))


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
def missing_cohort(toy):
    (toy.root / "gate-gamma.yaml").write_text(
        "evaluators: [{name: exact_match, critical: true}]\nthresholds: {max_regression: 0.25}\n"
        "cohorts: {min_rows: 20, require: [alpha, beta, gamma]}\n")
    return toy(*GATE, "--candidate", "toy@1.1.0", "--policy", "gate-gamma.yaml", "--json", "gamma.json")


@pytest.fixture(scope="module")
def small_cohorts(toy):
    (toy.root / "gate-50.yaml").write_text(
        "evaluators: [{name: exact_match, critical: true}]\nthresholds: {max_regression: 0.25}\n"
        "cohorts: {min_rows: 50, require: [alpha]}\n")
    return toy(*GATE, "--candidate", "toy@1.1.0", "--policy", "gate-50.yaml", "--json", "small.json")


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
@EXIT_CODE_DISCARDED
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
@EXIT_CODE_DISCARDED
def test_missing_required_cohort_exits_2(missing_cohort):
    assert missing_cohort.returncode == 2


def test_missing_required_cohort_is_inconclusive(toy, missing_cohort):
    assert verdict_line(missing_cohort.stdout) == ("inconclusive", 2)
    report = json.loads((toy.root / "gamma.json").read_text())
    assert report["verdict"] == "inconclusive"
    assert any("'gamma'" in r and "0 rows" in r for r in report["reasons"]), report["reasons"]


@EXIT_CODE_DISCARDED
def test_cohorts_below_min_rows_exit_2(small_cohorts):
    assert small_cohorts.returncode == 2


def test_cohorts_below_min_rows_are_inconclusive(toy, small_cohorts):
    assert verdict_line(small_cohorts.stdout) == ("inconclusive", 2)
    reasons = json.loads((toy.root / "small.json").read_text())["reasons"]
    assert any("'alpha'" in r and "20 rows, fewer than the minimum 50" in r for r in reasons), reasons


# ------------------------------------------------------------------ 3: usage and configuration
def test_unknown_release_ref_exits_3(toy):
    proc = toy(*GATE, "--candidate", "toy@9.9.9")
    assert proc.returncode == 3
    line = error_line(proc)
    assert "toy@9.9.9" in line and "not found" in line and "toy@1.0.0" in line  # lists what exists


def test_unknown_dataset_exits_3(toy):
    proc = toy("gate", "--candidate", "toy@1.1.0", "--baseline", "toy@1.0.0", "--dataset", "nope", "-q")
    assert proc.returncode == 3
    assert "dataset 'nope' not found" in error_line(proc)


def test_bad_policy_names_file_line_and_field(toy):
    (toy.root / "bad-gate.yaml").write_text("evaluators:\n  - name: exact_match\n    critcal: true\n")
    proc = toy(*GATE, "--candidate", "toy@1.1.0", "--policy", "bad-gate.yaml")
    assert proc.returncode == 3
    assert error_line(proc) == "error: bad-gate.yaml:3, field 'evaluators[0].critcal': is not a known field"


def test_policy_with_unknown_evaluator_exits_3(toy):
    (toy.root / "unknown-eval.yaml").write_text("evaluators:\n  - name: no_such_evaluator\n")
    proc = toy(*GATE, "--candidate", "toy@1.1.0", "--policy", "unknown-eval.yaml")
    assert proc.returncode == 3
    assert "unknown evaluator 'no_such_evaluator'" in error_line(proc)


@CLICK_USAGE_ERRORS_UNCAUGHT
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
