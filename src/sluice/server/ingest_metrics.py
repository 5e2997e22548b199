"""Counters of OTLP ingest, exposed on ``GET /metrics`` next to the gateway's.

Updated on the event loop once per export request (plain ints, no lock). "Received" spans are
committed ones; "rejected" were dropped for bad ids (partial success, the client is told);
"dropped" were decoded but could not be committed (queue full at submit, a failed write), so the
client got a 503 and may resend them. Refused requests are counted by outcome, since a body
refused before decoding has no span count.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

OUTCOMES = ("ok", "bad_request", "too_large", "unsupported_media_type", "unauthorized", "unavailable")


class IngestCounters:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.spans_received = 0
        self.spans_rejected = 0
        self.spans_dropped = 0

    def render(self, writer: Any) -> bytes:
        """Prometheus text (format 0.0.4) of these counters and the writer's queue."""
        families = [
            ("sluice_ingest_spans_received_total", "counter", "OTLP spans committed to the store.",
             self.spans_received),
            ("sluice_ingest_spans_rejected_total", "counter", "OTLP spans rejected for bad ids (partial success).",
             self.spans_rejected),
            ("sluice_ingest_spans_dropped_total", "counter", "Decoded OTLP spans not committed (answered 503).",
             self.spans_dropped),
            ("sluice_ingest_queue_spans", "gauge", "Spans waiting in the writer queue (OTLP and gateway).",
             getattr(writer, "queued_spans", 0)),
            ("sluice_span_writer_committed_spans_total", "counter", "Spans the writer committed (all sources).",
             getattr(writer, "committed_spans", 0)),
        ]
        out = []
        for name, kind, help_, value in families:
            out += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}", f"{name} {int(value)}"]
        name = "sluice_ingest_requests_total"
        out += [f"# HELP {name} OTLP export requests by outcome.", f"# TYPE {name} counter"]
        out += [f'{name}{{outcome="{o}"}} {self.requests[o]}' for o in OUTCOMES]
        return ("\n".join(out) + "\n").encode()
