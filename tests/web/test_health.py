"""Health per arm and over time, on both store backends, from spans written straight to the store."""

from __future__ import annotations

import pytest

from sluice.evals.result import EvalResult
from sluice.telemetry.feedback import Feedback, record_feedback, record_online_eval
from sluice.telemetry.schema import SPAN_COLUMNS
from sluice.web.health import arm_series, arm_table, deployment_health, window
from sluice.web.trace_dims import TraceDims

NOW = 1_800_000_000_000_000_000
MIN = 60 * 1_000_000_000


def _insert(store, spans):
    rows = []
    for s in spans:
        base = dict.fromkeys(SPAN_COLUMNS)
        base.update(parent_id="", name="req", kind="CHAIN", duration_ms=10.0, status="OK", deployment="d",
                    release="sha256:r", route="stable", cohort="free", fallback_used=False, cache_hit=False,
                    is_request=True, attributes="{}", ingested_at=0.0)
        base.update(s)
        rows.append(tuple(base[c] for c in SPAN_COLUMNS))
    store.db.insert_rows(f"spans ({', '.join(SPAN_COLUMNS)})", rows)


def _tid(i):
    return f"{i:032x}"


@pytest.fixture
def filled(store):
    spans = []
    for i in range(100):  # one request a minute over the last 100 minutes; every 10th on the canary
        route = "canary" if i % 10 == 0 else "stable"
        spans.append(dict(trace_id=_tid(i), span_id=f"{i:016x}", start_ns=NOW - (i + 1) * MIN + 1,
                          route=route, cohort="pro" if i % 2 else "free", duration_ms=float(i),
                          status="ERROR" if i % 4 == 0 else "OK", fallback_used=i % 25 == 0))
        spans.append(dict(trace_id=_tid(i), span_id=f"{i + 1000:016x}", parent_id=f"{i:016x}", kind="LLM",
                          start_ns=NOW - (i + 1) * MIN + 2, route=route, is_request=False))
    spans.append(dict(trace_id=_tid(999), span_id="f" * 16, start_ns=NOW - 2 * 60 * MIN * 24, deployment="d"))
    spans.append(dict(trace_id=_tid(998), span_id="e" * 16, start_ns=NOW - 5 * MIN, deployment="other"))
    _insert(store, spans)
    for i in (0, 1, 2, 3):
        record_feedback(store, Feedback(trace_id=_tid(i), kind="thumbs_down"))
    record_feedback(store, Feedback(trace_id=_tid(1), kind="thumbs_down"))  # twice on one trace: counted once
    record_feedback(store, Feedback(trace_id=_tid(5), kind="thumbs_up"))
    for i in range(0, 60, 3):
        record_online_eval(store, _tid(i), EvalResult(score=0.0, passed=i % 2 == 0, evaluator="g", version="1"))
    TraceDims(store).refresh()
    return store


def test_last_hour_per_arm(filled):
    got = arm_table(filled, window("1h", NOW), ("route",), deployment="d")
    # minutes 0..59 ago: i = 0..59; canary i in {0, 10, ..., 50}
    assert got[("canary",)]["requests"] == 6 and got[("stable",)]["requests"] == 54
    assert got[("canary",)]["errors"] == 3  # i = 0, 20, 40
    assert got[("stable",)]["errors"] == 12  # multiples of 4 below 60 that are not multiples of 10
    assert got[("stable",)]["fallback_rate"] == pytest.approx(1 / 54)  # i = 25
    assert got[("canary",)]["p99_ms"] == pytest.approx(49.5, abs=0.01)  # 0..50 step 10, exact quantile
    assert got[("canary",)]["negative_feedback"] == 1 and got[("stable",)]["negative_feedback"] == 3
    assert got[("stable",)]["positive_feedback"] == 1
    canary_evals = [i for i in range(0, 60, 3) if i % 10 == 0]  # 0, 30
    assert got[("canary",)]["evaluations"] == len(canary_evals)
    assert got[("stable",)]["eval_fail_rate"] == pytest.approx(10 / 18)  # the odd i of 18 stable ones fail


def test_cohort_filter_and_deployment_dimension(filled):
    win = window("1h", NOW)
    pro = arm_table(filled, win, ("route",), deployment="d", cohort="pro")
    assert sum(g["requests"] for g in pro.values()) == 30
    both = arm_table(filled, win, ("deployment", "route"))
    assert both[("other", "stable")]["requests"] == 1


def test_series_are_aligned_on_the_buckets(filled):
    win = window("6h", NOW)  # 5-minute buckets
    s = arm_series(filled, win, "d")
    assert len(s["x"]) == len(set(s["x"])) and s["x"] == sorted(s["x"])
    total = sum(v for r in s["routes"].values() for v in r["requests"] if v)
    assert total == 100
    assert sum(v for v in s["routes"]["canary"]["requests"] if v) == 10
    assert all(v is None or 0 <= v <= 1 for v in s["routes"]["stable"]["error_rate"])


def test_nothing_outside_the_window(filled):
    assert arm_table(filled, window("1h", NOW - 3 * 24 * 60 * MIN), ("route",), deployment="d") == {}


def test_trace_dims_are_incremental_and_pick_up_late_traces(store):
    dims = TraceDims(store)
    record_feedback(store, Feedback(trace_id=_tid(7), kind="thumbs_down"))  # before its trace arrives
    assert dims.refresh() == 0
    _insert(store, [dict(trace_id=_tid(7), span_id="a" * 16, start_ns=NOW - 5 * MIN, route="canary")])
    assert dims.refresh() == 1  # within the grace hour: looked up again, found now
    assert dims.refresh() == 0  # and not added twice
    got = arm_table(store, window("1h", NOW), ("route",), deployment="d")
    assert got[("canary",)]["negative_feedback"] == 1 and got[("canary",)]["negative_feedback_rate"] == 1.0


@pytest.mark.parametrize("cohort", [None, "pro"])
def test_one_pass_page_figures_equal_the_separate_queries(filled, cohort):
    win = window("6h", NOW)
    by_route, by_cohort, series = deployment_health(filled, win, "d", cohort)
    assert by_route == arm_table(filled, win, ("route",), deployment="d", cohort=cohort)
    assert by_cohort == arm_table(filled, win, ("route", "cohort"), deployment="d")
    assert series == arm_series(filled, win, "d", cohort)
    assert sum(g["requests"] for g in by_route.values()) == (100 if cohort is None else 50)


def test_trace_dims_forget_traces_older_than_the_longest_window(store):
    import time

    old = time.time_ns() - 9 * 86_400 * 1_000_000_000
    store.db.execute("INSERT INTO ui_trace_dims VALUES (?, ?, 'd', 'r', 'stable', 'free')", [_tid(1), old])
    TraceDims(store).refresh()
    assert store.db.query_one("SELECT count(*) FROM ui_trace_dims")[0] == 0
