"""``python -m sluice.server --store URL [--config sluice.yaml] [--port 0]``: the server without the CLI
around it, assembled exactly as ``sluice serve`` does (server/assemble.py: gateway, rollouts, audit,
monitors, dashboard).

Prints ``listening http://host:port`` on stdout once it accepts connections (port 0 picks a free
one), which is how tests and benchmarks start it as a separate process they can kill.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from sluice.config import Settings, load_settings
    from sluice.errors import ConfigError
    from sluice.server.assemble import assemble
    from sluice.server.runner import open_store_to_serve, serve_until_stopped
    from sluice.telemetry.config import load_telemetry_settings

    p = argparse.ArgumentParser(prog="python -m sluice.server")
    p.add_argument("--store", required=True)
    p.add_argument("--config", default=None, help="sluice.yaml for the gateway, rollout and monitoring "
                   "sections (default: built-in defaults)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback bind while no API key exists")
    p.add_argument("--telemetry", default=None)
    args = p.parse_args(argv)
    try:
        settings = load_settings(args.config, environ={}) if args.config else Settings()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    store = open_store_to_serve(args.store, args.host, args.insecure)
    if store is None:
        return 3
    telemetry = load_telemetry_settings(args.telemetry) if args.telemetry else None
    try:
        app = assemble(store, settings, telemetry).app
    except ConfigError as e:  # a bad gateway section: one line, not a traceback
        store.close()
        print(f"error: {e}", file=sys.stderr)
        return 2
    serve_until_stopped(app, args.host, args.port)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
