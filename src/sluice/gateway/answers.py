"""Shaping what the gateway answers and records: the span fields of an answer, response headers,
captured text, the ``/v1/models`` body, and answers replayed from the semantic cache."""

from __future__ import annotations

from typing import Any

import orjson

from sluice.gateway import protocol
from sluice.gateway.execute import Candidate, Trail
from sluice.gateway.routing import CACHE, FALLBACK
from sluice.gateway.semantic_cache import Lookup, replay_completion, replay_events
from sluice.gateway.spans import RequestRecord
from sluice.redaction import redact


def answered(rec: RequestRecord, cand: Candidate, data: dict[str, Any], capture_chars: int) -> None:
    """Record on the span which candidate answered, its model, usage, cost and (optionally) text."""
    rec.route, rec.release, rec.release_ref = cand.route, cand.release.digest, cand.release.ref
    rec.fallback_used = cand.route == FALLBACK
    rec.model = data.get("model") or cand.target.model
    rec.provider = cand.target.provider
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
    rec.usage = usage
    if usage:
        rec.cost = cand.release.price(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
    if capture_chars and "choices" in data:
        msg = (data["choices"][0] or {}).get("message") or {}
        rec.output_text = redact(text(msg.get("content") or "", capture_chars))


def apply_trail(rec: RequestRecord, trail: Trail) -> None:
    rec.attempts, rec.upstream_s = trail.attempts, rec.upstream_s + trail.upstream_s
    rec.errors = trail.errors


def release_headers(rec: RequestRecord) -> list[tuple[bytes, bytes]]:
    return [(b"x-sluice-release", rec.release.encode()), (b"x-sluice-route", rec.route.encode())]


def text(value: bytes | str, limit: int) -> str | None:
    """At most ``limit`` characters of captured content (None when capture is off)."""
    if limit <= 0:
        return None
    decoded = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return decoded if len(decoded) <= limit else decoded[:limit] + "…"


def models_body(deployments: dict[str, Any]) -> bytes:
    return orjson.dumps({"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "sluice"} for name in sorted(deployments)]})


async def from_cache(send, body: dict[str, Any], lookup: Lookup, rec: RequestRecord, routed: list,
                     capture_chars: int) -> None:
    """Answer with the cached completion (or its replayed stream)."""
    rec.route, rec.model = CACHE, lookup.answer.get("model")
    if capture_chars:
        rec.output_text = text(lookup.answer["message"].get("content") or "", capture_chars)
    headers = routed + release_headers(rec)
    if rec.stream:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        await protocol.send_body(send, 200, replay_events(lookup.answer, include_usage), b"text/event-stream",
                                 headers + [(b"cache-control", b"no-cache")])
    else:
        await protocol.send_json(send, 200, replay_completion(lookup.answer), headers)
