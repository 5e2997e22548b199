"""Following the store's deployments: a replica reloads when another one (or the admin API)
changes them, so every replica routes by the same table without a restart.

The store is only read in worker threads; the swap itself is one assignment on the gateway.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sluice.gateway import deployment_store

log = logging.getLogger("sluice.gateway")


def reload(gw: Any) -> bool:
    """Read the store's deployments and swap them in; runs in a worker thread. False: unchanged."""
    version, stored = deployment_store.load(gw.store)
    if version == gw.version:
        return False
    fresh = {}
    for name, (dep, v, _) in stored.items():
        current = gw.deployments.get(name)
        fresh[name] = current if current is not None and current.version == v else \
            gw.resolver.deployment(name, dep, v)
    gw.set_deployments(fresh, version)
    return True


async def poll(gw: Any) -> None:
    """Every ``reload_interval_s``: compare the store's version, reload when it moved."""
    interval = gw.settings.reload_interval_s
    while True:
        await asyncio.sleep(interval)
        try:
            if await asyncio.to_thread(deployment_store.version, gw.store) != gw.version:
                await asyncio.to_thread(gw.reload)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - keep serving the deployments we have
            log.warning("gateway: reloading deployments failed", exc_info=True)


def shared(store: Any) -> bool:
    """Whether other processes may change the deployments: not for DuckDB, whose file one
    process holds (its writes go through this gateway's admin API, which reloads at once), so
    polling it would only cost a query every ``reload_interval_s``."""
    if store is None:
        return False
    dialect = getattr(getattr(getattr(store, "db", None), "dialect", None), "name", None)
    return dialect != "duckdb"
