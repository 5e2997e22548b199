"""``python -m sluice.gateway --store URL [--config sluice.yaml] [--port 0]``: one gateway replica.

The server app with the gateway mounted, exactly as ``sluice serve`` builds it, without the CLI
around it. Prints ``listening http://host:port`` once it accepts connections (port 0 picks a free
one), which is how tests and benchmarks start several replicas on one store.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from sluice.config import load_settings
    from sluice.errors import ConfigError
    from sluice.server.assemble import assemble
    from sluice.server.runner import open_store_to_serve, serve_until_stopped

    p = argparse.ArgumentParser(prog="python -m sluice.gateway")
    p.add_argument("--store", required=True)
    p.add_argument("--config", default=None, help="sluice.yaml whose gateway: section seeds the deployments")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback bind while no API key exists")
    args = p.parse_args(argv)
    settings = load_settings(args.config, environ={}) if args.config else load_settings(None, environ={})
    store = open_store_to_serve(args.store, args.host, args.insecure)
    if store is None:
        return 3
    try:
        app = assemble(store, settings).app
    except ConfigError as e:  # a bad gateway section: one line, not a traceback
        store.close()
        print(f"error: {e}", file=sys.stderr)
        return 2
    serve_until_stopped(app, args.host, args.port)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
