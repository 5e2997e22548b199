"""``python -m sluice.server --store URL [--port 0]``: the server without the CLI around it.

Prints ``listening http://host:port`` on stdout once it accepts connections (port 0 picks a free
one), which is how tests and benchmarks start it as a separate process they can kill.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from sluice.server.app import create_app
    from sluice.server.runner import open_store_to_serve, serve_until_stopped
    from sluice.telemetry.config import TelemetrySettings, load_telemetry_settings

    p = argparse.ArgumentParser(prog="python -m sluice.server")
    p.add_argument("--store", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback bind while no API key exists")
    p.add_argument("--telemetry", default=None)
    args = p.parse_args(argv)
    store = open_store_to_serve(args.store, args.host, args.insecure)
    if store is None:
        return 3
    settings = load_telemetry_settings(args.telemetry) if args.telemetry else TelemetrySettings()
    serve_until_stopped(create_app(store, settings), args.host, args.port)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
