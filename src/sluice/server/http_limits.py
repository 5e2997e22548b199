"""Limits enforced while a request head is parsed, before any handler (or key check) runs.

uvicorn's httptools protocol buffers a request line and headers of any size (8 MB heads were
accepted), so a client could make every request cost megabytes before auth said no. Here the
head — request line plus headers — is capped at ``MAX_HEAD_BYTES``; past it the connection gets
``431 Request Header Fields Too Large`` and is closed. The h11 fallback gets the same bound
through its own ``h11_max_incomplete_event_size``.
"""

from __future__ import annotations

from typing import Any

MAX_HEAD_BYTES = 32 * 1024

_431 = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n%s")


def _body(limit: int) -> bytes:
    return (b'{"error": "request head (request line and headers) exceeds %d bytes"}' % limit)


def protocol_class(limit: int = MAX_HEAD_BYTES) -> Any:
    """An httptools protocol class for ``uvicorn.Config(http=...)`` that refuses oversized heads;
    ``"h11"`` when httptools is not installed (bounded by ``h11_max_incomplete_event_size``)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools is a dependency
        return "h11"

    body = _body(limit)
    response = _431 % (len(body), body)

    class CappedHttpToolsProtocol(HttpToolsProtocol):
        _in_head = True
        _head_seen = 0

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
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head = True
            super().on_message_complete()

    return CappedHttpToolsProtocol
