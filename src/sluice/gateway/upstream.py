"""One attempt against one upstream model over the shared ``httpx.AsyncClient``.

Failures are the providers package's ``ProviderError`` (``classify_status`` / ``classify_transport``
/ ``malformed``) so the gateway and the runner agree on what is retryable and what may fall back.
A successful non-streaming body is kept as bytes and forwarded unchanged unless a guardrail
rewrites it; streams are split into SSE ``data`` payloads without re-encoding them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator

import httpx
import orjson

from sluice.gateway.local import local_complete, local_stream
from sluice.gateway.releases import ModelTarget
from sluice.providers.base import HTTP_5XX, ProviderError, classify_status, classify_transport, malformed
from sluice.providers.openai_compat import env_value

DONE = b"[DONE]"


def _headers(target: ModelTarget) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if target.api_key_env:
        headers["authorization"] = "Bearer " + env_value(target.api_key_env, f"api_key_env of model {target.model}")
    return headers


def _timeout(target: ModelTarget, remaining_s: float) -> httpx.Timeout:
    t = max(0.001, min(target.timeout_s, remaining_s))
    return httpx.Timeout(t, connect=min(5.0, t))


def _where(target: ModelTarget) -> str:
    return f"upstream {target.model} at {target.url.removesuffix('/chat/completions')}"


@dataclass(slots=True)
class Completion:
    raw: bytes
    data: dict[str, Any]


async def complete(client: httpx.AsyncClient, target: ModelTarget, body: bytes, remaining_s: float,
                   meta: dict[str, Any] | None = None) -> Completion:
    """One attempt; ``meta`` (row id, cohort) is seen only by local scripted models."""
    if target.local is not None:
        return Completion(*await local_complete(target.local, target.model, body, meta))
    headers = _headers(target)
    where = _where(target)
    try:
        resp = await client.post(target.url, content=body, headers=headers, timeout=_timeout(target, remaining_s))
    except httpx.TransportError as e:
        raise classify_transport(e, where) from None
    raw = resp.content
    if resp.status_code >= 300:
        raise classify_status(resp.status_code, _loads_or_text(raw), resp.headers, where)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise malformed(where, raw.decode("utf-8", "replace")) from None
    if not isinstance(data, dict):
        raise malformed(where, raw.decode("utf-8", "replace"))
    if data.get("error") and not data.get("choices"):
        raise ProviderError(f"{where} returned an error: {str(data['error'])[:300]}", kind=HTTP_5XX, retryable=True)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise malformed(where, raw.decode("utf-8", "replace"))
    return Completion(raw, data)


def _loads_or_text(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")


class UpstreamStream:
    """An open streaming response: ``events()`` yields each SSE ``data`` payload (bytes)."""

    def __init__(self, response: httpx.Response, target: ModelTarget):
        self.response = response
        self.target = target
        self.where = _where(target)
        self.done = False  # saw ``[DONE]``

    async def events(self) -> AsyncIterator[bytes]:
        buf = b""
        try:
            async for chunk in self.response.aiter_bytes():
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
        except httpx.TransportError as e:
            raise classify_transport(e, self.where) from None
        raise ProviderError(f"{self.where} ended the stream without [DONE]", kind="connection", retryable=True)

    async def aclose(self) -> None:
        await self.response.aclose()


def _data_of(event: bytes) -> bytes | None:
    """The joined ``data:`` lines of one event; None for comments and events without data."""
    parts = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            parts.append(value[1:] if value[:1] == b" " else value)
    return b"\n".join(parts) if parts else None


async def open_stream(client: httpx.AsyncClient, target: ModelTarget, body: bytes, remaining_s: float,
                      meta: dict[str, Any] | None = None) -> UpstreamStream:
    if target.local is not None:
        return await local_stream(target.local, target.model, body, meta)  # type: ignore[return-value]
    headers = _headers(target)
    where = _where(target)
    request = client.build_request("POST", target.url, content=body, headers=headers,
                                   timeout=_timeout(target, remaining_s))
    try:
        resp = await client.send(request, stream=True)
    except httpx.TransportError as e:
        raise classify_transport(e, where) from None
    if resp.status_code >= 300:
        try:
            raw = await resp.aread()
        except httpx.TransportError as e:
            raise classify_transport(e, where) from None
        finally:
            await resp.aclose()
        raise classify_status(resp.status_code, _loads_or_text(raw), resp.headers, where)
    if "text/event-stream" not in resp.headers.get("content-type", ""):
        raw = await resp.aread()
        await resp.aclose()
        raise malformed(where, "expected an event stream, got " + raw.decode("utf-8", "replace"))
    return UpstreamStream(resp, target)
