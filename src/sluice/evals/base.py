"""The evaluator contract, and a base class that handles the parts every evaluator shares.

An evaluator is anything with ``name``, ``version`` and ``evaluate(**fields) -> EvalResult``. It
picks the fields it needs from the set below and ignores the rest, so the runner can hand every
evaluator the same fields. A missing field, or a judge that does not answer, is an *instrument*
failure: the result carries ``error`` and the gate reports it apart from the scores, never as 0.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Protocol, runtime_checkable

from sluice.errors import ConfigError
from sluice.evals.result import EvalResult

#: The fields an evaluator may receive.
FIELDS = ("response", "context", "query", "expected_answer", "expected_tool", "tool_calls",
          "tools", "latency_ms", "cost", "usage", "policy_labels", "metadata")


@runtime_checkable
class Evaluator(Protocol):
    name: str
    version: str

    def evaluate(self, **fields: Any) -> EvalResult: ...


def is_missing(name: str, value: Any) -> bool:
    """None and empty containers are missing; so is a blank string, except a blank response
    (an empty answer is an answer, and scores accordingly)."""
    if value is None:
        return True
    if isinstance(value, str):
        return name != "response" and not value.strip()
    if isinstance(value, (list, tuple, dict)):
        return len(value) == 0
    return False


class BaseEvaluator:
    """Shared behaviour: required-field checks, threshold, results stamped with name and version.

    Subclasses set ``name``, ``version``, ``requires`` and ``default_threshold`` and implement
    ``score(fields)``. Batch-aware evaluators override ``prepare(batch)`` (e.g. to embed every
    text of a batch at once); judges set ``concurrency`` above 1.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ()
    default_threshold: ClassVar[float] = 0.5
    concurrency: int = 1

    def __init__(self, *, threshold: float | None = None):
        if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
            raise ConfigError(f"evaluator '{self.name}': threshold must be within [0, 1], "
                              f"got {threshold}")
        self.threshold = self.default_threshold if threshold is None else float(threshold)

    def evaluate(self, **fields: Any) -> EvalResult:
        missing = [f for f in self.requires if is_missing(f, fields.get(f))]
        if missing:
            return self.error(f"missing required field{'s' if len(missing) > 1 else ''}: "
                              f"{', '.join(missing)}",
                              {"missing_fields": missing, "not_applicable": applies_not(missing)})
        return self.score(fields)

    def not_applicable(self, fields: dict[str, Any]) -> EvalResult | None:
        """The not-applicable result when the row lacks what this evaluator judges against."""
        missing = [f for f in self.requires if f not in OUTPUT_FIELDS and is_missing(f, fields.get(f))]
        if not missing:
            return None
        return self.error(f"not applicable: the row has no {', '.join(missing)}",
                          {"missing_fields": missing, "not_applicable": True})

    def score(self, fields: dict[str, Any]) -> EvalResult:
        raise NotImplementedError

    def prepare(self, batch: Sequence[dict[str, Any]]) -> None:
        """Work done once for a whole batch before its rows are scored (default: none)."""

    def evaluate_batch(self, batch: Sequence[dict[str, Any]]) -> list[EvalResult]:
        try:
            self.prepare(batch)
        except Exception:  # noqa: BLE001 - rows are still scored one by one below
            pass
        if self.concurrency > 1 and len(batch) > 1:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                return list(pool.map(lambda f: safe_evaluate(self, f), batch))
        return [safe_evaluate(self, f) for f in batch]

    def result(self, score: float, reason: str = "", details: dict[str, Any] | None = None,
               passed: bool | None = None) -> EvalResult:
        score = min(1.0, max(0.0, float(score)))
        return EvalResult(score=score, passed=score >= self.threshold if passed is None else passed,
                          reason=reason, details=details or {}, evaluator=self.name,
                          version=self.version)

    def error(self, message: str, details: dict[str, Any] | None = None) -> EvalResult:
        return EvalResult(score=0.0, passed=False, reason=message, details=details or {},
                          evaluator=self.name, version=self.version, error=message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threshold={self.threshold})"


# what the target produces; everything else an evaluator reads comes from the dataset row
OUTPUT_FIELDS = frozenset({"response", "tool_calls", "latency_ms", "cost", "usage"})


def applies_not(missing: list[str]) -> bool:
    """A row that lacks an expectation (expected tool, context...) is outside the evaluator's scope;
    an output that lacks a response is not, and must stay visible as an error."""
    return all(f not in OUTPUT_FIELDS for f in missing)


def safe_evaluate(ev: Evaluator, fields: dict[str, Any]) -> EvalResult:
    """Run one evaluation; an exception becomes an error result instead of ending the run."""
    try:
        res = ev.evaluate(**fields)
        if not isinstance(res, EvalResult):
            raise TypeError(f"evaluate() returned {type(res).__name__}, not EvalResult")
        return res
    except Exception as exc:  # noqa: BLE001 - one bad row must not stop 2,000 others
        msg = f"evaluator failed: {type(exc).__name__}: {exc}"
        return EvalResult(score=0.0, passed=False, reason=msg, evaluator=getattr(ev, "name", "?"),
                          version=getattr(ev, "version", "?"), error=msg)


# --- field normalisation shared by several evaluators ---------------------------------------

def context_list(value: Any) -> list[str]:
    """Context as a list of texts, from a string, strings, ContextDocs or ``{"text": ...}``."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    out = []
    for doc in value:
        if isinstance(doc, str):
            out.append(doc)
        elif isinstance(doc, Mapping):
            out.append(str(doc.get("text") or doc.get("content") or ""))
        else:
            out.append(str(getattr(doc, "text", doc)))
    return out


def tool_call_dict(value: Any) -> dict[str, Any]:
    """``{"name", "arguments"}`` from a ToolCall, a plain dict or an OpenAI ``tool_calls`` item
    (whose arguments are a JSON string). Unparseable arguments are kept under ``_raw``."""
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    if not isinstance(value, Mapping):
        raise TypeError(f"a tool call must be an object, got {type(value).__name__}")
    if isinstance(value.get("function"), Mapping):
        value = value["function"]
    args = value.get("arguments", value.get("args", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            args = {"_raw": args}
    if not isinstance(args, Mapping):
        args = {"_raw": args}
    return {"name": str(value.get("name") or ""), "arguments": dict(args)}
