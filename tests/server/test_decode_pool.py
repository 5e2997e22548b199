"""Decode workers: same rows as in-process decoding, a killed worker loses no acknowledged span
and hangs no request, the bytes waiting to be decoded are bounded, and by default protobuf stays
in the server process (compiled decoder) while JSON bodies start the workers."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import httpx
import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sluice.server.app import create_app
from sluice.server.decode_pool import DecodePool
from sluice.server.runner import running
from sluice.telemetry import fastpath, otlp, schema  # noqa: F401 - registers the tables
from sluice.telemetry.config import TelemetrySettings
from sluice.telemetry.writer import Backpressure


def body(request_no: int, spans: int = 200) -> tuple[bytes, list[str]]:
    """An OTLP/JSON body well above the in-process threshold, so it goes to a worker."""
    ids = [f"{request_no + 1:016x}{k + 1:016x}" for k in range(spans)]
    doc = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                              "scopeSpans": [{"spans": [
        {"traceId": t, "spanId": "00000000000000a1", "name": "chat", "startTimeUnixNano": "1000",
         "endTimeUnixNano": "3001000", "attributes": [
             {"key": "llm.token_count.prompt", "value": {"intValue": "7"}},
             {"key": "llm.model_name", "value": {"stringValue": "m"}},
             {"key": "input.value", "value": {"stringValue": "q" * 80}}]} for t in ids]}]}]}
    raw = orjson.dumps(doc)
    assert len(raw) > 16 * 1024
    return raw, ids


def post(base: str, raw: bytes) -> httpx.Response:
    return httpx.post(base + "/v1/traces", content=raw, headers={"content-type": "application/json"}, timeout=60)


@pytest.fixture
def server(duckdb_store):
    app = create_app(duckdb_store, TelemetrySettings(ingest_workers=2))
    with running(app) as url:
        yield url, duckdb_store, app.state.decode_pool


def test_worker_rows_are_stored_exactly(server):
    url, store, pool = server
    raw, ids = body(1)
    assert post(url, raw).status_code == 200
    assert pool.worker_pids(), "the body should have been decoded by a worker process"
    got = store.db.query("SELECT count(*), sum(input_tokens), min(duration_ms), max(model), max(deployment), "
                         "bool_and(is_request) FROM spans")[0]
    assert tuple(got) == (200, 1400, 3.0, "m", "svc", True)
    attrs = orjson.loads(store.db.query_one("SELECT attributes FROM spans LIMIT 1")[0])
    assert attrs == {"input.value": "q" * 80, "@resource": {"service.name": "svc"}}


def test_a_killed_worker_loses_no_acknowledged_span_and_hangs_no_request(server):
    url, store, pool = server
    assert post(url, body(0)[0]).status_code == 200  # workers exist now
    acked: list[str] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with httpx.Client(timeout=60) as http:
            for i in range(12):
                raw, ids = body(100 * (n + 1) + i)
                r = http.post(url + "/v1/traces", content=raw, headers={"content-type": "application/json"})
                with lock:
                    statuses.append(r.status_code)
                    if r.status_code == 200:
                        acked.extend(ids)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    killed = 0
    while killed < 2 and any(t.is_alive() for t in threads):  # bounded: two kills
        pids = pool.worker_pids()
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed += 1
        threads[0].join(0.2)
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a request hung after a worker died"
    assert len(statuses) == 36 and set(statuses) <= {200, 503}
    assert pool.restarts >= 1
    stored = {r[0] for r in store.db.query("SELECT trace_id FROM spans")}
    assert set(acked) <= stored
    assert post(url, body(999)[0]).status_code == 200  # the fresh pool serves


@pytest.mark.parametrize("workers", [1, 0], ids=["worker process", "thread in the server process"])
def test_bytes_waiting_to_be_decoded_are_bounded(workers):
    raw, _ = body(1)
    pool = DecodePool(TelemetrySettings(decode_queue_max_bytes=len(raw) + 10), workers=workers).start()

    async def two_at_once():
        return await asyncio.gather(pool.prepare(raw, None, otlp.JSON), pool.prepare(raw, None, otlp.JSON),
                                    return_exceptions=True)

    try:
        first, second = asyncio.run(two_at_once())
        assert first.batch.count == 200 and isinstance(second, Backpressure)
        assert pool.pending_bytes == 0
    finally:
        pool.close()


def test_small_bodies_and_bad_bodies_without_workers(duckdb_store):
    with running(create_app(duckdb_store, TelemetrySettings(ingest_workers=0))) as url:
        assert post(url, body(1)[0]).status_code == 200
        r = post(url, b'{"resourceSpans": 5}' + b" " * 20_000)
        assert r.status_code == 400 and "resourceSpans must be a list" in r.json()["message"]
    assert duckdb_store.db.query_one("SELECT count(*) FROM spans")[0] == 200


def test_bad_bodies_in_a_worker_are_400(server):
    url, _, _ = server
    r = post(url, b'{"resourceSpans": 5}' + b" " * 20_000)
    assert r.status_code == 400 and "resourceSpans must be a list" in r.json()["message"]


@pytest.mark.skipif(not fastpath.enabled() and os.environ.get("CI", "").lower() != "true",
                    reason="the compiled decoder is not built")
def test_default_pool_keeps_protobuf_in_process_and_starts_workers_for_json():
    pool = DecodePool(TelemetrySettings()).start()
    try:
        pb = ExportTraceServiceRequest()
        spans = pb.resource_spans.add().scope_spans.add().spans
        for i in range(300):
            sp = spans.add()
            sp.trace_id, sp.span_id, sp.name = (i + 1).to_bytes(16, "big"), (i + 1).to_bytes(8, "big"), "x" * 60
        raw_pb = pb.SerializeToString()
        assert len(raw_pb) > pool.inline_max_bytes
        assert asyncio.run(pool.prepare(raw_pb, None, otlp.PROTOBUF)).batch.count == 300
        assert pool.worker_pids() == [] and pool._executor is None
        raw_json, _ = body(1)
        assert asyncio.run(pool.prepare(raw_json, None, otlp.JSON)).batch.count == 200
        assert pool.worker_pids()
    finally:
        pool.close()
