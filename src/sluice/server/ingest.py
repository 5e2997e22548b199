"""``POST /v1/traces`` (and traceAI's ``/tracer/v1/traces``) and ``POST /api/feedback``.

OTLP replies follow the specification: the body is an ``ExportTraceServiceResponse`` in the
request's own encoding; malformed input is a 400 carrying a ``google.rpc.Status`` with the
reason; a full queue is a 503 with ``Retry-After`` (retryable); spans with bad ids are dropped
and reported as ``partial_success``. A 200 is sent only after the writer has committed the
request's spans. Decoding and normalising happen in ``app.state.decode_pool`` (worker processes
for large bodies); a worker that dies twice on one body is a 503 as well.
"""

from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from sluice.server.decode_pool import WorkerCrashed
from sluice.server.security import INGEST_SCOPES, AuthFailed, authorize
from sluice.telemetry import otlp
from sluice.telemetry.feedback import Feedback, record_feedback
from sluice.telemetry.writer import Backpressure, WriterClosed

router = APIRouter()
FEEDBACK_MAX_BYTES = 64 * 1024
_OTLP_DOC = {
    "requestBody": {"required": True, "content": {
        "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {"type": "object", "description": "OTLP/JSON ExportTraceServiceRequest"}},
    }},
    "responses": {"200": {"description": "committed (possibly with partial_success)"},
                  "400": {"description": "malformed body"}, "401": {"description": "no or bad key"},
                  "413": {"description": "body too large"}, "415": {"description": "unsupported content type"},
                  "503": {"description": "ingest queue full, retry after Retry-After"}},
}


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/v1/traces", openapi_extra=_OTLP_DOC, summary="OTLP/HTTP trace export")
async def traces(request: Request) -> Response:
    return await _export(request)


@router.post("/tracer/v1/traces", openapi_extra=_OTLP_DOC, summary="OTLP/HTTP trace export (traceAI path)")
async def traceai_traces(request: Request) -> Response:
    return await _export(request)


async def _export(request: Request) -> Response:
    counters = request.app.state.ingest_counters
    response = await _export_counted(request, counters)
    counters.requests[_OUTCOME.get(response.status_code, "unavailable")] += 1
    return response


_OUTCOME = {200: "ok", 400: "bad_request", 413: "too_large", 415: "unsupported_media_type", 401: "unauthorized",
            403: "unauthorized"}


async def _export_counted(request: Request, counters) -> Response:
    kind = otlp.media_type(request.headers.get("content-type"))
    reply = kind or otlp.JSON
    settings = request.app.state.telemetry

    def status(code: int, grpc_code: int, message: str, headers: dict | None = None) -> Response:
        return Response(otlp.status_body(reply, grpc_code, message), code, headers=headers, media_type=reply)

    try:
        authorize(request, INGEST_SCOPES)
    except AuthFailed as e:
        return status(e.status, 16 if e.status == 401 else 7, e.message)
    if kind is None:
        return status(415, 3, f"unsupported Content-Type '{request.headers.get('content-type', '')}': "
                              "use application/x-protobuf or application/json")
    writer = request.app.state.writer
    if writer.full:  # refuse before spending a worker on a body that could not be queued
        return status(503, 14, f"ingest queue full ({writer.queued_spans} spans waiting)", {"Retry-After": "1"})
    try:
        raw = await read_body(request, settings.max_body_bytes)
        prepared = await request.app.state.decode_pool.prepare(raw, request.headers.get("content-encoding"), kind)
    except (BodyTooLarge, otlp.TooLarge):
        return status(413, 8, f"body exceeds the limit ({settings.max_body_bytes} bytes as sent, "
                              f"{settings.max_decompressed_bytes} decompressed)")
    except otlp.OtlpError as e:
        return status(400, 3, str(e))
    except Backpressure as e:
        return status(503, 14, str(e), {"Retry-After": "1"})
    except WorkerCrashed as e:
        return status(503, 14, str(e), {"Retry-After": "1"})
    if prepared.batch.count:
        try:
            ticket = writer.submit_batch(prepared.batch, loop=asyncio.get_running_loop())
        except Backpressure as e:
            counters.spans_dropped += prepared.batch.count
            return status(503, 14, str(e), {"Retry-After": "1"})
        except WriterClosed as e:
            counters.spans_dropped += prepared.batch.count
            return status(503, 14, str(e), {"Retry-After": "5"})
        try:
            await ticket.wait_async()
        except Exception as e:  # noqa: BLE001 - the store failed; the client may retry
            counters.spans_dropped += prepared.batch.count
            return status(503, 14, f"spans not committed: {type(e).__name__}", {"Retry-After": "1"})
        counters.spans_received += prepared.batch.count
    counters.spans_rejected += prepared.rejected
    message = "; ".join(prepared.reasons)
    return Response(otlp.success_body(reply, prepared.rejected, message), 200, media_type=reply)


@router.post("/api/feedback", summary="Record user feedback for a trace",
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": Feedback.model_json_schema()}}}})
async def feedback(request: Request) -> Response:
    try:
        authorize(request, INGEST_SCOPES)
    except AuthFailed as e:
        return JSONResponse({"error": e.message}, e.status)
    try:
        raw = await read_body(request, FEEDBACK_MAX_BYTES)
    except BodyTooLarge:
        return JSONResponse({"error": f"body exceeds {FEEDBACK_MAX_BYTES} bytes"}, 413)
    try:
        fb = Feedback.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError as e:
        return JSONResponse({"error": f"body is not valid JSON: {e}"}, 400)
    except ValidationError as e:
        return JSONResponse({"error": validation_message(e)}, 400)
    store = request.app.state.store
    fid = await asyncio.to_thread(record_feedback, store, fb)
    seen = await asyncio.to_thread(store.db.query_one, "SELECT 1 FROM spans WHERE trace_id = ? LIMIT 1", [fb.trace_id])
    return JSONResponse({"id": fid, "trace_id": fb.trace_id, "kind": fb.kind, "trace_seen": seen is not None})


def validation_message(e: ValidationError) -> str:
    """The first pydantic error as one line: ``field 'kind': Input should be ...``."""
    err = e.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "body"
    return f"field '{where}': {err.get('msg', 'invalid')}"
