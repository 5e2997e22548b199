"""A scripted local model: a fake provider for tests and the offline demo.

It answers from a script file (YAML or JSONL, format in docs/runner.md) instead of a real model.
Answers are deterministic: the same request (row id, cohort, last user message, attempt number)
always gets the same answer. Latency is a real ``asyncio.sleep`` so the runner measures it as it
would a real upstream's.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sluice.dataset.row import ToolCall
from sluice.digest import digest_of
from sluice.errors import ConfigError, Location
from sluice.providers.base import (CONNECTION, CONTEXT_LENGTH, MALFORMED, TIMEOUT, ChatRequest,
                                   ChatResponse, ProviderError, classify_status)
from sluice.runner.record import Usage
from sluice.yamlio import dotted, parse_yaml, validation_error

_PLACEHOLDER = re.compile(r"\{(row_id|cohort|last_user|model)\}")


class ScriptedError(BaseModel):
    """One failed attempt: an HTTP status, or a transport kind."""

    model_config = ConfigDict(extra="forbid")
    status: int | None = None
    kind: str | None = None  # timeout | connection | context_length | malformed
    retry_after: float | None = None
    message: str = "scripted failure"

    @model_validator(mode="after")
    def _one(self) -> "ScriptedError":
        if (self.status is None) == (self.kind is None):
            raise ValueError("give status or kind")
        if self.kind not in (None, TIMEOUT, CONNECTION, CONTEXT_LENGTH, MALFORMED):
            raise ValueError("kind must be timeout, connection, context_length or malformed")
        return self


class ScriptedResponse(BaseModel):
    """An entry of the script; ``row_id``/``cohort``/``pattern`` say when it applies."""

    model_config = ConfigDict(extra="forbid")
    row_id: str | None = None
    cohort: str | None = None
    pattern: str | None = None  # regex searched in the last user message
    default: bool = False
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage | None = None
    latency_ms: float = Field(default=0.0, ge=0)
    finish_reason: str | None = None
    errors: list[ScriptedError] = Field(default_factory=list)  # attempt k fails with errors[k]

    def matches(self, cohort: str | None, last_user: str, regex: re.Pattern | None) -> bool:
        if self.cohort is not None and self.cohort != cohort:
            return False
        return regex is None or regex.search(last_user) is not None


@dataclass
class Script:
    by_row: dict[str, ScriptedResponse] = field(default_factory=dict)
    rules: list[tuple[ScriptedResponse, re.Pattern | None]] = field(default_factory=list)
    default: ScriptedResponse = field(default_factory=lambda: ScriptedResponse(content="{last_user}"))

    @classmethod
    def from_entries(cls, entries: list[ScriptedResponse]) -> "Script":
        script = cls()
        for e in entries:
            if e.row_id is not None:
                script.by_row[e.row_id] = e
            elif e.default or (e.cohort is None and e.pattern is None):
                script.default = e
            else:
                script.rules.append((e, re.compile(e.pattern) if e.pattern else None))
        return script

    def pick(self, row_id: str | None, cohort: str | None, last_user: str) -> ScriptedResponse:
        """Row id first, then the first cohort/pattern rule in file order, then the default."""
        if row_id is not None and row_id in self.by_row:
            return self.by_row[row_id]
        for entry, regex in self.rules:
            if entry.matches(cohort, last_user, regex):
                return entry
        return self.default


def load_script(path: Path) -> Script:
    """Read a script file; see ``parse_script``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read script: {e}", Location(file=str(path))) from None
    return parse_script(text, str(path))


def parse_script(text: str, file: str) -> Script:
    """A YAML script (a list of entries, or ``{responses: [...], default: {...}}``), or JSONL
    (one entry per line) when ``file`` ends in ``.jsonl``."""
    if file.endswith(".jsonl"):
        entries = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entries.append(ScriptedResponse.model_validate(orjson.loads(line)))
            except orjson.JSONDecodeError as e:
                raise ConfigError(f"invalid JSON: {e}", Location(file=file, line=n)) from None
            except ValidationError as e:
                err = validation_error(e, {}, file)
                raise ConfigError(err.message, Location(file=file, line=n, field=err.location.field)) from None
        return Script.from_entries(entries)
    data, lines = parse_yaml(text, file)
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"responses", "default"})
        if unknown:
            raise ConfigError("is not a known field", Location(file=file, line=lines.get((unknown[0],)),
                                                                field=unknown[0]))
        items = [(("responses", i), item) for i, item in enumerate(data.get("responses") or [])]
        if data.get("default") is not None:
            items.append((("default",), {**data["default"], "default": True}))
    elif isinstance(data, list):
        items = [((i,), item) for i, item in enumerate(data)]
    else:
        raise ConfigError("a script is a list of responses or {responses, default}", Location(file=file, line=1))
    entries = []
    for base, item in items:
        try:
            entries.append(ScriptedResponse.model_validate(item))
        except ValidationError as e:
            sub = {k[len(base):]: v for k, v in lines.items() if k[:len(base)] == base}
            err = validation_error(e, sub, file)
            field_name = dotted(base + tuple(err.location.field.split("."))) if err.location.field else dotted(base)
            raise ConfigError(err.message, Location(file=file, line=err.location.line or lines.get(base),
                                                    field=field_name)) from None
    return Script.from_entries(entries)


def estimate_tokens(text: str) -> int:
    """About four characters per token: an estimate, labelled as such in docs/runner.md."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _last_user(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user" and isinstance(m.get("content"), str):
            return m["content"]
    return ""


class ScriptedProvider:
    """Fails or answers as the script says; attempts are counted per (model, row or request)."""

    name = "scripted"

    def __init__(self, script: Script, *, model: str = "scripted"):
        self.script = script
        self.model = model
        self._attempts: dict[tuple[str, str], int] = {}
        self.calls = 0

    @classmethod
    def from_file(cls, path: Path, *, model: str = "scripted") -> "ScriptedProvider":
        return cls(load_script(path), model=model)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.calls += 1
        meta = request.metadata
        row_id, cohort = meta.get("row_id"), meta.get("cohort")
        last_user = _last_user(request.messages)
        entry = self.script.pick(row_id, cohort, last_user)
        key = (request.model, row_id if row_id is not None else digest_of(request.messages))
        attempt = self._attempts.get(key, 0)
        self._attempts[key] = attempt + 1
        if entry.latency_ms:
            await asyncio.sleep(entry.latency_ms / 1000.0)
        if attempt < len(entry.errors):
            raise self._error(entry.errors[attempt])
        values = {"row_id": str(row_id or ""), "cohort": str(cohort or ""), "last_user": last_user,
                  "model": request.model}
        content = (_PLACEHOLDER.sub(lambda m: values[m.group(1)], entry.content)
                   if entry.content is not None else None)
        usage = entry.usage
        if usage is None:
            prompt = sum(estimate_tokens(m.get("content") or "") for m in request.messages
                         if isinstance(m.get("content"), str))
            completion = estimate_tokens(content or "") + sum(
                estimate_tokens(orjson.dumps(c.arguments).decode()) for c in entry.tool_calls)
            usage = Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
        finish = entry.finish_reason or ("tool_calls" if entry.tool_calls else "stop")
        return ChatResponse(content=content, tool_calls=list(entry.tool_calls), usage=usage, model=request.model,
                            finish_reason=finish, raw={"scripted": True, "attempt": attempt + 1},
                            latency_ms=entry.latency_ms or None)

    def _error(self, err: ScriptedError) -> ProviderError:
        where = f"scripted model {self.model}"
        if err.status is not None:
            headers = {"retry-after": str(err.retry_after)} if err.retry_after is not None else {}
            return classify_status(err.status, {"error": {"message": err.message}}, headers, where)
        if err.kind == CONTEXT_LENGTH:
            return classify_status(400, {"error": {"message": err.message, "code": "context_length_exceeded"}},
                                   None, where)
        if err.kind == MALFORMED:
            return ProviderError(f"{where} returned a malformed body", kind=MALFORMED, retryable=False)
        return ProviderError(f"{where}: {err.message}", kind=err.kind or CONNECTION, retryable=True)

    async def aclose(self) -> None:
        return None
