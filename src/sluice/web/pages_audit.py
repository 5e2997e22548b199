"""Audit pages (when ``sluice.audit`` is installed): the change log, and the audit of one trace —
which release answered it, configured how, approved by which gate, under which deployment change
and rollout decisions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse

from sluice.web.redact import redact
from sluice.web.views import Page, register

LOG_LIMIT = 200


def audit(request: Request, store: Any):
    from sluice.audit.log import list_audit

    q = request.query_params
    jump = (q.get("trace_id") or "").strip().lower()
    if jump:
        return RedirectResponse(f"/ui/audit/{jump}", 303)
    deployment = q.get("deployment") or None
    entries = list_audit(store, deployment=deployment, action_prefix=q.get("action") or None, limit=LOG_LIMIT)
    view = [dict(e.as_dict(), before=redact(e.before), after=redact(e.after)) for e in reversed(entries)]
    return "audit.html", {"title": "Audit", "entries": view, "limit": LOG_LIMIT, "deployment": deployment or "",
                          "action": q.get("action") or ""}


def audit_trace(request: Request, store: Any):
    from sluice.audit.trace import audit_trace as build

    trace_id = request.path_params["trace_id"].strip().lower()
    if len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id):
        raise Page(404, "No such trace", f"'{trace_id[:80]}' is not a trace id (32 hexadecimal characters)",
                   "/ui/audit")
    report = build(store, trace_id)
    if not report["found"]:
        raise Page(404, "No such trace", f"no trace '{trace_id}' is stored, so there is nothing to audit",
                   "/ui/audit")
    return "audit_trace.html", {"title": f"Audit {trace_id[:12]}", "r": redact(report)}


def mount(router: APIRouter) -> None:
    register(router, "/ui/audit", audit)
    register(router, "/ui/audit/{trace_id}", audit_trace)
