"""Bad input gets a 4xx with a reason (never a 500), keys are scoped and hashed, health and OpenAPI."""

from __future__ import annotations

import gzip
import time

import httpx
import orjson
import pytest

from sluice.auth.keys import create_key, revoke_key
from sluice.server.app import create_app
from sluice.server.runner import running
from sluice.telemetry import schema  # noqa: F401 - registers the tables
from sluice.telemetry.config import TelemetrySettings

SPAN = {"resourceSpans": [{"scopeSpans": [{"spans": [
    {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "x",
     "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]}


@pytest.fixture
def server(duckdb_store):
    with running(create_app(duckdb_store, TelemetrySettings(max_body_bytes=2000, max_decompressed_bytes=4000))) as url:
        yield url, duckdb_store


@pytest.mark.parametrize("headers, body, status, reason", [
    ({"content-type": "application/json"}, b"{oops", 400, "not valid JSON"),
    ({"content-type": "application/x-protobuf"}, b"\xff\xff\xff", 400, "not a valid ExportTraceServiceRequest"),
    ({"content-type": "text/plain"}, b"hi", 415, "unsupported Content-Type"),
    ({"content-type": "application/json"}, b"{" + b" " * 3000 + b"}", 413, "exceeds the limit"),
    ({"content-type": "application/json", "content-encoding": "gzip"}, gzip.compress(b" " * 9000), 413, "exceeds"),
    ({"content-type": "application/json", "content-encoding": "gzip"}, b"nope", 400, "invalid gzip"),
])
def test_bad_otlp_bodies(server, headers, body, status, reason):
    url, _ = server
    r = httpx.post(url + "/v1/traces", content=body, headers=headers)
    assert r.status_code == status
    if headers["content-type"] == "application/json":
        assert reason in r.json()["message"]
    else:
        assert reason.encode() in r.content


def test_gzip_json_and_chunked_upload(server):
    url, store = server
    r = httpx.post(url + "/v1/traces", content=gzip.compress(orjson.dumps(SPAN)),
                   headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert r.status_code == 200 and r.json() == {}
    big = iter([b"{", b" " * 2500, b"}"])  # no Content-Length: the limit applies while streaming
    assert httpx.post(url + "/v1/traces", content=big, headers={"content-type": "application/json"}).status_code == 413
    assert store.db.query_one("SELECT count(*) FROM spans")[0] == 1


def test_out_of_range_numbers_stay_as_attributes_and_leave_typed_columns_empty(server):
    """One bad number must not fail the batch (a 503 the exporter would retry forever)."""
    url, store = server
    body = orjson.loads(orjson.dumps(SPAN))
    body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"] = [
        {"key": "llm.token_count.prompt", "value": {"stringValue": "1" * 30}},
        {"key": "llm.token_count.completion", "value": {"doubleValue": 1e300}},
        {"key": "llm.cost.total", "value": {"stringValue": "inf"}},
    ]
    r = httpx.post(url + "/v1/traces", content=orjson.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    row = store.db.query_one("SELECT input_tokens, output_tokens, cost, attributes FROM spans")
    assert row[:3] == (None, None, None)
    kept = orjson.loads(row[3])
    assert kept["llm.token_count.prompt"] == "1" * 30 and kept["llm.token_count.completion"] == 1e300
    assert kept["llm.cost.total"] == "inf"


@pytest.mark.parametrize("body, reason", [
    (b"[]", "field 'body'"),
    (b'{"trace_id": "abc", "kind": "thumbs_down"}', "field 'trace_id'"),
    (b'{"trace_id": "0af7651916cd43dd8448eb211c80319c", "kind": "meh"}', "field 'kind'"),
    (b'{"trace_id": "0af7651916cd43dd8448eb211c80319c", "kind": "refund", "extra": 1}', "field 'extra'"),
    (b"{", "not valid JSON"),
])
def test_bad_feedback(server, body, reason):
    url, _ = server
    r = httpx.post(url + "/api/feedback", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and reason in r.json()["error"]


def test_bad_metrics_parameters(server):
    url, _ = server
    for params, reason in (({"window": "soon"}, "not a duration"), ({"group_by": "tenant"}, "cannot group by"),
                           ({"since": "yesterday-ish"}, "is not a time")):
        r = httpx.get(url + "/api/metrics", params=params)
        assert r.status_code == 400 and reason in r.json()["error"]


def test_keys_scope_and_revocation(server):
    url, store = server
    ingest_rec, ingest = create_key(store, "app", "ingest")
    _, admin = create_key(store, "ops", "admin")
    stored = store.db.query("SELECT secret_hash FROM api_keys")
    assert all(h.startswith("sha256:") and ingest.rsplit("_", 1)[-1] not in h for (h,) in stored)
    post = lambda key, path="/v1/traces", **kw: httpx.post(url + path, json=SPAN, headers=kw | ({"Authorization": f"Bearer {key}"} if key else {}))  # noqa: E731
    admin_get = lambda: httpx.get(url + "/api/metrics", headers={"Authorization": f"Bearer {admin}"})  # noqa: E731
    for _ in range(200):  # keys created while serving reach the server's key snapshot within ~1 s (bounded: 20 s)
        if post(None).status_code == 401 and admin_get().status_code == 200:
            break
        time.sleep(0.1)
    assert post(None).status_code == 401
    assert post("sluice_ingest_000000000000_wrong").status_code == 401
    assert post(ingest).status_code == 200
    assert httpx.post(url + "/tracer/v1/traces", json=SPAN, headers={"X-Api-Key": ingest}).status_code == 200
    assert httpx.get(url + "/api/metrics", headers={"Authorization": f"Bearer {ingest}"}).status_code == 403
    assert httpx.get(url + "/api/metrics", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
    revoke_key(store, ingest_rec.id)
    url_app = create_app(store)  # a fresh key cache sees the revocation at once
    with running(url_app) as url2:
        r = httpx.post(url2 + "/v1/traces", json=SPAN, headers={"Authorization": f"Bearer {ingest}"})
        assert r.status_code == 401


def test_health_ready_openapi(server):
    url, _ = server
    assert httpx.get(url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(url + "/readyz").json()["status"] == "ready"
    paths = httpx.get(url + "/openapi.json").json()["paths"]
    assert {"/v1/traces", "/tracer/v1/traces", "/api/feedback", "/api/metrics", "/healthz", "/readyz"} <= set(paths)


def test_fast_paths_answer_ahead_of_fastapi_and_an_error_is_a_json_500(duckdb_store):
    from fastapi import APIRouter

    async def fine(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-app", type(scope["app"]).__name__.encode())]})
        await send({"type": "http.response.body", "body": b"fast"})

    async def broken(scope, receive, send):
        raise KeyError("bug")

    router = APIRouter()
    router.fast_paths = {("GET", "/fine"): fine, ("GET", "/broken"): broken}
    with running(create_app(duckdb_store, routers=[router])) as url:
        r = httpx.get(url + "/fine")
        assert (r.status_code, r.content, r.headers["x-app"]) == (200, b"fast", "SluiceApp")  # scope["app"] is set
        r = httpx.get(url + "/broken")
        assert r.status_code == 500 and r.json() == {"error": "internal error (KeyError)"}
        assert httpx.post(url + "/fine").status_code == 404  # exact (method, path) only; the rest is FastAPI's
