"""A real local webhook receiver, and spans of a deployment written through the span writer."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

from sluice.telemetry.normalize import Normalizer
from sluice.telemetry.otlp import RawSpan
from sluice.telemetry.schema import SPAN_COLUMNS


class Receiver:
    def __init__(self, fail_first: int = 0, status: int = 500):
        self.requests: list[dict[str, Any]] = []
        self.fail_first = fail_first
        self.fail_status = status
        self.lock = threading.Lock()
        self.url = ""

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r["json"] for r in self.requests if r["status"] == 200]


@contextmanager
def receiver(fail_first: int = 0, status: int = 500) -> Iterator[Receiver]:
    rec = Receiver(fail_first, status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with rec.lock:
                code = rec.fail_status if len(rec.requests) < rec.fail_first else 200
                rec.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                     "body": body, "json": json.loads(body), "status": code})
            self.send_response(code)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


_counter = [0]


def write_requests(store, at_s: float, n: int, *, cohort: str = "default", errors: int = 0, ms: float = 100.0,
                   release: str = "sha256:r1", deployment: str = "support", route: str = "stable",
                   guardrail: str | None = None, blocked: int = 0) -> list[str]:
    """``n`` request spans at ``at_s`` (Unix seconds): the first ``errors`` failed, the first
    ``blocked`` blocked by ``guardrail``. Returns their trace ids."""
    spans, ids = [], []
    for i in range(n):
        _counter[0] += 1
        tid = f"{_counter[0]:032x}"
        start = int(at_s * 1e9) + i * 1000
        attrs = {"sluice.request": True, "sluice.deployment": deployment, "sluice.route": route,
                 "sluice.cohort": cohort, "sluice.release": release, "openinference.span.kind": "LLM",
                 "sluice.cost": 0.002, "sluice.guardrail": (f"block:{guardrail}" if i < blocked else "pass")}
        spans.append(RawSpan(tid, f"{_counter[0]:016x}", "", f"gateway {deployment}", start, start + int(ms * 1e6),
                             2 if i < errors else 1, "", attrs, {"service.name": "sluice-gateway"}, []))
        ids.append(tid)
    rows, _ = Normalizer().rows(spans)  # the writer's own normalisation, inserted directly (one test, many writes)
    store.db.insert_rows(f"spans ({', '.join(SPAN_COLUMNS)})", rows)
    return ids
