"""Limits enforced while a request head is parsed, before any handler (or key check) runs.

uvicorn's httptools protocol buffers a request line and headers of any size (8 MB heads were
accepted), so a client could make every request cost megabytes before auth said no. Here the
head — request line plus headers — is capped at ``MAX_HEAD_BYTES``; past it the connection gets
``431 Request Header Fields Too Large`` and is closed. The h11 fallback gets the same bound
through its own ``h11_max_incomplete_event_size``.

Load shedding past CPU saturation starts here too: a refusal that costs nearly what an answer
costs frees nothing. For a (method, path) listed in ``early_refusals`` (the gateway's chat
endpoint), the protocol asks the hook as soon as the head is parsed; when it answers with a
response, no ASGI request, task or span is made: the body is skipped as it arrives and the
prebuilt 503 is written on the same keep-alive connection (closed when the client sent
``expect: 100-continue`` or HTTP/1.0). A request behind an unfinished one on a pipelining
connection is never refused here, so answers keep their order.
"""

from __future__ import annotations

import time
from typing import Any

MAX_HEAD_BYTES = 32 * 1024
ADMISSION_DECIDED = "sluice.admitted_at"  # scope key: when an early-refusal hook let this request in

_431 = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n%s")


def _body(limit: int) -> bytes:
    return (b'{"error": "request head (request line and headers) exceeds %d bytes"}' % limit)


def protocol_class(limit: int = MAX_HEAD_BYTES, early_refusals: dict | None = None) -> Any:
    """An httptools protocol class for ``uvicorn.Config(http=...)`` that refuses oversized heads
    and asks ``early_refusals[(method, path)](keep_alive)`` for a shedding answer; ``"h11"`` when
    httptools is not installed (bounded by ``h11_max_incomplete_event_size``, no early refusal)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools is a dependency
        return "h11"

    body = _body(limit)
    response = _431 % (len(body), body)

    refusals = early_refusals if early_refusals is not None else {}

    class CappedHttpToolsProtocol(HttpToolsProtocol):
        _in_head = True
        _head_seen = 0
        _refusing: bytes | None = None  # the 503 to write once the refused request's body is skipped

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                room = limit - self._head_seen
                if len(data) > room:
                    super().data_received(data[:room])  # may finish the head (then the rest is body)
                    if self._in_head:
                        self._refuse()
                        return
                    data = data[room:]
                    if self.transport.is_closing():
                        return
                else:
                    self._head_seen += len(data)
            super().data_received(data)

        def _refuse(self) -> None:
            self.logger.warning("request head over %d bytes: 431", limit)
            if not self.transport.is_closing():
                self.transport.write(response)
                self.transport.close()

        def on_headers_complete(self) -> None:
            self._in_head, self._head_seen = False, 0
            if refusals and self._refused_early():
                return
            super().on_headers_complete()

        def _refused_early(self) -> bool:
            hook = refusals.get((self.parser.get_method(), self.url.partition(b"?")[0]))
            if hook is None or (self.cycle is not None and not self.cycle.response_complete):
                return False
            close = self.expect_100_continue or not self.parser.should_keep_alive()
            response = hook(not close)
            if response is None:
                self.scope[ADMISSION_DECIDED] = time.perf_counter()  # the handler reports its wait for the loop
                return False
            if close:  # no body is coming (100-continue) or the client leaves anyway
                self.transport.write(response)
                self.transport.close()
            else:
                self._refusing = response
            return True

        def on_body(self, body: bytes) -> None:
            if self._refusing is None:
                super().on_body(body)

        def on_message_complete(self) -> None:
            self._in_head = True
            if self._refusing is not None:
                response, self._refusing = self._refusing, None
                if not self.transport.is_closing():
                    self.transport.write(response)
                    self.on_response_complete()  # the keep-alive timer, as after any answer
                return
            super().on_message_complete()

    return CappedHttpToolsProtocol
