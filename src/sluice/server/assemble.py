"""The one place the full server app is put together: ``sluice serve``, ``python -m sluice.server``
and ``python -m sluice.gateway`` all call :func:`assemble`, so no entry point can miss a router (the
module entry points once served neither the dashboard nor the rollout, audit or monitor APIs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from sluice.config import Settings
from sluice.telemetry.config import TelemetrySettings


@dataclass
class Assembled:
    app: FastAPI
    gateway: Any  # sluice.gateway.app.Gateway: its deployments are checked for missing keys


def assemble(store: Any, settings: Settings, telemetry: TelemetrySettings | None = None) -> Assembled:
    """The server app: ingest and read APIs, keys, gateway, catalog, rollouts, audit, monitors, /ui.

    ``telemetry`` overrides ``settings.telemetry`` (``--telemetry FILE``). Resolves every
    deployment's releases up front, so a bad gateway section fails here, before anything binds."""
    from sluice.audit.api import router as audit_api
    from sluice.gateway.app import make_gateway
    from sluice.monitor.api import router as monitor_api
    from sluice.monitor.service import MonitorService
    from sluice.rollout.api import RolloutService, make_router
    from sluice.server.app import create_app
    from sluice.server.catalog import router as catalog
    from sluice.web import dashboard_router

    gateway = make_gateway(settings.gateway, store)
    gateway.require_gate = settings.rollout.require_gate
    rollouts = RolloutService(store, settings.rollout, reload=gateway.reload)
    monitors = MonitorService(store, settings.monitoring)  # evaluated on a schedule; one replica at a time
    routers = [gateway.router, catalog, make_router(rollouts), audit_api, monitor_api, monitors.router,
               dashboard_router(rollouts)]
    return Assembled(create_app(store, telemetry or settings.telemetry, routers=routers), gateway)
