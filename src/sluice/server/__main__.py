"""``python -m sluice.server --store URL [--port 0]``: the server without the CLI around it.

Prints ``listening http://host:port`` on stdout once it accepts connections (port 0 picks a free
one), which is how tests and benchmarks start it as a separate process they can kill.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from sluice.telemetry import schema as _schema  # noqa: F401 - registers the telemetry tables


def main(argv: list[str] | None = None) -> int:
    from sluice.server.app import create_app
    from sluice.server.runner import running
    from sluice.store import open_store
    from sluice.telemetry.config import TelemetrySettings, load_telemetry_settings

    p = argparse.ArgumentParser(prog="python -m sluice.server")
    p.add_argument("--store", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--telemetry", default=None)
    args = p.parse_args(argv)
    store = open_store(args.store)
    settings = load_telemetry_settings(args.telemetry) if args.telemetry else TelemetrySettings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with running(create_app(store, settings), args.host, args.port) as url:
        print(f"listening {url}", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
