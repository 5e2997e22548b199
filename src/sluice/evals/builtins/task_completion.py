"""Task completion: did the response (or the agent's final action) accomplish the task?

``rules`` backend (default, deterministic) averages the checks the row and arguments provide:

- answer: 1 when the expected answer appears in the response (normalised), else token F1;
- success criteria (argument ``success_criteria``): share met; each is a text the response must
  contain, or ``{"contains": ...}``, ``{"not_contains": ...}``, ``{"regex": ...}``;
- final tool (agents): the *last* call must be the expected tool — 0.5 for the name, plus 0.5 ×
  the share of expected arguments matched.

With none of these available the result is an error (nothing to judge). ``llm_judge`` asks a judge
to rate completion 0–1 from the query, response, tool calls and any expectations.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sluice.errors import ConfigError
from sluice.evals.backends.llm_judge import JudgeError, judge_from_args, parse_score
from sluice.evals.base import BaseEvaluator, tool_call_dict
from sluice.evals.builtins.tool_selection import argument_credit
from sluice.evals.registry import register
from sluice.evals.text import normalise, token_f1

JUDGE_SYSTEM = (
    "You judge whether an AI assistant completed the user's task. Consider the user's request, "
    "the assistant's final response and tool calls, and any expected outcome given. Reply with "
    'JSON only: {"score": <0 to 1>, "reason": "<one sentence>"}')


def _criterion(raw: Any) -> tuple[str, str]:
    if isinstance(raw, str):
        return "contains", raw
    if isinstance(raw, dict) and len(raw) == 1:
        kind, value = next(iter(raw.items()))
        if kind in ("contains", "not_contains", "regex") and isinstance(value, str):
            if kind == "regex":
                try:
                    re.compile(value)
                except re.error as exc:
                    raise ConfigError(f"evaluator 'task_completion': bad regex {value!r}: "
                                      f"{exc}") from None
            return kind, value
    raise ConfigError("evaluator 'task_completion': each success criterion is a text or one of "
                      f"{{contains|not_contains|regex: text}}, got {raw!r}")


@register("task_completion")
class TaskCompletion(BaseEvaluator):
    """Expected answer, success criteria and expected final tool, averaged (or an LLM judge)."""

    version = "1"
    default_threshold = 0.75

    def __init__(self, *, success_criteria: list[Any] | None = None, backend: str = "rules",
                 judge: dict[str, Any] | None = None, threshold: float | None = None):
        super().__init__(threshold=threshold)
        if backend not in ("rules", "llm_judge"):
            raise ConfigError(f"evaluator 'task_completion': unknown backend '{backend}'; "
                              f"use rules or llm_judge")
        self.criteria = [_criterion(c) for c in success_criteria or []]
        self.backend = backend
        if backend == "llm_judge":
            self.judge = judge_from_args(judge)
            self.concurrency = 4

    def score(self, fields: dict[str, Any]) -> Any:
        response = fields.get("response") or ""
        calls = [tool_call_dict(c) for c in fields.get("tool_calls") or []]
        expected_tool = fields.get("expected_tool")
        expected = fields.get("expected_answer")
        if self.backend == "llm_judge":
            return self._judged(fields, response, calls)
        parts: dict[str, float] = {}
        if expected not in (None, ""):
            exp = normalise(str(expected), strip_punctuation=True)
            got = normalise(response, strip_punctuation=True)
            parts["answer"] = 1.0 if exp and exp in got else token_f1(response, str(expected))
        if self.criteria:
            met = [self._met(kind, value, response) for kind, value in self.criteria]
            parts["criteria"] = sum(met) / len(met)
        if expected_tool is not None:
            want = tool_call_dict(expected_tool)
            if calls and calls[-1]["name"] == want["name"]:
                credit, _ = argument_credit(want["arguments"], calls[-1]["arguments"])
                parts["final_tool"] = 0.5 + 0.5 * credit
            else:
                parts["final_tool"] = 0.0
        if not parts:
            return self.error("nothing to judge: needs expected_answer, expected_tool or "
                              "success_criteria", {"missing_fields": ["expected_answer"]})
        s = sum(parts.values()) / len(parts)
        reason = ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
        return self.result(s, reason, {"components": {k: round(v, 4) for k, v in parts.items()}})

    @staticmethod
    def _met(kind: str, value: str, response: str) -> float:
        if kind == "regex":
            return float(re.search(value, response) is not None)
        found = normalise(value) in normalise(response)
        return float(found if kind == "contains" else not found)

    def _judged(self, fields: dict[str, Any], response: str, calls: list[dict]) -> Any:
        user = f"User request: {fields.get('query') or '(not given)'}\n\n"
        user += f"Assistant response: {response or '(empty)'}\n"
        if calls:
            user += f"Tool calls: {json.dumps(calls, sort_keys=True)}\n"
        if fields.get("expected_answer"):
            user += f"Expected outcome: {fields['expected_answer']}\n"
        if fields.get("expected_tool") is not None:
            want = json.dumps(tool_call_dict(fields["expected_tool"]))
            user += f"Expected final tool call: {want}\n"
        if self.criteria:
            user += "Success criteria: " + "; ".join(f"{k} {v!r}" for k, v in self.criteria)
        try:
            reply = self.judge.complete([{"role": "system", "content": JUDGE_SYSTEM},
                                         {"role": "user", "content": user}])
            s, reason = parse_score(reply)
        except JudgeError as exc:
            return self.error(f"judge failed: {exc}")
        return self.result(s, reason or f"judge score {s:.2f}", {"backend": "llm_judge"})
