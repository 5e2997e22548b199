"""``GET /api/drift/{deployment}`` and ``GET /api/alerts`` (admin keys)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse

from sluice.errors import NotFoundError, SluiceError
from sluice.server.security import READ_SCOPES, denied

router = APIRouter()


@router.get("/api/drift/{deployment}", summary="Live inputs of a deployment against its gated dataset")
async def drift(request: Request, deployment: str, dataset: str | None = None,
                since: str = Query("7d", description="a duration: live inputs since that long ago"),
                max_live: int = Query(500, ge=1, le=5000)) -> JSONResponse:
    if (refusal := denied(request, READ_SCOPES)) is not None:
        return refusal
    from sluice.monitor.drift_data import drift_report

    try:
        report = await asyncio.to_thread(drift_report, request.app.state.store, deployment, dataset=dataset,
                                         since=since, max_live=max_live)
    except NotFoundError as e:
        return JSONResponse({"error": str(e)}, 404)
    except SluiceError as e:
        return JSONResponse({"error": str(e)}, 400)
    return JSONResponse(report)


@router.get("/api/alerts", summary="Open alerts, then those resolved recently")
async def alerts(request: Request, deployment: str | None = None,
                 status: str = Query("all", pattern="^(open|all)$", description="open, or all (open + recent)"),
                 recent: str = Query("7d", description="resolved alerts this long ago are listed")) -> JSONResponse:
    if (refusal := denied(request, READ_SCOPES)) is not None:
        return refusal
    from sluice.monitor.alerts import list_alerts
    from sluice.telemetry.timespec import parse_duration

    try:
        recent_s = parse_duration(recent, "recent")
    except SluiceError as e:
        return JSONResponse({"error": str(e)}, 400)
    found = await asyncio.to_thread(list_alerts, request.app.state.store, recent_s=recent_s,
                                    include_resolved=status == "all", deployment=deployment)
    return JSONResponse({"alerts": [a.as_dict() for a in found]})
