"""``sluice demo`` and ``sluice init`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cli_fixtures import Sluice, error_line


def test_demo_runs_offline_and_points_at_the_billing_regression(tmp_path):
    root = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "sluice.cli.main", "demo", "--dir", str(root), "-q"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    assert "Traceback" not in proc.stderr
    html = (root / "reports" / "gate-fast.html").read_text()
    assert "billing" in html and "FAIL" in html
    fast = json.loads((root / "reports" / "gate-fast.json").read_text())
    careful = json.loads((root / "reports" / "gate-careful.json").read_text())
    assert (fast["verdict"], fast["exit_code"]) == ("fail", 1)
    assert (careful["verdict"], careful["exit_code"]) == ("pass", 0)
    failed = {(c["evaluator"], c["cohort"]) for c in fast["checks"] if c["status"] == "fail"}
    assert ("groundedness", "billing") in failed
    assert all(cohort in ("billing", "(all)") for _, cohort in failed), failed
    assert str(root / "reports" / "gate-fast.html") in proc.stdout


def test_init_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "keep.txt").write_text("mine")
    proc = Sluice(tmp_path, "")("init", "p", store=False)
    assert proc.returncode == 3
    assert "--force" in error_line(proc)
    assert (tmp_path / "p" / "keep.txt").read_text() == "mine"


def test_version_prints_the_version(tmp_path):
    from sluice import __version__

    proc = Sluice(tmp_path, "")("--version", store=False)
    assert (proc.returncode, proc.stdout.strip()) == (0, __version__)
