"""The three ways a release is executed on a row: chat, http and python.

Each target turns one row into one ``RowOutput``; the runner owns concurrency, caching and storage.
Retries happen here, per model, because the chat target must exhaust one model's retries before it
walks the fallback chain.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import httpx
import orjson

from sluice.dataset.row import ContextDoc, Row, ToolCall
from sluice.errors import ConfigError, Location, SluiceError
from sluice.providers import make_provider
from sluice.providers.base import (MALFORMED, TARGET, ChatRequest, Provider, ProviderError, classify_status,
                                   classify_transport, malformed)
from sluice.providers.openai_compat import env_value, parse_tool_calls
from sluice.release.model import ModelRef, Release
from sluice.release.prompt import RenderedPrompt
from sluice.runner.messages import Render, make_renderer, tool_specs
from sluice.runner.pacing import RateLimits, RetryPolicy, TokenBucket, call_with_retries
from sluice.runner.record import RowOutput, Usage


@dataclass
class CallContext:
    """What every target shares during one run."""

    policy: RetryPolicy
    limits: RateLimits
    client: httpx.AsyncClient
    files: Mapping[str, bytes] = field(default_factory=dict)
    root: Path | None = None


class RowTarget(Protocol):
    def preflight(self) -> None:
        """Raise ConfigError now for what would fail every row (missing env var, bad import)."""

    async def run(self, row: Row, row_json: dict[str, Any]) -> RowOutput: ...


def make_target(release: Release, ctx: CallContext, render: Render | None = None) -> RowTarget:
    kind = release.target.type
    if kind == "chat":
        return ChatTarget(release, ctx, render)
    if kind == "http":
        return HttpTarget(release, ctx)
    return PythonTarget(release, ctx)


def price(release: Release, usage: Usage) -> float | None:
    """Cost from the release's per-1M-token prices; None when it gives none."""
    if not release.cost:
        return None
    return (usage.prompt_tokens * release.cost.get("input", 0.0)
            + usage.completion_tokens * release.cost.get("output", 0.0)) / 1_000_000


def _failure(row_id: str, e: ProviderError | ConfigError, attempts: int, **extra: Any) -> RowOutput:
    kind = getattr(e, "kind", "config")
    return RowOutput(row_id=row_id, error=e.message, error_kind=kind, attempts=max(attempts, 1), **extra)


class ChatTarget:
    """Render the messages, call the responder; after its retries, walk ``fallbacks`` in order
    when the failure was one another model might not have (retryable, or context length)."""

    def __init__(self, release: Release, ctx: CallContext, render: Render | None):
        self.release = release
        self.ctx = ctx
        comp = release.responder
        self.render = render or make_renderer(release, ctx.files)
        self.params = comp.params.as_request()
        self.tools = tool_specs(release, ctx.files)
        self.chain: list[tuple[ModelRef, Provider, TokenBucket | None]] = [
            (ref, make_provider(ref, ctx.root, client=ctx.client, files=ctx.files),
             ctx.limits.bucket(ref.base_url, ref.provider))
            for ref in [comp, *comp.fallbacks]]

    def preflight(self) -> None:
        for ref, _, _ in self.chain:
            if ref.api_key_env:
                env_value(ref.api_key_env, f"api_key_env of model {ref.model}")

    async def run(self, row: Row, row_json: dict[str, Any]) -> RowOutput:
        try:
            rendered = self.render(row)
        except SluiceError as e:  # a template that fails on this row fails this row only
            return _failure(row.id, e, 0)
        seen_context: list[ContextDoc] | None = None
        extra_raw: dict[str, Any] = {}
        if isinstance(rendered, RenderedPrompt):
            messages = rendered.messages
            if rendered.dropped_docs:  # evaluators judge against what the model was shown
                seen_context = rendered.context
                extra_raw["dropped_docs"] = rendered.dropped_docs
        else:
            messages = rendered
        metadata = {"row_id": row.id, "cohort": row.cohort}
        attempts = 0
        failed: list[str] = []
        error: ProviderError | ConfigError | None = None
        for ref, provider, bucket in self.chain:
            request = ChatRequest(model=ref.model, messages=messages, params=self.params, tools=self.tools,
                                  metadata=metadata)
            try:
                resp, n, seconds = await call_with_retries(lambda: provider.complete(request), self.ctx.policy, bucket)
            except ProviderError as e:
                attempts += getattr(e, "attempts", 1)
                failed.append(ref.model)
                error = e
                if e.fallback_ok:
                    continue
                break
            except ConfigError as e:  # e.g. the key's environment variable vanished mid-run
                attempts += 1
                error = e
                break
            attempts += n
            raw = {"warnings": resp.warnings, **extra_raw} if resp.warnings else dict(extra_raw)
            cost = resp.cost if resp.cost is not None else price(self.release, resp.usage)
            return RowOutput(row_id=row.id, output=resp.content, tool_calls=resp.tool_calls, usage=resp.usage,
                             cost=cost, model=resp.model or ref.model,
                             latency_ms=resp.latency_ms if resp.latency_ms is not None else seconds * 1000.0,
                             attempts=attempts, fallback_from=failed, raw=raw, context=seen_context)
        assert error is not None
        return _failure(row.id, error, attempts, model=failed[-1] if failed else None, fallback_from=failed[:-1])


def output_from_app(row_id: str, data: Any, where: str) -> dict[str, Any]:
    """RowOutput fields from an app's answer: a string, or {output, context?, tool_calls?, usage?, cost?}."""
    if isinstance(data, str):
        return {"output": data}
    if not isinstance(data, dict) or not ("output" in data or "tool_calls" in data):
        raise malformed(where, repr(data)[:200] + " (expected a string or {output, ...})")
    fields: dict[str, Any] = {"output": data.get("output")}
    warnings: list[str] = []
    try:
        if data.get("context") is not None:
            fields["context"] = [ContextDoc.model_validate(d) for d in data["context"]]
        calls = data.get("tool_calls") or []
        if calls and isinstance(calls[0], dict) and "function" in calls[0]:
            fields["tool_calls"], warnings = parse_tool_calls(calls)
        else:
            fields["tool_calls"] = [ToolCall.model_validate(c) for c in calls]
        if data.get("usage"):
            u = data["usage"]
            fields["usage"] = Usage(prompt_tokens=u.get("prompt_tokens", 0), completion_tokens=u.get("completion_tokens", 0),
                                    total_tokens=u.get("total_tokens") or u.get("prompt_tokens", 0) + u.get("completion_tokens", 0))
        if data.get("cost") is not None:
            fields["cost"] = float(data["cost"])
    except (ValueError, TypeError, AttributeError) as e:
        raise ProviderError(f"{where} answered with an invalid field: {str(e).splitlines()[0]}", kind=MALFORMED) from None
    if data.get("model"):
        fields["model"] = str(data["model"])
    if warnings:
        fields["raw"] = {"warnings": warnings}
    return fields


class _AppTarget:
    """Shared by http and python targets: retries, one rate-limit bucket, cost fallback."""

    release: Release
    ctx: CallContext
    bucket: TokenBucket | None = None

    async def call(self, row: Row, row_json: dict[str, Any]) -> Any: ...

    async def run(self, row: Row, row_json: dict[str, Any]) -> RowOutput:
        try:
            fields, attempts, seconds = await call_with_retries(lambda: self.call(row, row_json), self.ctx.policy,
                                                                self.bucket)
        except ProviderError as e:
            return _failure(row.id, e, getattr(e, "attempts", 1))
        except ConfigError as e:
            return _failure(row.id, e, 1)
        out = RowOutput(row_id=row.id, latency_ms=seconds * 1000.0, attempts=attempts, **fields)
        if out.cost is None:
            out.cost = price(self.release, out.usage)
        return out


class HttpTarget(_AppTarget):
    """POST the row as JSON to the app; headers come from environment variables by name."""

    def __init__(self, release: Release, ctx: CallContext):
        self.release, self.ctx = release, ctx
        self.url = release.target.url or ""
        self.timeout = httpx.Timeout(release.target.timeout_s, connect=min(5.0, release.target.timeout_s))
        self.bucket = ctx.limits.bucket(self.url, "http")

    def headers(self) -> dict[str, str]:
        out = {"content-type": "application/json"}
        for header, env in self.release.target.headers_env.items():
            out[header] = env_value(env, f"target.headers_env.{header}")
        return out

    def preflight(self) -> None:
        self.headers()

    async def call(self, row: Row, row_json: dict[str, Any]) -> dict[str, Any]:
        where = f"app {self.url}"
        try:
            resp = await self.ctx.client.post(self.url, content=orjson.dumps(row_json), headers=self.headers(),
                                              timeout=self.timeout)
        except httpx.TransportError as e:
            raise classify_transport(e, where) from None
        try:
            data = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            if resp.status_code >= 300:
                raise classify_status(resp.status_code, resp.text, resp.headers, where) from None
            raise malformed(where, resp.text) from None
        if resp.status_code >= 300:
            raise classify_status(resp.status_code, data, resp.headers, where)
        return output_from_app(row.id, data, where)


class PythonTarget(_AppTarget):
    """Call ``module:function`` with the row as a JSON-like dict (sync functions run in a thread)."""

    def __init__(self, release: Release, ctx: CallContext):
        self.release, self.ctx = release, ctx
        self.spec = release.target.function or ""
        self.bucket = ctx.limits.bucket("python")
        self.fn: Callable[..., Any] | None = None
        self.timeout_s = release.target.timeout_s

    def preflight(self) -> None:
        module_name, _, attr = self.spec.partition(":")
        where = Location(field="target.function")
        try:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as e:
                if self.ctx.root is None or e.name != module_name.split(".")[0]:
                    raise
                sys.path.insert(0, str(self.ctx.root))
                module = importlib.import_module(module_name)
        except Exception as e:  # noqa: BLE001 - any import failure is the user's config
            raise ConfigError(f"cannot import {module_name}: {type(e).__name__}: {e}", where) from None
        fn = getattr(module, attr, None)
        if not callable(fn):
            raise ConfigError(f"{module_name} has no function {attr}", where)
        self.fn = fn

    async def call(self, row: Row, row_json: dict[str, Any]) -> dict[str, Any]:
        assert self.fn is not None, "preflight() imports the function"
        where = f"function {self.spec}"
        try:
            if inspect.iscoroutinefunction(self.fn):
                result = await asyncio.wait_for(self.fn(row_json), self.timeout_s)
            else:
                result = await asyncio.wait_for(asyncio.to_thread(self.fn, row_json), self.timeout_s)
        except ProviderError:
            raise
        except TimeoutError:
            raise ProviderError(f"{where} timed out after {self.timeout_s:g}s", kind="timeout", retryable=True) from None
        except Exception as e:  # noqa: BLE001 - the app's own failure becomes the row's error
            raise ProviderError(f"{where} raised {type(e).__name__}: {e}", kind=TARGET) from None
        return output_from_app(row.id, result, where)
