"""``sluice release`` and ``sluice dataset`` end to end: errors name file, line, row and field."""

from __future__ import annotations

import json

from cli_fixtures import error_line, toy_rows, write_jsonl


# ------------------------------------------------------------------ releases
def write_bad_release(root, name: str, params_line: str):
    folder = root / "bad-releases" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "release.yaml").write_text(
        "name: toy\nversion: 9.0.0\ncomponents:\n  responder:\n    provider: scripted\n"
        f"    model: toy\n    params:\n      {params_line}\n")
    return folder


def test_release_with_a_typo_names_the_unknown_field(toy):
    folder = write_bad_release(toy.root, "typo", "temprature: 0.2")
    proc = toy("release", "register", str(folder))
    assert proc.returncode == 3
    assert error_line(proc) == (f"error: {folder / 'release.yaml'}:8, field "
                                "'components.responder.params.temprature': is not a known field")


def test_release_diff_names_the_changed_sampling_param(toy):
    proc = toy("release", "diff", "toy@1.0.0", "toy@1.1.0", "--json")
    assert proc.returncode == 0, proc.stderr
    changes = {c["path"]: c for c in json.loads(proc.stdout)}
    temp = changes["components.responder.params.temperature"]
    assert (temp["before"], temp["after"], temp["sampling"]) == (0.2, 0.0, True)
    assert changes["version"]["sampling"] is False
    assert set(changes) == {"components.responder.params.temperature", "version"}


# ------------------------------------------------------------------ datasets
def test_malformed_rows_are_reported_by_row_and_field(toy):
    rows = toy_rows()[:3] + [{"id": "x", "cohort": 5, "input": {"question": "q"}},
                             {"cohort": "alpha", "input": {"question": "q"}}]
    path = write_jsonl(toy.root / "bad" / "typed.jsonl", rows)
    proc = toy("dataset", "import", "bad", str(path))
    assert proc.returncode == 4
    line = error_line(proc)
    assert line.startswith(f"error: {path}, row 4, field 'cohort': Input should be a valid string")
    assert "row 5, field 'id': Field required" in line
    assert "(2 problems in total, nothing imported)" in line


def test_row_that_is_not_json_is_reported_by_row(toy):
    path = toy.root / "bad" / "broken.jsonl"
    path.write_text(json.dumps(toy_rows()[0]) + "\n" + '{"id": "x", "cohort": "a"\n')
    proc = toy("dataset", "import", "bad", str(path))
    assert proc.returncode == 4
    line = error_line(proc)
    assert line.startswith(f"error: {path}, row 2: not valid JSON")


def test_export_then_import_gives_the_same_version(toy):
    exported = toy("dataset", "export", "toy", "export.jsonl")
    assert exported.returncode == 0, exported.stderr
    assert (toy.root / "export.jsonl").read_text().count("\n") == 40
    again = toy("dataset", "import", "toy", "export.jsonl", "--json")
    assert again.returncode == 0, again.stderr
    info = json.loads(again.stdout)
    assert info["version"] == toy.dataset_version
    assert (info["created"], info["rows"], info["cohorts"]) == (False, 40, {"alpha": 20, "beta": 20})
