"""How upstream calls are paced: retries with backoff, and per-upstream rate limits.

Backoff is exponential with *full jitter* (a uniform draw in [0, min(cap, base·2^n)]) so that many
rows failing together do not retry together; a server's retry-after wins over the backoff, capped
so one bad header cannot stall a run.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

from sluice.providers.base import ProviderError

T = TypeVar("T")
_rng = random.Random()


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3  # retries after the first attempt: up to retries + 1 attempts per model
    base_s: float = 0.25
    cap_s: float = 8.0
    max_retry_after_s: float = 30.0

    def delay(self, failed_attempts: int, retry_after: float | None, rng: random.Random = _rng) -> float:
        """Seconds to wait after the ``failed_attempts``-th failure."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_s)
        return rng.uniform(0.0, min(self.cap_s, self.base_s * (2 ** (failed_attempts - 1))))


class TokenBucket:
    """At most ``rps`` calls per second, evenly spaced (a bucket of capacity one).

    Single-threaded asyncio needs no lock: each caller reserves the next free slot before it sleeps.
    """

    def __init__(self, rps: float):
        if rps <= 0:
            raise ValueError("rate limit must be positive")
        self.interval = 1.0 / rps
        self._next = 0.0

    async def acquire(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class RateLimits:
    """Buckets keyed by provider name or base URL (``{"openai": 5, "http://127.0.0.1:8000/v1": 20}``);
    a base URL entry wins over a provider entry."""

    def __init__(self, limits: dict[str, float] | None = None):
        self._buckets = {k.rstrip("/"): TokenBucket(v) for k, v in (limits or {}).items()}

    def bucket(self, *keys: str | None) -> TokenBucket | None:
        for key in keys:
            if key and key.rstrip("/") in self._buckets:
                return self._buckets[key.rstrip("/")]
        return None


async def call_with_retries(attempt: Callable[[], Awaitable[T]], policy: RetryPolicy,
                            bucket: TokenBucket | None = None) -> tuple[T, int, float]:
    """(result, attempts, seconds the successful attempt took). On failure the last ProviderError
    is raised with ``attempts`` set on it."""
    n = 0
    while True:
        n += 1
        if bucket is not None:
            await bucket.acquire()
        started = time.perf_counter()
        try:
            return await attempt(), n, time.perf_counter() - started
        except ProviderError as e:
            e.attempts = n
            if not e.retryable or n > policy.retries:
                raise
            await asyncio.sleep(policy.delay(n, e.retry_after))
