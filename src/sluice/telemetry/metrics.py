"""Production metrics by deployment × release × route × cohort × time window.

A *request* is a span with ``is_request`` set: a trace's root span, or a span marked
``sluice.request=true`` (the gateway's span, which may have a client parent). Latency, error,
fallback and cache rates are over requests; tokens and cost are summed over the LLM and
embedding spans of the group and divided by its requests (so a trace that calls three models
costs the sum of the three); time to first token is over spans that carry one. Evaluator fail
rates and feedback rates join evaluation results and feedback to the request spans by trace id,
so feedback that arrived before its trace counts as soon as the trace does.

One scan of the span table per call with conditional aggregates, plus two small joins; exact
quantiles on both backends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sluice.errors import ConfigError

DIMENSIONS = ("deployment", "release", "route", "cohort")
FEEDBACK_KINDS = ("thumbs_down", "thumbs_up", "escalation", "refund", "manual_override")
QUANTILES = (0.5, 0.95, 0.99)


@dataclass
class MetricsQuery:
    deployment: str | None = None
    release: str | tuple[str, ...] | None = None  # a tuple: any of these (release_refs.traced_values)
    route: str | None = None
    cohort: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    window_s: int | None = None  # None: one bucket over the whole range
    group_by: tuple[str, ...] = DIMENSIONS
    filters: dict[str, Any] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        bad = [g for g in self.group_by if g not in DIMENSIONS]
        if bad:
            raise ConfigError(f"cannot group by {', '.join(bad)}: choose from {', '.join(DIMENSIONS)}")
        if self.window_s is not None and self.window_s <= 0:
            raise ConfigError("the window must be a positive number of seconds")
        self.filters = {d: getattr(self, d) for d in DIMENSIONS if getattr(self, d) is not None}


def compute_metrics(store: Any, q: MetricsQuery) -> list[dict[str, Any]]:
    """One dict per group, ordered by the group keys and window."""
    db = store.db
    keys, key_params = _group_exprs(q, "")
    where, params = _where(q, "")
    pg = db.dialect.name == "postgres"
    sql = f"""
        SELECT {keys}
          count(*) FILTER (WHERE is_request),
          count(*) FILTER (WHERE is_request AND status = 'ERROR'),
          count(*) FILTER (WHERE is_request AND fallback_used),
          count(*) FILTER (WHERE is_request AND cache_hit),
          {_quantiles('duration_ms', 'is_request', pg)},
          {_quantiles('ttft_ms', 'ttft_ms IS NOT NULL', pg)},
          {_model_sum('input_tokens', db.dialect.float)},
          {_model_sum('output_tokens', db.dialect.float)},
          {_model_sum('total_tokens', db.dialect.float)},
          {_model_sum('cost', db.dialect.float)}
        FROM spans {where} {_group_clause(q, order=True)}"""
    n = len(q.group_by) + (1 if q.window_s else 0)
    groups: dict[tuple, dict[str, Any]] = {}
    for r in db.query(sql, key_params + params):
        key = tuple(r[:n])
        (requests, errors, fallbacks, hits, lat, ttft, tin, tout, ttot, cost) = r[n:]
        groups[key] = _row(q, key, requests, errors, fallbacks, hits, lat, ttft, tin, tout, ttot, cost)
    if groups:
        _add_evals(db, q, groups)
        _add_feedback(db, q, groups)
    return list(groups.values())


def _row(q: MetricsQuery, key: tuple, requests: int, errors: int, fallbacks: int, hits: int, lat, ttft,
         tin, tout, ttot, cost) -> dict[str, Any]:
    row: dict[str, Any] = dict(zip(q.group_by, key))
    if q.window_s:
        row["window_start"] = _iso(key[-1])
    lat, ttft = list(lat or [None] * 3), list(ttft or [None] * 3)
    row.update({
        "requests": requests,
        "error_rate": _rate(errors, requests),
        "fallback_rate": _rate(fallbacks, requests),
        "cache_hit_rate": _rate(hits, requests),
        "latency_p50_ms": lat[0], "latency_p95_ms": lat[1], "latency_p99_ms": lat[2],
        "ttft_p50_ms": ttft[0], "ttft_p95_ms": ttft[1], "ttft_p99_ms": ttft[2],
        "input_tokens_per_request": _rate(tin or 0, requests),
        "output_tokens_per_request": _rate(tout or 0, requests),
        "tokens_per_request": _rate(ttot or 0, requests),
        "cost_per_request": _rate(cost or 0.0, requests),
        "evaluations": 0,
        "eval_fail_rate": None,
    })
    for kind in FEEDBACK_KINDS:
        row[f"{kind}_rate"] = _rate(0, requests)
    return row


def _add_evals(db, q: MetricsQuery, groups: dict[tuple, dict[str, Any]]) -> None:
    keys, key_params = _group_exprs(q, "s.")
    where, params = _where(q, "s.", extra="s.is_request AND e.passed IS NOT NULL")
    sql = f"""
        SELECT {keys} count(*), count(*) FILTER (WHERE NOT e.passed)
        FROM span_evals e JOIN spans s ON s.trace_id = e.trace_id {where} {_group_clause(q)}"""
    n = len(q.group_by) + (1 if q.window_s else 0)
    for r in db.query(sql, key_params + params):
        row = groups.get(tuple(r[:n]))
        if row is not None:
            row["evaluations"] = r[n]
            row["eval_fail_rate"] = _rate(r[n + 1], r[n])


def _add_feedback(db, q: MetricsQuery, groups: dict[tuple, dict[str, Any]]) -> None:
    keys, key_params = _group_exprs(q, "s.")
    where, params = _where(q, "s.", extra="s.is_request")
    sql = f"""
        SELECT {keys} f.kind, count(DISTINCT f.trace_id)
        FROM (SELECT DISTINCT trace_id, kind FROM feedback) f JOIN spans s ON s.trace_id = f.trace_id {where}
        GROUP BY {_positions(q, 1)}"""
    n = len(q.group_by) + (1 if q.window_s else 0)
    for r in db.query(sql, key_params + params):
        row = groups.get(tuple(r[:n]))
        if row is not None and r[n] in FEEDBACK_KINDS:
            row[f"{r[n]}_rate"] = _rate(r[n + 1], row["requests"])


def _group_exprs(q: MetricsQuery, alias: str) -> tuple[str, list[Any]]:
    exprs = [alias + d for d in q.group_by]
    params: list[Any] = []
    if q.window_s:
        exprs.append(f"({alias}start_ns - {alias}start_ns % ?)")
        params.append(q.window_s * 1_000_000_000)
    return "".join(e + ", " for e in exprs), params


def _positions(q: MetricsQuery, extra: int = 0) -> str:
    n = len(q.group_by) + (1 if q.window_s else 0) + extra
    return ", ".join(str(i + 1) for i in range(n))


def _group_clause(q: MetricsQuery, order: bool = False) -> str:
    pos = _positions(q)
    if not pos:
        return ""
    return f"GROUP BY {pos}" + (f" ORDER BY {pos}" if order else "")


def _where(q: MetricsQuery, alias: str, extra: str | None = None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for dim, value in q.filters.items():
        if isinstance(value, tuple):
            clauses.append(f"{alias}{dim} IN ({', '.join('?' for _ in value)})")
            params.extend(value)
        else:
            clauses.append(f"{alias}{dim} = ?")
            params.append(value)
    if q.since_ns is not None:
        clauses.append(f"{alias}start_ns >= ?")
        params.append(q.since_ns)
    if q.until_ns is not None:
        clauses.append(f"{alias}start_ns < ?")
        params.append(q.until_ns)
    if extra:
        clauses.append(extra)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _quantiles(column: str, condition: str, pg: bool) -> str:
    qs = ", ".join(str(x) for x in QUANTILES)
    if pg:
        return f"percentile_cont(ARRAY[{qs}]) WITHIN GROUP (ORDER BY {column}) FILTER (WHERE {condition})"
    return f"quantile_cont({column}, [{qs}]) FILTER (WHERE {condition})"


def _model_sum(column: str, float_type: str) -> str:
    """Summed over LLM and embedding spans; cast because PostgreSQL sums BIGINT into NUMERIC."""
    return f"CAST(sum({column}) FILTER (WHERE kind IN ('LLM', 'EMBEDDING')) AS {float_type})"


def _rate(part: float, whole: int) -> float | None:
    return part / whole if whole else None


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat().replace("+00:00", "Z")
