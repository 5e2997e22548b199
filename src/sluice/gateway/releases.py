"""A release made ready for the request path: resolved once, rendered cheaply per request.

Everything that does not depend on the request is computed when the gateway starts: the digest,
the system message, the sampling params, the tool specs, the model chain (responder, then its
fallbacks), the compiled guardrails. Per request, only the messages are rendered and one upstream
body is serialised per model tried.

Rendering follows the release package's rules (``sluice.release.prompt``): the release's system
prompt replaces the request's leading system messages; a component with a prompt template
renders the last user message through ``render_messages``. Release sampling params win over the
client's (the release is what was gated); client fields the release does not set pass through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from sluice.dataset.row import Row
from sluice.errors import ConfigError
from sluice.gateway.guardrails import Guardrails, compile_guardrails
from sluice.release.bundle import ReleaseBundle
from sluice.release.model import ModelRef
from sluice.providers import make_provider
from sluice.release.prompt import render_messages
from sluice.runner.messages import tool_specs

SUPPORTED_PROVIDERS = ("openai", "scripted")
# request fields that are the gateway's to set, or meaningless upstream
_NOT_FORWARDED = frozenset({"model", "messages", "metadata", "stream", "stream_options"})


class BadRequest(Exception):
    """The request cannot be served as sent (400 in the OpenAI error format)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class ModelTarget:
    """One model a release may call; ``key`` names its circuit breaker (one per endpoint + model)."""

    model: str
    url: str
    api_key_env: str | None
    timeout_s: float
    provider: str
    key: str
    local: Any = None  # a ScriptedProvider answering in-process (provider ``scripted``)


@dataclass
class PreparedRelease:
    bundle: ReleaseBundle
    digest: str
    ref: str
    chain: list[ModelTarget]
    system_message: dict[str, Any] | None
    params: dict[str, Any]
    tools: list[dict[str, Any]] | None
    has_template: bool
    guardrails: Guardrails
    cost: dict[str, float]

    def render(self, messages: list[Any]) -> list[dict[str, Any]]:
        """The messages sent upstream for the client's ``messages``."""
        if self.has_template:
            try:
                row = Row.model_validate({"id": "request", "input": messages})
            except ValueError as e:
                raise BadRequest(f"messages do not fit this release's prompt template: {str(e).splitlines()[0]}",
                                 "messages") from None
            try:
                return render_messages(self.bundle, "responder", row).messages
            except ConfigError as e:  # a template that cannot render this request
                raise BadRequest(f"the release's prompt template failed: {e.message}", "messages") from None
        if self.system_message is None:
            return messages
        i = 0
        while i < len(messages) and isinstance(messages[i], dict) and messages[i].get("role") == "system":
            i += 1
        return [self.system_message, *messages[i:]]

    def body(self, request: dict[str, Any], messages: list[dict[str, Any]], target: ModelTarget,
             stream: bool) -> bytes:
        payload = {k: v for k, v in request.items() if k not in _NOT_FORWARDED}
        payload.update(self.params)
        if self.tools and "tools" not in request:
            payload["tools"] = self.tools
        payload["model"] = target.model
        payload["messages"] = messages
        if stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}  # always: spans need the usage
        return orjson.dumps(payload)

    def price(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if not self.cost:
            return None
        return (prompt_tokens * self.cost.get("input", 0.0) + completion_tokens * self.cost.get("output", 0.0)) / 1e6


def prepare(bundle: ReleaseBundle) -> PreparedRelease:
    release = bundle.release
    if release.target.type != "chat":
        raise ConfigError(f"release {bundle.ref} has target '{release.target.type}': the gateway serves chat releases")
    comp = release.responder
    chain = [_target(ref, bundle) for ref in [comp, *comp.fallbacks]]
    system = bundle.system_prompt("responder")
    return PreparedRelease(
        bundle=bundle, digest=bundle.digest, ref=bundle.ref, chain=chain,
        system_message={"role": "system", "content": system} if system is not None else None,
        params=comp.params.as_request(), tools=tool_specs(release, bundle.files),
        has_template=comp.prompt is not None,
        guardrails=compile_guardrails(release.guardrails, bundle.files), cost=dict(release.cost),
    )


def _target(ref: ModelRef, bundle: ReleaseBundle) -> ModelTarget:
    if ref.provider not in SUPPORTED_PROVIDERS:
        raise ConfigError(f"release {bundle.ref}: model {ref.model} uses provider '{ref.provider}'; the gateway "
                          f"calls {', '.join(SUPPORTED_PROVIDERS)} providers only")
    if ref.provider == "scripted":
        provider = make_provider(ref, bundle.root, files=bundle.files)
        return ModelTarget(model=ref.model, url=f"scripted://{ref.model}", api_key_env=None, timeout_s=ref.timeout_s,
                           provider="scripted", key=f"scripted#{bundle.digest}#{ref.model}", local=provider)
    base = (ref.base_url or "https://api.openai.com/v1").rstrip("/")
    return ModelTarget(model=ref.model, url=base + "/chat/completions", api_key_env=ref.api_key_env,
                       timeout_s=ref.timeout_s, provider=ref.provider, key=f"{base}#{ref.model}")
