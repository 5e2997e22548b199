"""The dashboard served by ``sluice serve`` at ``/ui`` (docs/dashboard.md)."""

from sluice.web.router import dashboard_router

__all__ = ["dashboard_router"]
