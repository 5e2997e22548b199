"""Operational budgets: latency and cost per row.

The score is 1 within budget and falls off smoothly past it (``budget / actual``), so a gate
comparing mean scores sees how far over a release goes. The default threshold 1.0 passes exactly
the rows within budget; ``threshold: 0.8`` tolerates up to 25 % over.
"""

from __future__ import annotations

from typing import Any

from sluice.errors import ConfigError
from sluice.evals.base import BaseEvaluator
from sluice.evals.registry import register


def _positive(evaluator: str, name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = -1.0
    if not v > 0:
        raise ConfigError(f"evaluator '{evaluator}': {name} must be a positive number, "
                          f"got {value!r}")
    return v


def _within(budget: float, actual: float) -> float:
    return 1.0 if actual <= budget else budget / actual


@register("latency_budget")
class LatencyBudget(BaseEvaluator):
    """Row latency at most max_ms."""

    version = "1"
    requires = ("latency_ms",)
    default_threshold = 1.0

    def __init__(self, *, max_ms: float, threshold: float | None = None):
        super().__init__(threshold=threshold)
        self.max_ms = _positive("latency_budget", "max_ms", max_ms)

    def score(self, fields: dict[str, Any]) -> Any:
        ms = float(fields["latency_ms"])
        ok = ms <= self.max_ms
        return self.result(_within(self.max_ms, ms),
                           f"{ms:.0f} ms {'within' if ok else 'over'} the {self.max_ms:.0f} ms "
                           f"budget", {"latency_ms": ms, "max_ms": self.max_ms})


@register("cost_budget")
class CostBudget(BaseEvaluator):
    """Row cost at most max_usd."""

    version = "1"
    requires = ("cost",)
    default_threshold = 1.0

    def __init__(self, *, max_usd: float, threshold: float | None = None):
        super().__init__(threshold=threshold)
        self.max_usd = _positive("cost_budget", "max_usd", max_usd)

    def score(self, fields: dict[str, Any]) -> Any:
        usd = float(fields["cost"])
        ok = usd <= self.max_usd
        return self.result(_within(self.max_usd, usd),
                           f"${usd:.6f} {'within' if ok else 'over'} the ${self.max_usd:.6f} "
                           f"budget", {"cost_usd": usd, "max_usd": self.max_usd})
