"""Rollout pages: the list, and one rollout — its step
timeline, canary against stable per metric and cohort over time with 95 % confidence bands, the
controller's last findings and its decision log with reasons, and pause / resume / promote /
abort (admin keys, confirmed in the browser, a reason recorded)."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse

from sluice.web import health
from sluice.web.access import ACT_SCOPES
from sluice.web.views import Page, can_act, register, trace_dims

ACTIONS = ("pause", "resume", "promote", "abort")
LIST_LIMIT = 200
Z95 = 1.959964


def rollouts(request: Request, store: Any):
    from sluice.rollout import store as rs

    q = request.query_params
    items = rs.list_rollouts(store, deployment=q.get("deployment") or None)[:LIST_LIMIT]
    return "rollouts.html", {"title": "Rollouts", "rollouts": [r.view() for r in items],
                             "deployment": q.get("deployment") or ""}


def rollout(request: Request, store: Any):
    from sluice.rollout import actions
    from sluice.rollout import store as rs

    ro = actions.get(store, request.path_params["rollout_id"])
    view = ro.view()
    events = rs.events(store, ro.id, limit=2000)
    win = _window(ro, request.query_params.get("window"))
    trace_dims(request)
    groups = health.arm_table(store, win, ("route", "cohort", "bucket"), deployment=ro.deployment)
    return "rollout.html", {
        "title": f"Rollout {ro.id}", "ro": view, "events": list(reversed(events)),
        "timeline": timeline(view["plan"], events, ro.step_index, view["created_at"]),
        "charts": comparison_charts(groups, win), "win": win, "windows": list(health.WINDOWS),
        "findings": (view["last_decision"] or {}).get("findings", []), "can_act": can_act(request),
        "actions": [a for a in ACTIONS if a in allowed(view["status"])],
    }


def allowed(status: str) -> tuple[str, ...]:
    """What a person may do in a state (the controller refuses the rest with a clear message)."""
    return {"running": ("pause", "promote", "abort"), "paused": ("resume", "promote", "abort"),
            "held": ("resume", "promote", "abort"), "narrowed": ("resume", "promote", "abort")}.get(status, ())


def _window(ro: Any, name: str | None) -> health.Window:
    if name:
        return health.window(name)
    age = max(0.0, (ro.finished_at or ro.updated_at or ro.created_at) - ro.created_at)
    chosen = next((w for w, (s, _) in health.WINDOWS.items() if s >= age + 600), "7d")
    until = int((ro.finished_at + 600) * 1e9) if ro.finished_at else None
    return health.window(chosen, until)


def timeline(plan: dict[str, Any], events: list[dict[str, Any]], current: int, created_at: float) -> list[dict]:
    """One row per plan step: what it does, when it started and ended (from the event log)."""
    started = {0: created_at}
    for e in events:
        if e["kind"] == "advance":
            step = (e.get("figures") or {}).get("step")
            nxt = step + 1 if isinstance(step, int) else None
            if nxt is not None:
                started.setdefault(nxt, e["at"])
    rows = []
    for i, step in enumerate(plan.get("steps", [])):
        what = ", ".join(f"{k} {_short(v)}" for k, v in step.items() if v is not None)
        state = "done" if i < current else ("current" if i == current else "to come")
        rows.append({"index": i, "what": what, "started": started.get(i), "state": state})
    return rows


def _short(v: Any) -> str:
    if isinstance(v, dict):
        return " ".join(f"{k}={w}" for k, w in v.items() if w not in (None, [], {}))
    return str(v)


def wilson(k: int, n: int) -> tuple[float | None, float | None]:
    """The 95 % Wilson interval of a rate k/n (None, None without data)."""
    if not n:
        return None, None
    p = k / n
    d = 1 + Z95 ** 2 / n
    centre = (p + Z95 ** 2 / (2 * n)) / d
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) / d
    return max(0.0, centre - half), min(1.0, centre + half)


def comparison_charts(groups: dict[tuple, dict[str, Any]], win: health.Window) -> list[dict[str, Any]]:
    """Per cohort: error rate of canary and stable with their 95 % bands, and p99 latency."""
    xs = win.buckets
    index = {x: i for i, x in enumerate(xs)}
    cohorts = sorted({c for (r, c, _) in groups if r in ("canary", "stable")})
    out = []
    for cohort in cohorts:
        err: dict[str, list] = {}
        lat: dict[str, list] = {}
        for arm in ("stable", "canary"):
            rate, low, high, p99 = ([None] * len(xs) for _ in range(4))
            for (r, c, b), g in groups.items():
                i = index.get(b // health.NS)
                if r != arm or c != cohort or i is None:
                    continue
                rate[i] = g["error_rate"]
                low[i], high[i] = wilson(g["errors"], g["requests"])
                p99[i] = g["p99_ms"]
            err[arm], err[f"{arm} 95% low"], err[f"{arm} 95% high"] = rate, low, high
            lat[arm] = p99
        color = {"stable": 0, "canary": 1}
        out.append({"cohort": cohort, "errors": {
            "title": f"Error rate, cohort {cohort}", "unit": "%", "axis": "error rate (%)", "x": xs,
            "series": [{"label": k, "values": v, "color": color[k.split()[0]], "band": " 95% " in k}
                       for k, v in err.items()]},
            "latency": {"title": f"p99 latency, cohort {cohort}", "unit": "ms", "axis": "p99 latency (ms)", "x": xs,
                        "series": [{"label": k, "values": v, "color": color[k]} for k, v in lat.items()]}})
    return out


def act(request: Request, store: Any):
    from sluice.rollout import actions

    rollout_id, action = request.path_params["rollout_id"], request.path_params["action"]
    if action not in ACTIONS:
        raise Page(404, "Unknown action", f"'{action[:40]}' is not an action: use {', '.join(ACTIONS)}",
                   f"/ui/rollouts/{rollout_id}")
    who = request.state.viewer
    actor = f"key:{who.key.name}" if who.key is not None else "dashboard"
    reason = (request.state.form.get("reason") or "").strip()[:2000] or f"{action} from the dashboard"
    service = getattr(request.app.state, "ui_rollouts", None)  # notifies webhooks, reloads the gateway
    try:
        if service is not None:
            service.act(rollout_id, action, actor, reason)
        else:
            getattr(actions, action)(store, rollout_id, actor, reason)
    except actions.Conflict as e:
        raise Page(409, f"Cannot {action} now", str(e), f"/ui/rollouts/{rollout_id}") from None
    return RedirectResponse(f"/ui/rollouts/{rollout_id}", 303)


def mount(router: APIRouter) -> None:
    register(router, "/ui/rollouts", rollouts)
    register(router, "/ui/rollouts/{rollout_id}", rollout)
    register(router, "/ui/rollouts/{rollout_id}/{action}", act, methods=("POST",), scopes=ACT_SCOPES)
