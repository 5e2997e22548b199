"""The OpenAI wire format at the ASGI level: reading and checking requests, writing responses and
errors (``{"error": {message, type, param, code}}``), and what guardrails see of an answer.

Bad input is always a 4xx in that error format — never a 500 or a traceback: a body over the
limit is 413 (checked on ``Content-Length`` and again while reading), JSON that does not parse
or lacks ``model``/``messages`` is 400 naming the parameter.
"""

from __future__ import annotations

import math
import time
from typing import Any, Awaitable, Callable

import orjson

from sluice.gateway.execute import GatewayFailure
from sluice.gateway.guardrails import ResponseView


class ClientGone(Exception):
    """The client disconnected before the request was answered."""


def headers_of(scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def header_value(text: str) -> bytes:
    """A header-safe encoding of a user-supplied value (no CR/LF, latin-1 only)."""
    return text.replace("\r", " ").replace("\n", " ").encode("latin-1", "replace")[:200]


def bearer(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("x-api-key") or None


def app_state(scope, name: str) -> Any:
    """``app.state.<name>`` of the app this route is mounted in, None when standalone."""
    state = getattr(scope.get("app"), "state", None)
    return getattr(state, name, None) if state is not None else None


def _too_large(limit: int) -> GatewayFailure:
    return GatewayFailure(413, f"request body exceeds the limit of {limit} bytes", "invalid_request_error",
                          "request_too_large")


async def read_body(receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


def _bad(message: str, param: str | None = None) -> GatewayFailure:
    failure = GatewayFailure(400, message, "invalid_request_error", "invalid_request")
    failure.param = param
    return failure


def parse_request(raw: bytes) -> dict[str, Any]:
    """The request body as a dict, with ``model`` (a string) and ``messages`` (a non-empty list)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise _bad(f"the request body is not valid JSON ({e})") from None
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("'model' is required and must be a deployment name (a string)", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' is required and must be a non-empty array", "messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise _bad(f"messages[{i}] must be an object with a 'role'", f"messages[{i}]")
    if "stream" in body and not isinstance(body["stream"], bool) and body["stream"] is not None:
        raise _bad("'stream' must be a boolean", "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _bad("'stream_options' must be an object", "stream_options")
    return body


async def send_json(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send_body(send, status, body, b"application/json", headers)


async def send_body(send, status: int, body: bytes, content_type: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())] + headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(send, failure: GatewayFailure, headers: list[tuple[bytes, bytes]]) -> None:
    param = getattr(failure, "param", None)
    body = orjson.dumps({"error": {"message": failure.message, "type": failure.type, "param": param,
                                   "code": failure.code}})
    extra = [(b"x-should-retry", b"false")]  # the gateway already retried and fell back
    if failure.retry_after is not None:
        extra += retry_after_headers(failure.retry_after)
    await send_json(send, failure.status, body, headers + extra)


def retry_after_headers(seconds: float) -> list[tuple[bytes, bytes]]:
    """``retry-after`` in whole seconds (rounded up: HTTP allows no fraction) plus OpenAI's
    ``retry-after-ms``, which the official clients read first, so 0.2 s means 0.2 s."""
    return [(b"retry-after", str(max(1, math.ceil(seconds))).encode()),
            (b"retry-after-ms", str(max(0, round(seconds * 1000))).encode())]


def view_of(data: dict[str, Any]) -> ResponseView:
    """The first choice's text and tool calls of a ``chat.completion``."""
    choices = data.get("choices") or [{}]
    msg = (choices[0] or {}).get("message") or {}
    calls = tuple(((c.get("function") or {}).get("name") or "", (c.get("function") or {}).get("arguments") or "")
                  for c in msg.get("tool_calls") or () if isinstance(c, dict))
    return ResponseView(msg.get("content") or "", calls)


def blocked_completion(data: dict[str, Any], message: str) -> bytes:
    """The answer a ``block`` guardrail returns instead: the safe message, ``content_filter``."""
    return orjson.dumps({
        "id": data.get("id") or "chatcmpl-blocked", "object": "chat.completion",
        "created": data.get("created") or int(time.time()), "model": data.get("model") or "",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": message, "refusal": None},
                     "finish_reason": "content_filter", "logprobs": None}],
        "usage": data.get("usage"),
    })


async def run_lifespan(receive, send, startup: Callable[[], Awaitable[None]],
                       shutdown: Callable[[], Awaitable[None]]) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await startup()
            except Exception as e:  # noqa: BLE001 - reported to the server, which refuses to start
                await send({"type": "lifespan.startup.failed", "message": str(e)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
