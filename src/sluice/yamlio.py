"""YAML loading that remembers where every value came from.

Pydantic reports errors by field path (``components.responder.params.temperature``); users need a
file and a line. ``load_yaml`` returns the data plus a map from path to line, and
``validate_model`` turns the first validation error into one ``ConfigError`` naming file, line and
field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from sluice.errors import ConfigError, Location

M = TypeVar("M", bound=BaseModel)
LineMap = dict[tuple, int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records the line of each mapping key and sequence item."""


class _DuplicateKey(Exception):
    def __init__(self, path: tuple, line: int, first: int):
        self.path, self.line, self.first = path, line, first


def _walk(node: yaml.Node, path: tuple, lines: LineMap) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":  # PyYAML keeps the last silently; a lost setting is a bug
                raise _DuplicateKey(path + (key,), line, seen[key])
            seen[key] = line
            lines[path + (key,)] = line
            _walk(value_node, path + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            _walk(item, path + (i,), lines)


def parse_yaml(text: str, file: str) -> tuple[Any, LineMap]:
    """Parse YAML text; syntax errors become a ConfigError with the line."""
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        problem = (e.problem or str(e)).strip()
        raise ConfigError(f"invalid YAML: {problem}", Location(file=file, line=line)) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}", Location(file=file)) from None
    lines: LineMap = {}
    if node is not None:
        try:
            _walk(node, (), lines)
        except _DuplicateKey as e:
            raise ConfigError(f"duplicate key '{dotted(e.path)}' (first set at line {e.first})",
                              Location(file=file, line=e.line)) from None
    return data, lines


def load_yaml(path: str | Path) -> tuple[Any, LineMap]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", Location(file=str(p))) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read file: {e}", Location(file=str(p))) from None
    return parse_yaml(text, str(p))


def line_of(lines: LineMap, path: tuple) -> int | None:
    """The line of the deepest known prefix of ``path``."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validate_model(model: type[M], data: Any, lines: LineMap, file: str) -> M:
    """Validate ``data`` as ``model``; the first error becomes one ConfigError line."""
    if data is None:
        raise ConfigError("file is empty", Location(file=file, line=1))
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise validation_error(e, lines, file) from None


def validation_error(e: ValidationError, lines: LineMap, file: str) -> ConfigError:
    err = e.errors()[0]
    # pydantic puts union/tagged-union branch names into loc; keep only real keys and indexes
    path = tuple(p for p in err["loc"] if isinstance(p, int) or not str(p).startswith(("function-", "tagged-union")))
    path = _real_path(path, lines)
    msg = err["msg"]
    if err["type"] == "missing":
        msg = "is required"
    elif err["type"] == "extra_forbidden":
        msg = "is not a known field"
    more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return ConfigError(msg + more, Location(file=file, line=line_of(lines, path), field=dotted(path) or None))


def _real_path(path: tuple, lines: LineMap) -> tuple:
    """Drop pydantic's type-name path segments that are not keys in the document."""
    out: tuple = ()
    for part in path:
        candidate = out + (part,)
        if candidate in lines or isinstance(part, int) or not lines:
            out = candidate
        elif any(k[: len(candidate)] == candidate for k in lines):
            out = candidate
        else:
            # keep a missing final key (a required field), skip inner type names
            if part == path[-1]:
                out = candidate
    return out
