"""Issue 10 item 7: small compressed OTLP bodies (16 KB that inflate to 16 MB) were decompressed
and decoded on the event loop and stalled the gateway. A compressed body is always prepared off
the loop, and the compiled decoder lets other threads run while it works. No timing is asserted:
which thread did the work, and the decoder's own count of hand-overs."""

from __future__ import annotations

import asyncio
import gzip
import threading

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sluice.server import decode_pool
from sluice.server.decode_pool import DecodePool
from sluice.telemetry import fastpath, otlp
from sluice.telemetry.config import TelemetrySettings
from sluice.telemetry.normalize import Normalizer


def protobuf(n: int) -> bytes:
    pb = ExportTraceServiceRequest()
    spans = pb.resource_spans.add().scope_spans.add().spans
    for i in range(n):
        sp = spans.add()
        sp.trace_id, sp.span_id, sp.name = (i + 1).to_bytes(16, "big"), (i + 1).to_bytes(8, "big"), "x" * 60
        sp.start_time_unix_nano, sp.end_time_unix_nano = 1000, 2000
    return pb.SerializeToString()


@pytest.mark.parametrize("kind", [otlp.PROTOBUF, otlp.JSON])
def test_a_small_compressed_body_is_prepared_off_the_event_loop(monkeypatch, kind):
    raw = protobuf(2000) if kind == otlp.PROTOBUF else (
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [' + b",".join(
            b'{"traceId": "%032x", "spanId": "%016x", "name": "%s", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}'
            % (i + 1, i + 1, b"x" * 60) for i in range(2000)) + b"]}]}]}")
    small = gzip.compress(raw)
    assert len(small) < decode_pool.INLINE_MAX_BYTES < len(raw)
    seen: list[threading.Thread] = []
    real = decode_pool.prepare

    def recording(*args, **kwargs):
        seen.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(decode_pool, "prepare", recording)
    pool = DecodePool(TelemetrySettings(), workers=0).start()

    async def go():
        loop_thread = threading.current_thread()
        prepared = await pool.prepare(small, "gzip", kind)
        return loop_thread, prepared

    try:
        loop_thread, prepared = asyncio.run(go())
    finally:
        pool.close()
    assert prepared.batch.count == 2000
    assert seen and all(t is not loop_thread for t in seen)
    # small uncompressed bodies still take the cheap path on the loop
    assert DecodePool(TelemetrySettings(), workers=0).inline_max_bytes == decode_pool.INLINE_MAX_BYTES


@pytest.mark.skipif(not fastpath.enabled(), reason="the compiled decoder is not built")
def test_the_compiled_decoder_lets_other_threads_run_while_it_decodes():
    from sluice.telemetry import _otlpfast

    before = _otlpfast.gil_offers()
    decoded = fastpath.decode_columns(protobuf(3000), Normalizer(TelemetrySettings()))
    assert decoded is not None and decoded.batch.count == 3000
    assert _otlpfast.gil_offers() - before >= 3000 // 256
