"""Monitors kept in the store, beside those of ``sluice.yaml``: how another part of Sluice (the
rollout controller, when it promotes a release) adds the watch that should follow it.

``save_monitor`` validates like ``sluice.yaml`` does, records the change in the audit log, and
replaces a stored monitor of the same name; the server picks it up at its next evaluation. A
monitor in ``sluice.yaml`` wins over a stored one of the same name.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from sluice.audit.log import append_audit, local_actor
from sluice.monitor.config import Monitor
from sluice.store.migrations import migration

migration(
    "1202_monitors",
    """
    CREATE TABLE monitors (
        name TEXT PRIMARY KEY,
        spec {json} NOT NULL,
        source TEXT NOT NULL,
        created_at {float} NOT NULL
    );
    """,
)


def save_monitor(store: Any, monitor: Monitor | dict[str, Any], *, source: str = "api",
                 actor: str | None = None) -> Monitor:
    """Store (or replace) a monitor; ``source`` says where it came from, e.g. ``rollout:<id>``.
    Blocking: call it from a worker thread on the serving paths."""
    m = monitor if isinstance(monitor, Monitor) else Monitor.model_validate(monitor)
    spec = m.model_dump(mode="json", exclude_none=True)
    with store.db.transaction():
        row = store.db.query_one("SELECT spec FROM monitors WHERE name = ?", [m.name])
        store.db.execute("DELETE FROM monitors WHERE name = ?", [m.name])
        store.db.execute("INSERT INTO monitors (name, spec, source, created_at) VALUES (?, ?, ?, ?)",
                         [m.name, orjson.dumps(spec).decode(), source, time.time()])
        before = orjson.loads(row[0]) if row else None
        if before != spec:
            append_audit(store, actor or local_actor(), "monitor.changed" if row else "monitor.created", m.name,
                         before, spec | {"source": source}, deployment=m.deployment)
    return m


def stored_monitors(store: Any) -> list[Monitor]:
    """Every stored monitor that still validates (one that does not is skipped, never fatal)."""
    out = []
    for name, spec in store.db.query("SELECT name, spec FROM monitors ORDER BY name"):
        try:
            out.append(Monitor.model_validate(orjson.loads(spec)))
        except ValueError:
            continue
    return out


# rollout metric -> monitor metric; the rest (ttft, tokens) have no monitor
_FROM_ROLLOUT = {"error_rate": "error_rate", "fallback_rate": "fallback_rate",
                 "guardrail_block_rate": "guardrail_block_rate", "latency_p95": "latency_p95_ms",
                 "latency_p99": "latency_p99_ms", "cost_per_request": "cost_per_request"}


def monitors_from_plan(deployment: str, plan: dict[str, Any], window: str = "15m",
                       baseline_window: str = "24h") -> list[Monitor]:
    """The watch a promoted rollout leaves behind: one monitor per analysis rule, per cohort,
    against the promoted release's own previous ``baseline_window`` with the rule's margin
    (``× (1 + margin)`` plus one point for rates when relative, ``+ margin`` when absolute). Pure."""
    out: dict[str, Monitor] = {}
    for rule in ((plan.get("analysis") or {}).get("metrics") or []):
        name = str(rule.get("metric", ""))
        metric = _FROM_ROLLOUT.get(name)
        if name.startswith("eval_fail_rate:"):
            metric = "eval_fail_rate"  # monitors judge every evaluator's results together
        elif name.startswith("feedback_rate:"):
            metric = name.split(":", 1)[1] + "_rate"
        if metric is None:
            continue
        margin = float(rule.get("margin", 0.0))
        relative = bool(rule.get("relative", True))
        # relative rates also need an absolute step: against a baseline of 0 errors any error would fire
        floor = 0.01 if metric.endswith("_rate") else 0.0
        baseline = {"window": baseline_window, "factor": 1.0 + margin if relative else 1.0,
                    "min_delta": floor if relative else margin}
        out[metric] = Monitor(name=f"{deployment}:{metric}", deployment=deployment, cohort="*", metric=metric,
                              window=window, baseline=baseline, min_requests=min(int(rule.get("min_samples", 50)), 200),
                              notify=["*"])
    return list(out.values())


def save_promotion_monitors(store: Any, rollout_id: str, deployment: str, plan: dict[str, Any],
                            actor: str = "rollout-controller") -> list[Monitor]:
    """Store the monitors of ``monitors_from_plan`` (replacing those of an earlier promotion)."""
    return [save_monitor(store, m, source=f"rollout:{rollout_id}", actor=actor)
            for m in monitors_from_plan(deployment, plan)]
