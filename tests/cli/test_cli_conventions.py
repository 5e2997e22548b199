"""CLI conventions (cli/main.py docstring, docs/cli.md): bare ``sluice`` is help with exit 0; usage
errors are one ``error:`` line, exit 3; help shows no ``<str>``/``<bool>``; ``--json`` on list and
show commands, ``-`` for standard output; release filters in every form the output shows; numbers
never truncated."""

from __future__ import annotations

import json

import pytest

from cli_fixtures import GOOD_SCRIPT, Sluice, error_line, write_release
from sluice.store import open_store
from sluice.telemetry import schema  # noqa: F401 - registers the tables
from sluice.telemetry.otlp import RawSpan
from sluice.telemetry.writer import SpanWriter

COMMANDS = [[], ["gate"], ["metrics"], ["serve"], ["init"], ["demo"], ["release"], ["release", "show"],
            ["release", "list"], ["release", "register"], ["release", "diff"], ["dataset"], ["dataset", "import"],
            ["dataset", "list"], ["dataset", "show"], ["dataset", "export"], ["dataset", "from-traces"], ["keys"],
            ["keys", "create"], ["keys", "list"], ["keys", "revoke"]]


def test_bare_sluice_prints_help_and_exits_0(toy):
    proc = toy(store=False)
    assert proc.returncode == 0, proc.stderr
    assert "Usage: sluice" in proc.stdout and "metrics" in proc.stdout


@pytest.mark.parametrize("args", [["metrics", "--bogus"], ["release", "show"], ["keys", "nope"]])
def test_usage_errors_are_one_line_exit_3(toy, args):
    proc = toy(*args)
    assert proc.returncode == 3
    line = error_line(proc)
    assert f"sluice {' '.join(args[:-1] if args[-1] in ('--bogus', 'nope') else args)}" in line
    assert proc.stderr.strip() == line  # nothing but that line


def test_help_has_no_type_placeholders(toy):
    for args in COMMANDS:
        proc = toy(*args, "--help", store=False)
        assert proc.returncode == 0, (args, proc.stderr)
        for placeholder in ("<str>", "<bool>", "<int>"):
            assert placeholder not in proc.stdout, (args, proc.stdout)


def test_keys_list_json(toy):
    assert toy("keys", "create", "ci-app", "--scope", "ingest").returncode == 0
    proc = toy("keys", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    keys = json.loads(proc.stdout)
    assert {"name": "ci-app", "scope": "ingest"}.items() <= keys[-1].items()


def test_gate_json_dash_is_standard_output(toy):
    proc = toy("gate", "--candidate", "toy@1.1.0", "--baseline", "toy@1.0.0", "--dataset", "toy",
               "--policy", "gate.yaml", "--json", "-", "-q")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # stdout holds the report alone; the summary went to stderr
    assert report["verdict"] == "pass"
    assert "gate gate-" in proc.stderr
    assert not (toy.root / "-").exists()


def test_dataset_export_dash_is_standard_output(toy):
    proc = toy("dataset", "export", "toy", "-")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 40 and rows[0]["id"] == "alpha-00"
    assert not (toy.root / "-").exists()


# ---------------------------------------------------------------- release references in metrics
T0_S = 1_700_000_000


@pytest.fixture
def traced(tmp_path) -> tuple[Sluice, str]:
    """A store with toy@1.0.0 registered and spans traced under its digest."""
    sluice = Sluice(tmp_path, f"duckdb:///{tmp_path}/s.duckdb")
    folder = write_release(tmp_path, "toy", "1.0.0", script=GOOD_SCRIPT)
    reg = sluice("release", "register", str(folder), "--json")
    assert reg.returncode == 0, reg.stderr
    digest = json.loads(reg.stdout)[0]["digest"]
    store = open_store(sluice.store_url)
    try:
        writer = SpanWriter(store).start()
        spans = [RawSpan(f"{i + 1:032x}", f"{i + 1:016x}", "", "chat", (T0_S + i) * 10**9, (T0_S + i) * 10**9 + 10**9,
                         1, "", {"sluice.deployment": "support", "sluice.release": digest, "sluice.cohort": "pro",
                                 "gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 91_421_356,
                                 "gen_ai.usage.output_tokens": 7, "sluice.cost": 0.000012345,
                                 "input.value": f"question {i}", "output.value": f"answer {i}"}, {}, [])
                 for i in range(3)]
        writer.submit(spans).wait(30)
        writer.close()
    finally:
        store.close()
    return sluice, digest


@pytest.mark.parametrize("form", ["name@version", "short", "full", "bare hex"])
def test_metrics_release_in_every_form_the_table_shows(traced, form):
    sluice, digest = traced
    ref = {"name@version": "toy@1.0.0", "short": digest[:19], "full": digest, "bare hex": digest[7:19]}[form]
    proc = sluice("metrics", "--release", ref, "--since", str(T0_S - 10), "--json")
    assert proc.returncode == 0, proc.stderr
    groups = json.loads(proc.stdout)["groups"]
    assert [(g["release"], g["requests"]) for g in groups] == [(digest, 3)]
    # the table labels the row as the user can type it back
    table = sluice("metrics", "--release", ref, "--since", str(T0_S - 10))
    assert "toy@1.0.0" in table.stdout


def test_metrics_unknown_release_is_an_error_naming_it(traced):
    sluice, _ = traced
    proc = sluice("metrics", "--release", "toy@9.9.9", "--since", str(T0_S - 10))
    assert proc.returncode == 3
    assert "toy@9.9.9" in error_line(proc)


def test_dataset_from_traces_takes_the_release_forms_and_json(traced):
    sluice, _ = traced
    proc = sluice("dataset", "from-traces", "prod", "--release", "toy@1.0.0", "--since", str(T0_S - 10), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["name"], out["rows"], out["cohorts"]) == ("prod", 3, {"pro": 3})
    proc = sluice("dataset", "from-traces", "prod", "--release", "nope@1", "--since", str(T0_S - 10))
    assert proc.returncode == 3 and "nope@1" in error_line(proc)


def test_metrics_numbers_are_never_truncated(traced):
    sluice, _ = traced
    for columns in ("120", "150"):
        proc = sluice("metrics", "--since", str(T0_S - 10), env={"COLUMNS": columns})
        assert proc.returncode == 0, proc.stderr
        assert "…" not in proc.stdout, proc.stdout
        assert "91421363.0" in proc.stdout, proc.stdout  # tokens per request (under the absurd-usage bound), every digit
