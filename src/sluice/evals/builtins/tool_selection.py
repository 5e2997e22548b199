"""Tool selection accuracy: did the agent call the expected tool with the expected arguments?

Among the calls made, the one with the expected name and the best argument agreement is scored:

    score = 0                                   when no call has the expected name
    score = mean(1, argument credit[, schema])  otherwise

Argument credit is per expected argument (nested objects get partial credit; strings compare
case- and whitespace-insensitively, numbers numerically, "5" equals 5). When the release's tool
schemas are given (``tools``), the chosen call's arguments are validated with jsonschema and the
schema term is 1 (valid) or 0. Extra calls are allowed unless ``allow_extra_calls`` is false, in
which case each one costs ``1/(calls)`` of the score. Passes at 1.0: a perfect call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema

from sluice.evals.base import BaseEvaluator, tool_call_dict
from sluice.evals.registry import register


def values_match(expected: Any, actual: Any) -> float:
    """Agreement in [0, 1] between an expected and an actual argument value."""
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return 0.0
        if not expected:
            return 1.0
        return sum(values_match(v, actual.get(k)) for k, v in expected.items() if k in actual) \
            / len(expected)
    if isinstance(expected, (list, tuple)):
        if not isinstance(actual, (list, tuple)) or len(actual) != len(expected):
            return 0.0
        return float(all(values_match(e, a) == 1.0 for e, a in zip(expected, actual)))
    if isinstance(expected, bool) or isinstance(actual, bool):
        return float(expected == actual)
    if isinstance(expected, (int, float)) or isinstance(actual, (int, float)):
        try:
            e, a = float(expected), float(actual)
        except (TypeError, ValueError):
            return 0.0
        return float(abs(e - a) <= 1e-9 * max(1.0, abs(e)))
    if isinstance(expected, str) and isinstance(actual, str):
        return float(" ".join(expected.lower().split()) == " ".join(actual.lower().split()))
    return float(expected == actual)


def argument_credit(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> tuple[float,
                                                                                      dict]:
    """Share of expected arguments matched, and a per-argument account."""
    if not expected:
        return 1.0, {}
    per = {k: round(values_match(v, actual.get(k)), 4) if k in actual else 0.0
           for k, v in expected.items()}
    return sum(per.values()) / len(per), per


def tool_schemas(tools: Any) -> dict[str, dict]:
    """``{tool name: parameters schema}`` from release tools, OpenAI tool specs or plain dicts."""
    out: dict[str, dict] = {}
    for t in tools or []:
        if hasattr(t, "model_dump"):
            t = t.model_dump()
        if not isinstance(t, Mapping):
            continue
        if isinstance(t.get("function"), Mapping):
            t = t["function"]
        schema = t.get("parameters") or t.get("input_schema") or t.get("json_schema")
        if t.get("name") and isinstance(schema, Mapping):
            out[str(t["name"])] = dict(schema)
    return out


def schema_errors(schema: dict, arguments: dict) -> list[str]:
    cls = jsonschema.validators.validator_for(schema)
    return [f"/{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
            for e in cls(schema).iter_errors(arguments)][:10]


@register("tool_selection_accuracy")
class ToolSelectionAccuracy(BaseEvaluator):
    """Expected tool name and arguments vs the calls made; schema-checked when tools are given."""

    version = "1"
    requires = ("expected_tool",)
    default_threshold = 1.0

    def __init__(self, *, allow_extra_calls: bool = True, check_schema: bool = True,
                 threshold: float | None = None):
        super().__init__(threshold=threshold)
        self.allow_extra_calls = allow_extra_calls
        self.check_schema = check_schema

    def score(self, fields: dict[str, Any]) -> Any:
        expected = tool_call_dict(fields["expected_tool"])
        calls = [tool_call_dict(c) for c in fields.get("tool_calls") or []]
        made = [c["name"] for c in calls]
        candidates = [c for c in calls if c["name"] == expected["name"]]
        if not candidates:
            why = f"no call to {expected['name']}" + (f" (called {', '.join(made)})" if made
                                                      else " (no tool called)")
            return self.result(0.0, why, {"expected": expected["name"], "called": made})
        credits = [argument_credit(expected["arguments"], c["arguments"]) for c in candidates]
        best = max(range(len(candidates)), key=lambda i: credits[i][0])
        call, (credit, per_arg) = candidates[best], credits[best]
        terms = [1.0, credit]
        details: dict[str, Any] = {"expected": expected["name"], "called": made,
                                   "argument_credit": round(credit, 4), "arguments": per_arg}
        schema = tool_schemas(fields.get("tools")).get(call["name"]) if self.check_schema \
            else None
        if schema is not None:
            errors = schema_errors(schema, call["arguments"])
            terms.append(0.0 if errors else 1.0)
            details["schema_valid"] = not errors
            if errors:
                details["schema_errors"] = errors
        s = sum(terms) / len(terms)
        if not self.allow_extra_calls and len(calls) > 1:
            s *= 1.0 / len(calls)
            details["extra_calls"] = len(calls) - 1
        wrong = [k for k, v in per_arg.items() if v < 1.0]
        reason = f"called {call['name']}; {credit:.0%} of expected arguments match"
        if wrong:
            reason += f" (wrong or missing: {', '.join(wrong[:5])})"
        if details.get("schema_valid") is False:
            reason += f"; arguments break the tool schema: {details['schema_errors'][0]}"
        return self.result(s, reason, details)
