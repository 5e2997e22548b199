"""One monitor metric over one time window of a deployment's live traffic, per cohort or overall.

The same definitions as ``sluice metrics`` and the rollout analysis (error, fallback and
guardrail-block rates over request spans; latency quantiles of request spans; cost of the LLM
spans per request; evaluator fail rate and feedback rates joined by trace id), with the shadow
route left out: users never see its answers. One scan of the span table per call, plus a join
for evaluator and feedback metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ALL = "*all*"  # the key of a measurement over every cohort


@dataclass(frozen=True)
class Measurement:
    value: float | None
    requests: int


def measure(store: Any, metric: str, deployment: str, since_ns: int, until_ns: int, *, cohort: str | None = None,
            per_cohort: bool = False, release: str | None = None) -> dict[str, Measurement]:
    """cohort (or ``ALL``) -> measurement of ``metric`` over [since, until)."""
    db = store.db
    pg = db.dialect.name == "postgres"
    where = ["s.deployment = ?", "s.route <> 'shadow'", "s.start_ns >= ?", "s.start_ns < ?"]
    params: list[Any] = [deployment, since_ns, until_ns]
    if cohort is not None:
        where.append("s.cohort = ?")
        params.append(cohort)
    if release is not None:
        where.append("s.release = ?")
        params.append(release)
    key = "s.cohort" if per_cohort else f"'{ALL}'"
    sql = f"SELECT {key}, count(*) FILTER (WHERE s.is_request), {_value_sql(metric, pg)} FROM spans s " \
          f"WHERE {' AND '.join(where)} GROUP BY 1"
    rows = db.query(sql, params)
    out = {str(r[0]): Measurement(None if r[2] is None else float(r[2]), int(r[1])) for r in rows}
    if metric == "eval_fail_rate":
        out = _evals(db, key, where, params, out)
    elif metric.endswith("_rate") and metric.removesuffix("_rate") in FEEDBACK:
        out = _feedback(db, key, where, params, metric.removesuffix("_rate"), out)
    return out


FEEDBACK = ("thumbs_down", "thumbs_up", "escalation", "refund", "manual_override")


def _rate(condition: str) -> str:
    return (f"CAST(count(*) FILTER (WHERE s.is_request AND {condition}) AS DOUBLE PRECISION) / "
            "NULLIF(count(*) FILTER (WHERE s.is_request), 0)")


def _value_sql(metric: str, pg: bool) -> str:
    if metric == "error_rate":
        return _rate("s.status = 'ERROR'")
    if metric == "fallback_rate":
        return _rate("s.fallback_used")
    if metric == "guardrail_block_rate":
        attr = "(s.attributes::json ->> 'sluice.guardrail')" if pg else \
            "json_extract_string(s.attributes, '$.\"sluice.guardrail\"')"
        return _rate(f"coalesce({attr}, '') LIKE 'block:%'")
    if metric in ("latency_p95_ms", "latency_p99_ms"):
        q = 0.95 if metric == "latency_p95_ms" else 0.99
        if pg:
            return f"percentile_cont({q}) WITHIN GROUP (ORDER BY s.duration_ms) FILTER (WHERE s.is_request)"
        return f"quantile_cont(s.duration_ms, {q}) FILTER (WHERE s.is_request)"
    if metric == "cost_per_request":
        return ("CAST(sum(s.cost) FILTER (WHERE s.kind IN ('LLM', 'EMBEDDING')) AS DOUBLE PRECISION) / "
                "NULLIF(count(*) FILTER (WHERE s.is_request), 0)")
    return "NULL"  # joined afterwards (evaluations, feedback)


def _evals(db, key: str, where: list[str], params: list[Any], base: dict[str, Measurement]) -> dict[str, Measurement]:
    sql = (f"SELECT {key}, count(*), count(*) FILTER (WHERE NOT e.passed) FROM span_evals e "
           f"JOIN spans s ON s.trace_id = e.trace_id WHERE {' AND '.join(where)} AND s.is_request "
           "AND e.passed IS NOT NULL GROUP BY 1")
    found = {str(r[0]): (int(r[1]), int(r[2])) for r in db.query(sql, params)}
    # the sample is the judged evaluations, not the requests
    return {k: Measurement(found[k][1] / found[k][0] if k in found else None, found.get(k, (0, 0))[0])
            for k in base}


def _feedback(db, key: str, where: list[str], params: list[Any], kind: str,
              base: dict[str, Measurement]) -> dict[str, Measurement]:
    sql = (f"SELECT {key}, count(DISTINCT f.trace_id) FROM feedback f JOIN spans s ON s.trace_id = f.trace_id "
           f"WHERE {' AND '.join(where)} AND s.is_request AND f.kind = ? GROUP BY 1")
    found = {str(r[0]): int(r[1]) for r in db.query(sql, params + [kind])}
    return {k: Measurement(found.get(k, 0) / m.requests if m.requests else None, m.requests) for k, m in base.items()}
