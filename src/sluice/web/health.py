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
    return _aggregate(store, win, list(dims), deployment, cohort, bucketed=False)


def arm_series(store: Any, win: Window, deployment: str, cohort: str | None = None) -> dict[str, Any]:
    """Per-route series aligned on the window's buckets, ready for the charts:
    ``{"x": [unix s], "routes": {route: {"requests": [...], "error_rate": [...], "p99_ms": [...],
    "eval_fail_rate": [...]}}}`` with None where a bucket has no data."""
    groups = _aggregate(store, win, ["route"], deployment, cohort, bucketed=True)
    xs = win.buckets
    index = {x: i for i, x in enumerate(xs)}
    routes: dict[str, dict[str, list]] = {}
    for (route, bucket), g in sorted(groups.items()):
        i = index.get(bucket // NS)
        if i is None:
            continue
        series = routes.setdefault(route, {k: [None] * len(xs) for k in
                                           ("requests", "error_rate", "p99_ms", "eval_fail_rate")})
        series["requests"][i] = g["requests"]
        series["error_rate"][i] = g["error_rate"]
        series["p99_ms"][i] = g["p99_ms"]
        series["eval_fail_rate"][i] = g["eval_fail_rate"]
    return {"x": xs, "routes": routes}


def _aggregate(store: Any, win: Window, dims: list[str], deployment: str | None, cohort: str | None,
               bucketed: bool) -> dict[tuple, dict[str, Any]]:
    db = store.db
    pg = db.dialect.name == "postgres"
    where = ["s.start_ns >= ?", "s.start_ns < ?"]
    params: list[Any] = [win.since_ns, win.until_ns]
    if deployment is not None:
        where.append("s.deployment = ?")
        params.append(deployment)
    if cohort is not None:
        where.append("s.cohort = ?")
        params.append(cohort)
    keys = [f"s.{d}" for d in dims]
    key_params: list[Any] = []
    if bucketed:
        keys.append("(s.start_ns - s.start_ns % ?)")
        key_params.append(win.bucket_s * NS)
    select = ", ".join(keys)
    group = ", ".join(str(i + 1) for i in range(len(keys)))
    cond = " AND ".join(where)
    quantiles = ("percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY s.duration_ms)" if pg
                 else "quantile_cont(s.duration_ms, [0.5, 0.99])")
    n = len(keys)
    out: dict[tuple, dict[str, Any]] = {}
    for r in db.query(f"""
            SELECT {select}, count(*), count(*) FILTER (WHERE s.status = 'ERROR'),
                   count(*) FILTER (WHERE s.fallback_used), {quantiles}
            FROM spans s WHERE s.is_request AND {cond} GROUP BY {group}""", key_params + params):
        requests, errors, fallbacks, lat = r[n:]
        lat = list(lat or (None, None))
        out[tuple(r[:n])] = {"requests": requests, "errors": errors, "error_rate": _rate(errors, requests),
                             "fallback_rate": _rate(fallbacks, requests), "p50_ms": lat[0], "p99_ms": lat[1],
                             "evaluations": 0, "eval_fail_rate": None, "negative_feedback": 0,
                             "negative_feedback_rate": _rate(0, requests), "positive_feedback": 0,
                             "positive_feedback_rate": _rate(0, requests)}
    if not out:
        return out
    for r in db.query(f"""
            SELECT {select}, count(*), count(*) FILTER (WHERE NOT e.passed)
            FROM span_evals e JOIN ui_trace_dims s ON s.trace_id = e.trace_id
            WHERE {cond} AND e.passed IS NOT NULL GROUP BY {group}""", key_params + params):
        g = out.get(tuple(r[:n]))
        if g is not None:
            g["evaluations"] = r[n]
            g["eval_fail_rate"] = _rate(r[n + 1], r[n])
    negative = ", ".join(f"'{k}'" for k in NEGATIVE_FEEDBACK)
    for r in db.query(f"""
            SELECT {select}, count(DISTINCT s.trace_id) FILTER (WHERE f.kind IN ({negative})),
                   count(DISTINCT s.trace_id) FILTER (WHERE f.kind = 'thumbs_up')
            FROM (SELECT DISTINCT trace_id, kind FROM feedback) f JOIN ui_trace_dims s ON s.trace_id = f.trace_id
            WHERE {cond} GROUP BY {group}""", key_params + params):
        g = out.get(tuple(r[:n]))
        if g is not None:
            g["negative_feedback"], g["positive_feedback"] = r[n], r[n + 1]
            g["negative_feedback_rate"] = _rate(r[n], g["requests"])
            g["positive_feedback_rate"] = _rate(r[n + 1], g["requests"])
    return out


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None
