"""Canary, shadow and pinned routes end to end: headers, spans, stickiness, keys."""

from __future__ import annotations

import httpx
import openai
import pytest

from gateway_fixtures import make_release, serving, spans
from sluice.auth.keys import create_key
from sluice.testing.upstream import scripted_upstream

MSG = [{"role": "user", "content": "hello"}]


def client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=20)


def test_canary_split_is_sticky_per_user_and_traced(duckdb_store, tmp_path, upstream):
    stable = make_release(duckdb_store, tmp_path, "bot", "1", upstream, model="m-stable")
    canary = make_release(duckdb_store, tmp_path, "bot", "2", upstream, model="m-canary")
    settings = {"deployments": {"d": {"stable": stable, "canary": {"release": canary, "weight_bp": 5000}}}}
    with serving(duckdb_store, settings) as (url, gw):
        c = client(url)
        routes = {}
        for i in range(40):
            raw = c.chat.completions.with_raw_response.create(model="d", messages=MSG, user=f"user-{i % 20}")
            routes.setdefault(f"user-{i % 20}", set()).add(raw.headers["x-sluice-route"])
            assert raw.parse().model == ("m-canary" if raw.headers["x-sluice-route"] == "canary" else "m-stable")
        dep = gw.deployments["d"]
    assert all(len(r) == 1 for r in routes.values())  # each user saw one arm
    assert {next(iter(r)) for r in routes.values()} == {"stable", "canary"}
    by_route = {}
    for s in spans(duckdb_store):
        by_route.setdefault(s["route"], set()).add(s["release"])
        assert s["user_id"].startswith("user-")
    assert by_route == {"stable": {dep.stable.digest}, "canary": {dep.canary.digest}}


def test_failing_canary_falls_back_to_stable(duckdb_store, tmp_path):
    with scripted_upstream(modes={"m-canary": "500"}) as up:
        stable = make_release(duckdb_store, tmp_path, "bot", "1", up, model="m-stable")
        canary = make_release(duckdb_store, tmp_path, "bot", "2", up, model="m-canary")
        settings = {"deployments": {"d": {"stable": stable, "canary": {"release": canary, "weight_bp": 10000}}},
                    "retries": 0}
        with serving(duckdb_store, settings) as (url, gw):
            raw = client(url).chat.completions.with_raw_response.create(model="d", messages=MSG)
    assert raw.headers["x-sluice-route"] == "fallback"
    assert raw.headers["x-sluice-release"] == gw.deployments["d"].stable.digest


def test_cohort_header_keeps_a_cohort_off_the_canary(duckdb_store, tmp_path, upstream):
    stable = make_release(duckdb_store, tmp_path, "bot", "1", upstream, model="m-stable")
    canary = make_release(duckdb_store, tmp_path, "bot", "2", upstream, model="m-canary")
    settings = {"deployments": {"d": {"stable": stable, "canary": {
        "release": canary, "weight_bp": 10000, "never_cohorts": ["enterprise"]}}}}
    with serving(duckdb_store, settings) as (url, _):
        c = client(url)
        ent = c.chat.completions.with_raw_response.create(model="d", messages=MSG,
                                                          extra_headers={"x-sluice-cohort": "enterprise"})
        free = c.chat.completions.with_raw_response.create(model="d", messages=MSG, metadata={"cohort": "free"})
    assert ent.headers["x-sluice-route"] == "stable" and ent.headers["x-sluice-cohort"] == "enterprise"
    assert free.headers["x-sluice-route"] == "canary" and free.headers["x-sluice-cohort"] == "free"
    assert sorted(s["cohort"] for s in spans(duckdb_store)) == ["enterprise", "free"]


def test_shadow_is_mirrored_in_the_background_and_traced(duckdb_store, tmp_path):
    with scripted_upstream(modes={"m-shadow": "500"}) as up:
        stable = make_release(duckdb_store, tmp_path, "bot", "1", up, model="m-stable")
        shadow = make_release(duckdb_store, tmp_path, "bot", "3", up, model="m-shadow")
        settings = {"deployments": {"d": {"stable": stable, "shadow": {"release": shadow, "percent": 100}}}}
        with serving(duckdb_store, settings) as (url, gw):
            for _ in range(3):  # the shadow fails every time; the client never notices
                raw = client(url).chat.completions.with_raw_response.create(model="d", messages=MSG)
                assert raw.headers["x-sluice-route"] == "stable" and raw.parse().model == "m-stable"
            primary_traces = set()
        stats = gw.stats()
    assert stats["mirror_enqueued"] == 3 and stats["mirror_dropped"] == 0
    all_spans = spans(duckdb_store)
    primary = [s for s in all_spans if s["route"] == "stable"]
    mirrored = [s for s in all_spans if s["route"] == "shadow"]
    primary_traces = {s["trace_id"] for s in primary}
    assert len(primary) == 3 and len(mirrored) == 3
    assert {s["trace_id"] for s in mirrored} == primary_traces  # each copy sits in its request's trace
    assert all(s["status"] == "ERROR" and s["release"] == gw.deployments["d"].shadow.digest for s in mirrored)
    assert all(s["parent_id"] in {p["span_id"] for p in primary} for s in mirrored)


def test_mirror_queue_overflow_is_dropped_and_counted(duckdb_store, tmp_path):
    with scripted_upstream(modes={"m-shadow": "slow:2"}) as up:
        stable = make_release(duckdb_store, tmp_path, "bot", "1", up, model="m-stable")
        shadow = make_release(duckdb_store, tmp_path, "bot", "3", up, model="m-shadow")
        settings = {"deployments": {"d": {"stable": stable, "shadow": {"release": shadow}}},
                    "mirror_queue": 1, "mirror_workers": 1}
        with serving(duckdb_store, settings) as (url, gw):
            for _ in range(6):
                assert client(url).chat.completions.create(model="d", messages=MSG).model == "m-stable"
            stats = gw.stats()
    # one copy in flight, one waiting; the rest dropped (the stable answers are all fast)
    assert stats["mirror_enqueued"] + stats["mirror_dropped"] == 6
    assert stats["mirror_dropped"] >= 3


def test_pinning_a_release_needs_an_admin_key(duckdb_store, tmp_path, upstream):
    stable = make_release(duckdb_store, tmp_path, "bot", "1", upstream, model="m-stable")
    canary = make_release(duckdb_store, tmp_path, "bot", "2", upstream, model="m-canary")
    _, admin = create_key(duckdb_store, "ops", "admin")
    _, app_key = create_key(duckdb_store, "app", "gateway")
    settings = {"deployments": {"d": {"stable": stable, "canary": {"release": canary, "weight_bp": 0}}}}
    with serving(duckdb_store, settings) as (url, gw):
        digest = gw.deployments["d"].canary.digest
        pinned = client(url, admin).chat.completions.with_raw_response.create(
            model="d", messages=MSG, extra_headers={"x-sluice-release": digest[:15]})
        assert pinned.headers["x-sluice-route"] == "canary" and pinned.parse().model == "m-canary"
        by_ref = client(url, admin).chat.completions.create(model="d", messages=MSG,
                                                             extra_headers={"x-sluice-release": "bot@2"})
        assert by_ref.model == "m-canary"
        with pytest.raises(openai.PermissionDeniedError):
            client(url, app_key).chat.completions.create(model="d", messages=MSG,
                                                         extra_headers={"x-sluice-release": digest})
        assert client(url, app_key).chat.completions.create(model="d", messages=MSG).model == "m-stable"
        with pytest.raises(openai.AuthenticationError):
            client(url, "sluice_admin_nope_nope").chat.completions.create(model="d", messages=MSG)
        assert httpx.get(url + "/v1/models").status_code == 401
    pins = [s for s in spans(duckdb_store) if s["attributes"].get("sluice.pinned")]
    assert len(pins) == 2


def test_traceparent_joins_the_callers_trace(duckdb_store, tmp_path, upstream):
    ref = make_release(duckdb_store, tmp_path, "bot", "1", upstream)
    tid, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}}) as (url, _):
        raw = client(url).chat.completions.with_raw_response.create(
            model="d", messages=MSG, extra_headers={"traceparent": f"00-{tid}-{parent}-01"})
    assert raw.headers["x-sluice-trace-id"] == tid
    [span] = spans(duckdb_store)
    assert span["trace_id"] == tid and span["parent_id"] == parent and span["is_request"]
