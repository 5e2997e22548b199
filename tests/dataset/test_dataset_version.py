from __future__ import annotations

import json

import pytest

from sluice.dataset.validate import RowErrors
from sluice.dataset.version import (dataset_version, export_dataset, import_dataset, load_rows, parse_ref,
                                    resolve_dataset)
from sluice.digest import digest_of
from sluice.errors import ConfigError, DataError, NotFoundError

ROWS = [
    {"id": "1", "input": {"question": "a"}, "cohort": "free"},
    {"id": "2", "input": [{"role": "user", "content": "b"}], "cohort": "enterprise"},
    {"id": "3", "input": {"question": "c"}, "cohort": "free"},
]


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_version_is_digest_of_normalised_rows_in_order(tmp_path, fake_store):
    record, created = import_dataset(fake_store, "support", jsonl(tmp_path / "d.jsonl", ROWS), "v1 rows")
    normalised = [
        {"id": "1", "input": {"question": "a"}, "context": [], "policy_labels": [], "cohort": "free", "metadata": {}},
        {"id": "2", "input": [{"role": "user", "content": "b"}], "context": [], "policy_labels": [],
         "cohort": "enterprise", "metadata": {}},
        {"id": "3", "input": {"question": "c"}, "context": [], "policy_labels": [], "cohort": "free", "metadata": {}},
    ]
    assert created and record.version == digest_of(normalised)
    assert (record.row_count, record.cohorts, record.description) == (3, {"enterprise": 1, "free": 2}, "v1 rows")
    assert fake_store.get_dataset_rows(record.version) == normalised


def test_reimport_is_a_no_op(tmp_path, fake_store):
    first, _ = import_dataset(fake_store, "support", jsonl(tmp_path / "a.jsonl", ROWS))
    # same content, different formatting and key order
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(dict(reversed(list(r.items()))), indent=None) for r in ROWS))
    again, created = import_dataset(fake_store, "support", tmp_path / "b.jsonl")
    assert not created and again.version == first.version and fake_store.writes == 1


def test_order_is_part_of_the_version(tmp_path, fake_store):
    a, _ = import_dataset(fake_store, "support", jsonl(tmp_path / "a.jsonl", ROWS))
    b, created = import_dataset(fake_store, "support", jsonl(tmp_path / "b.jsonl", ROWS[::-1]))
    assert created and a.version != b.version


def test_bad_file_writes_nothing(tmp_path, fake_store):
    bad = ROWS + [{"id": "4", "input": {"q": 1}, "cohort": 5}]
    with pytest.raises(RowErrors, match=r"row 4, field 'cohort': Input should be a valid string"):
        import_dataset(fake_store, "support", jsonl(tmp_path / "bad.jsonl", bad))
    assert fake_store.writes == 0 and fake_store.datasets == {}


def test_bad_file_writes_nothing_to_the_embedded_store(tmp_path, duckdb_store):
    bad = ROWS + [{"id": "1", "input": {"q": 1}}]
    with pytest.raises(RowErrors, match=r"row 4, field 'id': duplicate id '1'"):
        import_dataset(duckdb_store, "support", jsonl(tmp_path / "bad.jsonl", bad))
    assert duckdb_store.list_datasets() == []
    record, created = import_dataset(duckdb_store, "support", jsonl(tmp_path / "ok.jsonl", ROWS))
    assert created and load_rows(duckdb_store, "support")[0].version == record.version


@pytest.mark.parametrize("ref,expected", [
    ("support", ("support", None)), ("support@sha256:ab12", ("support", "sha256:ab12")), ("s-1.x@ab", ("s-1.x", "ab")),
])
def test_parse_ref(ref, expected):
    assert parse_ref(ref) == expected


@pytest.mark.parametrize("ref", ["", "@v", "bad name", "x@"])
def test_parse_ref_rejects(ref):
    with pytest.raises(ConfigError):
        parse_ref(ref)


def test_resolve_newest_prefix_and_errors(tmp_path, fake_store):
    a, _ = import_dataset(fake_store, "support", jsonl(tmp_path / "a.jsonl", ROWS))
    b, _ = import_dataset(fake_store, "support", jsonl(tmp_path / "b.jsonl", ROWS[:2]))
    assert resolve_dataset(fake_store, "support") is b
    assert resolve_dataset(fake_store, f"support@{a.version[7:15]}") is a
    assert resolve_dataset(fake_store, f"support@{a.version[:15]}") is a
    with pytest.raises(NotFoundError, match="dataset 'suport' not found; did you mean support"):
        resolve_dataset(fake_store, "suport")
    with pytest.raises(NotFoundError, match="dataset 'support' has no version 'ffff"):
        resolve_dataset(fake_store, "support@ffff")
    with pytest.raises(ConfigError, match="ambiguous"):
        resolve_dataset(fake_store, "support@sha256:")


def test_load_rows_checks_the_stored_digest(tmp_path, fake_store):
    record, _ = import_dataset(fake_store, "support", jsonl(tmp_path / "a.jsonl", ROWS))
    loaded, rows = load_rows(fake_store, "support", record.version[7:20])
    assert loaded is record and [r.id for r in rows] == ["1", "2", "3"]
    assert dataset_version(rows) == record.version
    fake_store.rows[record.version][0]["cohort"] = "tampered"
    with pytest.raises(DataError, match="do not match its version digest"):
        load_rows(fake_store, "support")


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_export_then_import_gives_the_same_version(tmp_path, fake_store, fmt):
    record, _ = import_dataset(fake_store, "support", jsonl(tmp_path / "a.jsonl", ROWS))
    export_dataset(fake_store, "support", tmp_path / f"out.{fmt}")
    again, created = import_dataset(fake_store, "support", tmp_path / f"out.{fmt}")
    assert again.version == record.version and not created


def test_name_must_be_plain(tmp_path, fake_store):
    with pytest.raises(ConfigError, match="without a version"):
        import_dataset(fake_store, "support@v1", jsonl(tmp_path / "a.jsonl", ROWS))
