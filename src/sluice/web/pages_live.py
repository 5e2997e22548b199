"""Live pages: deployments (what serves whom, health per arm and cohort over time) and traces."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from sluice.errors import ConfigError, NotFoundError, SluiceError
from sluice.gateway import deployment_store
from sluice.telemetry.timespec import parse_instant_ns
from sluice.telemetry.traces import get_trace
from sluice.web import health
from sluice.web.redact import redact
from sluice.web.views import Page, register, trace_dims

ROUTE_ORDER = ("stable", "canary", "shadow", "fallback", "cache")
TRACE_LIMIT = 100
FILTERS = ("deployment", "release", "route", "cohort", "status")


def _route_key(route: str) -> tuple[int, str]:
    return (ROUTE_ORDER.index(route) if route in ROUTE_ORDER else len(ROUTE_ORDER), route)


def _color(route: str) -> int:
    return ROUTE_ORDER.index(route) if route in ROUTE_ORDER else len(ROUTE_ORDER)


def _digest(store: Any, ref: str) -> str | None:
    """The digest a stored deployment's release reference names (paths are never resolved here)."""
    from sluice.release.registry import resolve_release

    if "/" in ref or ref.endswith((".yaml", ".yml")):
        return None
    try:
        return resolve_release(store, ref).digest
    except SluiceError:
        return None


def _config_view(store: Any, dep: Any) -> dict[str, str | None]:
    refs = {"stable": dep.stable}
    if dep.canary:
        refs["canary"] = dep.canary.release
    if dep.shadow:
        refs["shadow"] = dep.shadow.release
    return {route: _digest(store, ref) for route, ref in refs.items()}


def _until(request: Request) -> int | None:
    """``?until=``: look back from that time instead of now (ISO-8601, Unix seconds, or a duration ago)."""
    text = request.query_params.get("until")
    if not text:
        return None
    try:
        return parse_instant_ns(text, "until")
    except ConfigError as e:
        raise Page(400, "Bad time", str(e), request.url.path) from None


def deployments(request: Request, store: Any):
    trace_dims(request)
    win = health.window("1h", _until(request))
    _, stored = deployment_store.load(store)
    table = health.arm_table(store, win, ("deployment", "route"))
    names = sorted(set(stored) | {d for d, _ in table})
    out = []
    for name in names:
        dep, version, updated = stored.get(name, (None, None, None))
        arms = sorted(((r, g) for (d, r), g in table.items() if d == name), key=lambda x: _route_key(x[0]))
        out.append({"name": name, "config": dep, "version": version, "updated_at": updated, "health": arms,
                    "releases": _config_view(store, dep) if dep else {}})
    return "deployments.html", {"title": "Deployments", "deployments": out, "win": win}


def deployment(request: Request, store: Any):
    name = request.path_params["name"]
    q = request.query_params
    win = health.window(q.get("window"), _until(request))
    cohort = q.get("cohort") or None
    trace_dims(request)
    _, stored = deployment_store.load(store)
    config = stored[name][0] if name in stored else None
    by_route, by_cohort, series = health.deployment_health(store, win, name, cohort)
    if config is None and not by_cohort and not store.db.query_one(
            "SELECT 1 FROM spans WHERE deployment = ? LIMIT 1", [name]):
        raise NotFoundError(f"no deployment '{name}': it is not configured and no span names it")
    return "deployment.html", {
        "title": f"Deployment {name}", "name": name, "until": q.get("until") or "", "config": config, "win": win, "cohort": cohort,
        "windows": list(health.WINDOWS), "cohorts": sorted({c for _, c in by_cohort}),
        "by_route": sorted(((r, g) for (r,), g in by_route.items()), key=lambda x: _route_key(x[0])),
        "by_cohort": sorted(by_cohort.items(), key=lambda x: (_route_key(x[0][0]), x[0][1])),
        "charts": _charts(series, win),
    }


def _charts(series: dict[str, Any], win: health.Window) -> dict[str, dict[str, Any]]:
    routes = sorted(series["routes"].items(), key=lambda x: _route_key(x[0]))
    bucket = f"{win.bucket_s // 60} min" if win.bucket_s < 3600 else f"{win.bucket_s // 3600} h"

    def spec(title: str, unit: str, axis: str, metric: str) -> dict[str, Any]:
        return {"title": title, "unit": unit, "axis": axis, "x": series["x"],
                "series": [{"label": r, "color": _color(r), "values": s[metric]} for r, s in routes]}

    return {
        "latency": spec("p99 latency by arm", "ms", "p99 latency (ms)", "p99_ms"),
        "errors": spec("Error rate by arm", "%", "error rate (%)", "error_rate"),
        "evals": spec("Evaluator fail rate by arm", "%", "evaluator fail rate (%)", "eval_fail_rate"),
        "requests": spec(f"Requests per {bucket}", "", f"requests per {bucket}", "requests"),
    }


def traces(request: Request, store: Any):
    q = request.query_params
    jump = (q.get("trace_id") or "").strip().lower()
    if jump:
        from starlette.responses import RedirectResponse

        return RedirectResponse(f"/ui/traces/{jump}", 303)
    filters = {k: q.get(k) for k in FILTERS if q.get(k)}
    since_text, until_text = q.get("since") or "24h", q.get("until") or ""
    try:
        since = parse_instant_ns(since_text, "since")
        until = parse_instant_ns(until_text, "until") if until_text else None
    except ConfigError as e:
        raise Page(400, "Bad search", str(e), "/ui/traces") from None
    where, params = ["is_request", "start_ns >= ?"], [since]
    if until is not None:
        where.append("start_ns < ?")
        params.append(until)
    for k, v in filters.items():
        where.append(f"{k} = ?")
        params.append(v.upper() if k == "status" else v)
    rows = store.db.query(
        "SELECT trace_id, start_ns, name, deployment, release, route, cohort, status, duration_ms, model "
        f"FROM spans WHERE {' AND '.join(where)} ORDER BY start_ns DESC LIMIT {TRACE_LIMIT}", params)
    keys = ("trace_id", "start_ns", "name", "deployment", "release", "route", "cohort", "status", "duration_ms",
            "model")
    return "traces.html", {"title": "Traces", "rows": [dict(zip(keys, r)) for r in rows], "filters": filters,
                           "since": since_text, "until": until_text, "limit": TRACE_LIMIT, "fields": FILTERS}


def trace(request: Request, store: Any):
    trace_id = request.path_params["trace_id"].strip().lower()
    if len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id):
        raise Page(404, "No such trace", f"'{trace_id[:80]}' is not a trace id (32 hexadecimal characters)",
                   "/ui/traces")
    found = get_trace_near(store, trace_id, request.query_params.get("t"))
    if not found["spans"] and not found["feedback"]:
        raise Page(404, "No such trace", f"no trace '{trace_id}' is stored (it may not have arrived yet, or it "
                   "was sampled out)", "/ui/traces")
    spans = [dict(s, attributes=redact(s["attributes"])) for s in found["spans"]]
    evals: dict[str | None, list[dict[str, Any]]] = {}
    for e in found["evaluations"]:
        evals.setdefault(e["span_id"], []).append(e)
    feedback = [dict(f, value=redact(f["value"])) for f in found["feedback"]]
    return "trace.html", {"title": f"Trace {trace_id[:12]}", "trace_id": trace_id, "tree": span_tree(spans),
                          "evals": evals, "feedback": feedback, "span_count": len(spans)}


def get_trace_near(store: Any, trace_id: str, hint: str | None) -> dict[str, Any]:
    """``get_trace`` near ``hint`` (a span's ``start_ns``, which the search results pass along);
    telemetry/traces.py bounds the read by time so a recent trace does not cost a full scan."""
    return get_trace(store, trace_id, int(hint) if hint and hint.isdigit() else None)


def span_tree(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nest spans under their parents (``children``), in start order; orphans become roots.
    Each span gets ``depth`` and ``offset_ms`` (from the trace's first span) for the timeline."""
    ids = {s["span_id"] for s in spans}
    start = min((s["start_ns"] for s in spans), default=0)
    total = max((s["start_ns"] - start) / 1e6 + s["duration_ms"] for s in spans) if spans else 0.0
    nodes = {s["span_id"]: dict(s, children=[], offset_ms=(s["start_ns"] - start) / 1e6,
                                total_ms=total or 1.0) for s in spans}
    roots = []
    for s in sorted(spans, key=lambda s: (s["start_ns"], s["span_id"])):
        node = nodes[s["span_id"]]
        parent = s["parent_id"]
        if parent and parent in ids and parent != s["span_id"]:
            nodes[parent]["children"].append(node)
        else:
            roots.append(node)
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        seen.add(node["span_id"])
        stack.extend(node["children"])
    # a parent cycle (a bad exporter) leaves spans unreachable: show them as roots rather than drop them
    roots += [nodes[s["span_id"]] for s in spans if s["span_id"] not in seen and not seen.add(s["span_id"])]
    return roots


def mount(router: APIRouter) -> None:
    register(router, "/ui/deployments", deployments)
    register(router, "/ui/deployments/{name}", deployment)
    register(router, "/ui/traces", traces)
    register(router, "/ui/traces/{trace_id}", trace)
