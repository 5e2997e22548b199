"""Issue 10 items 10 and 11: negative or absurd usage from an upstream is flagged and never
summed; user, cohort and session values are bounded before they are stored."""

from __future__ import annotations

import httpx

from gateway_fixtures import make_release, serving, spans
from odd_upstream import completion, odd_upstream
from sluice.telemetry.values import MAX_ID_CHARS, bound_id

CHAT = {"model": "d", "messages": [{"role": "user", "content": "hello"}]}


def test_negative_usage_from_an_upstream_is_flagged_not_summed(duckdb_store, tmp_path):
    usage = {"prompt_tokens": -5000, "completion_tokens": 2, "total_tokens": -4998}
    with odd_upstream(lambda h, b: (200, completion(usage=usage), "application/json")) as base:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", base)
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}}) as (url, _):
            assert httpx.post(url + "/v1/chat/completions", json=CHAT, timeout=30).status_code == 200
    [span] = spans(duckdb_store)
    assert span["input_tokens"] is None and span["cost"] is None
    assert "outside" in span["attributes"]["sluice.usage_invalid"]
    assert duckdb_store.db.query_one("SELECT SUM(input_tokens), SUM(cost) FROM spans") == (None, None)


def test_user_cohort_and_session_are_bounded(duckdb_store, tmp_path, upstream):
    ref = make_release(duckdb_store, tmp_path, "bot", "1", upstream)
    huge = "u" * 3_000_000
    with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}, "max_body_bytes": 8_000_000}) as (url, _):
        r = httpx.post(url + "/v1/chat/completions", json={**CHAT, "user": huge, "metadata": {"cohort": "c" * 5000}},
                       headers={"x-sluice-session": "s" * 20_000}, timeout=60)
        assert r.status_code == 200
        assert len(r.headers["x-sluice-cohort"]) <= 256
    [span] = spans(duckdb_store)
    for column in ("user_id", "cohort", "session_id"):
        assert span[column] is not None and len(span[column]) == MAX_ID_CHARS
    assert span["user_id"] == bound_id(huge)


def test_bound_id_keeps_long_values_distinct():
    a, b = "x" * 300 + "a", "x" * 300 + "b"
    assert bound_id(a) != bound_id(b) and len(bound_id(a)) == MAX_ID_CHARS
    assert bound_id("short") == "short" and bound_id(None) is None
