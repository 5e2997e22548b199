"""Live health of deployments for the dashboard: per arm (route), per cohort, and over time.

Every query is bounded by a time window on ``start_ns`` (DuckDB skips the row groups outside it
through their zone maps; PostgreSQL uses the ``(deployment, start_ns)`` index), reads request
spans only, and groups into a bounded number of buckets (``WINDOWS``), so the cost follows the
window asked for, not the size of the store. Three statements per view: span aggregates, then
evaluation results and feedback joined with ``ui_trace_dims`` (``sluice.web.trace_dims``: the
dimensions of just the traces that have either), never with the span table itself. Callers
bring that table up to date first (``TraceDims.before_page``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sluice.errors import ConfigError

# name -> (seconds, bucket seconds): at most 168 buckets per series
WINDOWS: dict[str, tuple[int, int]] = {"1h": (3600, 60), "6h": (21_600, 300), "24h": (86_400, 900),
                                       "7d": (604_800, 3600)}
NEGATIVE_FEEDBACK = ("thumbs_down", "escalation", "refund", "manual_override")
NS = 1_000_000_000


@dataclass(frozen=True)
class Window:
    name: str
    since_ns: int
    until_ns: int
    bucket_s: int

    @property
    def buckets(self) -> list[int]:
        """Bucket starts (Unix seconds) covering the window, oldest first."""
        step = self.bucket_s * NS
        first = self.since_ns - self.since_ns % step
        return [b // NS for b in range(first, self.until_ns, step)]


def window(name: str | None, now_ns: int | None = None) -> Window:
    name = name or "1h"
    if name not in WINDOWS:
        raise ConfigError(f"unknown window '{name}': choose {', '.join(WINDOWS)}")
    seconds, bucket = WINDOWS[name]
    until = now_ns if now_ns is not None else time.time_ns()
    return Window(name, until - seconds * NS, until, bucket)


def arm_table(store: Any, win: Window, dims: tuple[str, ...], *, deployment: str | None = None,
              cohort: str | None = None) -> dict[tuple, dict[str, Any]]:
    """Totals over the window per ``dims`` (a subset of deployment, route, cohort, release)."""
    return _aggregate(store, win, [dims], deployment, cohort)[dims]


def arm_series(store: Any, win: Window, deployment: str, cohort: str | None = None) -> dict[str, Any]:
    """Per-route series aligned on the window's buckets, ready for the charts:
    ``{"x": [unix s], "routes": {route: {"requests": [...], "error_rate": [...], "p99_ms": [...],
    "eval_fail_rate": [...]}}}`` with None where a bucket has no data."""
    return _series(win, _aggregate(store, win, [("route", "bucket")], deployment, cohort)[("route", "bucket")])


def deployment_health(store: Any, win: Window, deployment: str, cohort: str | None = None) -> tuple[dict, dict, dict]:
    """What a deployment's page shows, from one pass per statement (``GROUPING SETS``): totals per
    route (for ``cohort`` when given), per route × cohort (every cohort), and the per-route series."""
    if cohort is None:
        got = _aggregate(store, win, [("route",), ("route", "cohort"), ("route", "bucket")], deployment, None)
        return got[("route",)], got[("route", "cohort")], _series(win, got[("route", "bucket")])
    got = _aggregate(store, win, [("route", "cohort"), ("route", "cohort", "bucket")], deployment, None)
    by_cohort = got[("route", "cohort")]
    by_route = {(r,): g for (r, c), g in by_cohort.items() if c == cohort}
    series = {(r, b): g for (r, c, b), g in got[("route", "cohort", "bucket")].items() if c == cohort}
    return by_route, by_cohort, _series(win, series)


def _series(win: Window, groups: dict[tuple, dict[str, Any]]) -> dict[str, Any]:
    xs = win.buckets
    index = {x: i for i, x in enumerate(xs)}
    routes: dict[str, dict[str, list]] = {}
    for (route, bucket), g in sorted(groups.items()):
        i = index.get(bucket // NS)
        if i is None:
            continue
        series = routes.setdefault(route, {k: [None] * len(xs) for k in SERIES})
        for k in SERIES:
            series[k][i] = g[k]
    return {"x": xs, "routes": routes}


SERIES = ("requests", "error_rate", "p99_ms", "eval_fail_rate")
ALL_DIMS = ("deployment", "route", "cohort", "release", "bucket")


def _aggregate(store: Any, win: Window, sets: list[tuple[str, ...]], deployment: str | None,
               cohort: str | None) -> dict[tuple[str, ...], dict[tuple, dict[str, Any]]]:
    """Aggregates per grouping set: ``{set: {key: figures}}``. Every dimension is NOT NULL in the
    tables read, so a NULL in a result row marks a dimension its grouping set leaves out."""
    db = store.db
    pg = db.dialect.name == "postgres"
    dims = [d for d in ALL_DIMS if any(d in st for st in sets)]
    where = ["s.start_ns >= ?", "s.start_ns < ?"]
    params: list[Any] = [win.since_ns, win.until_ns]
    if deployment is not None:
        where.append("s.deployment = ?")
        params.append(deployment)
    if cohort is not None:
        where.append("s.cohort = ?")
        params.append(cohort)
    inner = ", ".join("(s.start_ns - s.start_ns % ?) AS bucket" if d == "bucket" else f"s.{d}" for d in dims)
    head_params: list[Any] = [win.bucket_s * NS] if "bucket" in dims else []
    cond = " AND ".join(where)
    outer = ", ".join(dims)
    grouping = "GROUPING SETS (" + ", ".join("(" + ", ".join(st) + ")" for st in sets) + ")"
    quantiles = ("percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY duration_ms)" if pg
                 else "quantile_cont(duration_ms, [0.5, 0.99])")
    n = len(dims)
    out: dict[tuple[str, ...], dict[tuple, dict[str, Any]]] = {st: {} for st in sets}

    def place(row: tuple) -> dict[str, Any] | None:
        present = tuple(d for d, v in zip(dims, row[:n]) if v is not None)
        for st in sets:
            if set(st) == set(present):
                return out[st].setdefault(tuple(row[dims.index(d)] for d in st), {})
        return None

    for r in db.query(f"""
            WITH x AS (SELECT {inner}, s.status, s.fallback_used, s.duration_ms FROM spans s
                       WHERE s.is_request AND {cond})
            SELECT {outer}, count(*), count(*) FILTER (WHERE status = 'ERROR'),
                   count(*) FILTER (WHERE fallback_used), {quantiles}
            FROM x GROUP BY {grouping}""", head_params + params):
        g = place(r)
        if g is None:
            continue
        requests, errors, fallbacks, lat = r[n:]
        lat = list(lat or (None, None))
        g.update({"requests": requests, "errors": errors, "error_rate": _rate(errors, requests),
                  "fallback_rate": _rate(fallbacks, requests), "p50_ms": lat[0], "p99_ms": lat[1],
                  "evaluations": 0, "eval_fail_rate": None, "negative_feedback": 0,
                  "negative_feedback_rate": _rate(0, requests), "positive_feedback": 0,
                  "positive_feedback_rate": _rate(0, requests)})
    if not any(out.values()):
        return out
    for r in db.query(f"""
            WITH x AS (SELECT {inner}, e.passed FROM span_evals e JOIN ui_trace_dims s ON s.trace_id = e.trace_id
                       WHERE {cond} AND e.passed IS NOT NULL)
            SELECT {outer}, count(*), count(*) FILTER (WHERE NOT passed) FROM x GROUP BY {grouping}""",
                      head_params + params):
        g = place(r)
        if g and "requests" in g:
            g["evaluations"] = r[n]
            g["eval_fail_rate"] = _rate(r[n + 1], r[n])
    negative = ", ".join(f"'{k}'" for k in NEGATIVE_FEEDBACK)
    for r in db.query(f"""
            WITH x AS (SELECT {inner}, s.trace_id, f.kind
                       FROM (SELECT DISTINCT trace_id, kind FROM feedback) f
                       JOIN ui_trace_dims s ON s.trace_id = f.trace_id WHERE {cond})
            SELECT {outer}, count(DISTINCT trace_id) FILTER (WHERE kind IN ({negative})),
                   count(DISTINCT trace_id) FILTER (WHERE kind = 'thumbs_up') FROM x GROUP BY {grouping}""",
                      head_params + params):
        g = place(r)
        if g and "requests" in g:
            g["negative_feedback"], g["positive_feedback"] = r[n], r[n + 1]
            g["negative_feedback_rate"] = _rate(r[n], g["requests"])
            g["positive_feedback_rate"] = _rate(r[n + 1], g["requests"])
    for st in sets:  # groups seen only by the joins (no request in the window) are not shown
        out[st] = {k: g for k, g in out[st].items() if "requests" in g}
    return out


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None
