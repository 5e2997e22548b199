"""Audit and trace lookups by id: on DuckDB (no index on spans.trace_id) they cut the span read by
time when the trace's evaluations or feedback, a hint, or recency say where it lies; a trace with
no hint is still found by one full read."""

from __future__ import annotations

import time

import pytest

from sluice.audit.trace import audit_trace
from sluice.telemetry import schema  # noqa: F401 - registers the tables
from sluice.telemetry.otlp import RawSpan
from sluice.telemetry.traces import get_trace
from sluice.telemetry.writer import SpanWriter

DAY_S = 86_400
OLD_S = time.time() - 30 * DAY_S  # far outside the "last day" the lookup tries first


def span(trace: str, sid: str, start_s: float, parent: str = "") -> RawSpan:
    start = int(start_s * 1e9)
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "sluice.deployment": "support",
             "sluice.release": "agent@1.0.0"}
    return RawSpan(trace, sid * 16, parent * 16 if parent else "", f"span {sid}", start, start + 10**6, 1, "",
                   attrs, {}, [])


def write(store, spans: list[RawSpan]) -> None:
    writer = SpanWriter(store).start()
    try:
        writer.submit(spans).wait(30)
    finally:
        writer.close()


A, B, C = "a" * 32, "b" * 32, "c" * 32


@pytest.fixture
def stored(store):
    # A: old, its child two hours later; B: another old trace; C: old, nothing else points at it
    write(store, [span(A, "1", OLD_S), span(A, "2", OLD_S + 7200, parent="1"), span(B, "3", OLD_S + 60),
                  span(C, "4", OLD_S - 5 * DAY_S)])
    store.db.execute("INSERT INTO feedback (id, trace_id, kind, value, comment, created_at) "
                     "VALUES ('f1', ?, 'thumbs_down', NULL, NULL, ?)", [A, OLD_S + 7300])
    return store


class Recording:
    def __init__(self, query):
        self.query, self.sql = query, []

    def __call__(self, sql, params=None, *a, **k):
        self.sql.append(sql)
        return self.query(sql, params, *a, **k)


def test_a_trace_with_feedback_is_read_within_a_time_cut(stored, monkeypatch):
    rec = Recording(stored.db.query)
    monkeypatch.setattr(stored.db, "query", rec)
    report = audit_trace(stored, A)
    assert report["found"] and report["answer"] is not None
    assert sorted(s["span_id"] for s in [report["answer"]] + report["other_spans"]) == ["1" * 16, "2" * 16]
    span_reads = [q for q in rec.sql if "FROM spans" in q and "trace_id = ?" in q]
    assert span_reads
    if stored.db.dialect.name == "duckdb":  # PostgreSQL reads by its trace_id index
        assert all("start_ns >= ?" in q for q in span_reads), span_reads


def test_a_hint_finds_the_whole_trace_and_nothing_else(stored):
    got = get_trace(stored, A.upper(), hint_ns=int((OLD_S + 7200) * 1e9))  # the child's time
    assert [s["span_id"] for s in got["spans"]] == ["1" * 16, "2" * 16]
    assert [f["id"] for f in got["feedback"]] == ["f1"]


def test_a_trace_with_no_hint_is_found_by_a_full_read(stored):
    got = get_trace(stored, C)
    assert [s["span_id"] for s in got["spans"]] == ["4" * 16]
    assert get_trace(stored, "d" * 32)["spans"] == []
    report = audit_trace(stored, "d" * 32)
    assert not report["found"]
