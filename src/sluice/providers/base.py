"""The one small interface every upstream model client implements.

Requests and responses are plain dataclasses (not pydantic models) because the runner builds one
per row on its hot path. Failures are ``ProviderError`` — an ``UpstreamError`` that also says what
kind of failure it was and whether a fallback model is worth trying, so retry and fallback
decisions live in one place (``classify_status`` / ``classify_transport``) instead of in every caller.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, runtime_checkable

from sluice.dataset.row import ToolCall
from sluice.errors import UpstreamError
from sluice.redaction import redact
from sluice.runner.record import Usage

# error kinds, stored in RowOutput.error_kind
TIMEOUT = "timeout"
CONNECTION = "connection"
RATE_LIMITED = "rate_limited"
HTTP_4XX = "http_4xx"
HTTP_5XX = "http_5xx"
CONTEXT_LENGTH = "context_length"
MALFORMED = "malformed"
TARGET = "target"
CONFIG = "config"

_CONTEXT_MARKERS = ("context_length", "context length", "maximum context", "too many tokens",
                    "prompt is too long")


@dataclass(slots=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)  # OpenAI sampling fields, unset ones absent
    tools: list[dict[str, Any]] | None = None  # OpenAI "tools" entries
    metadata: dict[str, Any] = field(default_factory=dict)  # row_id, cohort: never sent upstream


@dataclass(slots=True)
class ChatResponse:
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    finish_reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # e.g. tool arguments that were not JSON
    cost: float | None = None  # when the upstream reports it
    # the model's own latency when the provider knows it (the scripted model: what its script says);
    # otherwise the runner measures the call
    latency_ms: float | None = None


@runtime_checkable
class Provider(Protocol):
    name: str

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """One attempt; raises ProviderError (or ConfigError) on failure. Never retries itself."""

    async def aclose(self) -> None: ...


class ProviderError(UpstreamError):
    """An upstream failure with its kind; ``fallback_ok`` means another model may succeed even
    though retrying this one will not (context length exceeded)."""

    def __init__(self, message: str, *, kind: str, status: int | None = None, retryable: bool = False,
                 retry_after: float | None = None, fallback_ok: bool | None = None):
        super().__init__(redact(message), status=status, retryable=retryable, retry_after=retry_after)
        self.upstream_message: str | None = None  # the upstream's own error text (redacted), when it sent one
        self.kind = kind
        self.fallback_ok = retryable if fallback_ok is None else fallback_ok


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait, from ``retry-after-ms``, ``retry-after`` seconds or an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def _error_text(body: Any) -> tuple[str, str | None]:
    """(message, code) from an OpenAI error body, tolerant of anything else."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return redact(str(err.get("message") or err))[:300], (str(err["code"]) if err.get("code") else None)
        return redact(str(err))[:300], None
    return (redact(str(body))[:300] if body else ""), None


def classify_status(status: int, body: Any, headers: Mapping[str, str] | None = None,
                    where: str = "upstream") -> ProviderError:
    """The ProviderError for a non-2xx response (conventions §6.4/6.5)."""
    headers = headers or {}
    message, code = _error_text(body)
    text = f"{where} returned HTTP {status}" + (f": {message}" if message else "")
    should = (headers.get("x-should-retry") or "").lower()
    if status in (400, 413) and (code == "context_length_exceeded"
                                 or any(m in message.lower() for m in _CONTEXT_MARKERS)):
        err = ProviderError(text, kind=CONTEXT_LENGTH, status=status, retryable=False, fallback_ok=True)
        err.upstream_message = message or None
        return err
    if status == 429:
        kind, retryable = RATE_LIMITED, True
    elif status >= 500:
        kind, retryable = HTTP_5XX, True
    elif status in (408, 409):
        kind, retryable = HTTP_4XX, True
    else:
        kind, retryable = HTTP_4XX, False
    if should in ("true", "false"):
        retryable = should == "true"
    err = ProviderError(text, kind=kind, status=status, retryable=retryable, retry_after=parse_retry_after(headers))
    err.upstream_message = message or None
    return err


def classify_transport(exc: BaseException, where: str = "upstream") -> ProviderError:
    """The ProviderError for a request that got no (complete) response."""
    import httpx  # local: scripted-only users never pay for it

    from sluice.providers.http import is_timeout

    name = type(exc).__name__
    if is_timeout(exc):
        return ProviderError(f"{where} timed out ({name})", kind=TIMEOUT, retryable=True)
    detail = str(exc) or name
    return ProviderError(f"{where} connection failed: {detail}", kind=CONNECTION, retryable=True)


def malformed(where: str, text: str) -> ProviderError:
    snippet = redact(text)[:80].replace("\n", " ")
    return ProviderError(f"{where} returned a body that is not a valid chat completion: {snippet!r}",
                         kind=MALFORMED, retryable=False)
