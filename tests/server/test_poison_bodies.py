"""Issue 10 items 6 and 10: OTLP bodies that poisoned the writer (a start time ≥ 2^63 got a
retryable 503 for ever; integers over 64 bits and JSON nested ~256+ deep gave 500s, also in
feedback and the deployments API) are stored with the value kept as text or refused with a
non-retryable 400; negative or absurd usage is flagged and never summed."""

from __future__ import annotations

import json

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sluice.auth.keys import create_key
from sluice.gateway.app import make_gateway
from sluice.gateway.config import GatewaySettings
from sluice.server.app import create_app
from sluice.server.runner import running
from sluice.telemetry.schema import SPAN_COLUMNS
from sluice.telemetry.traces import span_dict

TID = "0af7651916cd43dd8448eb211c80319c"


def span(**kw) -> dict:
    s = {"traceId": TID, "spanId": "b7ad6b7169203331", "name": "x", "startTimeUnixNano": "1000",
         "endTimeUnixNano": "2000"}
    s.update(kw)
    return {"resourceSpans": [{"scopeSpans": [{"spans": [s]}]}]}


def nested_av(n: int) -> dict:
    v: dict = {"intValue": "1"}
    for _ in range(n):
        v = {"arrayValue": {"values": [v]}}
    return v


def nested_json(n: int) -> str:
    return "[" * n + "1" + "]" * n


@pytest.fixture
def server(duckdb_store):
    app = create_app(duckdb_store, routers=[make_gateway(GatewaySettings(), duckdb_store).router])
    with running(app) as url:
        yield url, duckdb_store


def stored(store) -> list[dict]:
    return [span_dict(r) for r in store.db.query(f"SELECT {', '.join(SPAN_COLUMNS)} FROM spans")]


def post_json(url: str, body) -> httpx.Response:
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return httpx.post(url + "/v1/traces", content=raw, headers={"content-type": "application/json"}, timeout=30)


@pytest.mark.parametrize("start, end", [(str(2 ** 63), str(2 ** 63 + 5)), ("1000", str(2 ** 64 + 5)), ("-5", "10")])
def test_times_outside_int64_are_rejected_not_retried(server, start, end):
    url, store = server
    r = post_json(url, span(startTimeUnixNano=start, endTimeUnixNano=end))
    assert r.status_code == 200
    assert r.json()["partialSuccess"]["rejectedSpans"] == "1" and "outside" in r.json()["partialSuccess"]["errorMessage"]
    assert stored(store) == []


def test_a_protobuf_time_past_int64_is_rejected(server):
    url, store = server
    pb = ExportTraceServiceRequest()
    spans = pb.resource_spans.add().scope_spans.add().spans
    for i, start in enumerate((1000, 2 ** 63 + 1)):
        sp = spans.add()
        sp.trace_id, sp.span_id, sp.name = bytes.fromhex(TID), (i + 1).to_bytes(8, "big"), f"s{i}"
        sp.start_time_unix_nano, sp.end_time_unix_nano = start, start + 10
    r = httpx.post(url + "/v1/traces", content=pb.SerializeToString(),
                   headers={"content-type": "application/x-protobuf"}, timeout=30)
    assert r.status_code == 200
    assert [s["name"] for s in stored(store)] == ["s0"]


def test_integers_over_64_bits_are_kept_as_text(server):
    url, store = server
    big = 2 ** 70
    body = span(attributes=[{"key": "a", "value": {"intValue": str(big)}},
                            {"key": "llm.token_count.prompt", "value": {"intValue": str(big)}}])
    assert post_json(url, body).status_code == 200
    raw = json.dumps(span(attributes=[{"key": "b", "value": {"intValue": big}}])).replace(
        '"spanId": "b7ad6b7169203331"', '"spanId": "b7ad6b7169203332"')
    assert post_json(url, raw).status_code == 200
    meta = json.dumps({"n": big, "deep": json.loads(nested_json(300))})
    body = span(spanId="b7ad6b7169203333", attributes=[{"key": "metadata", "value": {"stringValue": meta}}])
    assert post_json(url, body).status_code == 200
    rows = {s["span_id"]: s for s in stored(store)}
    assert rows["b7ad6b7169203331"]["attributes"]["a"] == str(big)
    assert rows["b7ad6b7169203331"]["input_tokens"] is None
    assert rows["b7ad6b7169203332"]["attributes"]["b"] in (str(big), str(float(big)))  # a bare JSON number: parsed as a double first
    assert len(rows) == 3


def test_deep_nesting_is_a_400(server):
    url, store = server
    r = post_json(url, span(attributes=[{"key": "a", "value": nested_av(300)}]))
    assert r.status_code == 400 and "nested more than" in r.json()["message"]
    fb = '{"trace_id": "%s", "kind": "thumbs_up", "value": %s}' % (TID, nested_json(300))
    r = httpx.post(url + "/api/feedback", content=fb, timeout=30)
    assert r.status_code == 400 and "nested" in r.json()["error"]
    r = httpx.put(url + "/api/deployments/x", content='{"stable": %s}' % nested_json(300), timeout=30)
    assert r.status_code == 400
    assert stored(store) == []


def test_feedback_with_an_integer_over_64_bits_is_stored(server):
    url, store = server
    r = httpx.post(url + "/api/feedback", content='{"trace_id": "%s", "kind": "thumbs_up", "value": {"n": %d}}'
                   % (TID, 2 ** 70), timeout=30)
    assert r.status_code == 200
    assert store.db.query("SELECT value FROM feedback")


def test_absurd_usage_is_flagged_and_never_summed(server):
    url, store = server
    _, admin = create_key(store, "ops", "admin")

    def llm(sid: str, prompt, completion, cost):
        return {"traceId": TID, "spanId": sid, "name": "chat", "startTimeUnixNano": "1000", "endTimeUnixNano": "2000",
                "attributes": [
                    {"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
                    {"key": "llm.model_name", "value": {"stringValue": "m"}},
                    {"key": "sluice.deployment", "value": {"stringValue": "d"}},
                    {"key": "llm.token_count.prompt", "value": {"intValue": str(prompt)}},
                    {"key": "llm.token_count.completion", "value": {"intValue": str(completion)}},
                    {"key": "llm.cost.total", "value": {"doubleValue": cost}}]}
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [
        llm("00000000000000a1", 10, 5, 0.5), llm("00000000000000a2", -7, 5, 0.1),
        llm("00000000000000a3", 10, 5, 1e300), llm("00000000000000a4", 10, 5, -1.0)]}]}]}
    headers = {"authorization": f"Bearer {admin}", "content-type": "application/json"}
    for _ in range(100):  # the new key reaches the snapshot (bounded)
        r = httpx.post(url + "/v1/traces", content=json.dumps(body), headers=headers, timeout=30)
        if r.status_code != 401:
            break
    assert r.status_code == 200
    rows = {s["span_id"]: s for s in stored(store)}
    assert rows["00000000000000a1"]["cost"] == 0.5 and rows["00000000000000a1"]["input_tokens"] == 10
    for sid in ("00000000000000a2", "00000000000000a3", "00000000000000a4"):
        assert rows[sid]["cost"] is None and rows[sid]["input_tokens"] is None
        assert "outside" in rows[sid]["attributes"]["sluice.usage_invalid"]
    total = store.db.query_one("SELECT SUM(cost), SUM(input_tokens) FROM spans")
    assert total == (0.5, 10)


def test_otlp_identifiers_are_bounded(server):
    url, store = server
    body = span(attributes=[{"key": "session.id", "value": {"stringValue": "s" * 5000}},
                            {"key": "user.id", "value": {"stringValue": "u" * 300_000}}])
    assert post_json(url, body).status_code == 200
    [row] = stored(store)
    assert len(row["session_id"]) == 256 and len(row["user_id"]) == 256
