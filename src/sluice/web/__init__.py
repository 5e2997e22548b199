"""The dashboard served by ``sluice serve`` at ``/ui`` (docs/dashboard.md)."""

from __future__ import annotations

from typing import Any


def dashboard_router(rollouts: Any = None) -> Any:
    """The router to include in the server app (imported lazily: the store imports this package
    for its migrations, and need not pull in the web stack). ``rollouts``: the server's
    ``RolloutService``, for the rollout page's actions."""
    from sluice.web.router import dashboard_router as make

    return make(rollouts)


__all__ = ["dashboard_router"]
