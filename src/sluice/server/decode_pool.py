"""Decoding and normalising OTLP bodies, in the server process or in worker processes, feeding
the one span writer.

With the compiled decoder (``sluice.telemetry.fastpath``) a protobuf body costs ~2.5 µs per span
and is decoded in the server process (a thread): worker processes would add pickling, a second
copy of every body and a process per core that the writer and the HTTP loop need, for no gain
(bench/results/ingest.md). Without it (not built, ``SLUICE_OTLP_FAST=0``, or JSON bodies in
bulk) decoding is pure Python and holds the GIL, so ``ingest_workers`` processes can take it:
``DecodePool`` sends each large body (bytes in) to the pool, which decompresses, decodes and
normalises it and sends back a column-major ``SpanBatch`` (plus the partial-success count). The
server process keeps the HTTP loop and the single writer thread, which is all DuckDB allows (one
process per file) and what group commit needs: the 200 still waits for the writer's commit.
``ingest_workers: null`` means one worker per CPU, but with the compiled decoder protobuf bodies
stay in the server process and the workers are started only when a large JSON body arrives.

Small uncompressed bodies are handled on the event loop, where the round trip to a thread would
cost more than the work. A compressed body never is, however small: 16 KB of gzip can inflate to
16 MB, and decoding that on the loop stalled the gateway (``/healthz`` p50 1.5 → 109 ms under
~370 KB/s of such ingest). The compiled decoder lets other threads run every 256 spans. Bodies waiting to be decoded (for a thread or a worker) are bounded in bytes
(``decode_queue_max_bytes``, ``Backpressure`` → 503).
A worker that dies (OOM killer, a crash in C code) breaks the pool: the requests it held fail
over once to a fresh pool, and a request that breaks the pool twice gets a 503; nothing is
acknowledged before its spans are committed, so no acknowledged span is lost.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import NamedTuple

from sluice.telemetry import fastpath, otlp
from sluice.telemetry.config import TelemetrySettings
from sluice.telemetry.normalize import Normalizer
from sluice.telemetry.writer import Backpressure, SpanBatch

log = logging.getLogger("sluice.server.decode")
INLINE_MAX_BYTES = 16 * 1024  # below this a worker round trip costs more than the decoding


class Prepared(NamedTuple):
    batch: SpanBatch
    rejected: int
    reasons: list[str]


def compressed(encoding: str | None) -> bool:
    return (encoding or "identity").strip().lower() not in ("", "identity")


class WorkerCrashed(Exception):
    """A decode worker died twice while holding this request's body."""


def prepare(normalizer: Normalizer, body: bytes, encoding: str | None, kind: str, limit: int) -> Prepared:
    """Decompress, decode and normalise one export body (raises ``OtlpError`` / ``TooLarge``).
    Protobuf goes through the compiled decoder when it is built and takes the body."""
    body = otlp.decompress(body, encoding, limit)
    if kind == otlp.PROTOBUF:
        fast = fastpath.decode_columns(body, normalizer)
        if fast is not None:
            return Prepared(*fast)
    decoded = otlp.decode(body, kind)
    rows, evals = normalizer.rows(decoded.spans)
    return Prepared(SpanBatch.from_rows(rows, evals), decoded.rejected, decoded.reasons)


_worker_normalizer: Normalizer | None = None


def _init_worker(settings_json: str) -> None:
    global _worker_normalizer
    _worker_normalizer = Normalizer(TelemetrySettings.model_validate_json(settings_json))


def _prepare_in_worker(body: bytes, encoding: str | None, kind: str, limit: int) -> Prepared:
    return prepare(_worker_normalizer, body, encoding, kind, limit)


class DecodePool:
    """``await pool.prepare(body, encoding, kind)`` → ``Prepared``; ``workers=0`` decodes in threads.

    ``workers=None``: one worker per CPU, except that with the compiled decoder protobuf bodies are
    decoded in the server process and the pool is only started by the first large JSON body."""

    def __init__(self, settings: TelemetrySettings, workers: int | None = None, *,
                 inline_max_bytes: int = INLINE_MAX_BYTES):
        self.settings = settings
        self.protobuf_in_process = workers is None and fastpath.enabled()
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.inline_max_bytes = inline_max_bytes
        self.normalizer = Normalizer(settings)
        self.pending_bytes = 0
        self.restarts = 0
        self._executor: ProcessPoolExecutor | None = None

    def start(self) -> "DecodePool":
        if self.workers > 0 and self._executor is None and not self.protobuf_in_process:
            self._executor = self._new_executor()
        return self

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for operations and tests)."""
        procs = getattr(self._executor, "_processes", None) or {}
        return [p.pid for p in list(procs.values()) if p.is_alive()]

    async def prepare(self, body: bytes, encoding: str | None, kind: str) -> Prepared:
        limit = self.settings.max_decompressed_bytes
        if len(body) <= self.inline_max_bytes and not compressed(encoding):
            return prepare(self.normalizer, body, encoding, kind, limit)
        # bodies waiting for a decode thread or worker are bounded in bytes, in either mode
        if self.pending_bytes and self.pending_bytes + len(body) > self.settings.decode_queue_max_bytes:
            raise Backpressure(f"decode queue full ({self.pending_bytes} bytes waiting)")
        self.pending_bytes += len(body)
        try:
            if self.workers == 0 or (kind == otlp.PROTOBUF and self.protobuf_in_process):
                return await asyncio.to_thread(prepare, self.normalizer, body, encoding, kind, limit)
            if self._executor is None:  # the first large JSON body next to the compiled protobuf decoder
                self._executor = self._new_executor()
            try:
                return await self._in_worker(body, encoding, kind, limit)
            except BrokenProcessPool:
                log.warning("a decode worker died; retrying its request on a fresh pool")
            try:
                return await self._in_worker(body, encoding, kind, limit)
            except BrokenProcessPool:
                raise WorkerCrashed("a decode worker died twice while decoding this body") from None
        finally:
            self.pending_bytes -= len(body)

    async def _in_worker(self, body: bytes, encoding: str | None, kind: str, limit: int) -> Prepared:
        executor = self._executor
        try:
            return await asyncio.wrap_future(executor.submit(_prepare_in_worker, body, encoding, kind, limit))
        except BrokenProcessPool:
            self._replace(executor)
            raise

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Swap in a fresh pool, once per broken pool however many requests noticed."""
        if self._executor is not broken:
            return
        self.restarts += 1
        self._executor = self._new_executor()
        broken.shutdown(wait=False, cancel_futures=True)

    def _new_executor(self) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["sluice.server.decode_pool"])
        return ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(self.settings.model_dump_json(),))
