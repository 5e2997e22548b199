"""Load shedding: past the gateway's capacity, answer 503 at once instead of queueing.

A shed request is not parsed and leaves no span (it is counted), so the requests already admitted
keep their latency and the client retries elsewhere or later.
"""

from __future__ import annotations

import orjson

from sluice.gateway.config import GatewaySettings
from sluice.gateway.protocol import retry_after_headers


class Shedder:
    """Admission for chat requests: ``admit()`` before the work, ``release()`` after it."""

    def __init__(self, settings: GatewaySettings):
        self.limit = settings.max_in_flight
        self.in_flight = 0
        self.shed = 0
        self._body = orjson.dumps({"error": {
            "message": f"the gateway is at its limit of {settings.max_in_flight} requests in flight; retry later",
            "type": "server_error", "param": None, "code": "overloaded"}})
        self._headers = [(b"content-type", b"application/json"), *retry_after_headers(settings.shed_retry_after_s),
                         (b"x-should-retry", b"true")]

    def admit(self) -> bool:
        """True (and counted in flight) when the request may proceed."""
        if self.limit and self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1

    async def reject(self, send) -> None:
        """503 + retry-after, no parsing, no span (counted in ``stats()`` and ``/metrics``)."""
        self.shed += 1
        await send({"type": "http.response.start", "status": 503, "headers": self._headers})
        await send({"type": "http.response.body", "body": self._body})
