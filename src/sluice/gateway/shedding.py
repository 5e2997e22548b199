"""Load shedding: past the gateway's capacity, answer 503 at once instead of queueing.

Two signals. ``max_in_flight`` bounds requests in progress (slow upstreams). Event-loop lag
catches CPU saturation, which the in-flight count misses: at 2,500 req/s offered to one process
nothing was in flight for long, yet every request queued behind the loop and p99 reached 8.9 s.
A monitor task sleeps ``interval`` (10 ms) and measures how late it wakes; a request is shed
while the last ``SUSTAINED`` (3) measurements all exceed ``shed_lag_ms`` — lag that lasts, which
is what overload looks like (the queue keeps growing), and not a late wake-up or two (a
descheduled thread on a busy machine, a collection). A shed
request is not parsed and leaves no span (it is counted), so the admitted ones keep their latency
and the client retries elsewhere or later (``retry-after`` whole seconds, ``retry-after-ms``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Iterable

import orjson

from sluice.gateway.config import GatewaySettings
from sluice.gateway.protocol import retry_after_headers


SUSTAINED = 3


def overloaded(recent_lags_s: Iterable[float], limit_s: float) -> bool:
    """The lag decision: the last ``SUSTAINED`` measured lags all beyond the limit."""
    lags = list(recent_lags_s)
    return limit_s > 0 and len(lags) >= SUSTAINED and min(lags[-SUSTAINED:]) > limit_s


def _body(message: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": "server_error", "param": None, "code": "overloaded"}})


class Shedder:
    """Admission for chat requests: ``admit()`` before the work, ``release()`` after it."""

    def __init__(self, settings: GatewaySettings):
        self.limit = settings.max_in_flight
        self.lag_limit_s = settings.shed_lag_ms / 1000.0
        self.interval_s = min(0.01, self.lag_limit_s / 3) if self.lag_limit_s > 0 else 0.0
        self.in_flight = 0
        self.shed = 0
        self.shed_lag = 0  # of ``shed``, those refused for event-loop lag
        self.lag_s = 0.0  # the last measured lag
        self.recent_lags_s: deque[float] = deque(maxlen=SUSTAINED)
        self.max_lag_s = 0.0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._monitor: asyncio.Task | None = None
        self._full_body = _body(f"the gateway is at its limit of {settings.max_in_flight} requests in flight; "
                                "retry later")
        self._lag_body = _body("the gateway is overloaded (its event loop is running late); retry later")
        self._headers = [(b"content-type", b"application/json"), *retry_after_headers(settings.shed_retry_after_s),
                         (b"x-should-retry", b"true")]
        self._refused = self._full_body

    # the lag monitor ------------------------------------------------------------------------
    def start(self) -> None:
        if self.interval_s > 0 and self._monitor is None:
            self.loop = asyncio.get_running_loop()
            self._monitor = asyncio.create_task(self._watch(), name="sluice-gateway-lag")

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
            self._monitor = None
            self.lag_s = 0.0
            self.recent_lags_s.clear()

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.lag_s = max(0.0, loop.time() - due)
            self.recent_lags_s.append(self.lag_s)
            self.max_lag_s = max(self.max_lag_s, self.lag_s)

    def lagging(self) -> bool:
        return overloaded(self.recent_lags_s, self.lag_limit_s)

    # admission ------------------------------------------------------------------------------
    def admit(self) -> bool:
        """True (and counted in flight) when the request may proceed."""
        if self.limit and self.in_flight >= self.limit:
            self._refused = self._full_body
            return False
        if self.lag_limit_s > 0 and self.lagging():
            self._refused = self._lag_body
            self.shed_lag += 1
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1

    async def reject(self, send) -> None:
        """503 + retry-after, no parsing, no span (counted in ``stats()`` and ``/metrics``)."""
        self.shed += 1
        body = self._refused
        await send({"type": "http.response.start", "status": 503,
                    "headers": self._headers + [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
