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

Every change that alters what is served (a new entry, a changed one, a delete) is recorded in
the audit log in the same transaction, with who made it (``sluice.audit``).

The table is a store migration (``sluice.gateway.schema``).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from sluice.audit.log import append_audit, chain_lock, local_actor
from sluice.gateway.config import Deployment


def _json(dep: Deployment) -> str:
    return orjson.dumps(dep.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS).decode()


def _next_version(store: Any) -> int:
    return int(store.db.query_one("SELECT nextval('gateway_deployment_version')")[0])


CONFIG_ACTOR = "config:sluice.yaml"


def _config_of(text: str | None) -> Any:
    """A stored config as a dict for the audit log (None: absent or deleted)."""
    return None if text is None or text == TOMBSTONE else orjson.loads(text)


def _audit(store: Any, actor: str, name: str, before: str | None, after: str | None) -> None:
    old, new = _config_of(before), _config_of(after)
    if old == new:
        return
    action = "deployment.created" if old is None else "deployment.deleted" if new is None else "deployment.changed"
    append_audit(store, actor, action, name, old, new, deployment=name)


def seed(store: Any, deployments: dict[str, Deployment], actor: str = CONFIG_ACTOR) -> None:
    """Write config entries that are new or changed in the file since they were last seeded."""
    stored = {name: s for name, s in store.db.query("SELECT name, seed FROM gateway_deployments")}
    for name, dep in deployments.items():
        text = _json(dep)
        if name in stored and stored[name] == text:
            continue
        with store.db.transaction():
            chain_lock(store)  # another replica seeding the same file waits here, then sees our row
            row = store.db.query_one("SELECT config, seed FROM gateway_deployments WHERE name = ?", [name])
            if row is None:
                store.db.execute(
                    "INSERT INTO gateway_deployments (name, config, seed, version, updated_at) VALUES (?, ?, ?, ?, ?)",
                    [name, text, text, _next_version(store), time.time()])
            elif row[1] != text:
                store.db.execute("UPDATE gateway_deployments SET config = ?, seed = ?, version = ?, updated_at = ? "
                                 "WHERE name = ?", [text, text, _next_version(store), time.time(), name])
            else:
                continue
            _audit(store, actor, name, row[0] if row else None, text)


def put(store: Any, name: str, dep: Deployment, actor: str | None = None) -> int:
    """Create or replace a deployment; returns its new version. Audited as ``actor`` (default: local user)."""
    text = _json(dep)
    with store.db.transaction():
        chain_lock(store)
        row = store.db.query_one("SELECT config FROM gateway_deployments WHERE name = ?", [name])
        version = _next_version(store)
        store.db.execute(
            "INSERT INTO gateway_deployments (name, config, seed, version, updated_at) VALUES (?, ?, NULL, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET config = excluded.config, version = excluded.version, "
            "updated_at = excluded.updated_at", [name, text, version, time.time()])
        _audit(store, actor or local_actor(), name, row[0] if row else None, text)
    return version


TOMBSTONE = "null"


def delete(store: Any, name: str, actor: str | None = None) -> int | None:
    """Mark a deployment deleted; its new version, or None when there was no such deployment."""
    with store.db.transaction():
        chain_lock(store)
        row = store.db.query_one("SELECT config FROM gateway_deployments WHERE name = ?", [name])
        if row is None or row[0] == TOMBSTONE:
            return None
        version = _next_version(store)
        store.db.execute("UPDATE gateway_deployments SET config = ?, version = ?, updated_at = ? WHERE name = ?",
                         [TOMBSTONE, version, time.time(), name])
        _audit(store, actor or local_actor(), name, row[0], None)
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
