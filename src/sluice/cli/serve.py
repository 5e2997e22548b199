"""``sluice serve``: OTLP ingest, feedback and the read APIs on one port (default 127.0.0.1:4000)."""

from __future__ import annotations

import os
import signal
import sys

import typer

from sluice.cli import context
from sluice.cli.remote import announce
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
    """Run the Sluice server: the gateway (/v1/chat/completions), OTLP ingest, feedback, metrics, rollout
    controller (/api/rollouts), audit, health, dashboard (/ui)."""
    from sluice.auth.keys import KeyRing
    from sluice.server.assemble import assemble
    from sluice.server.runner import bind, serve_forever
    from sluice.server.security import refuse_open_bind

    settings = context.settings()
    host = host or settings.server.host
    port = port or settings.server.port
    store = context.store()
    refuse_open_bind(host, KeyRing(store), insecure)
    built = assemble(store, settings, telemetry_settings(telemetry))
    app, gateway = built.app, built.gateway
    err = context.console_err()
    for var, where in missing_key_variables(gateway.deployments):
        err.print(f"[yellow]warning:[/] environment variable {var} is not set: {where} will answer 503 "
                  "until it is (set it and restart)", highlight=False)
    sock = bind(host, port)  # a busy port fails here, before anything says "serving"
    err.print(f"sluice serving on http://{host}:{port} (store {store.url.split('@')[-1]})")
    # other sluice commands find the server here while it holds the embedded store (cli/remote.py)
    local = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
    announced = announce(store.url, f"http://{local}:{sock.getsockname()[1]}")
    # uvicorn re-raises SIGTERM once it has shut down; exit through Python so the file is removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        serve_forever(app, host, port, sock=sock)
    finally:
        if announced is not None:
            announced.unlink(missing_ok=True)


def missing_key_variables(deployments: dict) -> list[tuple[str, str]]:
    """(variable, "deployment D (stable release R, model M)") for each unset ``api_key_env``."""
    out = []
    for name, dep in sorted(deployments.items()):
        for arm, release in dep.releases():
            for target in release.chain:
                if target.api_key_env and not os.environ.get(target.api_key_env):
                    out.append((target.api_key_env, f"deployment {name} ({arm} release {release.ref}, "
                                                    f"model {target.model})"))
    return out
