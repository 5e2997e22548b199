"""LLM judge: a rubric scored 0–1 by a model on any OpenAI-compatible endpoint.

The judge sees the rubric and the fields named in ``include`` (default: query, response, context,
expected_answer — those present), and must reply with ``{"score": 0..1, "reason": ...}``; a
``scale`` of 5 or 10 lets a rubric use 1–5 or 0–10 points. Temperature 0; answers cached by
(model, rubric, inputs) in memory, and on disk under ``cache_dir`` when given. A judge that
fails or answers without a readable score gives an error result, never a zero.
"""

from __future__ import annotations

import json
from typing import Any

from sluice.errors import ConfigError
from sluice.evals.backends.llm_judge import JudgeClient, JudgeError, parse_score
from sluice.evals.base import BaseEvaluator, context_list, is_missing, tool_call_dict
from sluice.evals.registry import register

INCLUDABLE = ("query", "response", "context", "expected_answer", "expected_tool", "tool_calls",
              "policy_labels")

SYSTEM = (
    "You are a strict evaluator. Grade the material below against the rubric. Reply with JSON "
    'only: {{"score": <number from 0 to {top}>, "reason": "<one or two sentences>"}}.\n\n'
    "Rubric:\n{rubric}")


@register("llm_judge")
class LLMJudge(BaseEvaluator):
    """A rubric graded by an LLM on an OpenAI-compatible endpoint."""

    version = "1"
    requires = ("response",)
    default_threshold = 0.5

    def __init__(self, *, rubric: str, base_url: str, model: str, api_key_env: str | None = None,
                 include: list[str] | None = None, scale: float = 1.0,
                 temperature: float = 0.0, timeout_s: float = 60.0,
                 cache_dir: str | None = None, concurrency: int = 4,
                 threshold: float | None = None):
        super().__init__(threshold=threshold)
        if not rubric or not rubric.strip():
            raise ConfigError("evaluator 'llm_judge': rubric must not be empty")
        unknown = sorted(set(include or []) - set(INCLUDABLE))
        if unknown:
            raise ConfigError(f"evaluator 'llm_judge': cannot include {', '.join(unknown)}; "
                              f"choose from {', '.join(INCLUDABLE)}")
        if scale <= 0:
            raise ConfigError("evaluator 'llm_judge': scale must be positive")
        self.rubric = rubric.strip()
        self.include = tuple(include or ("query", "response", "context", "expected_answer"))
        self.scale = float(scale)
        self.concurrency = max(1, int(concurrency))
        try:
            self.client = JudgeClient(base_url, model, api_key_env=api_key_env,
                                      temperature=temperature, timeout_s=timeout_s,
                                      cache_dir=cache_dir)
        except ValueError as exc:
            raise ConfigError(f"evaluator 'llm_judge': {exc}") from None

    def _material(self, fields: dict[str, Any]) -> str:
        parts = []
        for name in self.include:
            value = fields.get(name)
            if is_missing(name, value):
                continue
            if name == "context":
                text = "\n".join(f"[{i + 1}] {d}" for i, d in enumerate(context_list(value)))
            elif name in ("expected_tool", "tool_calls"):
                calls = value if isinstance(value, list) else [value]
                text = json.dumps([tool_call_dict(c) for c in calls], sort_keys=True)
            elif isinstance(value, list):
                text = ", ".join(map(str, value))
            else:
                text = str(value)
            parts.append(f"## {name.replace('_', ' ').title()}\n{text}")
        return "\n\n".join(parts)

    def score(self, fields: dict[str, Any]) -> Any:
        top = int(self.scale) if self.scale.is_integer() else self.scale
        messages = [{"role": "system", "content": SYSTEM.format(top=top, rubric=self.rubric)},
                    {"role": "user", "content": self._material(fields)}]
        try:
            reply = self.client.complete(messages)
            s, reason = parse_score(reply, self.scale)
        except JudgeError as exc:
            return self.error(f"judge failed: {exc}", {"model": self.client.model})
        return self.result(s, reason or f"judge score {s:.2f}",
                           {"model": self.client.model, "raw": reply[:500]})
