"""OTLP body decoding: protobuf and JSON agree, hex ids, gzip, bad input and partial success."""

from __future__ import annotations

import gzip

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from sluice.telemetry import otlp

TRACE = "5B8EFFF798038103D269B633813FC60C"
SPAN = "EEE19B7EC3C1B174"


def json_request(spans: list[dict], resource: list[dict] | None = None) -> dict:
    return {"resourceSpans": [{"resource": {"attributes": resource or []}, "scopeSpans": [{"spans": spans}]}]}


def span(**over) -> dict:
    base = {"traceId": TRACE, "spanId": SPAN, "name": "chat", "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": 1700000000250000000, "status": {"code": 2, "message": "boom"},
            "attributes": [
                {"key": "llm.token_count.prompt", "value": {"intValue": "12"}},
                {"key": "flag", "value": {"boolValue": True}},
                {"key": "ratio", "value": {"doubleValue": 0.5}},
                {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}]}}},
                {"key": "nested", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"intValue": 3}}]}}},
                {"key": "unknown_kind", "value": {"futureValue": 1}},
            ],
            "events": [{"name": "First Token Stream Event", "timeUnixNano": "1700000000100000000"}],
            "someFutureField": {"ignored": True}}
    base.update(over)
    return base


def test_json_hex_ids_and_value_types():
    d = otlp.decode(orjson.dumps(json_request([span()], [{"key": "service.name", "value": {"stringValue": "svc"}}])),
                    otlp.JSON)
    assert d.rejected == 0 and len(d.spans) == 1
    s = d.spans[0]
    assert (s.trace_id, s.span_id, s.parent_id) == (TRACE.lower(), SPAN.lower(), "")
    assert (s.start_ns, s.end_ns, s.status_code, s.status_message) == (1700000000000000000, 1700000000250000000, 2, "boom")
    assert s.attributes == {"llm.token_count.prompt": 12, "flag": True, "ratio": 0.5, "tags": ["a", "b"],
                            "nested": {"k": 3}, "unknown_kind": None}
    assert s.resource == {"service.name": "svc"}
    assert s.events == [("First Token Stream Event", 1700000000100000000, {})]


def test_protobuf_decodes_to_the_same_span_as_json():
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "svc"
    sp = rs.scope_spans.add().spans.add()
    sp.trace_id, sp.span_id, sp.parent_span_id = bytes.fromhex(TRACE), bytes.fromhex(SPAN), bytes.fromhex("00000000000000ff")
    sp.name, sp.start_time_unix_nano, sp.end_time_unix_nano = "chat", 10, 30
    a = sp.attributes.add()
    a.key, a.value.int_value = "llm.token_count.prompt", 12
    b = sp.attributes.add()
    b.key = "tags"
    b.value.array_value.values.add().string_value = "a"
    d = otlp.decode(req.SerializeToString(), otlp.PROTOBUF)
    s = d.spans[0]
    assert (s.trace_id, s.span_id, s.parent_id) == (TRACE.lower(), SPAN.lower(), "00000000000000ff")
    assert s.attributes == {"llm.token_count.prompt": 12, "tags": ["a"]} and s.resource == {"service.name": "svc"}
    assert (s.start_ns, s.end_ns) == (10, 30)


def test_bad_ids_are_rejected_one_by_one():
    body = json_request([span(), span(traceId="not-hex"), span(spanId="0000000000000000"), span(traceId=TRACE[:30])])
    d = otlp.decode(orjson.dumps(body), otlp.JSON)
    assert (len(d.spans), d.rejected) == (1, 3)
    assert "invalid traceId" in d.reasons[0]


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"resourceSpans": 5}', "resourceSpans must be a list"),
    (orjson.dumps(json_request([span(startTimeUnixNano="soon")])), "startTimeUnixNano must be an integer"),
    (orjson.dumps(json_request([span(attributes=[{"value": {}}])])), "need a string 'key'"),
])
def test_malformed_json_names_the_problem(body, reason):
    with pytest.raises(otlp.OtlpError, match=reason):
        otlp.decode(body, otlp.JSON)


def test_malformed_protobuf():
    with pytest.raises(otlp.OtlpError, match="not a valid ExportTraceServiceRequest"):
        otlp.decode(b"\xff\xff\xff\xff garbage", otlp.PROTOBUF)


def test_gzip_and_decompression_limit():
    raw = orjson.dumps(json_request([span()]))
    assert otlp.decompress(gzip.compress(raw), "gzip", 10_000) == raw
    with pytest.raises(otlp.TooLarge):
        otlp.decompress(gzip.compress(b"0" * 100_000), "gzip", 10_000)
    with pytest.raises(otlp.OtlpError, match="invalid gzip"):
        otlp.decompress(b"not gzip", "gzip", 10_000)
    with pytest.raises(otlp.OtlpError, match="unsupported Content-Encoding 'br'"):
        otlp.decompress(raw, "br", 10_000)


def test_partial_success_bodies():
    assert otlp.success_body(otlp.JSON) == b"{}"
    assert orjson.loads(otlp.success_body(otlp.JSON, 2, "bad ids")) == {
        "partialSuccess": {"rejectedSpans": "2", "errorMessage": "bad ids"}}
    resp = ExportTraceServiceResponse.FromString(otlp.success_body(otlp.PROTOBUF, 2, "bad ids"))
    assert (resp.partial_success.rejected_spans, resp.partial_success.error_message) == (2, "bad ids")
    assert not ExportTraceServiceResponse.FromString(otlp.success_body(otlp.PROTOBUF)).HasField("partial_success")


def test_status_body_is_a_google_rpc_status():
    from google.rpc import status_pb2  # shipped with the OTLP exporter (googleapis-common-protos)

    st = status_pb2.Status.FromString(otlp.status_body(otlp.PROTOBUF, 3, "body is not valid"))
    assert (st.code, st.message) == (3, "body is not valid")
