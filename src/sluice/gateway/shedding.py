"""Load shedding: past the gateway's capacity, answer 503 at once instead of queueing.

Three signals. ``max_in_flight`` bounds requests in progress (slow upstreams). CPU saturation,
which the in-flight count misses (at 2,500 req/s offered to one process nothing was in flight for
long, yet every request queued behind the loop and p99 reached 8.9 s), shows two ways:

- **the loop thread's CPU share**: a monitor task wakes every ``interval`` (10 ms) and reads how much
  of the elapsed time the loop's thread spent on the CPU (``time.thread_time``). Near 100 %, any
  extra request only queues;
- **event-loop lag**: how late the monitor wakes. It catches what the CPU share cannot see: the
  loop thread waiting for the GIL, or for a core another process holds.

Admission past saturation is a share, steered by the monitor (AIMD, the congestion-control rule):
while the CPU share stays above ``shed_cpu_share`` or the lag stays above ``shed_lag_ms`` for
``SUSTAINED`` (3) samples in a row, the share admitted shrinks by a factor each tick; once both are
calm it grows back by a step per tick. Past capacity the excess is refused and the loop keeps
headroom, so the admitted requests keep their latency instead of all of them queueing.

A refusal must cost far less than an answer, or refusing does not free the loop: at 2× capacity
every refused request would cost nearly what a served one does. ``early_refusal`` is therefore
called by the HTTP protocol (``sluice.server.http_limits``) as soon as a request's head is parsed,
before uvicorn builds the ASGI request or starts a task; it writes prebuilt 503 bytes on the same
keep-alive connection. A shed request leaves no span (it is counted) and the client retries
elsewhere or later (``retry-after`` whole seconds, ``retry-after-ms``, ``x-should-retry``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from typing import Iterable

import orjson

from sluice.gateway.config import GatewaySettings
from sluice.gateway.protocol import retry_after_headers


SUSTAINED = 3
INTERVAL_S = 0.01
DECREASE = 0.8       # admitted share × this per overloaded tick
GROWTH, INCREASE = 1.05, 0.002  # share × GROWTH + INCREASE per calm tick: from 1 % to all in ~1 s, gently
                                # near the share the load needs (an additive step overshot at 4× load)
MIN_SHARE = 0.01     # never refuse everything: the monitor needs admitted work to see recovery
BUSY_WEIGHT = 0.35   # EWMA weight of the newest CPU-share sample, ~30 ms of memory (shorter shed at 60 %
                     # load, longer let 4× load build queues)
WAIT_TARGET_S = 0.005  # admitted requests waiting this long for the loop all through a window: a queue stands
WAIT_WINDOW = 5      # ticks (50 ms) over which the shortest wait is taken, as CoDel does
CALM_MARGIN = 0.1    # the CPU share must fall this far below the limit before the share grows


def overloaded(recent_lags_s: Iterable[float], limit_s: float) -> bool:
    """The lag decision: the last ``SUSTAINED`` measured lags all beyond the limit."""
    lags = list(recent_lags_s)
    return limit_s > 0 and len(lags) >= SUSTAINED and min(lags[-SUSTAINED:]) > limit_s


def steer(share: float, busy: float, lagging: bool, cpu_limit: float) -> float:
    """The next admitted share from the current one, the loop thread's CPU share and the lag verdict."""
    if lagging or (cpu_limit > 0 and busy > cpu_limit):
        return max(MIN_SHARE, share * DECREASE)
    if cpu_limit <= 0 or busy < cpu_limit - CALM_MARGIN:
        return min(1.0, share * GROWTH + INCREASE)
    return share


def _cpus_allowed() -> int:
    """CPUs this process may run on: with one, the span writer's thread competes with the loop for it."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _body(message: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": "server_error", "param": None, "code": "overloaded"}})


def _http_503(body: bytes, headers: list[tuple[bytes, bytes]], close: bool) -> bytes:
    lines = [b"HTTP/1.1 503 Service Unavailable", *(k + b": " + v for k, v in headers),
             b"content-length: " + str(len(body)).encode()]
    if close:
        lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class Shedder:
    """Admission for chat requests: ``admit()`` before the work, ``release()`` after it;
    ``early_refusal()`` from the HTTP protocol, before the request exists as ASGI."""

    def __init__(self, settings: GatewaySettings):
        self.limit = settings.max_in_flight
        self.lag_limit_s = settings.shed_lag_ms / 1000.0
        # one switch for CPU-overload shedding: the test suite turns lag shedding off (a loaded CI
        # machine), and a CPU share measured there means as little
        self.cpu_limit = settings.shed_cpu_share if self.lag_limit_s > 0 else 0.0
        self.interval_s = min(INTERVAL_S, self.lag_limit_s / 3) if self.lag_limit_s > 0 else 0.0
        self.in_flight = 0
        self.shed = 0
        self.shed_lag = 0  # of ``shed``, those refused for CPU saturation or event-loop lag
        self.shed_early = 0  # of those, refused by the HTTP protocol before any ASGI work
        self.lag_s = 0.0  # the last measured lag
        self.busy = 0.0  # CPU share of the loop's thread (of the process, per allowed CPU, if more), smoothed
        self.share = 1.0  # the admitted share of chat requests (1: no CPU shedding)
        self._credit = 0.0
        self.recent_lags_s: deque[float] = deque(maxlen=SUSTAINED)
        self._tick_min_wait = float("inf")  # the shortest wait of a request admitted by the protocol this tick
        self._waits: deque[float] = deque(maxlen=WAIT_WINDOW)  # those minima, tick by tick
        self.max_lag_s = 0.0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._monitor: asyncio.Task | None = None
        self._full_body = _body(f"the gateway is at its limit of {settings.max_in_flight} requests in flight; "
                                "retry later")
        self._lag_body = _body("the gateway is overloaded (its event loop is running late); retry later")
        self._headers = [(b"content-type", b"application/json"), *retry_after_headers(settings.shed_retry_after_s),
                         (b"x-should-retry", b"true")]
        self._early = (_http_503(self._lag_body, self._headers, close=False),
                       _http_503(self._lag_body, self._headers, close=True))
        self._refused = self._full_body

    # the monitor ----------------------------------------------------------------------------
    def start(self) -> None:
        if self.interval_s > 0 and self._monitor is None:
            self.loop = asyncio.get_running_loop()
            self._monitor = asyncio.create_task(self._watch(), name="sluice-gateway-lag")

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
            self._monitor = None
            self.lag_s, self.busy, self.share = 0.0, 0.0, 1.0
            self.recent_lags_s.clear()

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        cpus = _cpus_allowed()
        cpu, proc, wall = time.thread_time(), time.process_time(), time.perf_counter()
        while True:
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            lag = max(0.0, loop.time() - due)
            now_cpu, now_proc, now_wall = time.thread_time(), time.process_time(), time.perf_counter()
            if now_wall > wall:
                elapsed = now_wall - wall
                busy = min(1.0, max(now_cpu - cpu, (now_proc - proc) / cpus) / elapsed)
            else:
                busy = self.busy
            cpu, proc, wall = now_cpu, now_proc, now_wall
            self.tick(lag, busy)

    def tick(self, lag_s: float, busy: float) -> None:
        """One measurement of the monitor (lag, the loop thread's CPU share since the last one):
        update the signals and steer the admitted share."""
        self.lag_s = lag_s
        self.busy = (1 - BUSY_WEIGHT) * self.busy + BUSY_WEIGHT * busy
        self.recent_lags_s.append(lag_s)
        self.max_lag_s = max(self.max_lag_s, lag_s)
        self._waits.append(0.0 if self._tick_min_wait == float("inf") else self._tick_min_wait)
        self._tick_min_wait = float("inf")
        self.share = steer(self.share, self.busy, self.lagging() or self.queueing(), self.cpu_limit)

    def queueing(self) -> bool:
        """A standing queue: every tick of the window saw admitted requests wait past the target."""
        return self.cpu_limit > 0 and len(self._waits) == WAIT_WINDOW and min(self._waits) > WAIT_TARGET_S

    def waited(self, seconds: float) -> None:
        """How long a request admitted by the protocol waited for the loop before its handler ran."""
        self._tick_min_wait = min(self._tick_min_wait, seconds)

    def lagging(self) -> bool:
        return overloaded(self.recent_lags_s, self.lag_limit_s)

    def _saturated(self) -> bool:
        """True when this request falls in the refused share (spread evenly, not in bursts)."""
        if self.share >= 1.0:
            return False
        self._credit += self.share
        if self._credit >= 1.0:
            self._credit -= 1.0
            return False
        return True

    # admission ------------------------------------------------------------------------------
    def early_refusal(self, keep_alive: bool) -> bytes | None:
        """The whole 503 response when the protocol should refuse this chat request now, else None
        (the request goes on to ``admit``, which then skips the CPU decision already taken)."""
        if not self._saturated():
            return None
        self.shed += 1
        self.shed_lag += 1
        self.shed_early += 1
        return self._early[0] if keep_alive else self._early[1]

    def admit(self, decided: bool = False) -> bool:
        """True (and counted in flight) when the request may proceed; ``decided`` when the
        protocol already took the CPU decision for it."""
        if self.limit and self.in_flight >= self.limit:
            self._refused = self._full_body
            return False
        if not decided and self._saturated():
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
