"""Executes a release over dataset rows. ``run_release`` is imported lazily so that
``sluice.runner.record`` (used by providers and the store) stays free of import cycles."""

from __future__ import annotations

from typing import Any

__all__ = ["run_release", "RunResult", "RetryPolicy"]


def __getattr__(name: str) -> Any:
    if name in ("run_release", "RunResult"):
        from sluice.runner import run
        return getattr(run, name)
    if name == "RetryPolicy":
        from sluice.runner.pacing import RetryPolicy
        return RetryPolicy
    raise AttributeError(name)
