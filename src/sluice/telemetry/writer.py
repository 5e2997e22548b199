"""The ingest writer: a bounded queue in front of one writer thread that commits in groups.

Callers (the OTLP endpoint, later the gateway) ``submit`` spans and get a ``Ticket``; the writer
drains everything queued so far into one transaction (group commit) and resolves each ticket
only after that transaction has committed. So an OTLP 200 can wait for its ticket and mean
"durable", while the gateway may fire and forget. Fire-and-forget submissions (``linger=True``)
do not wake the writer: they wait up to ``linger_s`` or until ``linger_max_spans`` are queued,
so one transaction carries hundreds of gateway spans instead of one or two (a DuckDB commit
costs about as much as writing a hundred spans); a waiting submission, or ``close``, commits
them at once. The queue is bounded in spans: when it is
full ``submit`` raises ``Backpressure`` at once (the endpoint answers 503 + Retry-After) instead
of letting memory grow.

Submissions travel as ``SpanBatch``es, column-major, so a batch made in another process (the
server's decode workers) crosses the process boundary as a few long tuples and the writer only
concatenates columns. Bulk paths: DuckDB inserts a whole group from NumPy column arrays in one
statement (about two orders of magnitude faster than ``executemany``); PostgreSQL uses ``COPY``. The writer uses its
own connection (a DuckDB cursor on the same database, a new psycopg connection), so long
metrics queries on the store's connection never block ingest.

Inside each write's transaction, spans inherit deployment, release and cohort from their
trace's attributed ancestors (``attribution``; ``unattributed`` column, ``trace_attribution``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from sluice.telemetry import attribution_sql, values
from sluice.telemetry.normalize import Normalizer
from sluice.telemetry.otlp_model import RawSpan
from sluice.telemetry.schema import SPAN_COLUMNS

log = logging.getLogger("sluice.telemetry.writer")
EVAL_COLUMNS = ("trace_id", "span_id", "evaluator", "passed", "score", "label", "source", "created_at")
_BOOL_COLUMNS = {"fallback_used", "cache_hit", "is_request"}
_ATTRIBUTED = {"deployment", "release", "cohort"}  # written as attribution.plan says


@dataclass(slots=True)
class SpanBatch:
    """Span rows column by column (``SPAN_COLUMNS`` order) plus online-evaluation rows."""

    columns: list[tuple]
    count: int
    evals: list[tuple] = field(default_factory=list)

    def __post_init__(self) -> None:
        flag_bad_usage(self)
        bound_ids(self)

    @classmethod
    def from_rows(cls, rows: list[tuple], evals: Iterable[tuple] = ()) -> "SpanBatch":
        columns = list(zip(*rows)) if rows else [() for _ in SPAN_COLUMNS]
        return cls(columns, len(rows), list(evals))


_USAGE_COLS = tuple(SPAN_COLUMNS.index(c) for c in ("input_tokens", "output_tokens", "total_tokens", "cost"))
_ATTRS_COL = SPAN_COLUMNS.index("attributes")


def flag_bad_usage(batch: SpanBatch) -> int:
    """Clear the usage columns of spans whose token counts or cost are negative or absurd, and say
    why in their attributes (``sluice.usage_invalid``), so no total sums them. Every decoder and
    the gateway's own spans pass here. Returns how many spans were flagged."""
    if not batch.count or len(batch.columns) <= max(_USAGE_COLS):
        return 0
    cols = [batch.columns[i] for i in _USAGE_COLS]
    bad = [i for i in range(batch.count)
           if values.usage_problem(cols[0][i], cols[1][i], cols[2][i], cols[3][i]) is not None]
    if not bad:
        return 0
    fixed = {c: list(batch.columns[c]) for c in (*_USAGE_COLS, _ATTRS_COL)}
    for i in bad:
        reason = values.usage_problem(cols[0][i], cols[1][i], cols[2][i], cols[3][i])
        for c in _USAGE_COLS:
            fixed[c][i] = None
        attrs = fixed[_ATTRS_COL][i] or "{}"
        flag = '"sluice.usage_invalid":' + values.dumps(reason)
        fixed[_ATTRS_COL][i] = "{" + flag + ("," + attrs[1:] if attrs.strip() != "{}" else "}")
    for c, col in fixed.items():
        batch.columns[c] = col
    return len(bad)


_ID_COLS = tuple(SPAN_COLUMNS.index(c) for c in ("cohort", "session_id", "user_id", "deployment", "release", "route"))


def bound_ids(batch: SpanBatch) -> int:
    """Cut identifier columns longer than ``values.MAX_ID_CHARS`` (``values.bound_id``)."""
    if not batch.count or len(batch.columns) <= max(_ID_COLS):
        return 0
    cut = 0
    for c in _ID_COLS:
        col = batch.columns[c]
        if any(v is not None and len(v) > values.MAX_ID_CHARS for v in col):
            batch.columns[c] = [values.bound_id(v) for v in col]
            cut += 1
    return cut


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
                 queue_max_spans: int = 200_000, linger_s: float = 0.2, linger_max_spans: int = 1_000):
        self.store = store
        self.normalizer = normalizer or Normalizer()
        self.batch_max_spans = batch_max_spans
        self.queue_max_spans = queue_max_spans
        self.linger_s = linger_s
        self.linger_max_spans = linger_max_spans
        self._queue: deque[tuple[SpanBatch, Ticket, bool]] = deque()  # (spans, ticket, lingers)
        self._queued = 0
        self._urgent = 0  # queued submissions someone may be waiting on
        self._lingering = 0  # queued fire-and-forget spans
        self._linger_until: float | None = None  # when the oldest of them must be written
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._sink = None
        self._nice = 0
        self._native_id: int | None = None
        self.committed_spans = 0
        self.batches = 0

    # public --------------------------------------------------------------------------------
    def start(self) -> "SpanWriter":
        self._sink = _sink_for(self.store)
        self._thread = threading.Thread(target=self._run, name="sluice-span-writer", daemon=True)
        self._thread.start()
        return self

    def submit(self, spans: list[RawSpan], *, loop: asyncio.AbstractEventLoop | None = None,
               linger: bool = False) -> Ticket:
        """Normalise in the caller's thread and queue; raises ``Backpressure`` when full.
        ``linger``: nobody waits for these spans, so they may wait for company (see the module doc)."""
        rows, evals = self.normalizer.rows(spans)
        return self.submit_batch(SpanBatch.from_rows(rows, evals), loop=loop, linger=linger)

    def submit_rows(self, rows: list[tuple], evals: Iterable[tuple] = (), *,
                    loop: asyncio.AbstractEventLoop | None = None) -> Ticket:
        return self.submit_batch(SpanBatch.from_rows(rows, evals), loop=loop)

    def submit_batch(self, batch: SpanBatch, *, loop: asyncio.AbstractEventLoop | None = None,
                     linger: bool = False) -> Ticket:
        """Queue already-normalised spans; raises ``Backpressure`` when full."""
        ticket = Ticket(batch.count, loop)
        with self._cond:
            if self._closed:
                raise WriterClosed("the span writer is closed")
            if self._queued and self._queued + batch.count > self.queue_max_spans:
                raise Backpressure(f"ingest queue full ({self._queued} spans waiting)")
            self._queue.append((batch, ticket, linger))
            self._queued += batch.count
            if not linger:
                self._urgent += 1
                self._cond.notify()
            else:
                self._lingering += batch.count
                if self._linger_until is None:  # the writer sleeps without a deadline: give it one
                    self._linger_until = time.monotonic() + self.linger_s
                    self._cond.notify()
                elif self._lingering >= self.linger_max_spans:
                    self._cond.notify()
        return ticket

    def lower_priority(self, nice: int) -> None:
        """Run the writer thread at OS niceness ``nice`` (Linux; elsewhere a no-op). The gateway
        asks for this: committing a batch costs ~15 ms of CPU, and on a busy core the writer then
        competed with the event loop and showed up in request latency. Ingest waiting on tickets
        still gets its commits whenever the loop is not using the core."""
        self._nice = nice
        self._apply_nice()

    def _apply_nice(self) -> None:
        if self._nice and self._native_id is not None and hasattr(os, "setpriority"):
            try:
                os.setpriority(os.PRIO_PROCESS, self._native_id, self._nice)
            except OSError as e:  # not permitted: keep running at normal priority
                log.warning("span writer: cannot set niceness %d: %s", self._nice, e)

    @property
    def full(self) -> bool:
        """True when the queue holds ``queue_max_spans`` (cheap check before decoding a body)."""
        return self._queued >= self.queue_max_spans

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
        self._native_id = threading.get_native_id()
        self._apply_nice()
        while True:
            with self._cond:
                while not self._due():
                    if self._linger_until is None:
                        self._cond.wait()
                    else:
                        self._cond.wait(max(self._linger_until - time.monotonic(), 0.0))
                if not self._queue and self._closed:
                    return
                group = [self._queue.popleft()]
                size = group[0][0].count
                while self._queue and size + self._queue[0][0].count <= self.batch_max_spans:
                    item = self._queue.popleft()
                    group.append(item)
                    size += item[0].count
                # whatever was taken is written now; lingering spans left behind start a new wait
                self._urgent = sum(1 for _, _, lingers in self._queue if not lingers)
                self._lingering = sum(b.count for b, _, lingers in self._queue if lingers)
                self._linger_until = time.monotonic() + self.linger_s if self._lingering else None
            errors = self._write([batch for batch, _, _ in group])
            with self._cond:
                self._queued -= size
            for (_, ticket, _), error in zip(group, errors):
                ticket._resolve(error)

    def _due(self) -> bool:
        """Something must be written now (called holding the lock)."""
        if self._closed or self._urgent:
            return True
        if not self._lingering:
            return False
        return self._lingering >= self.linger_max_spans or time.monotonic() >= self._linger_until

    def _write(self, group: list[SpanBatch]) -> list[BaseException | None]:
        """Commit the group; if it fails, retry submission by submission so one bad request
        cannot fail its neighbours."""
        try:
            self._sink.write(group)
            self.committed_spans += sum(b.count for b in group)
            self.batches += 1
            return [None] * len(group)
        except Exception as e:  # noqa: BLE001 - reported to the waiting callers
            if len(group) == 1:
                log.error("span batch of %d failed: %s", group[0].count, e)
                return [e]
        return [self._write([b])[0] for b in group]


def _sink_for(store: Any):
    if store.db.dialect.name == "postgres":
        return _PostgresSink(store.url)
    return _DuckSink(store.db.conn.cursor())


# DuckDB checkpoints (compresses the WAL into the file) each time the WAL passes this size; at the
# 16 MB default that is every ~20,000 spans and doubled the insert cost (each checkpoint rewrites
# the open row group). Larger means fewer checkpoints, at the price of a longer WAL replay after a
# crash and that much more memory for not-yet-checkpointed data. A database-wide setting.
DUCKDB_CHECKPOINT_THRESHOLD = "128MB"
# DuckDB keeps every block it has written cached until its memory_limit (80 % of RAM by default), so
# a long ingest grew the server by ~170 bytes per stored span (1.4 GB after 7M spans, still rising).
# Capped here, cached blocks are evicted instead (queries read them back from the file). A lower
# limit already in force is kept. A database-wide setting.
DUCKDB_MEMORY_LIMIT_BYTES = 1 << 30
_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
          "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


class _DuckSink:
    def __init__(self, conn):
        self.conn = conn
        # sql(), not execute(): nothing is left open on the cursor (see _cap_memory)
        conn.sql(f"SET checkpoint_threshold = '{DUCKDB_CHECKPOINT_THRESHOLD}'")
        _cap_memory(conn)
        cols = ", ".join(SPAN_COLUMNS + ("unattributed",))
        self._insert = f"INSERT INTO spans ({cols}) SELECT {cols} FROM sluice_span_batch"
        self._attribution = attribution_sql.TraceAttribution("duckdb")
        self._insert_evals = f"INSERT INTO span_evals ({', '.join(EVAL_COLUMNS)}) VALUES ({', '.join('?' * len(EVAL_COLUMNS))})"

    def write(self, group: list[SpanBatch]) -> None:
        count = sum(b.count for b in group)
        evals = [e for b in group for e in b.evals]
        self.conn.execute("BEGIN TRANSACTION")
        try:
            if count:
                p = self._attribution.apply(self.conn, [b.columns for b in group])
                batch = {name: _column(name, [b.columns[i] for b in group], count)
                         for i, name in enumerate(SPAN_COLUMNS) if name not in _ATTRIBUTED}
                batch.update(deployment=np.array(p.deployment, dtype=object), release=np.array(p.release, dtype=object),
                             cohort=np.array(p.cohort, dtype=object),
                             unattributed=np.array(p.unattributed, dtype=np.int32))
                self.conn.register("sluice_span_batch", batch)
                try:
                    self.conn.execute(self._insert)
                finally:
                    self.conn.unregister("sluice_span_batch")
            if evals:
                self.conn.executemany(self._insert_evals, [list(e) for e in evals])
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()


def _cap_memory(conn) -> None:
    """Read through a relation, fully consumed: a fetchone left the query open on the cursor when no
    SET followed, and the next sink on the store met "connection has an unfinished result"."""
    rows = conn.sql("SELECT value FROM duckdb_settings() WHERE name = 'memory_limit'").fetchall()
    text = rows[0][0] if rows else ""

    number, _, unit = str(text).partition(" ")
    try:
        current = float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        log.warning("span writer: unexpected DuckDB memory_limit %r; left as it is", text)
        return
    if current > DUCKDB_MEMORY_LIMIT_BYTES:
        conn.sql(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT_BYTES // 2**20}MiB'")


def _column(name: str, parts: list[tuple], count: int) -> np.ndarray:
    values = parts[0] if len(parts) == 1 else itertools.chain.from_iterable(parts)
    if name in _BOOL_COLUMNS:
        return np.fromiter(values, dtype=bool, count=count)
    if name == "start_ns":
        return np.fromiter(values, dtype=np.int64, count=count)
    if name in ("duration_ms", "ingested_at"):
        return np.fromiter(values, dtype=np.float64, count=count)
    return np.fromiter(values, dtype=object, count=count)


class _PostgresSink:
    def __init__(self, url: str):
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self._copy = f"COPY spans ({', '.join(SPAN_COLUMNS + ('unattributed',))}) FROM STDIN"
        self._attribution = attribution_sql.TraceAttribution("postgres")
        self._insert_evals = (f"INSERT INTO span_evals ({', '.join(EVAL_COLUMNS)}) "
                              f"VALUES ({', '.join(['%s'] * len(EVAL_COLUMNS))})")

    def write(self, group: list[SpanBatch]) -> None:
        evals = [e for b in group for e in b.evals]
        with self.conn.transaction(), self.conn.cursor() as cur:
            if any(b.count for b in group):
                p = self._attribution.apply(cur, [b.columns for b in group])
                columns = [attribution_sql.concat([b.columns for b in group], i) for i in range(len(SPAN_COLUMNS))]
                for name, fixed in (("deployment", p.deployment), ("release", p.release), ("cohort", p.cohort)):
                    columns[SPAN_COLUMNS.index(name)] = fixed
                columns.append(p.unattributed)
                with cur.copy(self._copy) as copy:
                    for r in zip(*columns):
                        copy.write_row(r)
            if evals:
                cur.executemany(self._insert_evals, evals)

    def close(self) -> None:
        self.conn.close()
