"""Turning a release and a row into the chat request the responder receives.

Rendering itself belongs to the release package (``sluice.release.prompt.render_messages``: system
prompt, Jinja2 template, context budget); this module adapts it to the runner. It renders from the
bundle's files, never from disk, so a release rebuilt from the store behaves like the one on disk.
A caller may pass its own ``render`` (any ``Callable[[Row], list[dict]]``) to ``run_release``.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

import yaml

from sluice.dataset.row import Row
from sluice.errors import ConfigError, Location
from sluice.release.bundle import make_bundle
from sluice.release.model import Release
from sluice.release.prompt import RenderedPrompt, render_messages

Render = Callable[[Row], "list[dict[str, Any]] | RenderedPrompt"]


def _text(files: Mapping[str, bytes], rel: str, field: str) -> str:
    try:
        return files[rel].decode("utf-8")
    except KeyError:
        raise ConfigError(f"release has no file '{rel}'", Location(field=field)) from None


def make_renderer(release: Release, files: Mapping[str, bytes], component: str = "responder") -> Render:
    """The release's own rendering of a row (system prompt, template, context budget)."""
    bundle = make_bundle(release, dict(files))

    def render(row: Row) -> RenderedPrompt:
        return render_messages(bundle, component, row)

    return render


def tool_specs(release: Release, files: Mapping[str, bytes]) -> list[dict[str, Any]] | None:
    """The release's tools in OpenAI ``tools`` form (schemas from the bundle when in a file)."""
    specs = []
    for i, tool in enumerate(release.tools):
        params = tool.parameters
        if tool.parameters_file is not None:
            text = _text(files, tool.parameters_file, f"tools[{i}].parameters_file")
            params = json.loads(text) if tool.parameters_file.endswith(".json") else yaml.safe_load(text)
        fn: dict[str, Any] = {"name": tool.name, "description": tool.description}
        fn["parameters"] = params or {"type": "object", "properties": {}}
        specs.append({"type": "function", "function": fn})
    return specs or None
