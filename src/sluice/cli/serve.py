"""``sluice serve``: OTLP ingest, feedback and the read APIs on one port (default 127.0.0.1:4000)."""

from __future__ import annotations

import typer

from sluice.cli import context
from sluice.errors import ConfigError
from sluice.telemetry.config import TelemetrySettings, load_telemetry_settings


def telemetry_settings(path: str | None) -> TelemetrySettings:
    """``--telemetry FILE`` wins; else the ``telemetry:`` section of sluice.yaml."""
    return load_telemetry_settings(path) if path else context.settings().telemetry


def serve(
    host: str = typer.Option(None, "--host", help="Interface to bind (default 127.0.0.1, or server.host)."),
    port: int = typer.Option(None, "--port", help="Port (default 4000, or server.port)."),
    telemetry: str = typer.Option(None, "--telemetry", help="YAML file with attribution rules, prices, limits."),
    insecure: bool = typer.Option(False, "--insecure", help="Allow a non-loopback bind while no API key exists."),
) -> None:
    """Run the Sluice server: the gateway (/v1/chat/completions), OTLP ingest, feedback, metrics, health, dashboard (/ui)."""
    from sluice.auth.keys import KeyRing
    from sluice.gateway.app import make_gateway
    from sluice.server.app import create_app
    from sluice.server.runner import LOOPBACK, serve_forever

    settings = context.settings()
    host = host or settings.server.host
    port = port or settings.server.port
    store = context.store()
    if host not in LOOPBACK and not insecure and not KeyRing(store).enforced():
        raise ConfigError(f"refusing to bind {host} with no API key: anyone could write spans and read metrics. "
                          "Create keys with 'sluice keys create NAME --scope ingest|admin' or pass --insecure")
    gateway = make_gateway(settings.gateway, store)  # resolves every deployment's releases up front
    from sluice.audit.api import router as audit_api
    from sluice.monitor.api import router as monitor_api
    from sluice.server.catalog import router as catalog
    from sluice.web import dashboard_router

    from sluice.monitor.service import MonitorService

    monitors = MonitorService(store, settings.monitoring)  # evaluated on a schedule; one replica at a time
    app = create_app(store, telemetry_settings(telemetry),
                     routers=[gateway.router, catalog, audit_api, monitor_api, dashboard_router(), monitors.router])
    context.console_err().print(f"sluice serving on http://{host}:{port} (store {store.url.split('@')[-1]})")
    serve_forever(app, host, port)
