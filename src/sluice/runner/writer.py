"""Batched writes of a run's results: rows and cache entries reach the store every ``batch_rows``
rows or ``interval_s`` seconds, whichever comes first, so an interrupted run loses at most one
batch and the hot path makes no per-row store round trip.

Writes run in a worker thread, one at a time: a DuckDB or PostgreSQL write takes milliseconds
to seconds, and on the event loop it would stall every row in flight (their timeouts included).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sluice.store.base import Store


class RunWriter:
    def __init__(self, store: Store, run_id: str, *, batch_rows: int = 50, interval_s: float = 0.5):
        self.store = store
        self.run_id = run_id
        self.batch_rows = batch_rows
        self.interval_s = interval_s
        self._rows: list[tuple[str, str, dict[str, Any]]] = []
        self._cache: dict[str, dict[str, Any]] = {}
        self._last = time.monotonic()
        self._lock = asyncio.Lock()  # one write at a time, in order
        self.flushes = 0
        self.written = 0

    async def add(self, row_id: str, cohort: str, record: dict[str, Any],
                  cache_item: tuple[str, dict[str, Any]] | None = None) -> None:
        self._rows.append((row_id, cohort, record))
        if cache_item is not None:
            self._cache[cache_item[0]] = cache_item[1]
        if len(self._rows) >= self.batch_rows or time.monotonic() - self._last >= self.interval_s:
            await self.flush()

    def _take(self) -> tuple[list[tuple[str, str, dict[str, Any]]], dict[str, dict[str, Any]]]:
        self._last = time.monotonic()
        rows, self._rows = self._rows, []
        cache, self._cache = self._cache, {}
        return rows, cache

    def _write(self, rows: list[tuple[str, str, dict[str, Any]]], cache: dict[str, dict[str, Any]]) -> None:
        if rows:
            self.store.put_run_rows(self.run_id, rows)
            self.written += len(rows)
            self.flushes += 1
        if cache:
            self.store.cache_put(cache)

    async def flush(self) -> None:
        """Write what is buffered, in a worker thread."""
        async with self._lock:
            rows, cache = self._take()
            if rows or cache:
                await asyncio.shield(asyncio.to_thread(self._write, rows, cache))

    def flush_now(self) -> None:
        """Write what is buffered on this thread: for the way out of a cancelled run (nothing is
        in flight any more, and a second cancellation must not lose the last batch); the store's
        own lock orders it after a write still running in a worker thread."""
        self._write(*self._take())

    async def tick(self) -> None:
        """Flush on time even while no row completes (slow upstreams)."""
        while True:
            await asyncio.sleep(self.interval_s)
            if time.monotonic() - self._last >= self.interval_s:
                await self.flush()
