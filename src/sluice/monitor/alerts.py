"""Alerts as stored: one row per (monitor, cohort) episode, open until its metric recovers.

The row is the de-duplication: while it is open a firing monitor sends nothing new until the
re-notify interval passes; it is closed (``resolved``) when the metric is back within its limit,
never for lack of data. Rows are shared by every replica; only the evaluating one writes them.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sluice.store.migrations import migration

migration(
    "1201_alerts",
    """
    CREATE TABLE alerts (
        id TEXT PRIMARY KEY,
        monitor TEXT NOT NULL,
        cohort TEXT NOT NULL,
        deployment TEXT NOT NULL,
        metric TEXT NOT NULL,
        status TEXT NOT NULL,
        value {float},
        limit_value {float},
        requests INTEGER NOT NULL,
        reason TEXT NOT NULL,
        opened_at {float} NOT NULL,
        resolved_at {float},
        checked_at {float} NOT NULL,
        notified_at {float},
        notifications INTEGER NOT NULL,
        last_error TEXT
    );
    """,
)

_COLS = ("id, monitor, cohort, deployment, metric, status, value, limit_value, requests, reason, opened_at, "
         "resolved_at, checked_at, notified_at, notifications, last_error")


@dataclass
class Alert:
    id: str
    monitor: str
    cohort: str
    deployment: str
    metric: str
    status: str  # open | resolved
    value: float | None
    limit_value: float | None
    requests: int
    reason: str
    opened_at: float
    resolved_at: float | None = None
    checked_at: float = 0.0
    notified_at: float | None = None
    notifications: int = 0
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def open_alerts(store: Any, monitor: str) -> dict[str, Alert]:
    rows = store.db.query(f"SELECT {_COLS} FROM alerts WHERE monitor = ? AND status = 'open'", [monitor])
    return {r[2]: Alert(*r) for r in rows}


def create(store: Any, alert: Alert) -> Alert:
    alert.id = alert.id or f"alert-{uuid.uuid4().hex[:12]}"
    store.db.execute(f"INSERT INTO alerts ({_COLS}) VALUES ({', '.join('?' for _ in range(16))})",
                     list(asdict(alert).values()))
    return alert


def save(store: Any, alert: Alert) -> None:
    store.db.execute(
        "UPDATE alerts SET status = ?, value = ?, limit_value = ?, requests = ?, reason = ?, resolved_at = ?, "
        "checked_at = ?, notified_at = ?, notifications = ?, last_error = ? WHERE id = ?",
        [alert.status, alert.value, alert.limit_value, alert.requests, alert.reason, alert.resolved_at,
         alert.checked_at, alert.notified_at, alert.notifications, alert.last_error, alert.id])


def list_alerts(store: Any, *, recent_s: float = 7 * 86400.0, include_resolved: bool = True,
                deployment: str | None = None, now: float | None = None) -> list[Alert]:
    """Open alerts, then those resolved within ``recent_s``, newest first."""
    now = time.time() if now is None else now
    where, params = ["(status = 'open'" + (" OR resolved_at >= ?)" if include_resolved else ")")], []
    if include_resolved:
        params.append(now - recent_s)
    if deployment:
        where.append("deployment = ?")
        params.append(deployment)
    rows = store.db.query(f"SELECT {_COLS} FROM alerts WHERE {' AND '.join(where)} "
                          "ORDER BY status = 'open' DESC, opened_at DESC LIMIT 1000", params)
    return [Alert(*r) for r in rows]
