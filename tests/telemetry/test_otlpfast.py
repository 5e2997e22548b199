"""The compiled decoder/normaliser (``_otlpfast``) against the pure-Python reference.

Differential: thousands of generated export bodies (OpenInference, traceAI legacy and current,
OTel GenAI, resource attributes, every AnyValue shape, unicode, NULs, empty and missing fields,
duplicates, bad ids) and damaged ones (truncated, flipped bytes, hand-made odd wire) go through
both. Where the compiled code accepts a body, every column, evaluation row, rejected count and
reason must be identical (``repr`` compares types, -0.0 and NaN too); where it declines, the
public entry point must give exactly the reference's result or error. The common shapes must
not be declined, or the fast path would silently stop being used.
"""

from __future__ import annotations

import os
import random
import struct

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_values import set_value
from sluice.server import decode_pool
from sluice.telemetry import fastpath, normalize, otlp
from sluice.telemetry.config import Price, TelemetrySettings
from sluice.telemetry.normalize import Normalizer
from sluice.telemetry.writer import SpanBatch

# skipped without the extension, except with CI=true, where the tests run and fail
needs_extension = pytest.mark.skipif(not fastpath.built() and os.environ.get("CI", "").lower() != "true",
                                     reason="the compiled decoder is not built")
NOW = 1_700_000_000.25

SETTINGS = [
    TelemetrySettings(),
    TelemetrySettings(
        deployment_attributes=["resource.deployment.environment", "app.deployment", "metadata.deployment"],
        release_attributes=["metadata.version", "service.version", "llm.model_name"],
        route_attributes=["route", "resource.route"], cohort_attributes=["metadata.tier", "resource.tier", "tier"],
        prices={"gpt-4o": Price(input=2.5, output=10), "gpt-4o-mini": Price(input=0.15, output=0.6),
                "claude": Price(input=3, output=15)}),
]

SLOT_KEYS = [k for keys in normalize._ALIASES for k in keys]
SPECIAL_KEYS = ["gen_ai.operation.name", "metadata", "evaluations.0.evaluation.name", "evaluations.0.evaluation.score",
                "evaluations.0.evaluation.label", "evaluations.1.evaluation.name", "llm.cost.prompt",
                "llm.cost.completion", "gen_ai.cost.input", "gen_ai.cost.output", "gen_ai.evaluation.name",
                "gen_ai.evaluation.score.value", "eval.label", "sluice.eval.passed", "sluice.deployment",
                "sluice.release", "sluice.route", "sluice.cohort", "langfuse.release", "app.deployment", "route",
                "tier", "@resource", "@events", "@status_message", "service.name", "service.version",
                "gen_ai.request.parameters", "gen_ai.evaluation.target_span_id", "project_name"]
OTHER_KEYS = ["input.value", "output.value", "llm.input_messages.0.message.content", "gen_ai.request.temperature",
              "gen_ai.response.finish_reasons", "llm.invocation_parameters", "naïve.ключ", "", "k" * 200,
              "tab\tkey", 'quote"key', "emoji 😀"]
TEXTS = ["gpt-4o-mini", "gpt-4o-2024-08-06", "claude-3", "openai", "LLM", "llm", "chain", "Tool", "evaluator",
         "EVALUATOR", "embedding", "chat", "execute_tool", "rerank", "", " ", "true", "False", "TRUE", "yes", "42",
         " 7 ", "-3", "1e3", "1_000", "0.25", "nan", "inf", "abc", "fallback", "cache", "stable", "canary",
         "ValueError", "naïve 日本語", "emoji 😀 text", "nul\x00inside", "\x00", "ctl\x01\x1f\x7f", 'q"uo\\te\n',
         "ǅ ß ﬁ", "x" * 300, '{"deployment": "d1", "version": "v9", "tier": "gold", "cohort": "pro"}',
         '{"tier": ["a", 1], "deployment": {"x": 1}, "version": null}', '{"tier": ""}', "{broken", "[1, 2]",
         "{}", "s1", "u7", '{"model": "gpt-4o-mini", "stream": true}', '{"model": ""}', '{"model": 7}']


def rand_value(r: random.Random, depth: int = 0):
    pick = r.random()
    if pick < 0.45:
        return r.choice(TEXTS)
    if pick < 0.6:
        return r.choice([0, 1, 7, 42, 127, 128, 300, -1, -7, 2**31, 2**40, 2**63 - 1, -(2**63), 10**15])
    if pick < 0.67:
        return r.choice([True, False])
    if pick < 0.76:
        return r.choice([0.0, -0.0, 0.1, 1.5, 3.25, 1e16, 1e-7, 123456789.123, float("nan"), float("inf"),
                         -float("inf"), 2.0**63, 5e-324, 0.000123])
    if pick < 0.8:
        return r.choice([b"", b"\x00\x01\xff", b"abc", bytes(range(40))])
    if pick < 0.88 and depth < 3:
        return [rand_value(r, depth + 1) for _ in range(r.randint(0, 4))]
    if pick < 0.95 and depth < 3:
        return [(r.choice(["a", "b", "c", "é", ""]), rand_value(r, depth + 1)) for _ in range(r.randint(0, 4))]
    return None


def add_attrs(container, r: random.Random, count: int, keys: list[str]) -> None:
    for _ in range(count):
        kv = container.add()
        kv.key = r.choice(keys)
        if r.random() < 0.93:
            set_value(kv.value, rand_value(r))


def random_request(r: random.Random) -> bytes:
    req = ExportTraceServiceRequest()
    for _ in range(r.randint(1, 3)):
        rs = req.resource_spans.add()
        if r.random() < 0.85:
            add_attrs(rs.resource.attributes, r, r.randint(0, 5),
                      ["service.name", "service.version", "deployment.environment", "route", "tier",
                       "telemetry.sdk.name", "naïve", "metadata", "project_name", "project_version_name"])
        for _ in range(r.randint(0, 2)):
            ss = rs.scope_spans.add()
            if r.random() < 0.5:
                ss.scope.name = "openinference.instrumentation.openai"
            for _ in range(r.randint(0, 6)):
                sp = ss.spans.add()
                bad = r.random()
                sp.trace_id = (bytes(16) if bad < 0.03 else bytes(15) if bad < 0.05 else
                               r.randbytes(16) if bad < 0.97 else b"")
                sp.span_id = bytes(8) if r.random() < 0.03 else r.randbytes(8)
                if r.random() < 0.5:
                    sp.parent_span_id = r.randbytes(8) if r.random() < 0.95 else b"\x01\x02"
                if r.random() < 0.95:
                    sp.name = r.choice(["ChatCompletion", "chat gpt-4o", "retrieve", "", "naïve", "nul\x00name"])
                start = r.choice([0, 1, 1_700_000_000_000_000_000, 2**63 - 5])
                sp.start_time_unix_nano = start
                sp.end_time_unix_nano = max(0, start + r.choice([0, 1, 5_000_000, -1000, 123_456_789]))
                if r.random() < 0.7:
                    sp.status.code = r.choice([0, 1, 2])
                if r.random() < 0.2:
                    sp.status.message = r.choice(["boom", "", "naïve ✗", 'q"'])
                add_attrs(sp.attributes, r, r.randint(0, 14), SLOT_KEYS + SPECIAL_KEYS + OTHER_KEYS)
                if r.random() < 0.1:
                    ev = sp.events.add()
                    ev.name = r.choice(["exception", "First Token Stream Event", "gen_ai.first_token", "log"])
                    ev.time_unix_nano = start + r.choice([0, 10, 2_000_000])
                    add_attrs(ev.attributes, r, r.randint(0, 2), ["exception.type", "exception.message"])
                if r.random() < 0.05:
                    sp.kind = 3
                    sp.links.add().trace_id = b"\x01" * 16
                    sp.dropped_attributes_count = 2
    body = req.SerializeToString()
    if r.random() < 0.1:  # two requests back to back: protobuf merges them (resource_spans appended)
        body += random_request(r)
    return body


def reference(body: bytes, normalizer: Normalizer):
    """(repr of the columns, count, evals, rejected, reasons) or (exception type, message)."""
    try:
        decoded = otlp.decode(body, otlp.PROTOBUF)
        rows, evals = normalizer.rows(decoded.spans)
    except Exception as e:  # noqa: BLE001 - compared, not handled
        return type(e), str(e)
    batch = SpanBatch.from_rows(rows, evals)
    return repr([list(c) for c in batch.columns]), batch.count, repr(batch.evals), decoded.rejected, decoded.reasons


def compiled(body: bytes, normalizer: Normalizer):
    """The same shape from the C code, or None when it declines the body."""
    try:
        columns, count, evals, rejected, reasons = fastpath._otlpfast.decode(
            body, fastpath._config(normalizer), NOW)
    except fastpath._otlpfast.Fallback:
        return None
    batch = SpanBatch(columns, count, evals)  # as fastpath.decode_columns wraps them (usage bounds apply)
    return repr([list(c) for c in batch.columns]), count, repr(batch.evals), rejected, reasons


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    monkeypatch.setattr(normalize.time, "time", lambda: NOW)


def damaged(r: random.Random, body: bytes) -> bytes:
    b = bytearray(body)
    how = r.random()
    if how < 0.4 and b:
        return bytes(b[:r.randrange(len(b))])
    if how < 0.8 and b:
        for _ in range(r.randint(1, 4)):
            b[r.randrange(len(b))] = r.randrange(256)
        return bytes(b)
    pos = r.randrange(len(b) + 1)
    return bytes(b[:pos]) + r.randbytes(r.randint(1, 12)) + bytes(b[pos:])


@needs_extension
@pytest.mark.parametrize("settings_no", range(len(SETTINGS)))
def test_compiled_and_reference_agree_on_generated_bodies(settings_no):
    normalizer = Normalizer(SETTINGS[settings_no])
    r = random.Random(1234 + settings_no)
    taken = declined = errors = 0
    for _ in range(1500):
        body = random_request(r)
        if r.random() < 0.3:
            body = damaged(r, body)
        expected = reference(body, normalizer)
        got = compiled(body, normalizer)
        if got is None:
            declined += 1
        else:
            taken += 1
            assert got == expected, body.hex()
        if isinstance(expected[0], type):
            errors += 1
        # the public entry point: identical result or identical error either way
        assert prepared(body, normalizer) == expected, body.hex()
    assert taken > 1000 and errors > 100, (taken, declined, errors)


def prepared(body: bytes, normalizer: Normalizer):
    try:
        p = decode_pool.prepare(normalizer, body, None, otlp.PROTOBUF, 1 << 30)
    except Exception as e:  # noqa: BLE001
        return type(e), str(e)
    b = p.batch
    return repr([list(c) for c in b.columns]), b.count, repr(b.evals), p.rejected, p.reasons


def common_body(seed: int) -> bytes:
    """OpenInference, traceAI legacy (fi.*/llm.*), traceAI current / OTel GenAI (gen_ai.*) spans."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for k, v in (("service.name", "shop-bot"), ("service.version", "v1.2.0"), ("deployment.environment", "prod")):
        kv = rs.resource.attributes.add()
        kv.key, kv.value.string_value = k, v
    spans = rs.scope_spans.add().spans
    shapes = [
        {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.provider": "openai",
         "llm.token_count.prompt": 42, "llm.token_count.completion": 17, "llm.token_count.total": 59,
         "input.value": "Où est ma commande ? 📦", "output.value": 'She said "hi"\n\tthen left',
         "metadata": '{"cohort": "enterprise", "deployment": "shop"}', "session.id": "s1", "user.id": "u1",
         "llm.invocation_parameters": '{"temperature": 0.2}'},
        {"fi.span.kind": "llm", "llm.model_name": "claude-3", "llm.system": "anthropic",
         "llm.token_count.prompt": "12", "llm.token_count.completion": 3, "sluice.route": "canary",
         "sluice.release": "v2", "sluice.cohort": "pro", "sluice.fallback_used": "true", "sluice.ttft_ms": 35.5},
        {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
         "gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 200,
         "gen_ai.request.temperature": 0.7, "gen_ai.response.finish_reasons": ["stop"],
         "gen_ai.server.time_to_first_token": 0.125, "gen_ai.conversation.id": "c9", "error.type": "timeout"},
        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search", "graph.node.name": "planner",
         "sluice.cache_hit": True, "sluice.cost": 0.002, "tool.parameters": [("q", "kettle"), ("n", 3)]},
        {"openinference.span.kind": "RETRIEVER", "retrieval.documents.0.document.content": "x" * 500,
         "embedding.model_name": "text-embedding-3-small", "sluice.request": "false", "enduser.id": "e5"},
    ]
    for i in range(60):
        sp = spans.add()
        sp.trace_id = (seed * 1000 + i + 1).to_bytes(16, "big")
        sp.span_id = (i + 1).to_bytes(8, "big")
        if i % 3:
            sp.parent_span_id = (i + 100).to_bytes(8, "big")
        sp.name, sp.start_time_unix_nano, sp.end_time_unix_nano = f"span {i}", 10**18 + i, 10**18 + i * 7919
        sp.status.code = i % 3
        if i % 7 == 0:
            sp.status.message = "upstream said no"
        for k, v in shapes[i % len(shapes)].items():
            kv = sp.attributes.add()
            kv.key = k
            set_value(kv.value, v)
    return req.SerializeToString()


@needs_extension
@pytest.mark.parametrize("settings_no", range(len(SETTINGS)))
def test_common_shapes_take_the_compiled_path(settings_no):
    normalizer = Normalizer(SETTINGS[settings_no])
    for seed in range(5):
        body = common_body(seed)
        got = compiled(body, normalizer)
        assert got is not None, "the compiled decoder declined a common body"
        assert got == reference(body, normalizer)


def wire(field: int, wt: int, payload: bytes | int) -> bytes:
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)
    tag = varint(field << 3 | wt)
    if wt == 0:
        return tag + varint(payload)
    if wt == 2:
        return tag + varint(len(payload)) + payload
    return tag + payload


def span_bytes(*extra: bytes, attrs: tuple[bytes, ...] = ()) -> bytes:
    return (wire(1, 2, b"\x01" * 16) + wire(2, 2, b"\x02" * 8) + wire(5, 2, b"n")
            + b"".join(wire(9, 2, a) for a in attrs) + b"".join(extra))


def body_of(*spans: bytes, resource: bytes = b"") -> bytes:
    rs = (wire(1, 2, resource) if resource else b"") + wire(2, 2, b"".join(wire(2, 2, s) for s in spans))
    return wire(1, 2, rs)


def kv(key: bytes, value: bytes | None) -> bytes:
    return wire(1, 2, key) + (wire(2, 2, value) if value is not None else b"")


ODD_BODIES = {
    "string then int in one value": body_of(span_bytes(attrs=(kv(b"llm.model_name", wire(1, 2, b"m") + wire(3, 0, 5)),))),
    "array value twice (merged)": body_of(span_bytes(attrs=(kv(b"a", wire(5, 2, wire(1, 2, wire(1, 2, b"x")))
                                                                  + wire(5, 2, wire(1, 2, wire(3, 0, 1)))),))),
    "key twice in one KeyValue": body_of(span_bytes(attrs=(wire(1, 2, b"a") + wire(1, 2, b"b") + wire(2, 2, wire(1, 2, b"v")),))),
    "value before key": body_of(span_bytes(attrs=(wire(2, 2, wire(1, 2, b"v")) + wire(1, 2, b"session.id"),))),
    "empty KeyValue": body_of(span_bytes(attrs=(b"",))),
    "key_strindex": body_of(span_bytes(attrs=(wire(3, 0, 4) + wire(2, 2, wire(1, 2, b"v")),))),
    "string_value_strindex": body_of(span_bytes(attrs=(kv(b"a", wire(8, 0, 3)),))),
    "unknown AnyValue field": body_of(span_bytes(attrs=(kv(b"a", wire(15, 0, 3)),))),
    "name twice": body_of(span_bytes(wire(5, 2, b"second"))),
    "status twice (merged)": body_of(span_bytes(wire(15, 2, wire(3, 0, 2)), wire(15, 2, wire(2, 2, b"msg")))),
    "status code wraps int32": body_of(span_bytes(wire(15, 2, wire(3, 0, 2**32 + 1)))),
    "negative status code": body_of(span_bytes(wire(15, 2, wire(3, 0, 2**64 - 1)))),
    "resource twice (merged)": wire(1, 2, wire(1, 2, wire(1, 2, kv(b"service.name", wire(1, 2, b"a"))))
                                        + wire(2, 2, wire(2, 2, span_bytes()))
                                        + wire(1, 2, wire(1, 2, kv(b"service.version", wire(1, 2, b"v")))
                                                   + wire(1, 2, kv(b"service.name", wire(1, 2, b"b"))))),
    "fixed32 unknown field": body_of(span_bytes(wire(16, 5, b"\x01\x00\x00\x00"))),
    "group wire type": body_of(span_bytes(wire(6, 3, b"") + wire(6, 4, b""))),
    "field number 0": body_of(span_bytes(wire(0, 0, 1))),
    "name as varint": body_of(span_bytes(wire(5, 0, 1))),
    "start as varint": body_of(span_bytes(wire(7, 0, 1))),
    "overlong varint": body_of(span_bytes(attrs=(kv(b"llm.token_count.prompt", b"\x18" + b"\xff" * 10 + b"\x01"),))),
    "ten-byte varint": body_of(span_bytes(attrs=(kv(b"llm.token_count.prompt", wire(3, 0, 2**64 - 5)),))),
    "invalid utf-8 name": body_of(span_bytes(wire(5, 2, b"\xff"))),
    "surrogate in key": body_of(span_bytes(attrs=(kv(b"\xed\xa0\x80", wire(1, 2, b"v")),))),
    "overlong utf-8 value": body_of(span_bytes(attrs=(kv(b"k", wire(1, 2, b"\xc0\xaf")),))),
    "4-byte utf-8": body_of(span_bytes(attrs=(kv(b"k", wire(1, 2, "😀".encode())),))),
    "truncated utf-8 at end": body_of(span_bytes(attrs=(kv(b"k", wire(1, 2, b"ab\xe6\x97")),))),
    "past U+10FFFF": body_of(span_bytes(attrs=(kv(b"k", wire(1, 2, b"\xf4\x90\x80\x80")),))),
    "double as fixed32": body_of(span_bytes(attrs=(kv(b"sluice.cost", wire(4, 5, b"\x00\x00\x80\x3f")),))),
    "bad attributes on a rejected span": body_of(wire(1, 2, bytes(16)) + wire(9, 2, b"\xff\xff")),
    "bad event on a rejected span": body_of(wire(1, 2, bytes(16)) + wire(11, 2, b"\x0a")),
    "event name invalid utf-8": body_of(span_bytes(wire(11, 2, wire(2, 2, b"\xff")))),
    "event attrs garbage": body_of(span_bytes(wire(11, 2, wire(3, 2, b"\x0a\x05ab")))),
    "deep array": body_of(span_bytes(attrs=(kv(b"deep", _deep := (lambda f: f(f, 40))(
        lambda f, d: wire(5, 2, wire(1, 2, f(f, d - 1))) if d else wire(1, 2, b"x"))),))),
    "kvlist duplicate keys": body_of(span_bytes(attrs=(kv(b"kv", wire(6, 2, wire(1, 2, kv(b"a", wire(3, 0, 1)))
                                                                   + wire(1, 2, kv(b"b", wire(3, 0, 2)))
                                                                   + wire(1, 2, kv(b"a", wire(3, 0, 3))))),))),
    "duplicate top-level keys": body_of(span_bytes(attrs=(kv(b"x", wire(1, 2, b"1")), kv(b"y", wire(1, 2, b"2")),
                                                          kv(b"x", wire(3, 0, 3))))),
    "unknown top-level field": wire(7, 2, b"whatever") + body_of(span_bytes()),
    "empty body": b"",
    "garbage": b"\xff\xff\xff\xff",
    "length past the end": wire(1, 2, b"abc")[:-1],
}


@needs_extension
@pytest.mark.parametrize("name", list(ODD_BODIES))
def test_odd_wire_shapes(name):
    body = ODD_BODIES[name]
    for settings in SETTINGS:
        normalizer = Normalizer(settings)
        expected = reference(body, normalizer)
        got = compiled(body, normalizer)
        if got is not None:
            assert got == expected
        assert prepared(body, normalizer) == expected


def test_ci_requires_the_extension():
    """With CI=true the extension must be built: a silent fall back to Python would lose the speed."""
    if os.environ.get("CI", "").lower() != "true":
        pytest.skip("only enforced with CI=true")
    assert fastpath.built() and fastpath.enabled(), "CI=true: sluice.telemetry._otlpfast must be built and enabled"


@needs_extension
def test_the_compiled_path_is_used_when_built(monkeypatch):
    calls = []
    real = fastpath._otlpfast.decode
    monkeypatch.setattr(fastpath._otlpfast, "decode", lambda *a: calls.append(1) or real(*a))
    p = decode_pool.prepare(Normalizer(), common_body(0), None, otlp.PROTOBUF, 1 << 30)
    assert calls and p.batch.count == 60
    monkeypatch.setenv("SLUICE_OTLP_FAST", "0")
    decode_pool.prepare(Normalizer(), common_body(0), None, otlp.PROTOBUF, 1 << 30)
    assert len(calls) == 1


@needs_extension
def test_floats_keep_orjson_format():
    body = body_of(span_bytes(attrs=tuple(kv(f"f{i}".encode(), wire(4, 1, struct.pack("<d", x)))
                                          for i, x in enumerate([1e16, 0.1, -0.0, float("nan"), 5e-324]))))
    got = compiled(body, Normalizer())
    assert got is not None and got == reference(body, Normalizer())
    assert '"f0":1e+16' in got[0] and '"f3":null' in got[0]
