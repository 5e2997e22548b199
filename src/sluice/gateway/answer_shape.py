"""Checking that an upstream's JSON has the shape of a chat completion before anything reads it.

Well-formed JSON of the wrong shape (``message`` a string, usage values that are strings,
numeric ``content``, ``choices: "abc"``, ``delta: "oops"``, tool calls that are not objects)
used to reach the code that reads answers and end as a 500 with a traceback, recorded as 200/OK.
Here each is a ``malformed`` ``ProviderError`` naming the field — a 502 ``upstream_malformed``
for the client, an error on the span and in metrics. Pure functions; they return the problem
(or None) so they are cheap on the hot path and easy to test.
"""

from __future__ import annotations

from typing import Any

from sluice.providers.base import MALFORMED, ProviderError

_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _text(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _usage_problem(usage: Any) -> str | None:
    if usage is None:
        return None
    if not isinstance(usage, dict):
        return "usage is not an object"
    for name in _USAGE_FIELDS:
        v = usage.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            return f"usage.{name} is not an integer"
    return None


def _calls_problem(calls: Any, where: str, streaming: bool) -> str | None:
    if calls is None:
        return None
    if not isinstance(calls, list):
        return f"{where}.tool_calls is not an array"
    for i, call in enumerate(calls):
        if not isinstance(call, dict):
            return f"{where}.tool_calls[{i}] is not an object"
        fn = call.get("function")
        if fn is None and streaming:
            continue
        if not isinstance(fn, dict) or not _text(fn.get("name")) or not _text(fn.get("arguments")):
            return f"{where}.tool_calls[{i}].function must be an object with string name and arguments"
        if streaming and "index" in call and (isinstance(call["index"], bool) or not isinstance(call["index"], int)):
            return f"{where}.tool_calls[{i}].index is not an integer"
    return None


def _common(data: dict[str, Any]) -> str | None:
    if not _text(data.get("model")):
        return "model is not a string"
    return _usage_problem(data.get("usage"))


def completion_problem(data: dict[str, Any]) -> str | None:
    """What is wrong with a non-streaming ``chat.completion`` body (None: nothing)."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        return "choices is not a non-empty array"
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            return f"choices[{i}] is not an object"
        msg = choice.get("message")
        if not isinstance(msg, dict):
            return f"choices[{i}].message is not an object"
        for name in ("content", "refusal", "role"):
            if not _text(msg.get(name)):
                return f"choices[{i}].message.{name} is not a string"
        if not _text(choice.get("finish_reason")):
            return f"choices[{i}].finish_reason is not a string"
        problem = _calls_problem(msg.get("tool_calls"), f"choices[{i}].message", False)
        if problem:
            return problem
    return _common(data)


def chunk_problem(chunk: dict[str, Any]) -> str | None:
    """What is wrong with one ``chat.completion.chunk`` of a stream (None: nothing)."""
    choices = chunk.get("choices")
    if choices is not None and not isinstance(choices, list):
        return "choices is not an array"
    for i, choice in enumerate(choices or ()):
        if not isinstance(choice, dict):
            return f"choices[{i}] is not an object"
        if "index" in choice and (isinstance(choice["index"], bool) or not isinstance(choice["index"], int)):
            return f"choices[{i}].index is not an integer"
        delta = choice.get("delta")
        if delta is not None and not isinstance(delta, dict):
            return f"choices[{i}].delta is not an object"
        delta = delta or {}
        for name in ("content", "refusal", "role"):
            if not _text(delta.get(name)):
                return f"choices[{i}].delta.{name} is not a string"
        if not _text(choice.get("finish_reason")):
            return f"choices[{i}].finish_reason is not a string"
        problem = _calls_problem(delta.get("tool_calls"), f"choices[{i}].delta", True)
        if problem:
            return problem
    return _common(chunk)


def wrong_shape(where: str, problem: str) -> ProviderError:
    return ProviderError(f"{where} returned a chat completion of the wrong shape: {problem}", kind=MALFORMED,
                         retryable=False)
