"""Import/export in every format: round trips keep the version; bad rows are named by number and field."""

from __future__ import annotations

import json

import duckdb
import pytest

from sluice.dataset.io import read_rows, write_rows
from sluice.dataset.validate import RowErrors
from sluice.dataset.version import dataset_version
from sluice.errors import DataError

ROWS = [
    {"id": "q1", "input": {"question": "Where is my order?", "lang": "en"}, "context": ["Orders ship in 2 days."],
     "expected_answer": "2 days", "cohort": "free"},
    {"id": "q2", "input": [{"role": "user", "content": "Refund please"}],
     "expected_tool": {"name": "refund", "arguments": {"order": "A1", "amount": 12.5}},
     "policy_labels": ["refund"], "cohort": "enterprise", "metadata": {"source": "trace", "n": 3}},
    {"id": "q3", "input": [{"role": "system", "content": "x"}, {"role": "user", "content": "{json-looking} text"},
                           {"role": "assistant", "content": None, "tool_calls": [{"id": "t1"}]}],
     "context": [{"text": "doc", "id": "k1", "score": 0.5, "metadata": {"page": 2}}, "plain, with comma"],
     "policy_labels": ["a;b", "c"], "trace_id": "abc123"},
    {"id": "q4", "input": [{"role": "user", "content": "Ünïcödé ✓ — 日本語\nsecond line"}], "policy_labels": ["x", "y"]},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def source(tmp_path):
    return write_jsonl(tmp_path / "src.jsonl", ROWS)


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_round_trip_keeps_rows_and_version(tmp_path, source, fmt):
    rows = read_rows(source)
    out = tmp_path / f"out.{fmt}"
    write_rows(rows, out)
    again = read_rows(out)
    assert again == rows
    assert dataset_version(again) == dataset_version(rows)
    # and once more through the exported file: stable, not just equal once
    write_rows(again, tmp_path / f"again.{fmt}")
    assert (tmp_path / f"again.{fmt}").read_bytes() == out.read_bytes() or fmt == "parquet"


def test_csv_shorthands_and_unknown_columns(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(
        "id,input,context,expected_tool,policy_labels,cohort,locale,metadata\n"
        "1,What is the refund window?,Refunds within 30 days.,lookup_policy,billing; refunds ,,en-GB,\n"
        '2,"{""question"": ""hi""}","[""a"", ""b""]","{""name"": ""t"", ""arguments"": {""k"": 1}}","[""x""]",pro,fr,"{""k"": 1}"\n',
        encoding="utf-8")
    r1, r2 = read_rows(path)
    assert r1.input[0].role == "user" and r1.input[0].content == "What is the refund window?"
    assert r1.context_texts() == ["Refunds within 30 days."]
    assert r1.expected_tool.name == "lookup_policy" and r1.expected_tool.arguments == {}
    assert r1.policy_labels == ["billing", "refunds"] and r1.cohort == "default"
    assert r1.metadata == {"locale": "en-GB"}
    assert r2.input == {"question": "hi"} and r2.context_texts() == ["a", "b"]
    assert r2.expected_tool.arguments == {"k": 1} and r2.policy_labels == ["x"]
    assert r2.metadata == {"k": 1, "locale": "fr"} and r2.cohort == "pro"


def test_parquet_with_native_list_and_struct_columns(tmp_path):
    path = tmp_path / "native.parquet"
    duckdb.sql(f"""COPY (SELECT 7 AS id,
                   [{{'role': 'user', 'content': 'hi'}}, {{'role': 'assistant', 'content': NULL}}] AS input,
                   ['d1', 'd2'] AS context, ['p1'] AS policy_labels, 'web' AS channel)
                 TO '{path}' (FORMAT parquet)""")
    (row,) = read_rows(path)
    assert row.id == "7" and [m.role for m in row.input] == ["user", "assistant"]
    assert row.input[1].content is None and row.context_texts() == ["d1", "d2"]
    assert row.policy_labels == ["p1"] and row.metadata == {"channel": "web"}


BAD = [
    {"id": "a", "input": "hello"},
    {"id": "b", "input": [{"role": "bogus", "content": "x"}]},
    {"id": "c", "input": {"q": 1}, "expected_tool": {"arguments": {}}},
    {"id": "a", "input": {"q": 1}},
    {"id": "d", "input": {"q": 1}, "expected_anwser": "typo"},
]
EXPECTED = [
    (1, "input", "Input should be a valid list or a valid dictionary"),
    (2, "input[0].role", "role must be one of system, user, assistant, tool, developer"),
    (3, "expected_tool.name", "Field required"),
    (4, "id", "duplicate id 'a' (first at row 1)"),
    (5, "expected_anwser", "unknown field"),
]


def test_bad_jsonl_rows_by_line_and_field(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", BAD)
    with pytest.raises(RowErrors) as exc:
        read_rows(path)
    assert [(p.row, p.field, p.message) for p in exc.value.problems] == EXPECTED
    assert str(exc.value).startswith(f"{path}, row 1, field 'input': Input should be a valid list or a valid dictionary; "
                                     "also row 2, field 'input[0].role'")
    assert str(exc.value).endswith("(5 problems in total, nothing imported)")


def test_bad_jsonl_syntax_and_blank_lines_keep_line_numbers(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"id": "a", "input": {"q": 1}}\n\n{"id": "b", "input": \n[1, 2]\n{"id": "c"}\n', encoding="utf-8")
    with pytest.raises(RowErrors) as exc:
        read_rows(path)
    assert [(p.row, p.field, p.message) for p in exc.value.problems] == [
        (3, None, "not valid JSON: Expecting value at column 22"),
        (4, None, "a row must be a JSON object, not list"),
        (5, "input", "Field required"),
    ]


def test_bad_csv_rows_by_record_and_column(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text(
        "id,input,expected_tool,metadata\n"
        "1,hi,\"{bad\",\n"
        "2,\"[{\"\"role\"\": \"\"bogus\"\"}]\",,\n"
        "1,again,,\n"
        "3,ok,,[1]\n"
        "4,ok,\"{\"\"arguments\"\": {}}\",\n",
        encoding="utf-8")
    with pytest.raises(RowErrors) as exc:
        read_rows(path)
    assert [(p.row, p.field) for p in exc.value.problems] == [
        (1, "expected_tool"), (2, "input[0].role"), (3, "id"), (4, "metadata"), (5, "expected_tool.name")]
    assert exc.value.problems[0].message.startswith("not valid JSON: Expecting property name")
    assert exc.value.problems[3].message == "Input should be a valid dictionary"


def test_csv_needs_id_and_input_columns(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,question\n1,hi\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"d.csv:1: missing column 'input'"):
        read_rows(path)


def test_bad_parquet_rows_by_record_and_field(tmp_path):
    path = tmp_path / "bad.parquet"
    duckdb.sql(f"""COPY (SELECT * FROM (VALUES ('1', 'hi', NULL), ('2', 'ok', '{{"arguments": {{}}}}'), ('1', 'x', NULL))
                        AS t(id, input, expected_tool)) TO '{path}' (FORMAT parquet)""")
    with pytest.raises(RowErrors) as exc:
        read_rows(path)
    assert [(p.row, p.field, p.message) for p in exc.value.problems] == [
        (2, "expected_tool.name", "Field required"), (3, "id", "duplicate id '1' (first at row 1)")]


def test_encoding_errors_name_the_row(tmp_path):
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_bytes(b'{"id": "a", "input": {"q": "ok"}}\n{"id": "b", "input": {"q": "caf\xe9"}}\n')
    with pytest.raises(RowErrors, match=r"d.jsonl, row 2: not valid UTF-8"):
        read_rows(jsonl)
    csv_path = tmp_path / "d.csv"
    csv_path.write_bytes(b"id,input\n1,fine\n2,caf\xe9\n")
    with pytest.raises(RowErrors, match=r"d.csv, row 2, field 'input': not valid UTF-8"):
        read_rows(csv_path)


@pytest.mark.parametrize("name,body", [
    ("e.jsonl", b""), ("e.jsonl", b"\n\n"), ("e.csv", b""), ("e.csv", b"id,input\n"), ("e.json", b"[]"),
])
def test_empty_files_are_errors(tmp_path, name, body):
    path = tmp_path / name
    path.write_bytes(body)
    with pytest.raises(DataError, match="the file holds no rows"):
        read_rows(path)


def test_problem_cap_counts_and_stops(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": str(i)} for i in range(500)])
    with pytest.raises(RowErrors) as exc:
        read_rows(path, max_problems=10)
    assert len(exc.value.problems) == 10 and "(10+ problems in total" in str(exc.value)


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot tell the format"):
        read_rows(tmp_path / "d.xlsx")
    with pytest.raises(DataError, match="file not found"):
        read_rows(tmp_path / "nope.jsonl")


def test_failed_export_leaves_no_partial_file(tmp_path, source, monkeypatch):
    rows = read_rows(source)
    target = tmp_path / "out.jsonl"
    write_rows(rows, target)
    before = target.read_bytes()

    def boom(row):
        raise RuntimeError("disk full")

    monkeypatch.setattr("sluice.dataset.io.normalise_row", boom)
    with pytest.raises(RuntimeError):
        write_rows(rows, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "src.jsonl"]
