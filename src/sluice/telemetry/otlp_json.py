"""Decode OTLP/JSON trace export bodies into plain spans.

JSON is walked by hand instead of through ``google.protobuf.json_format``: OTLP/JSON writes
trace and span ids as hex (the standard proto3 mapping would read them as base64 and silently
produce wrong ids), 64-bit integers as strings or numbers, and receivers must ignore unknown
fields. Both lowerCamelCase and the original snake_case field names are accepted.
"""

from __future__ import annotations

import binascii
from typing import Any

import orjson

from sluice.telemetry.otlp_model import Decoded, OtlpError, RawSpan, reject
from sluice.telemetry.values import INT64, MAX_DEPTH


def decode_json(body: bytes) -> Decoded:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise OtlpError(f"body is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise OtlpError("body must be a JSON object with 'resourceSpans'")
    out = Decoded([])
    for i, rs in enumerate(_list(doc, "resourceSpans", "resource_spans", where="")):
        where = f"resourceSpans[{i}]"
        res = _obj(rs, where).get("resource") or {}
        resource = _json_attrs(_obj(res, where + ".resource").get("attributes"), where + ".resource.attributes")
        for j, ss in enumerate(_list(rs, "scopeSpans", "scope_spans", where=where)):
            swhere = f"{where}.scopeSpans[{j}]"
            for k, sp in enumerate(_list(_obj(ss, swhere), "spans", "spans", where=swhere)):
                _json_span(out, _obj(sp, f"{swhere}.spans[{k}]"), resource, f"{swhere}.spans[{k}]")
    return out


def _json_span(out: Decoded, sp: dict, resource: dict[str, Any], where: str) -> None:
    name = sp.get("name") or ""
    if not isinstance(name, str):
        raise OtlpError(f"{where}.name must be a string")
    tid = _hex_id(_get(sp, "traceId", "trace_id"), 16)
    sid = _hex_id(_get(sp, "spanId", "span_id"), 8)
    parent = _get(sp, "parentSpanId", "parent_span_id")
    pid = "" if parent in (None, "") else _hex_id(parent, 8)
    if tid is None or sid is None or pid is None:
        reject(out, f"span '{name}' has an invalid traceId/spanId/parentSpanId (hex expected)")
        return
    start = _int(_get(sp, "startTimeUnixNano", "start_time_unix_nano"), where + ".startTimeUnixNano")
    end = _int(_get(sp, "endTimeUnixNano", "end_time_unix_nano"), where + ".endTimeUnixNano")
    if not (0 <= start < INT64 and 0 <= end < INT64):
        reject(out, f"span '{name[:100]}' has a start or end time outside 0..2^63-1 ns")
        return
    status = sp.get("status") or {}
    if not isinstance(status, dict):
        raise OtlpError(f"{where}.status must be an object")
    events = []
    for n, ev in enumerate(sp.get("events") or []):
        ev = _obj(ev, f"{where}.events[{n}]")
        events.append((str(ev.get("name") or ""), _int(_get(ev, "timeUnixNano", "time_unix_nano"), f"{where}.events[{n}]"),
                       _json_attrs(ev.get("attributes"), f"{where}.events[{n}].attributes")))
    out.spans.append(RawSpan(
        tid, sid, pid, name, start, end,
        _int(status.get("code"), where + ".status.code"), str(status.get("message") or ""),
        _json_attrs(sp.get("attributes"), where + ".attributes"), resource, events,
    ))


def _json_attrs(kvs: Any, where: str, level: int = 0) -> dict[str, Any]:
    if kvs is None:
        return {}
    if not isinstance(kvs, list):
        raise OtlpError(f"{where} must be a list of {{key, value}}")
    attrs = {}
    for kv in kvs:
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise OtlpError(f"{where} entries need a string 'key'")
        attrs[kv["key"]] = _json_value(kv.get("value"), f"{where}.{kv['key']}", level)
    return attrs


def _json_value(v: Any, where: str, level: int = 0) -> Any:
    if v is None or v == {}:
        return None
    if not isinstance(v, dict):
        raise OtlpError(f"{where} must be an AnyValue object")
    if level >= MAX_DEPTH:
        raise OtlpError(f"{where} is nested more than {MAX_DEPTH} levels deep")
    for key, val in v.items():
        if key in ("stringValue", "string_value", "boolValue", "bool_value", "doubleValue", "double_value"):
            return val
        if key in ("intValue", "int_value"):
            n = _int(val, where)
            return n if -INT64 <= n < INT64 else str(val)  # beyond int64: kept as its text
        if key in ("arrayValue", "array_value"):
            return [_json_value(x, where, level + 1) for x in (val or {}).get("values") or []]
        if key in ("kvlistValue", "kvlist_value"):
            return _json_attrs((val or {}).get("values"), where, level + 1)
        if key in ("bytesValue", "bytes_value"):
            return val
    return None  # unknown AnyValue field: ignored, as the spec requires


def _hex_id(value: Any, size: int) -> str | None:
    if not isinstance(value, str) or len(value) != size * 2:
        return None
    try:
        raw = binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        return None
    return None if raw == bytes(size) else value.lower()


def _int(value: Any, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise OtlpError(f"{where} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise OtlpError(f"{where} must be an integer (decimal string or number), got {value!r}")


def _get(d: dict, camel: str, snake: str) -> Any:
    return d[camel] if camel in d else d.get(snake)


def _list(d: dict, camel: str, snake: str, *, where: str) -> list:
    v = _get(d, camel, snake)
    if v is None:
        return []
    if not isinstance(v, list):
        raise OtlpError(f"{(where + '.') if where else ''}{camel} must be a list")
    return v


def _obj(v: Any, where: str) -> dict:
    if not isinstance(v, dict):
        raise OtlpError(f"{where} must be an object")
    return v
