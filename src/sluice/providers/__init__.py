"""Upstream model clients behind one interface (``Provider``), and the factory that picks one."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import httpx

from sluice.errors import ConfigError, Location
from sluice.providers.base import ChatRequest, ChatResponse, Provider, ProviderError
from sluice.providers.openai_compat import OpenAICompatProvider
from sluice.providers.scripted import ScriptedProvider, load_script, parse_script
from sluice.release.model import ModelRef

PROVIDERS = ("openai", "scripted")

__all__ = ["ChatRequest", "ChatResponse", "Provider", "ProviderError", "make_provider", "PROVIDERS"]


def make_provider(model_ref: ModelRef, root: Path | None, *, client: httpx.AsyncClient | None = None,
                  files: Mapping[str, bytes] | None = None) -> Provider:
    """The provider for one model reference.

    A scripted model's script is taken from ``files`` (a release bundle's files, keyed by
    bundle-relative path) when it is there, else read relative to ``root``. ``client`` shares one
    connection pool between providers (the runner passes its own).
    """
    if model_ref.provider == "openai":
        return OpenAICompatProvider(model=model_ref.model, base_url=model_ref.base_url,
                                    api_key_env=model_ref.api_key_env, timeout_s=model_ref.timeout_s,
                                    client=client)
    if model_ref.provider == "scripted":
        if not model_ref.script:
            raise ConfigError(f"scripted model {model_ref.model} needs script: <file>", Location(field="script"))
        if files is not None and model_ref.script in files:
            text = files[model_ref.script].decode("utf-8")
            return ScriptedProvider(parse_script(text, model_ref.script), model=model_ref.model)
        path = Path(model_ref.script)
        if not path.is_absolute() and root is not None:
            path = Path(root) / path
        return ScriptedProvider(load_script(path), model=model_ref.model)
    raise ConfigError(f"unknown provider '{model_ref.provider}' (known: {', '.join(PROVIDERS)})",
                      Location(field="provider"))
