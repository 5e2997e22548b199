"""One attempt against one upstream model over the gateway's shared ``aiohttp.ClientSession``.

The hot path talks to aiohttp directly (httpx over aiohttp ran two client stacks per request,
about half of the handler's CPU). Headers and timeouts are prepared once per model. Failures are
the providers package's ``ProviderError`` (``classify_status`` for non-2xx answers, ``malformed``
for bodies that are not a chat completion; transport errors with ``classify_transport``'s kinds
and wording) so the gateway and the runner agree on what is retryable and what may fall back.
A successful non-streaming body is kept as bytes and forwarded unchanged unless a guardrail
rewrites it; streams are split into SSE ``data`` payloads without re-encoding them.

aiohttp's own timeouts raise ``TimeoutError`` subclasses; they are turned into ``ProviderError``
here, so the only ``TimeoutError`` the caller sees is its own deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator

import aiohttp
import orjson

from sluice.gateway.answer_shape import completion_problem, wrong_shape
from sluice.gateway.local import local_complete, local_stream
from sluice.gateway.releases import ModelTarget
from sluice.providers.base import (CONNECTION, HTTP_5XX, TIMEOUT, ProviderError, classify_status, malformed)
from sluice.providers.openai_compat import env_value
from sluice.redaction import redact

DONE = b"[DONE]"
_CONNECT_CAP_S = 5.0
# Idle pooled connections are closed after this long: below the 5 s keep-alive of common servers
# (uvicorn, nginx's upstream default is 60 s, Node 5 s), so the gateway closes first and does not
# send a request down a connection the upstream is closing at that moment.
UPSTREAM_KEEPALIVE_S = 4.0


def make_session(max_connections: int = 1000) -> aiohttp.ClientSession:
    """The pooled session every upstream call shares (create it inside the running loop)."""
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0, ttl_dns_cache=300,
                                     keepalive_timeout=UPSTREAM_KEEPALIVE_S)
    return aiohttp.ClientSession(connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",),
                                 timeout=aiohttp.ClientTimeout(total=None))


@dataclass(slots=True)
class _Prepared:
    headers: dict[str, str]
    timeout: aiohttp.ClientTimeout  # for an attempt with the model's whole timeout_s left
    where: str


_prepared: dict[ModelTarget, _Prepared] = {}  # by value: one entry per distinct model ever served


def _prepare(target: ModelTarget) -> _Prepared:
    """Per-model headers, timeout and error prefix, computed on the first call. A missing API
    key variable raises ``ConfigError`` on every call (nothing is cached until it is set)."""
    hit = _prepared.get(target)
    if hit is not None:
        return hit
    headers = {"content-type": "application/json"}
    if target.api_key_env:
        headers["authorization"] = "Bearer " + env_value(target.api_key_env, f"api_key_env of model {target.model}")
    where = f"upstream {target.model} at {target.url.removesuffix('/chat/completions')}"
    prepared = _Prepared(headers, _timeout_of(target.timeout_s), where)
    _prepared[target] = prepared
    return prepared


def _timeout_of(seconds: float) -> aiohttp.ClientTimeout:
    """Like httpx's: ``seconds`` per connect (capped) and per read, not for the whole body."""
    t = max(0.001, seconds)
    return aiohttp.ClientTimeout(total=None, connect=min(_CONNECT_CAP_S, t), sock_read=t)


def _timeout(target: ModelTarget, prepared: _Prepared, remaining_s: float) -> aiohttp.ClientTimeout:
    return prepared.timeout if remaining_s >= target.timeout_s else _timeout_of(remaining_s)


def _transport_error(exc: BaseException, where: str) -> ProviderError:
    """``classify_transport`` for aiohttp's exceptions: a timeout, or a connection failure."""
    name = type(exc).__name__
    if isinstance(exc, TimeoutError):  # ServerTimeoutError, ConnectionTimeoutError, SocketTimeoutError
        return ProviderError(f"{where} timed out ({name})", kind=TIMEOUT, retryable=True)
    detail = str(exc) or name
    return ProviderError(f"{where} connection failed: {detail}", kind=CONNECTION, retryable=True)


_TRANSPORT = (aiohttp.ClientError, OSError, TimeoutError)


@dataclass(slots=True)
class Completion:
    raw: bytes
    data: dict[str, Any]


async def complete(session: aiohttp.ClientSession, target: ModelTarget, body: bytes, remaining_s: float,
                   meta: dict[str, Any] | None = None) -> Completion:
    """One attempt; ``meta`` (row id, cohort) is seen only by local scripted models."""
    if target.local is not None:
        return Completion(*await local_complete(target.local, target.model, body, meta))
    p = _prepare(target)
    for stale_ok in (True, False):
        try:
            async with session.post(target.url, data=body, headers=p.headers,
                                    timeout=_timeout(target, p, remaining_s)) as resp:
                raw = await resp.read()
                status = resp.status
                if status >= 300:
                    raise classify_status(status, _loads_or_text(raw), resp.headers, p.where)
            break
        except aiohttp.ServerDisconnectedError as e:
            if not stale_ok:
                raise _transport_error(e, p.where) from None
            # closed before any answer: a pooled connection the upstream was closing; once more
        except _TRANSPORT as e:
            raise _transport_error(e, p.where) from None
    data = json_object(raw, p.where)
    if data.get("error") and not data.get("choices"):
        raise ProviderError(f"{p.where} returned an error: {redact(str(data['error']))[:300]}", kind=HTTP_5XX,
                            retryable=True)
    problem = completion_problem(data)
    if problem is not None:
        raise wrong_shape(p.where, problem)
    return Completion(raw, data)


def _loads_or_text(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")


class UpstreamStream:
    """An open streaming response: ``events()`` yields each SSE ``data`` payload (bytes)."""

    def __init__(self, response: aiohttp.ClientResponse, target: ModelTarget, where: str):
        self.response = response
        self.target = target
        self.where = where
        self.done = False  # saw ``[DONE]``

    async def events(self) -> AsyncIterator[bytes]:
        buf = b""
        try:
            async for chunk in self.response.content.iter_any():
                buf += chunk
                if b"\r" in buf:
                    buf = buf.replace(b"\r\n", b"\n")
                while True:
                    i = buf.find(b"\n\n")
                    if i < 0:
                        break
                    event, buf = buf[:i], buf[i + 2:]
                    data = _data_of(event)
                    if data is None:
                        continue
                    if data == DONE:
                        self.done = True
                        return
                    yield data
        except _TRANSPORT as e:
            raise _transport_error(e, self.where) from None
        raise ProviderError(f"{self.where} ended the stream without [DONE]", kind=CONNECTION, retryable=True)

    async def aclose(self) -> None:
        """Back to the pool after a complete stream; otherwise drop the connection."""
        if self.done:
            self.response.release()
        else:
            self.response.close()


def _data_of(event: bytes) -> bytes | None:
    """The joined ``data:`` lines of one event; None for comments and events without data."""
    parts = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            parts.append(value[1:] if value[:1] == b" " else value)
    return b"\n".join(parts) if parts else None


async def open_stream(session: aiohttp.ClientSession, target: ModelTarget, body: bytes, remaining_s: float,
                      meta: dict[str, Any] | None = None) -> UpstreamStream:
    if target.local is not None:
        return await local_stream(target.local, target.model, body, meta)  # type: ignore[return-value]
    p = _prepare(target)
    for stale_ok in (True, False):
        try:
            resp = await session.post(target.url, data=body, headers=p.headers,
                                      timeout=_timeout(target, p, remaining_s))
            break
        except aiohttp.ServerDisconnectedError as e:
            if not stale_ok:
                raise _transport_error(e, p.where) from None
        except _TRANSPORT as e:
            raise _transport_error(e, p.where) from None
    try:
        if resp.status >= 300:
            try:
                raw = await resp.read()
            except _TRANSPORT as e:
                raise _transport_error(e, p.where) from None
            raise classify_status(resp.status, _loads_or_text(raw), resp.headers, p.where)
        if "text/event-stream" not in resp.headers.get("content-type", ""):
            try:
                raw = await resp.read()
            except _TRANSPORT as e:
                raise _transport_error(e, p.where) from None
            raise malformed(p.where, "expected an event stream, got " + raw.decode("utf-8", "replace"))
    except BaseException:
        resp.close()
        raise
    return UpstreamStream(resp, target, p.where)


def json_object(raw: bytes, where: str) -> dict[str, Any]:
    """An upstream body or SSE event that must be a JSON object; anything else is malformed."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise malformed(where, raw.decode("utf-8", "replace")) from None
    if not isinstance(data, dict):
        raise malformed(where, raw.decode("utf-8", "replace"))
    return data
