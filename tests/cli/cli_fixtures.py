"""End-to-end CLI helpers: the real ``sluice`` command in a subprocess, on a tiny project.

The toy project is written from scratch so the numbers are known: 40 rows in two cohorts
(alpha, beta, 20 each), every row's expected answer is ``answer <row id>``, judged by
``exact_match``. Releases use the scripted provider (a fake local model, docs/runner.md):

- ``toy@1.0.0`` answers every row correctly (the baseline), temperature 0.2;
- ``toy@1.1.0`` answers the same, temperature 0.0 (a different digest, the same quality);
- ``toy@2.0.0`` answers every ``beta`` row wrongly: a 100-point regression in one cohort.

One project and one DuckDB store serve the whole session (subprocesses run one at a time, so
the file lock is never contended).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROWS_PER_COHORT = 20
COHORTS = ("alpha", "beta")
GOOD_SCRIPT = [{"default": True, "content": "answer {row_id}"}]
BETA_BROKEN_SCRIPT = [{"cohort": "beta", "content": "I am not sure, please ask again later."}] + GOOD_SCRIPT

POLICY = """\
evaluators:
  - name: exact_match
    critical: true
thresholds: {max_regression: 0.25}   # 20 identical rows bound the delta at about -0.16
cohorts: {min_rows: 20, require: [alpha, beta]}
error_budget: 0.05
"""


class Sluice:
    """Runs ``python -m sluice.cli.main --store <url> ...`` in the project folder."""

    def __init__(self, root: Path, store_url: str):
        self.root = root
        self.store_url = store_url
        self.dataset_version: str | None = None  # set once the project's dataset is imported

    def __call__(self, *args: str, env: dict[str, str] | None = None, store: bool = True,
                 timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "sluice.cli.main"]
        if store:
            cmd += ["--store", self.store_url]
        full_env = dict(os.environ, COLUMNS="200", NO_COLOR="1", SLUICE_RETRIES="0")
        full_env.pop("SLUICE_CONFIG", None)
        full_env.pop("SLUICE_STORE", None)
        full_env |= env or {}
        return subprocess.run(cmd + list(args), cwd=self.root, env=full_env, capture_output=True, text=True,
                              timeout=timeout)


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one ``error:`` line on stderr; fails the test on a traceback or several errors.

    ``sluice gate`` also prints what it is running (``candidate …``, ``baseline …``) on stderr
    before it fails; those are progress lines, not errors.
    """
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, f"expected one error line on stderr, got:\n{proc.stderr}"
    return errors[0]


def verdict_line(stdout: str) -> tuple[str, int]:
    """(verdict, exit code) from the last line ``sluice gate`` prints."""
    m = re.search(r"^gate gate-[0-9a-f]{12}: (pass|fail|inconclusive) \(exit (\d)\)$", stdout, re.M)
    assert m, f"no verdict line in stdout:\n{stdout}"
    return m.group(1), int(m.group(2))


def toy_rows() -> list[dict]:
    return [{"id": f"{c}-{i:02d}", "cohort": c,
             "input": [{"role": "user", "content": f"question {c}-{i:02d}"}],
             "expected_answer": f"answer {c}-{i:02d}"}
            for c in COHORTS for i in range(ROWS_PER_COHORT)]


def write_jsonl(path: Path, items: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return path


def write_release(root: Path, name: str, version: str, *, temperature: float = 0.2,
                  script: list[dict] | None = None, provider_block: str | None = None) -> Path:
    """A one-component chat release; scripted by default, or any responder block given."""
    folder = root / "releases" / f"{name}-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    responder = provider_block or "    provider: scripted\n    model: toy\n    script: script.jsonl\n"
    (folder / "release.yaml").write_text(
        f"name: {name}\nversion: {version}\ncomponents:\n  responder:\n{responder}"
        f"    params:\n      temperature: {temperature}\n")
    if script is not None:
        write_jsonl(folder / "script.jsonl", script)
    return folder
