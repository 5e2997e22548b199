"""Executing a request against a chain of candidates: retries, fallbacks, breaker, deadline.

A candidate is one model of one release (the routed release's responder, its fallbacks, then —
for a canary — the stable release's chain). Each candidate gets ``retries`` extra attempts with
full-jitter backoff, or the upstream's retry-after when it sends one and it is short enough; then
the chain moves on, but only for failures another model might not have (connection, timeout,
429, 5xx, context length). A bad request (other 4xx) or a malformed answer ends the request with
a clear error. Streams are "attempted" until their commit point, so the same loop gives
fallback-before-first-byte for free.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import orjson

from sluice.errors import ConfigError
from sluice.gateway.answer_shape import chunk_problem, wrong_shape
from sluice.gateway.breaker import Breakers
from sluice.gateway.config import GatewaySettings
from sluice.gateway.releases import BadRequest, ModelTarget, PreparedRelease
from sluice.gateway.upstream import UpstreamStream, json_object
from sluice.providers.base import (CONNECTION, CONTEXT_LENGTH, HTTP_5XX, MALFORMED, RATE_LIMITED, TIMEOUT,
                                   ProviderError)
from sluice.redaction import redact

HEALTH_KINDS = frozenset({CONNECTION, TIMEOUT, RATE_LIMITED, HTTP_5XX})
_rng = random.Random()


@dataclass(frozen=True, slots=True)
class Candidate:
    release: PreparedRelease
    target: ModelTarget
    route: str


@dataclass
class Trail:
    """What happened on the way to an answer (for the span)."""

    attempts: int = 0
    upstream_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    last_kind: str | None = None


class GatewayFailure(Exception):
    """The request ends with this OpenAI-format error. ``message`` is what the client reads;
    ``detail`` (the span's error message) may also name the upstream's URL and transport error."""

    def __init__(self, status: int, message: str, type_: str, code: str | None = None,
                 retry_after: float | None = None, kind: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail or message
        self.type = type_
        self.code = code
        self.retry_after = retry_after
        self.kind = kind or type_

    def body(self) -> bytes:
        return orjson.dumps({"error": {"message": self.message, "type": self.type, "param": None, "code": self.code}})

    @classmethod
    def from_provider(cls, e: ProviderError, model: str = "") -> "GatewayFailure":
        msg, detail = public_message(e, model), e.message
        if e.kind == RATE_LIMITED:
            return cls(429, msg, "rate_limit_error", "rate_limited", e.retry_after, e.kind, detail)
        if e.kind == TIMEOUT:
            return cls(504, msg, "timeout", "upstream_timeout", kind=e.kind, detail=detail)
        if e.kind == CONTEXT_LENGTH:
            return cls(400, msg, "invalid_request_error", "context_length_exceeded", kind=e.kind, detail=detail)
        if e.status in (400, 404, 413, 422):  # the request itself was refused
            return cls(e.status, msg, "invalid_request_error", "upstream_rejected", kind=e.kind, detail=detail)
        code = "upstream_malformed" if e.kind == MALFORMED else "upstream_error"
        return cls(502, msg, "upstream_error", code, kind=e.kind, detail=detail)


_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I)


def public_message(e: ProviderError, model: str) -> str:
    """What a client may read of an upstream failure: the model, what went wrong, and the
    upstream's own error text (redacted, URLs removed) — never the upstream's address or the
    HTTP library's exception text."""
    who = f"upstream model {model}" if model else "the upstream"
    if e.kind == TIMEOUT:
        return f"{who} timed out"
    if e.kind == CONNECTION:
        return f"{who} could not be reached or dropped the connection"
    if e.kind == MALFORMED:
        return f"{who} returned an answer that is not a valid chat completion"
    said = _URL.sub("[url]", redact(e.upstream_message or ""))
    if e.status:
        return f"{who} returned HTTP {e.status}" + (f": {said}" if said else "")
    return f"{who} failed ({e.kind})" + (f": {said}" if said else "")


Attempt = Callable[[Candidate, float], Awaitable[Any]]


async def run_with_fallbacks(candidates: list[Candidate], attempt: Attempt, settings: GatewaySettings,
                             breakers: Breakers, deadline: float, trail: Trail) -> tuple[Candidate, Any]:
    """The first candidate that answers, and its answer; raises ``GatewayFailure`` otherwise."""
    last: ProviderError | None = None
    last_model = ""
    for cand in candidates:
        key = cand.target.key
        if not breakers.allow(key):
            trail.errors.append(f"{cand.target.model}: circuit open")
            continue
        n = 0
        while True:
            n += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _deadline(settings, trail)
            started = time.perf_counter()
            try:
                async with asyncio.timeout(remaining):
                    result = await attempt(cand, remaining)
            except TimeoutError:
                trail.upstream_s += time.perf_counter() - started
                trail.attempts += 1
                breakers.failure(key)
                raise _deadline(settings, trail) from None
            except ProviderError as e:
                trail.upstream_s += time.perf_counter() - started
                trail.attempts += 1
                trail.errors.append(f"{cand.target.model}: {e.kind}")
                trail.last_kind = e.kind
                last, last_model = e, cand.target.model
                if e.kind in HEALTH_KINDS:
                    breakers.failure(key)
                if e.retryable and n <= settings.retries and breakers.allow(key):
                    delay = _delay(settings, n, e.retry_after)
                    if delay is not None and time.monotonic() + delay < deadline:
                        await asyncio.sleep(delay)
                        trail.upstream_s += delay
                        continue
                if e.fallback_ok:
                    break
                raise GatewayFailure.from_provider(e, cand.target.model) from None
            except ConfigError as e:  # e.g. the API key's environment variable is not set
                trail.attempts += 1
                trail.errors.append(f"{cand.target.model}: config")
                raise GatewayFailure(503, f"gateway misconfigured: {e}", "server_error",
                                     "gateway_config") from None
            trail.upstream_s += time.perf_counter() - started
            trail.attempts += 1
            breakers.success(key)
            return cand, result
    if last is None:
        raise GatewayFailure(503, "every upstream of this deployment is unavailable (circuit open)",
                             "upstream_error", "circuit_open", retry_after=settings.breaker_cooldown_s)
    raise GatewayFailure.from_provider(last, last_model)


def _delay(settings: GatewaySettings, failed: int, retry_after: float | None) -> float | None:
    """Seconds before the next attempt; None when the upstream asks for longer than we wait."""
    if retry_after is not None:
        return retry_after if retry_after <= settings.max_retry_after_s else None
    return _rng.uniform(0.0, min(settings.backoff_cap_s, settings.backoff_base_s * (2 ** (failed - 1))))


def _deadline(settings: GatewaySettings, trail: Trail) -> GatewayFailure:
    trail.last_kind = TIMEOUT
    return GatewayFailure(504, f"the request exceeded the gateway deadline of {settings.deadline_s:g}s",
                          "timeout", "deadline_exceeded", kind=TIMEOUT)


# streams ---------------------------------------------------------------------------------------
@dataclass
class Committed:
    """A stream past its commit point: the events read so far and the live iterator."""

    stream: UpstreamStream
    events: Any  # the async iterator of the remaining data payloads, None when already at [DONE]
    buffered: list[tuple[bytes, dict[str, Any]]]
    first_content_s: float | None  # perf_counter when the first content-bearing event arrived


def is_content(chunk: dict[str, Any]) -> bool:
    """An event the client must see as an answer: text, a tool call, or a finish reason."""
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("refusal") or choice.get("finish_reason"):
            return True
    return False


def parse_event(stream: UpstreamStream, data: bytes) -> dict[str, Any]:
    chunk = json_object(data, stream.where)
    if chunk.get("error"):
        err = chunk["error"]
        text = err.get("message") if isinstance(err, dict) else str(err)
        raise ProviderError(f"{stream.where} sent an error event: {redact(str(text))[:300]}", kind=HTTP_5XX,
                            retryable=True)
    problem = chunk_problem(chunk)
    if problem is not None:
        raise wrong_shape(stream.where, problem)
    return chunk


async def read_to_commit(stream: UpstreamStream, hold_all: bool) -> Committed:
    """Read until the first content-bearing event (or to the end when ``hold_all``: a guardrail
    may still replace the answer). Closes the stream on failure."""
    buffered: list[tuple[bytes, dict[str, Any]]] = []
    first: float | None = None
    events = stream.events().__aiter__()
    try:
        async for data in events:
            chunk = parse_event(stream, data)
            buffered.append((data, chunk))
            if first is None and is_content(chunk):
                first = time.perf_counter()
                if not hold_all:
                    return Committed(stream, events, buffered, first)
    except BaseException:
        await stream.aclose()
        raise
    return Committed(stream, None, buffered, first)


def render_cached(cache: dict[int, list], release: PreparedRelease, body: dict[str, Any]) -> list:
    """The release's rendering of the request's messages, once per release per request."""
    msgs = cache.get(id(release))
    if msgs is None:
        try:
            msgs = cache[id(release)] = release.render(body["messages"])
        except BadRequest as e:
            raise GatewayFailure(400, e.message, "invalid_request_error", "render_failed") from None
    return msgs


async def guard(cand: Candidate, result: Any, view: Callable[[Any], Any], retry: Callable[[], Awaitable[Any]],
                trail: Trail) -> tuple[Any, str, bool]:
    """Apply the release's guardrails: (answer to send, outcome for the span, blocked?).

    ``repair`` retries once; if the new answer still violates a block/repair guardrail, or the
    retry fails, the answer is blocked. ``log`` violations are only recorded.
    """
    guards = cand.release.guardrails
    verdict = guards.check(view(result))
    if verdict.action != "repair":
        return result, verdict.outcome(), verdict.action == "block"
    first = verdict.outcome()
    try:
        retried = await retry()
        trail.attempts += 1
    except (ProviderError, ConfigError, GatewayFailure, TimeoutError):
        return result, "block:" + first.split(":", 1)[1], True
    second = guards.check(view(retried))
    if second.action in ("block", "repair"):
        return retried, "block:" + second.outcome().split(":", 1)[1], True
    return retried, "repaired:" + first.split(":", 1)[1], False
