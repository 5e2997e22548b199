"""The ASGI app of ``sluice serve``: OTLP ingest, feedback, read APIs, health and OpenAPI.

``create_app`` takes an open store and returns a FastAPI app whose lifespan starts and drains the
``SpanWriter`` and the ``DecodePool`` (OTLP decode workers). Other parts (gateway, rollout, dashboard) add their routers through ``routers``
and reach the shared writer as ``app.state.writer``; a router's ``fast_paths`` ((method, path) ->
raw ASGI handler) are dispatched before FastAPI's layers (``SluiceApp``). Unexpected errors become a JSON 500 with no
traceback; request validation problems become a 400 naming the parameter.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Any, Iterable

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import JSONResponse

from sluice import __version__
from sluice.auth.keys import KeyRing
from sluice.server import api, ingest, keys_api
from sluice.server.decode_pool import DecodePool
from sluice.server.ingest_metrics import IngestCounters
from sluice.server.security import ANY_SCOPE, AuthFailed, authorize
from sluice.telemetry import schema  # noqa: F401 - registers the span tables
from sluice.telemetry.config import TelemetrySettings
from sluice.telemetry.normalize import Normalizer
from sluice.telemetry.writer import SpanWriter

log = logging.getLogger("sluice.server")


def create_app(store: Any, telemetry: TelemetrySettings | None = None, *,
               routers: Iterable[APIRouter] = (), writer: SpanWriter | None = None) -> FastAPI:
    settings = telemetry or TelemetrySettings()
    own_writer = writer is None
    if writer is None:
        writer = SpanWriter(store, Normalizer(settings), batch_max_spans=settings.batch_max_spans,
                            queue_max_spans=settings.queue_max_spans)

    decode_pool = DecodePool(settings, settings.ingest_workers)
    keyring = KeyRing(store)  # a snapshot of the key table, refreshed in its own thread

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if own_writer:
            writer.start()
        decode_pool.start()
        keyring.start()
        try:
            yield
        finally:
            await asyncio.to_thread(keyring.stop)
            await asyncio.to_thread(decode_pool.close)
            if own_writer:
                await asyncio.to_thread(writer.close)
            await asyncio.to_thread(_checkpoint, store)

    app = SluiceApp(title="Sluice", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                    openapi_url=None,
                    description="OTLP trace ingest, feedback and production metrics of Sluice releases.")
    app.state.store = store
    app.state.telemetry = settings
    app.state.writer = writer
    app.state.decode_pool = decode_pool
    app.state.keyring = keyring
    app.state.ingest_counters = IngestCounters()
    app.include_router(ingest.router)
    app.include_router(api.router)
    app.include_router(keys_api.router)
    for r in routers:
        app.include_router(r)
        app.fast_paths.update(getattr(r, "fast_paths", None) or {})
        app.early_refusals.update(getattr(r, "early_refusals", None) or {})

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        """The OpenAPI document; any valid key once keys exist (it maps every endpoint)."""
        try:
            authorize(request, ANY_SCOPE)
        except AuthFailed as e:
            return JSONResponse({"error": e.message}, e.status)
        return JSONResponse(app.openapi())

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="The store answers and the span writer runs")
    async def readyz() -> JSONResponse:
        try:
            await asyncio.to_thread(store.db.query_one, "SELECT 1")
        except Exception as e:  # noqa: BLE001 - readiness reports any store failure
            return JSONResponse({"status": "unavailable", "reason": f"store: {type(e).__name__}"}, 503)
        thread = getattr(writer, "_thread", None)
        if thread is None or not thread.is_alive():
            return JSONResponse({"status": "unavailable", "reason": "span writer not running"}, 503)
        return JSONResponse({"status": "ready", "queued_spans": writer.queued_spans})

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in err.get("loc", ())) or "request"
        return JSONResponse({"error": f"{where}: {err.get('msg', 'invalid')}"}, 400)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(_internal_error_body(exc), 500)

    return app


def _checkpoint(store: Any) -> None:
    """Fold DuckDB's write-ahead log into the database file at shutdown: ``sluice serve`` exits
    without closing the store, and a clean SIGTERM left tens of MB of WAL to replay at the next
    start. PostgreSQL needs nothing."""
    if getattr(getattr(store.db, "dialect", None), "name", None) != "duckdb":
        return
    try:
        store.db.execute("CHECKPOINT")
    except Exception:  # noqa: BLE001 - shutdown goes on; the WAL is replayed at the next start
        log.warning("DuckDB checkpoint at shutdown failed", exc_info=True)


class SluiceApp(FastAPI):
    """FastAPI plus ``fast_paths``: raw ASGI handlers for exact (method, path) pairs, answered
    before any of FastAPI's layers (its per-request telemetry check, the exception middleware,
    route matching). These are the gateway's per-request endpoints, where those layers cost more
    CPU than the handler's own work. A router offers them as ``router.fast_paths``; the same
    handlers stay mounted as ordinary routes (OpenAPI, ``HEAD``/405 behaviour of the rest).
    An unexpected exception in a fast path still becomes the JSON 500 (no traceback to the client)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fast_paths: dict[tuple[str, str], Any] = {}
        # (method, path) as bytes -> hook(keep_alive) -> a whole 503 response or None: asked by the
        # HTTP protocol before the request exists (``sluice.server.http_limits``)
        self.early_refusals: dict[tuple[bytes, bytes], Any] = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            handler = self.fast_paths.get((scope["method"], scope["path"]))
            if handler is not None:
                scope["app"] = self  # what Starlette sets: handlers reach ``app.state`` through it
                try:
                    await handler(scope, receive, send)
                except Exception as exc:  # noqa: BLE001 - the same answer as the exception middleware's
                    log.exception("unhandled error on %s %s", scope["method"], scope["path"])
                    await _internal_error(send, exc)
                return
        await super().__call__(scope, receive, send)


def _internal_error_body(exc: Exception) -> dict[str, str]:
    """What a client learns of an unexpected error: its type, never the message or a traceback."""
    return {"error": f"internal error ({type(exc).__name__})"}


async def _internal_error(send, exc: Exception) -> None:
    body = orjson.dumps(_internal_error_body(exc))
    try:
        await send({"type": "http.response.start", "status": 500,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    except Exception:  # the response had started: the server closes the connection instead
        raise exc from None
    await send({"type": "http.response.body", "body": body})
