"""Mirroring requests to a deployment's shadow release, off the request path.

The request handler only does ``offer(job)`` — a ``put_nowait`` on a bounded queue; when the
queue is full the copy is dropped and counted, so a slow shadow can never delay or fail the
client's request. A few worker tasks drain the queue; each shadow call is non-streaming, not
retried, its answer discarded, and it is traced with route ``shadow`` in the client's trace.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

log = logging.getLogger("sluice.gateway.mirror")


@dataclass(slots=True)
class MirrorJob:
    deployment: str
    release: Any  # PreparedRelease
    request: dict[str, Any]
    cohort: str
    user: str | None
    session: str | None
    trace_id: str
    parent_span_id: str


class Mirror:
    def __init__(self, run: Callable[[MirrorJob], Awaitable[None]], queue_size: int, workers: int):
        self._run = run
        self._size = queue_size
        self._workers_n = workers
        self._queue: asyncio.Queue[MirrorJob] | None = None
        self._workers: list[asyncio.Task] = []
        self.enqueued = 0
        self.dropped = 0
        self.completed = 0
        self.failed = 0

    def start(self) -> None:
        if self._queue is not None:
            return
        self._queue = asyncio.Queue(self._size)
        self._workers = [asyncio.create_task(self._work(), name=f"sluice-mirror-{i}") for i in range(self._workers_n)]

    def offer(self, job: MirrorJob) -> bool:
        if self._queue is None:
            self.start()
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        self.enqueued += 1
        return True

    @property
    def waiting(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            job = await self._queue.get()
            try:
                await self._run(job)
                self.completed += 1
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a shadow failure must stay in the shadow
                self.failed += 1
                log.exception("shadow call failed")
            finally:
                self._queue.task_done()

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) for queued copies to finish; used at shutdown and by tests."""
        if self._queue is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout_s)
        except TimeoutError:
            pass

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        self._queue = None
