"""Pure parts of the dashboard: secret redaction, the span tree, windows; stored gate reports."""

from __future__ import annotations

import pytest

from sluice.errors import ConfigError
from sluice.web.health import WINDOWS, window
from sluice.web.pages_live import span_tree
from sluice.web.redact import REDACTED, redact


def test_redact_hides_credentials_by_name_and_by_shape():
    attrs = {"http.request.header.authorization": "Bearer abcdefghijklmnop", "api_key_env": "OPENAI_API_KEY",
             "input.value": "my key is sk-abcdefghijklmnopqrstuv", "nested": [{"password": "hunter2"}],
             "llm.token_count.total": 12, "note": "sluice_read_0a1b2c_" + "x" * 43, "cookie": "a=b",
             "plain": "hello"}
    out = redact(attrs)
    assert out["http.request.header.authorization"] == REDACTED
    assert out["input.value"] == REDACTED and out["nested"][0]["password"] == REDACTED
    assert out["note"] == REDACTED and out["cookie"] == REDACTED
    assert out["api_key_env"] == "OPENAI_API_KEY"  # the name of a variable is not a secret
    assert out["llm.token_count.total"] == 12 and out["plain"] == "hello"
    assert attrs["cookie"] == "a=b"  # a copy: the input is unchanged


def _span(sid, parent, start, dur=1.0):
    return {"span_id": sid, "parent_id": parent, "start_ns": start, "duration_ms": dur, "name": sid}


def test_span_tree_nests_children_in_start_order_and_keeps_orphans():
    spans = [_span("c2", "root", 3_000_000), _span("root", "", 0, 10.0), _span("c1", "root", 1_000_000),
             _span("g", "c1", 2_000_000), _span("orphan", "missing", 5_000_000)]
    roots = span_tree(spans)
    assert [r["span_id"] for r in roots] == ["root", "orphan"]
    assert [c["span_id"] for c in roots[0]["children"]] == ["c1", "c2"]
    assert roots[0]["children"][0]["children"][0]["span_id"] == "g"
    assert roots[0]["children"][1]["offset_ms"] == 3.0


def test_span_tree_shows_spans_of_a_parent_cycle():
    roots = span_tree([_span("a", "b", 0), _span("b", "a", 1)])
    assert sorted(r["span_id"] for r in roots) == ["a", "b"]


def test_windows_bound_the_number_of_buckets():
    for name, (seconds, bucket) in WINDOWS.items():
        w = window(name, now_ns=1_800_000_000_123_000_000)
        assert w.until_ns - w.since_ns == seconds * 1_000_000_000
        assert len(w.buckets) <= seconds // bucket + 1 <= 200
    with pytest.raises(ConfigError, match="unknown window '2y'"):
        window("2y")
