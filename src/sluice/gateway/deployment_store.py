"""Deployments kept in the store, so every gateway replica applies the same weights.

``sluice.yaml``'s ``gateway.deployments`` is the seed: at start-up an entry that is missing from
the store, or that changed in the file since it was last seeded, is written; otherwise the store's
version (set through ``PUT /api/deployments/{name}``) wins. Every write takes a new value of one
sequence, so ``version()`` — ``max(version)`` over a handful of rows — tells a replica cheaply
whether anything changed; replicas poll it off the request path and reload.

``DELETE /api/deployments/{name}`` leaves a tombstone (config ``null``) with a new version rather
than removing the row: a vanished row could lower ``max(version)`` and other replicas would never
see the change. A deleted deployment stays deleted across restarts until its ``sluice.yaml`` entry
changes (the same rule as for an API change) or a ``PUT`` creates it again.

The table is a store migration (``sluice.gateway.schema``).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from sluice.gateway.config import Deployment

def _json(dep: Deployment) -> str:
    return orjson.dumps(dep.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS).decode()


def _next_version(store: Any) -> int:
    return int(store.db.query_one("SELECT nextval('gateway_deployment_version')")[0])


def seed(store: Any, deployments: dict[str, Deployment]) -> None:
    """Write config entries that are new or changed in the file since they were last seeded."""
    stored = {name: s for name, s in store.db.query("SELECT name, seed FROM gateway_deployments")}
    for name, dep in deployments.items():
        text = _json(dep)
        if name not in stored:
            store.db.execute(
                "INSERT INTO gateway_deployments (name, config, seed, version, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO NOTHING", [name, text, text, _next_version(store), time.time()])
        elif stored[name] != text:
            store.db.execute("UPDATE gateway_deployments SET config = ?, seed = ?, version = ?, updated_at = ? "
                             "WHERE name = ?", [text, text, _next_version(store), time.time(), name])


def put(store: Any, name: str, dep: Deployment) -> int:
    """Create or replace a deployment; returns its new version."""
    version = _next_version(store)
    text = _json(dep)
    store.db.execute(
        "INSERT INTO gateway_deployments (name, config, seed, version, updated_at) VALUES (?, ?, NULL, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET config = excluded.config, version = excluded.version, "
        "updated_at = excluded.updated_at", [name, text, version, time.time()])
    return version


TOMBSTONE = "null"


def delete(store: Any, name: str) -> int | None:
    """Mark a deployment deleted; its new version, or None when there was no such deployment."""
    row = store.db.query_one("SELECT config FROM gateway_deployments WHERE name = ?", [name])
    if row is None or row[0] == TOMBSTONE:
        return None
    version = _next_version(store)
    store.db.execute("UPDATE gateway_deployments SET config = ?, version = ?, updated_at = ? WHERE name = ?",
                     [TOMBSTONE, version, time.time(), name])
    return version


def version(store: Any) -> int:
    row = store.db.query_one("SELECT max(version) FROM gateway_deployments")
    return int(row[0]) if row and row[0] is not None else 0


def load(store: Any) -> tuple[int, dict[str, tuple[Deployment, int, float]]]:
    """(version, name -> (deployment, its version, updated_at)); deleted deployments are left out."""
    rows = store.db.query("SELECT name, config, version, updated_at FROM gateway_deployments ORDER BY name")
    out = {name: (Deployment.model_validate(orjson.loads(cfg)), int(v), float(t))
           for name, cfg, v, t in rows if cfg != TOMBSTONE}
    return max((int(v) for _, _, v, _ in rows), default=0), out
