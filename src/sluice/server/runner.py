"""Run the app under uvicorn: in the foreground (``sluice serve``) or in a background thread
(tests, benchmarks, the demo), where ``running(app)`` yields the bound base URL."""

from __future__ import annotations

import errno
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import uvicorn

from sluice.server import http_limits

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
CLIENT_IDLE_S = 120  # keep-alive: longer than load balancers' and SDK pools' idle timeouts, see docs/security.md


def config(app: Any, host: str, port: int, log_level: str = "warning") -> uvicorn.Config:
    """Request heads over ``http_limits.MAX_HEAD_BYTES`` get a 431 before any handler runs, and the
    app's ``early_refusals`` (the gateway's load shedding) answer before any ASGI work."""
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                          lifespan="on", timeout_graceful_shutdown=10,
                          http=http_limits.protocol_class(early_refusals=getattr(app, "early_refusals", None)),
                          h11_max_incomplete_event_size=http_limits.MAX_HEAD_BYTES,
                          timeout_keep_alive=CLIENT_IDLE_S)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now: a busy port is one clear error before anything says "serving"."""
    from sluice.errors import ConfigError

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        hint = " (another process listens there: stop it or pass --port)" if e.errno == errno.EADDRINUSE else ""
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}{hint}") from None
    sock.listen(2048)  # early clients wait in the backlog until uvicorn accepts
    return sock


def serve_forever(app: Any, host: str, port: int, log_level: str = "info", sock: socket.socket | None = None) -> None:
    uvicorn.Server(config(app, host, port, log_level)).run(sockets=[sock] if sock is not None else None)


@contextmanager
def running(app: Any, host: str = "127.0.0.1", port: int = 0, startup_timeout_s: float = 20.0) -> Iterator[str]:
    """Serve ``app`` in a thread for the duration of the block; yields ``http://host:port``."""
    server = uvicorn.Server(config(app, host, port))
    thread = threading.Thread(target=server.run, name="sluice-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(30)


def open_store_to_serve(url: str, host: str, insecure: bool) -> Any | None:
    """The store for ``python -m sluice.server`` / ``sluice.gateway``, None (error printed) when an
    open bind would be refused: one place for the check both entry points make before serving."""
    import sys

    from sluice.auth.keys import KeyRing
    from sluice.errors import ConfigError
    from sluice.server.security import refuse_open_bind
    from sluice.store import open_store

    store = open_store(url)
    try:
        refuse_open_bind(host, KeyRing(store), insecure)
    except ConfigError as e:
        store.close()
        print(f"error: {e}", file=sys.stderr)
        return None
    return store


def serve_until_stopped(app: Any, host: str, port: int) -> None:
    """Serve in a thread, print ``listening URL`` (process-level tests read it) and return on
    SIGTERM or Ctrl-C: the entry point of ``python -m sluice.server`` and ``python -m sluice.gateway``."""
    import signal

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with running(app, host, port) as url:
        print(f"listening {url}", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
