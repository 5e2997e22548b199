"""The release's guardrails, checked on every response the gateway returns (fallbacks included).

Checks are compiled once per release: JSON schemas into validators, patterns into regexes.
A ``json_schema`` guardrail validates tool-call arguments when the response calls tools (only the
tool named in ``args.tool`` when given), else the content parsed as JSON (structured output).
``pii`` looks for e-mail addresses, US social-security numbers, card numbers that pass the Luhn
check and phone numbers (``args.kinds`` narrows the list). An ``evaluator`` guardrail builds that
evaluator once (``args`` are its arguments, ``threshold`` its pass mark) and runs it on the answer
(``response`` and ``tool_calls``); it is a violation when the result does not pass. Evaluators
that need more than the answer (context, an expected answer) find the row "not applicable" and
pass. An evaluator that fails as an instrument (a judge that times out) does not block: the
guardrail is reported as skipped, like one marked ``inline: false`` (those run in the gate only).

The strongest action among the violations decides: ``block`` > ``repair`` > ``log``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import jsonschema
import yaml

from sluice.errors import ConfigError
from sluice.evals.base import safe_evaluate
from sluice.evals.builtins.pii_leak import PATTERNS as PII_PATTERNS
from sluice.evals.builtins.pii_leak import find_pii
from sluice.release.model import Guardrail

# one PII detector for the gate and the gateway: the pii_leak evaluator's (Luhn-checked cards,
# IBAN checksums, phones, e-mails, SSNs, API keys); "card" is accepted as the old name of credit_card
PII_ALIASES = {"card": "credit_card"}
ACTION_RANK = {"log": 0, "repair": 1, "block": 2}
DEFAULT_BLOCK_MESSAGE = "This response was withheld by a safety policy."


@dataclass(frozen=True, slots=True)
class ResponseView:
    """What guardrails look at: the assistant's text and its tool calls (name, raw arguments)."""

    content: str
    tool_calls: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Violation:
    guardrail: str
    action: str
    reason: str


@dataclass
class Verdict:
    violations: list[Violation] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def action(self) -> str | None:
        """The strongest action to take, None when every check passed."""
        if not self.violations:
            return None
        return max((v.action for v in self.violations), key=ACTION_RANK.__getitem__)

    def outcome(self) -> str:
        """``pass`` or ``<action>:<guardrail>[,<guardrail>]`` for the span."""
        action = self.action
        if action is None:
            return "pass"
        return f"{action}:" + ",".join(sorted({v.guardrail for v in self.violations if v.action == action}))


Check = Callable[[ResponseView], str | None]  # the reason of a violation, None when it passes


class Unchecked(Exception):
    """A check could not judge this response (its instrument failed); the guardrail is skipped."""


@dataclass
class Guardrails:
    checks: list[tuple[Guardrail, Check]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    messages: dict[str, str] = field(default_factory=dict)

    @property
    def blocking(self) -> bool:
        """Whether some guardrail can change the response (so a stream must be held back)."""
        return any(g.action != "log" for g, _ in self.checks)

    def block_message(self, outcome: str) -> str:
        """The safe answer for an outcome ``block:<guardrail>[,...]``: the first one's message."""
        for name in outcome.partition(":")[2].split(","):
            if name in self.messages:
                return self.messages[name]
        return DEFAULT_BLOCK_MESSAGE

    def check(self, view: ResponseView) -> Verdict:
        verdict = Verdict(skipped=list(self.skipped))
        for g, check in self.checks:
            try:
                reason = check(view)
            except Unchecked:
                verdict.skipped.append(g.name)
                continue
            if reason is not None:
                verdict.violations.append(Violation(g.name, g.action, reason))
        return verdict


def compile_guardrails(guardrails: list[Guardrail], files: Mapping[str, bytes]) -> Guardrails:
    out = Guardrails()
    for g in guardrails:
        if g.message:
            out.messages[g.name] = g.message
        if g.type == "blocked_patterns":
            out.checks.append((g, _patterns_check([re.compile(p) for p in g.patterns])))
        elif g.type == "pii":
            kinds = [PII_ALIASES.get(k, k) for k in g.args.get("kinds") or list(PII_PATTERNS)]
            unknown = [k for k in kinds if k not in PII_PATTERNS]
            if unknown:
                raise ConfigError(f"guardrail {g.name}: unknown PII kind(s) {', '.join(unknown)} "
                                  f"(known: {', '.join(PII_PATTERNS)})")
            out.checks.append((g, _pii_check(kinds)))
        elif g.type == "json_schema":
            schema = g.schema_ if g.schema_ is not None else _schema_file(g, files)
            validator_cls = jsonschema.validators.validator_for(schema)
            try:
                validator_cls.check_schema(schema)
            except jsonschema.SchemaError as e:
                raise ConfigError(f"guardrail {g.name}: invalid JSON schema: {e.message}") from None
            out.checks.append((g, _schema_check(validator_cls(schema), g.args.get("tool"))))
        elif g.inline:
            out.checks.append((g, _evaluator_check(g)))
        else:
            out.skipped.append(g.name)
    return out


def _schema_file(g: Guardrail, files: Mapping[str, bytes]) -> Any:
    try:
        text = files[g.schema_file].decode("utf-8")
    except KeyError:
        raise ConfigError(f"guardrail {g.name}: the release has no file '{g.schema_file}'") from None
    return json.loads(text) if g.schema_file.endswith(".json") else yaml.safe_load(text)


def _texts(view: ResponseView) -> list[str]:
    return [view.content, *(args for _, args in view.tool_calls)]


def _patterns_check(patterns: list[re.Pattern]) -> Check:
    def check(view: ResponseView) -> str | None:
        for text in _texts(view):
            for p in patterns:
                if text and p.search(text):
                    return f"matched blocked pattern {p.pattern!r}"
        return None
    return check


def _pii_check(kinds: list[str]) -> Check:
    wanted = tuple(kinds)

    def check(view: ResponseView) -> str | None:
        for text in _texts(view):
            found = find_pii(text, wanted) if text else []
            if found:
                return f"contains {found[0][0]}"
        return None
    return check


def _schema_check(validator: Any, tool: str | None) -> Check:
    def check(view: ResponseView) -> str | None:
        if view.tool_calls:
            targets = [(name, args) for name, args in view.tool_calls if tool is None or name == tool]
        elif tool is None:
            targets = [("content", view.content)]
        else:
            targets = []
        for name, raw in targets:
            try:
                value = json.loads(raw) if raw else None
            except ValueError:
                return f"{name}: not valid JSON"
            error = jsonschema.exceptions.best_match(validator.iter_errors(value))
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                return f"{name}: {where}: {error.message}"
        return None
    return check


def _evaluator_check(g: Guardrail) -> Check:
    from sluice.evals.registry import build  # the registry imports every built-in: load it lazily

    args = dict(g.args) | ({"threshold": g.threshold} if g.threshold is not None else {})
    try:
        evaluator = build({"name": g.evaluator, "args": args})
    except ConfigError as e:
        raise ConfigError(f"guardrail {g.name}: {e}") from None

    def check(view: ResponseView) -> str | None:
        calls = [{"name": name, "arguments": args} for name, args in view.tool_calls]
        result = safe_evaluate(evaluator, {"response": view.content, "tool_calls": calls})
        if result.error is not None:
            raise Unchecked(result.error)
        if result.passed or result.details.get("not_applicable"):
            return None
        return f"{g.evaluator} scored {result.score:.2f}: {result.reason}" if result.reason else \
            f"{g.evaluator} scored {result.score:.2f}"
    return check
