"""The fast protobuf decoder agrees with the generated OTLP classes on every value shape."""

from __future__ import annotations

import base64

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_values import set_value
from sluice.telemetry import otlp
from sluice.telemetry.otlp_protobuf import pb_value

LONG = "é" * 100 + "x" * 20_000  # a two-byte length prefix would not do: three bytes


VALUES = {
    "short": "gpt-4o-mini", "empty_string": "", "unicode": "naïve 日本", "medium": "m" * 200, "long": LONG,
    "zero": 0, "small": 42, "big": 2**40, "negative": -7, "true": True, "false": False, "pi": 3.25,
    "blob": b"\x00\x01\xff", "list": ["a", 1, 2.5, True], "kv": {"k": 3, "nested": {"x": "y"}},
    "unset": None, "k" * 300: "long key",
}


def request() -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "svc"
    sp = rs.scope_spans.add().spans.add()
    sp.trace_id, sp.span_id, sp.name = bytes(range(1, 17)), bytes(range(1, 9)), "chat"
    sp.start_time_unix_nano, sp.end_time_unix_nano, sp.status.code, sp.status.message = 5, 9, 2, "bad"
    for key, value in VALUES.items():
        kv = sp.attributes.add()
        kv.key = key
        set_value(kv.value, value)
    dup = sp.attributes.add()
    dup.key, dup.value.string_value = "short", "last wins"
    ev = sp.events.add()
    ev.name, ev.time_unix_nano = "exception", 7
    ea = ev.attributes.add()
    ea.key, ea.value.string_value = "exception.type", "ValueError"
    sp.links.add().trace_id = b"\x01" * 16  # not stored: skipped
    return req.SerializeToString()


def test_fast_decoder_matches_the_generated_classes():
    body = request()
    reference = ExportTraceServiceRequest.FromString(body).resource_spans[0].scope_spans[0].spans[0]
    expected = {kv.key: pb_value(kv.value) for kv in reference.attributes}
    for _ in range(2):  # the second pass reads memoised pairs
        s = otlp.decode(body, otlp.PROTOBUF).spans[0]
        assert s.attributes == expected
    assert s.attributes["short"] == "last wins" and s.attributes["long"] == LONG
    assert (s.attributes["big"], s.attributes["negative"], s.attributes["unset"]) == (2**40, -7, None)
    assert s.attributes["blob"] == base64.b64encode(b"\x00\x01\xff").decode()
    assert s.attributes["kv"] == {"k": 3, "nested": {"x": "y"}} and s.attributes["k" * 300] == "long key"
    assert type(s.attributes["true"]) is bool and type(s.attributes["small"]) is int
    assert (s.trace_id, s.span_id, s.parent_id) == (bytes(range(1, 17)).hex(), bytes(range(1, 9)).hex(), "")
    assert (s.name, s.start_ns, s.end_ns, s.status_code, s.status_message) == ("chat", 5, 9, 2, "bad")
    assert s.resource == {"service.name": "svc"}
    assert s.events == [("exception", 7, {"exception.type": "ValueError"})]


def test_invalid_utf8_in_an_attribute_is_a_decode_error():
    body = request()
    bad = body.replace("naïve".encode(), b"na\xff\xfeve")
    with pytest.raises(otlp.OtlpError, match="not a valid ExportTraceServiceRequest"):
        otlp.decode(bad, otlp.PROTOBUF)


def test_a_truncated_attribute_is_a_decode_error():
    with pytest.raises(otlp.OtlpError, match="not a valid ExportTraceServiceRequest"):
        otlp.decode(request()[:-40], otlp.PROTOBUF)
