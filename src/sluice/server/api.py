"""Read APIs of the telemetry part (admin scope): ``GET /api/metrics``, ``GET /api/traces/{id}``."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse

from sluice.errors import SluiceError
from sluice.server.security import READ_SCOPES, AuthFailed, authorize
from sluice.telemetry.metrics import DIMENSIONS, MetricsQuery, compute_metrics
from sluice.telemetry.release_refs import traced_values
from sluice.telemetry.timespec import parse_duration, parse_instant_ns
from sluice.telemetry.traces import get_trace

router = APIRouter()


@router.get("/api/metrics", summary="Metrics by deployment × release × route × cohort × window")
async def metrics(
    request: Request,
    deployment: str | None = None,
    release: str | None = Query(None, description="name@version, name, a short or full sha256: digest, or as traced"),
    route: str | None = None,
    cohort: str | None = None,
    since: str | None = Query(None, description="ISO-8601, Unix seconds, or a duration ago (1h)"),
    until: str | None = Query(None, description="ISO-8601, Unix seconds, or a duration ago"),
    window: str | None = Query(None, description="bucket width, e.g. 5m; omit for one bucket"),
    group_by: str = Query(",".join(DIMENSIONS), description="comma-separated subset of " + ", ".join(DIMENSIONS)),
) -> JSONResponse:
    try:
        authorize(request, READ_SCOPES)
    except AuthFailed as e:
        return JSONResponse({"error": e.message}, e.status)
    try:
        releases = await asyncio.to_thread(traced_values, request.app.state.store, release) if release else None
        q = MetricsQuery(
            deployment=deployment, release=releases, route=route, cohort=cohort,
            since_ns=parse_instant_ns(since, "since") if since else None,
            until_ns=parse_instant_ns(until, "until") if until else None,
            window_s=int(parse_duration(window, "window")) if window else None,
            group_by=tuple(g.strip() for g in group_by.split(",") if g.strip()),
        )
    except SluiceError as e:
        return JSONResponse({"error": str(e)}, 400)
    rows = await asyncio.to_thread(compute_metrics, request.app.state.store, q)
    return JSONResponse({"groups": rows})


@router.get("/api/traces/{trace_id}", summary="One trace: spans, evaluation results, feedback")
async def trace(request: Request, trace_id: str) -> JSONResponse:
    try:
        authorize(request, READ_SCOPES)
    except AuthFailed as e:
        return JSONResponse({"error": e.message}, e.status)
    found = await asyncio.to_thread(get_trace, request.app.state.store, trace_id)
    if not found["spans"] and not found["feedback"]:
        return JSONResponse({"error": f"no trace '{trace_id}'"}, 404)
    return JSONResponse(found)
