"""A loopback upstream whose answer a test writes as a function of the request: for answers the
scripted upstream has no mode for (echoed secrets, well-formed JSON of the wrong shape)."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

Answer = Callable[[dict[str, str], dict[str, Any]], tuple[int, bytes, str]]  # (status, body, content-type)


@contextmanager
def odd_upstream(answer: Answer) -> Iterator[str]:
    """Serve ``answer(headers, body)`` at ``/v1/chat/completions``; yields the base URL (…/v1)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            status, body, ctype = answer({k.lower(): v for k, v in self.headers.items()}, json.loads(raw or b"{}"))
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def completion(message: Any = None, usage: Any = None, **extra: Any) -> bytes:
    """A chat.completion body; pass odd values to make it the wrong shape."""
    body = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m-primary",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"} if message is None else message,
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5} if usage is None else usage}
    body.update(extra)
    return json.dumps(body).encode()
