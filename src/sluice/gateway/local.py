"""Local (in-process) models served by the gateway: the ``scripted`` provider.

A scripted model answers from its script file (``sluice.providers.scripted``), so the demo
project's releases (``sluice init``) can be deployed and exercised offline. The gateway builds the
same upstream body it would send over HTTP; here it is decoded again into a ``ChatRequest``, the
script answers, and the answer is encoded in the OpenAI wire format (a ``chat.completion``, or
``chat.completion.chunk`` events for streams) so the rest of the request path — fallbacks,
guardrails, spans — is the same as for a remote model. The script's latency is a real sleep.

``metadata.row_id`` of the client's request reaches the script as the row id (scripts of the demo
answer per dataset row); the request's cohort is passed as the cohort.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, AsyncIterator

import orjson

from sluice.providers.base import ChatRequest, ChatResponse
from sluice.providers.scripted import ScriptedProvider

_MAX_TRACKED_ATTEMPTS = 10_000  # the script counts attempts per request; a gateway runs for days


def request_meta(body: dict[str, Any], cohort: str) -> dict[str, Any]:
    """What a scripted model may know about the client's request (never sent to remote upstreams)."""
    meta = body.get("metadata")
    row_id = meta.get("row_id") if isinstance(meta, dict) else None
    return {"row_id": str(row_id) if row_id is not None else None, "cohort": cohort}


async def _answer(provider: ScriptedProvider, model: str, body: bytes, meta: dict[str, Any] | None) -> ChatResponse:
    payload = orjson.loads(body)
    attempts = getattr(provider, "_attempts", None)
    if isinstance(attempts, dict) and len(attempts) > _MAX_TRACKED_ATTEMPTS:
        attempts.clear()
    params = {k: v for k, v in payload.items() if k not in ("model", "messages", "tools", "stream", "stream_options")}
    request = ChatRequest(model=model, messages=payload["messages"], params=params, tools=payload.get("tools"),
                          metadata=dict(meta or {}))
    return await provider.complete(request)


def _tool_calls(resp: ChatResponse) -> list[dict[str, Any]]:
    return [{"id": f"call_{i}", "type": "function",
             "function": {"name": c.name, "arguments": orjson.dumps(c.arguments).decode()}}
            for i, c in enumerate(resp.tool_calls)]


def _usage(resp: ChatResponse) -> dict[str, int]:
    u = resp.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens}


async def local_complete(provider: ScriptedProvider, model: str, body: bytes,
                         meta: dict[str, Any] | None) -> tuple[bytes, dict[str, Any]]:
    """(raw body, parsed body) of a ``chat.completion`` answered by the script."""
    resp = await _answer(provider, model, body, meta)
    message: dict[str, Any] = {"role": "assistant", "content": resp.content, "refusal": None}
    if resp.tool_calls:
        message["tool_calls"] = _tool_calls(resp)
    data = {"id": "chatcmpl-" + uuid.uuid4().hex[:24], "object": "chat.completion", "created": int(time.time()),
            "model": resp.model or model,
            "choices": [{"index": 0, "message": message, "finish_reason": resp.finish_reason, "logprobs": None}],
            "usage": _usage(resp)}
    return orjson.dumps(data), data


class LocalStream:
    """The scripted answer as a stream of ``chat.completion.chunk`` payloads (``UpstreamStream``'s shape)."""

    def __init__(self, chunks: list[dict[str, Any]], where: str):
        self._chunks = chunks
        self.where = where
        self.done = False

    async def events(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield orjson.dumps(chunk)
        self.done = True

    async def aclose(self) -> None:
        return None


async def local_stream(provider: ScriptedProvider, model: str, body: bytes, meta: dict[str, Any] | None) -> LocalStream:
    resp = await _answer(provider, model, body, meta)
    base = {"id": "chatcmpl-" + uuid.uuid4().hex[:24], "object": "chat.completion.chunk",
            "created": int(time.time()), "model": resp.model or model}
    chunks: list[dict[str, Any]] = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    words = (resp.content or "").split(" ")
    for i, word in enumerate(words if resp.content else []):
        piece = word if i == len(words) - 1 else word + " "
        chunks.append({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    if resp.tool_calls:
        calls = [{"index": i, **c} for i, c in enumerate(_tool_calls(resp))]
        chunks.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": calls}, "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": resp.finish_reason}]})
    chunks.append({**base, "choices": [], "usage": _usage(resp)})
    return LocalStream(chunks, f"scripted model {model}")
