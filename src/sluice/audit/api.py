"""``GET /api/audit/log``, ``GET /api/audit/verify``, ``GET /api/audit/{trace_id}`` (admin keys)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse

from sluice.audit.log import list_audit, verify_chain
from sluice.errors import SluiceError
from sluice.server.security import READ_SCOPES, denied
from sluice.telemetry.timespec import parse_instant_ns

router = APIRouter()


@router.get("/api/audit/log", summary="The append-only log of changes, oldest first")
async def audit_log(
    request: Request,
    since: str | None = Query(None, description="ISO-8601, Unix seconds, or a duration ago (1h)"),
    deployment: str | None = None,
    action: str | None = Query(None, description="action prefix, e.g. 'deployment.' or 'gate.run'"),
    limit: int = Query(1000, ge=1, le=10_000),
) -> JSONResponse:
    if (refusal := denied(request, READ_SCOPES)) is not None:
        return refusal
    try:
        since_s = parse_instant_ns(since, "since") / 1e9 if since else None
    except SluiceError as e:
        return JSONResponse({"error": str(e)}, 400)
    entries = await asyncio.to_thread(list_audit, request.app.state.store, since=since_s, deployment=deployment,
                                      action_prefix=action, limit=limit)
    return JSONResponse({"entries": [e.as_dict() for e in entries]})


@router.get("/api/audit/verify", summary="Recompute the audit log's hash chain")
async def audit_verify(request: Request) -> JSONResponse:
    if (refusal := denied(request, READ_SCOPES)) is not None:
        return refusal
    check = await asyncio.to_thread(verify_chain, request.app.state.store)
    return JSONResponse({"ok": check.ok, "entries": check.entries, "bad_seq": check.bad_seq, "reason": check.reason})


@router.get("/api/audit/{trace_id}", summary="Which release, configured how and approved by whom, answered a trace")
async def audit_trace_endpoint(request: Request, trace_id: str) -> JSONResponse:
    if (refusal := denied(request, READ_SCOPES)) is not None:
        return refusal
    from sluice.audit.trace import audit_trace

    report = await asyncio.to_thread(audit_trace, request.app.state.store, trace_id)
    return JSONResponse(report, 200 if report["found"] else 404)
