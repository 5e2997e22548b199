"""Turning a release and a row into the chat request the responder receives.

This is a deliberately small, private rendering hook so the runner works before the release
package's prompt rendering (``sluice.release.prompt.render_messages``) lands. The lead swaps it by
passing ``render=`` to ``run_release`` (any ``Callable[[Row], list[dict]]``) or by changing
``make_renderer`` to delegate. It renders from the bundle's files, never from disk, so a release
rebuilt from the store behaves like the one on disk.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

import jinja2
import yaml

from sluice.dataset.row import Row
from sluice.errors import ConfigError, Location
from sluice.release.model import Component, Release

Render = Callable[[Row], list[dict[str, Any]]]


def _text(files: Mapping[str, bytes], rel: str, field: str) -> str:
    try:
        return files[rel].decode("utf-8")
    except KeyError:
        raise ConfigError(f"release has no file '{rel}'", Location(field=field)) from None


def make_renderer(release: Release, files: Mapping[str, bytes], component: str = "responder") -> Render:
    """Messages for a row: the row's chat as-is, or the component's Jinja2 template rendered with
    the row's input variables (plus ``context`` texts and ``row``); the system prompt goes first."""
    comp: Component = release.components[component]
    system = comp.system_prompt
    if comp.system_prompt_file is not None:
        system = _text(files, comp.system_prompt_file, f"components.{component}.system_prompt_file")
    template = None
    if comp.prompt is not None:
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)
        try:
            template = env.from_string(_text(files, comp.prompt, f"components.{component}.prompt"))
        except jinja2.TemplateSyntaxError as e:
            raise ConfigError(f"template error: {e.message}", Location(file=comp.prompt, line=e.lineno)) from None
    head = [{"role": "system", "content": system}] if system else []

    def render(row: Row) -> list[dict[str, Any]]:
        if isinstance(row.input, list):
            chat = [m.model_dump(exclude_none=True) for m in row.input]
            return chat if chat and chat[0]["role"] == "system" else head + chat
        if template is None:
            return head + [{"role": "user", "content": row.last_user_text()}]
        try:
            text = template.render(**row.input, context=row.context_texts(), row=row)
        except jinja2.UndefinedError as e:
            raise ConfigError(f"template {comp.prompt}: {e.message}", Location(row=row.id, field="input")) from None
        return head + [{"role": "user", "content": text}]

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
