"""String checks: exact_match, contains, regex. Deterministic, microseconds a row.

Each compares the response with a value given in the arguments or, when none is given, with the
row's ``expected_answer``. Scores are 0 or 1 (``contains`` with several values in ``all`` mode
scores the share found); they pass at 1.
"""

from __future__ import annotations

import re
from typing import Any

from sluice.errors import ConfigError
from sluice.evals.base import BaseEvaluator
from sluice.evals.registry import register
from sluice.evals.text import normalise


class _AgainstExpected(BaseEvaluator):
    requires = ("response",)
    default_threshold = 1.0

    def _targets(self, fields: dict[str, Any], given: list[str]) -> list[str] | None:
        if given:
            return given
        expected = fields.get("expected_answer")
        return [str(expected)] if expected not in (None, "") else None


@register("exact_match")
class ExactMatch(_AgainstExpected):
    """Response equals the expected answer (after normalisation)."""

    version = "1"

    def __init__(self, *, value: str | list[str] | None = None, ignore_case: bool = True,
                 strip_punctuation: bool = False, threshold: float | None = None):
        super().__init__(threshold=threshold)
        self.values = [value] if isinstance(value, str) else list(value or [])
        self.ignore_case = ignore_case
        self.strip_punctuation = strip_punctuation

    def score(self, fields: dict[str, Any]) -> Any:
        targets = self._targets(fields, self.values)
        if targets is None:
            return self.error("missing required field: expected_answer (or a 'value' argument)",
                              {"missing_fields": ["expected_answer"]})
        norm = lambda s: normalise(s, ignore_case=self.ignore_case,  # noqa: E731
                                   strip_punctuation=self.strip_punctuation)
        got = norm(fields["response"] or "")
        hit = next((t for t in targets if norm(t) == got), None)
        if hit is not None:
            return self.result(1.0, "matches the expected answer", {"matched": hit})
        return self.result(0.0, f"expected {targets[0][:80]!r}, got {got[:80]!r}",
                           {"expected": targets})


@register("contains")
class Contains(_AgainstExpected):
    """Response contains the given text(s): any one (mode any) or every one (mode all)."""

    version = "1"

    def __init__(self, *, value: str | list[str] | None = None, mode: str = "any",
                 ignore_case: bool = True, negate: bool = False,
                 threshold: float | None = None):
        super().__init__(threshold=threshold)
        if mode not in ("any", "all"):
            raise ConfigError(f"evaluator 'contains': mode must be any or all, got {mode!r}")
        self.values = [value] if isinstance(value, str) else list(value or [])
        self.mode = mode
        self.ignore_case = ignore_case
        self.negate = negate

    def score(self, fields: dict[str, Any]) -> Any:
        targets = self._targets(fields, self.values)
        if targets is None:
            return self.error("missing required field: expected_answer (or a 'value' argument)",
                              {"missing_fields": ["expected_answer"]})
        norm = lambda s: normalise(s, ignore_case=self.ignore_case)  # noqa: E731
        text = norm(fields["response"] or "")
        found = [t for t in targets if norm(t) in text]
        share = len(found) / len(targets)
        if self.negate:
            s = 1.0 if not found else 0.0
            reason = "none of the forbidden texts present" if s else f"contains {found[0]!r}"
        else:
            s = share if self.mode == "all" else float(bool(found))
            missing = [t for t in targets if t not in found]
            reason = (f"found {len(found)} of {len(targets)}"
                      + (f"; missing {missing[0][:60]!r}" if missing else ""))
        return self.result(s, reason, {"found": found, "values": targets})


@register("regex")
class Regex(BaseEvaluator):
    """Response matches a regular expression (or, with must_match false, does not)."""

    version = "1"
    requires = ("response",)
    default_threshold = 1.0

    def __init__(self, *, pattern: str, ignore_case: bool = False, must_match: bool = True,
                 full_match: bool = False, threshold: float | None = None):
        super().__init__(threshold=threshold)
        try:
            self.regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        except re.error as exc:
            raise ConfigError(f"evaluator 'regex': invalid pattern {pattern!r}: {exc}") from None
        self.must_match = must_match
        self.full_match = full_match

    def score(self, fields: dict[str, Any]) -> Any:
        text = fields["response"] or ""
        m = (self.regex.fullmatch(text.strip()) if self.full_match else self.regex.search(text))
        ok = bool(m) == self.must_match
        what = f"matched {m.group(0)[:60]!r}" if m else "no match"
        return self.result(float(ok), what, {"match": m.group(0)[:200] if m else None})
