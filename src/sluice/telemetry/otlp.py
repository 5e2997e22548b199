"""Decode OTLP/HTTP trace export bodies (protobuf or JSON, optionally gzip) into plain spans.

The entry point: content negotiation, decompression, dispatch to ``otlp_json`` or
``otlp_protobuf``, and the response bodies. The span model lives in ``otlp_model`` and is
re-exported here.

Every problem in a body raises ``OtlpError`` with a reason fit for a 400 response; a span whose
ids are malformed is rejected on its own (partial success) without failing its neighbours.
"""

from __future__ import annotations

import gzip
import zlib

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from sluice.telemetry.otlp_json import decode_json
from sluice.telemetry.otlp_model import JSON, PROTOBUF, Decoded, OtlpError, RawSpan, TooLarge, reject
from sluice.telemetry.otlp_protobuf import decode_protobuf

__all__ = ["JSON", "PROTOBUF", "Decoded", "OtlpError", "RawSpan", "TooLarge", "reject", "media_type",
           "decompress", "decode", "success_body", "status_body"]


def media_type(content_type: str | None) -> str | None:
    """``application/x-protobuf`` or ``application/json``; None for anything else."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    if base in (PROTOBUF, "application/protobuf", "application/octet-stream"):
        return PROTOBUF
    if base == JSON:
        return JSON
    return None


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (gzip, deflate, identity) without inflating past ``limit`` bytes."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "deflate"):
        raise OtlpError(f"unsupported Content-Encoding '{enc}' (use gzip, deflate or identity)")
    wbits = 16 + zlib.MAX_WBITS if enc == "gzip" else zlib.MAX_WBITS
    try:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(body, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise TooLarge(f"decompressed body exceeds the {limit}-byte limit")
        if not inflater.eof:
            raise OtlpError(f"truncated {enc} body")
    except (zlib.error, gzip.BadGzipFile) as e:
        raise OtlpError(f"invalid {enc} body: {e}") from None
    return out


def decode(body: bytes, kind: str) -> Decoded:
    if kind == PROTOBUF:
        return decode_protobuf(body)
    return decode_json(body)


# responses --------------------------------------------------------------------------------
def success_body(kind: str, rejected: int = 0, message: str = "") -> bytes:
    """An ``ExportTraceServiceResponse``; ``partial_success`` only when spans were rejected."""
    if kind == JSON:
        if not rejected:
            return b"{}"
        return orjson.dumps({"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": message}})
    resp = ExportTraceServiceResponse()
    if rejected:
        resp.partial_success.rejected_spans = rejected
        resp.partial_success.error_message = message
    return resp.SerializeToString()


def status_body(kind: str, code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` (code, message) in the request's encoding, for 4xx/5xx replies."""
    if kind == JSON:
        return orjson.dumps({"code": code, "message": message})
    msg = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(msg)) + msg


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
