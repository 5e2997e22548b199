"""Any OpenAI-compatible chat-completions endpoint, over one pooled ``httpx.AsyncClient``.

The API key is read from the environment variable the release names, at call time, and only ever
placed in the Authorization header: it is never logged, stored or put in an error message.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import orjson

from sluice.dataset.row import ToolCall
from sluice.errors import ConfigError, Location
from sluice.providers.base import (ChatRequest, ChatResponse, ProviderError, classify_status,
                                   classify_transport, malformed)
from sluice.providers.http import make_client
from sluice.redaction import remember
from sluice.runner.record import Usage

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def shared_client() -> httpx.AsyncClient:
    """A client sized like the official SDK's; reuse one per event loop."""
    return make_client(max_connections=1000)


def env_value(name: str, field: str) -> str:
    """The value of a required environment variable, or a ConfigError naming it (not its value)."""
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"environment variable {name} is not set", Location(field=field))
    remember(value)  # redacted from any upstream text Sluice keeps
    return value


class OpenAICompatProvider:
    name = "openai"

    def __init__(self, *, model: str, base_url: str | None = None, api_key_env: str | None = None,
                 timeout_s: float = 60.0, client: httpx.AsyncClient | None = None):
        self.model = model
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.api_key_env = api_key_env
        self.timeout = httpx.Timeout(timeout_s, connect=min(5.0, timeout_s))
        self._client = client
        self._owns_client = client is None

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.api_key_env:
            key = env_value(self.api_key_env, "api_key_env")
            headers["authorization"] = f"Bearer {key}"
        return headers

    def body(self, request: ChatRequest) -> bytes:
        payload: dict[str, Any] = {"model": request.model or self.model, "messages": request.messages}
        payload.update(request.params)
        if request.tools:
            payload["tools"] = request.tools
        return orjson.dumps(payload)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        headers = self._headers()  # before any I/O: a missing key is a ConfigError, not a retry
        if self._client is None:
            self._client = shared_client()
        where = f"upstream {self.base_url}"
        try:
            resp = await self._client.post(self.url, content=self.body(request), headers=headers,
                                           timeout=self.timeout)
        except httpx.TransportError as e:
            raise classify_transport(e, where) from None
        text = resp.content
        if resp.status_code >= 300:
            try:
                body: Any = orjson.loads(text)
            except orjson.JSONDecodeError:
                body = text.decode("utf-8", "replace")
            raise classify_status(resp.status_code, body, resp.headers, where)
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise malformed(where, text.decode("utf-8", "replace")) from None
        return parse_completion(data, where)

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None


def parse_completion(data: Any, where: str = "upstream") -> ChatResponse:
    """A ChatResponse from an OpenAI ``chat.completion`` body."""
    if not isinstance(data, dict):
        raise malformed(where, repr(data))
    if "error" in data and not data.get("choices"):
        raise ProviderError(f"{where} returned an error: {str(data['error'])[:300]}", kind="http_5xx",
                            retryable=False)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise malformed(where, orjson.dumps(data).decode()[:200])
    choice = choices[0]
    message = choice.get("message") or {}
    calls, warnings = parse_tool_calls(message.get("tool_calls") or [])
    u = data.get("usage") or {}
    prompt, completion = int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion,
                  total_tokens=int(u.get("total_tokens") or prompt + completion))
    cost = data.get("cost") if isinstance(data.get("cost"), (int, float)) else None
    return ChatResponse(content=message.get("content"), tool_calls=calls, usage=usage,
                        model=data.get("model"), finish_reason=choice.get("finish_reason"), raw=data,
                        warnings=warnings, cost=cost)


def parse_tool_calls(items: list[Any]) -> tuple[list[ToolCall], list[str]]:
    """Tool calls with their JSON-string arguments decoded; undecodable arguments are kept as
    ``{"_raw": text}`` and reported in the warnings so an evaluator can fail them visibly."""
    calls: list[ToolCall] = []
    warnings: list[str] = []
    for item in items:
        fn = (item or {}).get("function") or {}
        name = fn.get("name")
        if not name:
            warnings.append("tool call without a function name dropped")
            continue
        args = fn.get("arguments")
        if isinstance(args, dict):
            parsed = args
        else:
            try:
                parsed = orjson.loads(args) if args else {}
            except orjson.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict):
                warnings.append(f"tool call {name}: arguments are not a JSON object")
                parsed = {"_raw": args}
        calls.append(ToolCall(name=name, arguments=parsed))
    return calls, warnings
