"""The ingest writer: a bounded queue in front of one writer thread that commits in groups.

Callers (the OTLP endpoint, later the gateway) ``submit`` spans and get a ``Ticket``; the writer
drains everything queued so far into one transaction (group commit) and resolves each ticket
only after that transaction has committed. So an OTLP 200 can wait for its ticket and mean
"durable", while the gateway may fire and forget. The queue is bounded in spans: when it is
full ``submit`` raises ``Backpressure`` at once (the endpoint answers 503 + Retry-After) instead
of letting memory grow.

Bulk paths: DuckDB inserts a whole batch from NumPy column arrays in one statement (about two
orders of magnitude faster than ``executemany``); PostgreSQL uses ``COPY``. The writer uses its
own connection (a DuckDB cursor on the same database, a new psycopg connection), so long
metrics queries on the store's connection never block ingest.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from typing import Any, Iterable

import numpy as np

from sluice.telemetry.normalize import Normalizer
from sluice.telemetry.otlp import RawSpan
from sluice.telemetry.schema import SPAN_COLUMNS

log = logging.getLogger("sluice.telemetry.writer")
EVAL_COLUMNS = ("trace_id", "span_id", "evaluator", "passed", "score", "label", "source", "created_at")
_BOOL_COLUMNS = {"fallback_used", "cache_hit", "is_request"}


class Backpressure(Exception):
    """The queue is full; try again later."""


class WriterClosed(Exception):
    """The writer has stopped and accepts nothing more."""


class Ticket:
    """Resolved once the spans it covers are committed (or the write failed)."""

    def __init__(self, count: int, loop: asyncio.AbstractEventLoop | None = None):
        self.count = count
        self._event = threading.Event()
        self._error: BaseException | None = None
        self._future = loop.create_future() if loop is not None else None
        self._loop = loop

    def _resolve(self, error: BaseException | None) -> None:
        self._error = error
        self._event.set()
        if self._future is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._set_future)

    def _set_future(self) -> None:
        if not self._future.done():
            self._future.set_result(None)

    def wait(self, timeout: float | None = None) -> None:
        """Block until committed; re-raises the write error. ``TimeoutError`` if it takes too long."""
        if not self._event.wait(timeout):
            raise TimeoutError("spans not committed in time")
        if self._error is not None:
            raise self._error

    async def wait_async(self) -> None:
        if self._future is None:
            raise RuntimeError("ticket was not submitted from an event loop")
        await self._future
        if self._error is not None:
            raise self._error


class SpanWriter:
    """``submit(spans)`` from any thread; ``start()`` once; ``close()`` drains and stops."""

    def __init__(self, store: Any, normalizer: Normalizer | None = None, *, batch_max_spans: int = 20_000,
                 queue_max_spans: int = 200_000):
        self.store = store
        self.normalizer = normalizer or Normalizer()
        self.batch_max_spans = batch_max_spans
        self.queue_max_spans = queue_max_spans
        self._queue: deque[tuple[list[tuple], list[tuple], Ticket]] = deque()
        self._queued = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._sink = None
        self.committed_spans = 0
        self.batches = 0

    # public --------------------------------------------------------------------------------
    def start(self) -> "SpanWriter":
        self._sink = _sink_for(self.store)
        self._thread = threading.Thread(target=self._run, name="sluice-span-writer", daemon=True)
        self._thread.start()
        return self

    def submit(self, spans: list[RawSpan], *, loop: asyncio.AbstractEventLoop | None = None) -> Ticket:
        """Normalise in the caller's thread and queue; raises ``Backpressure`` when full."""
        rows, evals = self.normalizer.rows(spans)
        return self.submit_rows(rows, evals, loop=loop)

    def submit_rows(self, rows: list[tuple], evals: Iterable[tuple] = (), *,
                    loop: asyncio.AbstractEventLoop | None = None) -> Ticket:
        ticket = Ticket(len(rows), loop)
        with self._cond:
            if self._closed:
                raise WriterClosed("the span writer is closed")
            if self._queued and self._queued + len(rows) > self.queue_max_spans:
                raise Backpressure(f"ingest queue full ({self._queued} spans waiting)")
            self._queue.append((rows, list(evals), ticket))
            self._queued += len(rows)
            self._cond.notify()
        return ticket

    @property
    def queued_spans(self) -> int:
        return self._queued

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop the thread and release the connection."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._sink is not None:
            self._sink.close()

    # writer thread -------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue and self._closed:
                    return
                batch = [self._queue.popleft()]
                size = len(batch[0][0])
                while self._queue and size + len(self._queue[0][0]) <= self.batch_max_spans:
                    item = self._queue.popleft()
                    batch.append(item)
                    size += len(item[0])
            errors = self._write(batch)
            with self._cond:
                self._queued -= size
            for (_, _, ticket), error in zip(batch, errors):
                ticket._resolve(error)

    def _write(self, batch: list[tuple[list[tuple], list[tuple], Ticket]]) -> list[BaseException | None]:
        """Commit the group; if it fails, retry submission by submission so one bad request
        cannot fail its neighbours."""
        try:
            self._sink.write([r for item in batch for r in item[0]], [e for item in batch for e in item[1]])
            self.committed_spans += sum(len(item[0]) for item in batch)
            self.batches += 1
            return [None] * len(batch)
        except Exception as e:  # noqa: BLE001 - reported to the waiting callers
            if len(batch) == 1:
                log.error("span batch of %d failed: %s", len(batch[0][0]), e)
                return [e]
        return [self._write([item])[0] for item in batch]


def _sink_for(store: Any):
    if store.db.dialect.name == "postgres":
        return _PostgresSink(store.url)
    return _DuckSink(store.db.conn.cursor())


class _DuckSink:
    def __init__(self, conn):
        self.conn = conn
        cols = ", ".join(SPAN_COLUMNS)
        self._insert = f"INSERT INTO spans ({cols}) SELECT {cols} FROM sluice_span_batch"
        self._insert_evals = f"INSERT INTO span_evals ({', '.join(EVAL_COLUMNS)}) VALUES ({', '.join('?' * len(EVAL_COLUMNS))})"

    def write(self, rows: list[tuple], evals: list[tuple]) -> None:
        columns = list(zip(*rows)) if rows else [[] for _ in SPAN_COLUMNS]
        batch = {name: _column(name, values) for name, values in zip(SPAN_COLUMNS, columns)}
        self.conn.register("sluice_span_batch", batch)
        try:
            self.conn.execute("BEGIN TRANSACTION")
            try:
                if rows:
                    self.conn.execute(self._insert)
                if evals:
                    self.conn.executemany(self._insert_evals, [list(e) for e in evals])
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        finally:
            self.conn.unregister("sluice_span_batch")

    def close(self) -> None:
        self.conn.close()


def _column(name: str, values) -> np.ndarray:
    if name in _BOOL_COLUMNS:
        return np.fromiter(values, dtype=bool, count=len(values))
    if name == "start_ns":
        return np.fromiter(values, dtype=np.int64, count=len(values))
    if name in ("duration_ms", "ingested_at"):
        return np.fromiter(values, dtype=np.float64, count=len(values))
    return np.array(values, dtype=object)


class _PostgresSink:
    def __init__(self, url: str):
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self._copy = f"COPY spans ({', '.join(SPAN_COLUMNS)}) FROM STDIN"
        self._insert_evals = (f"INSERT INTO span_evals ({', '.join(EVAL_COLUMNS)}) "
                              f"VALUES ({', '.join(['%s'] * len(EVAL_COLUMNS))})")

    def write(self, rows: list[tuple], evals: list[tuple]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            if rows:
                with cur.copy(self._copy) as copy:
                    for r in rows:
                        copy.write_row(r)
            if evals:
                cur.executemany(self._insert_evals, evals)

    def close(self) -> None:
        self.conn.close()
