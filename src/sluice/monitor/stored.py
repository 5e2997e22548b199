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
