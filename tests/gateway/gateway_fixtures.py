"""Helpers for gateway tests: release folders pointing at a scripted upstream, and a running server
with the gateway mounted exactly as ``sluice serve`` would mount it."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

from sluice.gateway.app import Gateway, make_gateway
from sluice.gateway.config import GatewaySettings
from sluice.release.loader import load_release
from sluice.release.registry import register
from sluice.server.app import create_app
from sluice.server.runner import running
from sluice.telemetry import schema  # noqa: F401 - registers the span tables
from sluice.telemetry.traces import span_dict
from sluice.telemetry.schema import SPAN_COLUMNS


def make_release(store: Any, root: Path, name: str, version: str, base_url: str, model: str = "m-primary", *,
                 system: str | None = None, fallbacks: list[dict] | None = None, guardrails: list[dict] | None = None,
                 params: dict | None = None, prompt: str | None = None, timeout_s: float | None = None,
                 api_key_env: str | None = None) -> str:
    """Write and register a release; returns its ``name@version``."""
    folder = root / f"{name}-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    base_url = str(base_url)
    responder: dict[str, Any] = {"provider": "openai", "model": model, "base_url": base_url}
    if system is not None:
        responder["system_prompt"] = system
    if params:
        responder["params"] = params
    if timeout_s is not None:
        responder["timeout_s"] = timeout_s
    if api_key_env is not None:
        responder["api_key_env"] = api_key_env
    if fallbacks:
        responder["fallbacks"] = [{"provider": "openai", "base_url": base_url, **f} for f in fallbacks]
    if prompt is not None:
        (folder / "prompt.j2").write_text(prompt)
        responder["prompt"] = "prompt.j2"
    manifest: dict[str, Any] = {"name": name, "version": version, "components": {"responder": responder}}
    if guardrails:
        manifest["guardrails"] = guardrails
    (folder / "release.yaml").write_text(yaml.safe_dump(manifest))
    register(store, load_release(folder))
    return f"{name}@{version}"


@contextmanager
def serving(store: Any, settings: GatewaySettings | dict) -> Iterator[tuple[str, Gateway]]:
    """The server app with the gateway router included; yields (base URL, gateway).
    Leaving the block drains the span writer, so spans can be read right after it."""
    if isinstance(settings, dict):
        # no lag shedding unless a test asks for it: a loaded CI machine must not turn into 503s
        settings = GatewaySettings.model_validate({"shed_lag_ms": 0, **settings})
    gateway = make_gateway(settings, store)
    app = create_app(store, routers=[gateway.router])
    with running(app) as url:
        yield url, gateway


def spans(store: Any) -> list[dict[str, Any]]:
    rows = store.db.query(f"SELECT {', '.join(SPAN_COLUMNS)} FROM spans ORDER BY start_ns, span_id")
    return [span_dict(r) for r in rows]
