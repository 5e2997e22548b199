"""Serving ``stream: true``: fallback until the commit point, then relay, and errors in-band.

Nothing is sent to the client — not even the status line — until an upstream has produced its
first content-bearing event (text, tool call or finish reason); until then a failure moves on to
the next candidate exactly like a non-streaming request, and the response headers name the
release that really answers. When the release has a guardrail that can change the answer, the
whole stream is held and checked first. After the commit point a failure (cut, malformed event,
upstream error event) becomes ``data: {"error": …}`` and the stream ends without ``[DONE]``.

A watcher task listens for the client's disconnect so a stalled upstream is not read on behalf
of a client that has gone (uvicorn's ``send`` silently does nothing after a disconnect).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from sluice.gateway import protocol
from sluice.gateway.execute import (Candidate, Committed, Trail, guard, parse_event, public_message, read_to_commit,
                                    render_cached, run_with_fallbacks)
from sluice.gateway.guardrails import ResponseView
from sluice.gateway.local import request_meta
from sluice.gateway.routing import FALLBACK
from sluice.gateway.semantic_cache import answer_of
from sluice.gateway.spans import RequestRecord
from sluice.gateway.upstream import open_stream
from sluice.redaction import redact
from sluice.providers.base import ProviderError

SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
               (b"x-accel-buffering", b"no")]


class Accumulator:
    """The answer assembled from chunks: text, tool calls, finish reason, usage, model."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.calls: dict[int, list[str]] = {}  # index -> [name, arguments]
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.meta: dict[str, Any] = {}

    def add(self, chunk: dict[str, Any]) -> None:
        if self.model is None and chunk.get("model"):
            self.model = chunk["model"]
            self.meta = {"id": chunk.get("id"), "created": chunk.get("created"), "model": chunk.get("model")}
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.parts.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                slot = self.calls.setdefault(call.get("index", 0), ["", ""])
                fn = call.get("function") or {}
                slot[0] += fn.get("name") or ""
                slot[1] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]

    def message(self) -> dict[str, Any]:
        """The assembled assistant message (``chat.completion`` shape)."""
        msg: dict[str, Any] = {"role": "assistant", "content": "".join(self.parts) or None}
        if self.calls:
            msg["tool_calls"] = [{"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}}
                                 for i, (n, a) in ((i, self.calls[i]) for i in sorted(self.calls))]
        return msg

    def view(self) -> ResponseView:
        return ResponseView("".join(self.parts), tuple((n, a) for n, a in (self.calls[i] for i in sorted(self.calls))))


def _view_of(committed: Committed) -> ResponseView:
    acc = Accumulator()
    for _, chunk in committed.buffered:
        acc.add(chunk)
    return acc.view()


def _blocked_events(committed: Committed, message: str) -> list[tuple[bytes, dict[str, Any]]]:
    acc = Accumulator()
    for _, chunk in committed.buffered:
        acc.add(chunk)
    base = {"id": acc.meta.get("id") or "chatcmpl-blocked", "object": "chat.completion.chunk",
            "created": acc.meta.get("created") or int(time.time()), "model": acc.model or ""}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": message}, "finish_reason": None}],
         "usage": None},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}], "usage": None},
    ]
    if acc.usage is not None:
        chunks.append({**base, "choices": [], "usage": acc.usage})
    return [(orjson.dumps(c), c) for c in chunks]


async def serve_stream(gw: Any, scope, receive, send, body: dict[str, Any], chain: list[Candidate], deadline: float,
                       rec: RequestRecord, routed: list, lookup: Any = None) -> None:
    """``lookup``: the semantic cache's miss for this request; a complete answer is stored under it."""
    state = {"finished": False}
    work = asyncio.ensure_future(_stream(gw, send, body, chain, deadline, rec, routed, state, lookup))
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        done, _ = await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        work.cancel()
        watcher.cancel()
        raise
    if work in done or state["finished"]:
        watcher.cancel()
        await work  # re-raises a failure before the commit point (sent as a JSON error)
        return
    work.cancel()
    await asyncio.gather(work, return_exceptions=True)
    raise protocol.ClientGone()


async def _disconnected(receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _stream(gw: Any, send, body: dict[str, Any], chain: list[Candidate], deadline: float,
                  rec: RequestRecord, routed: list, state: dict, lookup: Any) -> None:
    rendered: dict[int, list] = {}
    meta = request_meta(body, rec.cohort)

    async def attempt(cand: Candidate, remaining: float) -> Committed:
        msgs = render_cached(rendered, cand.release, body)
        stream = await open_stream(gw.client, cand.target, cand.release.body(body, msgs, cand.target, True),
                                   remaining, meta)
        return await read_to_commit(stream, cand.release.guardrails.blocking)

    trail = Trail()
    try:
        cand, committed = await run_with_fallbacks(chain, attempt, gw.settings, gw.breakers, deadline, trail)
        blocked = False
        if cand.release.guardrails.checks:
            if committed.events is None:  # held to the end: guardrails may still change it

                async def retry() -> Committed:
                    remaining = max(deadline - time.monotonic(), 0.001)
                    async with asyncio.timeout(remaining):
                        return await attempt(cand, remaining)

                committed, rec.guardrail, blocked = await guard(cand, committed, _view_of, retry, trail)
            if blocked:
                message = cand.release.guardrails.block_message(rec.guardrail)
                committed.buffered = _blocked_events(committed, message)
    finally:
        rec.attempts, rec.upstream_s, rec.errors = trail.attempts, trail.upstream_s, trail.errors

    rec.route, rec.release, rec.release_ref = cand.route, cand.release.digest, cand.release.ref
    rec.fallback_used = cand.route == FALLBACK
    rec.provider = cand.target.provider
    if committed.first_content_s is not None:
        rec.ttft_s = committed.first_content_s - rec.started
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    acc = Accumulator()
    stream = committed.stream
    try:
        await send({"type": "http.response.start", "status": 200,
                    "headers": SSE_HEADERS + routed + [(b"x-sluice-release", rec.release.encode()),
                                                       (b"x-sluice-route", rec.route.encode())]})
        out = [_event(data, chunk, acc, include_usage) for data, chunk in committed.buffered]
        await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
        error: ProviderError | None = None
        if committed.events is not None:
            events = committed.events
            while True:
                t0 = time.perf_counter()
                try:
                    data = await events.__anext__()
                    chunk = parse_event(stream, data)
                except StopAsyncIteration:
                    rec.upstream_s += time.perf_counter() - t0
                    break
                except ProviderError as e:
                    rec.upstream_s += time.perf_counter() - t0
                    error = e
                    break
                rec.upstream_s += time.perf_counter() - t0
                piece = _event(data, chunk, acc, include_usage)
                if piece:
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
        state["finished"] = True
        if error is not None:
            rec.status, rec.error_type, rec.error_message = "error", error.kind, error.message
            said = public_message(error, cand.target.model)
            payload = orjson.dumps({"error": {"message": f"the upstream failed mid-stream: {said}",
                                              "type": "upstream_error", "param": None, "code": error.kind}})
            await send({"type": "http.response.body", "body": b"data: " + payload + b"\n\n", "more_body": False})
        else:
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
            if lookup is not None and not blocked:
                gw.cache.store(lookup, cand.release.digest, answer_of(acc.message(), acc.finish, acc.model))
    finally:
        await stream.aclose()
        rec.model = acc.model or cand.target.model
        rec.usage = acc.usage
        if committed.events is not None and cand.release.guardrails.checks:  # relayed live: log-only checks
            rec.guardrail = cand.release.guardrails.check(acc.view()).outcome()
        if acc.usage:
            rec.cost = cand.release.price(int(acc.usage.get("prompt_tokens") or 0),
                                          int(acc.usage.get("completion_tokens") or 0))
        if gw.settings.capture_content_chars:
            text = "".join(acc.parts)
            limit = gw.settings.capture_content_chars
            rec.output_text = redact(text if len(text) <= limit else text[:limit] + "…")


def _event(data: bytes, chunk: dict[str, Any], acc: Accumulator, include_usage: bool) -> bytes:
    acc.add(chunk)
    if not include_usage and not chunk.get("choices") and chunk.get("usage") is not None:
        return b""  # the usage chunk the gateway asked for on its own account
    return b"data: " + data + b"\n\n"
