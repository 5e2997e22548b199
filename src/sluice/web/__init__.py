"""The dashboard served by ``sluice serve`` at ``/ui`` (docs/dashboard.md)."""

from __future__ import annotations

from typing import Any


def dashboard_router() -> Any:
    """The router to include in the server app (imported lazily: the store imports this package
    for its migrations, and need not pull in the web stack)."""
    from sluice.web.router import dashboard_router as make

    return make()


__all__ = ["dashboard_router"]
