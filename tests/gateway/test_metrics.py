"""``GET /metrics``: Prometheus text exposition of requests, errors, fallbacks, mirroring and latency."""

from __future__ import annotations

import re

import httpx

from gateway_fixtures import make_release, serving
from sluice.auth.keys import create_key
from sluice.testing.upstream import scripted_upstream

MSG = [{"role": "user", "content": "hello"}]
SAMPLE = re.compile(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$')


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    """Samples keyed by (name, labels); checks every family is declared before its samples."""
    declared, out = set(), {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            declared.add(line.split()[2])
            continue
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels, value = m.groups()
        assert re.sub(r"_(bucket|sum|count)$", "", name) in declared or name in declared
        pairs = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels or ""))
        out[(name, pairs)] = float(value)
    return out


def get(samples, name, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_what_happened(duckdb_store, tmp_path):
    with scripted_upstream(modes={"m-flaky": "500"}) as up:
        good = make_release(duckdb_store, tmp_path, "bot", "1", up)
        flaky = make_release(duckdb_store, tmp_path, "bot", "2", up, model="m-flaky", fallbacks=[{"model": "m-backup"}])
        settings = {"deployments": {"d": {"stable": good, "shadow": {"release": good, "percent": 100}},
                                    "f": {"stable": flaky}}, "retries": 0}
        with serving(duckdb_store, settings) as (url, gw):
            for _ in range(3):
                assert httpx.post(url + "/v1/chat/completions", json={"model": "d", "messages": MSG}).status_code == 200
            assert httpx.post(url + "/v1/chat/completions", json={"model": "f", "messages": MSG}).status_code == 200
            assert httpx.post(url + "/v1/chat/completions",
                              json={"model": "no-such-thing", "messages": MSG}).status_code == 404
            r = httpx.get(url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    s = parse(r.text)
    assert get(s, "sluice_gateway_requests_total", deployment="d", route="stable", status="200") == 3
    assert get(s, "sluice_gateway_requests_total", deployment="f", route="fallback", status="200") == 1
    assert get(s, "sluice_gateway_requests_total", deployment="_unknown", route="none", status="404") == 1
    assert get(s, "sluice_gateway_upstream_errors_total", deployment="f", kind="http_5xx") == 1
    assert get(s, "sluice_gateway_fallbacks_total", deployment="f") == 1
    assert get(s, "sluice_gateway_mirror_enqueued_total") == 3
    assert get(s, "sluice_gateway_mirror_dropped_total") == 0
    # histograms: cumulative buckets ending at +Inf == count; overhead never exceeds the total
    for family in ("sluice_gateway_request_duration_seconds", "sluice_gateway_overhead_seconds"):
        buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in s.items()
                          if k[0] == family + "_bucket" and dict(k[1])["route"] == "stable"
                          and dict(k[1])["deployment"] == "d"))
        counts = [v for _, v in buckets]
        assert counts == sorted(counts) and buckets[-1][0] == float("inf") and counts[-1] == 3
        assert get(s, family + "_count", deployment="d", route="stable") == 3
    assert (get(s, "sluice_gateway_overhead_seconds_sum", deployment="d", route="stable")
            <= get(s, "sluice_gateway_request_duration_seconds_sum", deployment="d", route="stable"))


def test_metrics_need_an_admin_key(duckdb_store, tmp_path, upstream):
    ref = make_release(duckdb_store, tmp_path, "bot", "1", upstream)
    _, admin = create_key(duckdb_store, "ops", "admin")
    _, app = create_key(duckdb_store, "app", "gateway")
    with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}}) as (url, _):
        assert httpx.get(url + "/metrics").status_code == 401
        assert httpx.get(url + "/metrics", headers={"authorization": f"Bearer {app}"}).status_code == 403
        assert httpx.get(url + "/metrics", headers={"authorization": f"Bearer {admin}"}).status_code == 200
