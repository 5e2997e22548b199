"""The plain span model shared by the OTLP decoders (JSON, protobuf, the compiled fast path).

Kept apart from ``otlp.py`` (the entry point) so the decoders import it without importing each
other: ``otlp`` -> ``otlp_json`` / ``otlp_protobuf`` -> ``otlp_model``, never back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class OtlpError(ValueError):
    """The body cannot be decoded; the message says why (sent back with the 400)."""


class TooLarge(OtlpError):
    """The decompressed body exceeds the size limit (413)."""


@dataclass(slots=True)
class RawSpan:
    trace_id: str  # lower-case hex
    span_id: str
    parent_id: str  # "" for a root span
    name: str
    start_ns: int
    end_ns: int
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    events: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)


@dataclass
class Decoded:
    spans: list[RawSpan]
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)


def reject(out: Decoded, reason: str) -> None:
    """Count a dropped span; keep the first few reasons for the partial-success message."""
    out.rejected += 1
    if len(out.reasons) < 3:
        out.reasons.append(reason)
