"""The files a release.yaml points at, and the checks each kind of file must pass.

A release is the manifest *plus* these files, so the loader reads every one of them, checks it
before anything runs (a template that does not parse fails at ``release register``, not on row 900
of a gate), and keys it by a normalised path relative to the release folder.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import Any, Iterator, Literal

import jinja2
import jsonschema
import yaml
from jinja2 import nodes

from sluice.errors import ConfigError, Location
from sluice.release.model import Release

FileKind = Literal["template", "text", "schema", "script"]


@dataclass(frozen=True)
class FileRef:
    """One manifest field that names a file."""

    path: tuple  # the field's path in the manifest, e.g. ("components", "responder", "prompt")
    value: str  # the path as written in release.yaml
    kind: FileKind


def file_refs(release: Release) -> Iterator[FileRef]:
    """Every file-valued field of the release, in manifest order."""
    for cname, comp in release.components.items():
        base = ("components", cname)
        if comp.prompt is not None:
            yield FileRef(base + ("prompt",), comp.prompt, "template")
        if comp.system_prompt_file is not None:
            yield FileRef(base + ("system_prompt_file",), comp.system_prompt_file, "text")
        if comp.script is not None:
            yield FileRef(base + ("script",), comp.script, "script")
        for i, fb in enumerate(comp.fallbacks):
            if fb.script is not None:
                yield FileRef(base + ("fallbacks", i, "script"), fb.script, "script")
    for i, tool in enumerate(release.tools):
        if tool.parameters_file is not None:
            yield FileRef(("tools", i, "parameters_file"), tool.parameters_file, "schema")
    for i, guard in enumerate(release.guardrails):
        if guard.schema_file is not None:
            yield FileRef(("guardrails", i, "schema_file"), guard.schema_file, "schema")


def inline_schemas(release: Release) -> Iterator[tuple[tuple, dict[str, Any]]]:
    """JSON schemas written directly in the manifest (checked like schema files)."""
    for i, tool in enumerate(release.tools):
        if tool.parameters is not None:
            yield ("tools", i, "parameters"), tool.parameters
    for i, guard in enumerate(release.guardrails):
        if guard.schema_ is not None:
            yield ("guardrails", i, "schema"), guard.schema_


def normalise_path(value: str) -> str | None:
    """``./prompts//a.j2`` -> ``prompts/a.j2``; None for an absolute path (not portable)."""
    text = value.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        return None
    return posixpath.normpath(text)


def check_file(ref: FileRef, rel: str, data: bytes, shown: str, where: str) -> None:
    """Raise ConfigError when the file's content is unusable for its kind.

    ``shown`` is the file as the user knows it (path on disk), ``where`` the manifest line that
    references it, so the message points at both.
    """
    if ref.kind == "script":
        return  # the scripted provider owns its format
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(f"not valid UTF-8 (referenced by {where})", Location(file=shown, line=line)) from None
    if ref.kind == "template":
        check_template(text, rel, shown, where)
    elif ref.kind == "schema":
        schema = _parse_schema_file(text, rel, shown, where)
        problem = schema_problem(schema)
        if problem:
            raise ConfigError(f"not a valid JSON schema: {problem} (referenced by {where})", Location(file=shown))


def _parse_schema_file(text: str, rel: str, shown: str, where: str) -> Any:
    """JSON, or YAML when the file ends in .yaml/.yml."""
    if rel.endswith((".yaml", ".yml")):
        try:
            return yaml.safe_load(text)
        except yaml.MarkedYAMLError as e:
            line = e.problem_mark.line + 1 if e.problem_mark else None
            raise ConfigError(f"not valid YAML: {e.problem} (referenced by {where})",
                              Location(file=shown, line=line)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"not valid JSON: {e.msg} (referenced by {where})", Location(file=shown, line=e.lineno)) from None


def check_template(text: str, rel: str, shown: str, where: str) -> None:
    """A template must parse and be self-contained (it is stored alone, so no include/extends)."""
    env = jinja2.Environment()
    try:
        tree = env.parse(text, name=rel)
    except jinja2.TemplateSyntaxError as e:
        raise ConfigError(f"template does not parse: {e.message} (referenced by {where})",
                          Location(file=shown, line=e.lineno)) from None
    for node in tree.find_all((nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport)):
        raise ConfigError(f"templates must be self-contained: {type(node).__name__.lower()} is not supported "
                          f"(referenced by {where})", Location(file=shown, line=node.lineno))


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is not a JSON schema, or None when it is one."""
    if not isinstance(schema, dict):
        return "must be a JSON object"
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        at = "/".join(str(p) for p in e.absolute_path)
        return f"{e.message}" + (f" at '{at}'" if at else "")
    return None


def set_at(data: dict[str, Any], path: tuple, value: Any) -> None:
    """Replace the value at ``path`` inside nested dicts/lists."""
    target: Any = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
