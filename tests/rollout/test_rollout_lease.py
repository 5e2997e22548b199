"""Two controllers on one PostgreSQL database (two connections, as two `sluice serve` replicas have):
exactly one acts on a rollout; when it stops renewing, the other takes over and continues the same test."""

from __future__ import annotations

import pytest

from rollout_setup import gate, project, traffic
from sluice.rollout import actions
from sluice.rollout import store as rs
from sluice.rollout.controller import Controller, initial_state
from sluice.rollout.plan import plan_from_json
from sluice.rollout.settings import RolloutSettings
from sluice.store import open_store

pytestmark = pytest.mark.postgres
SETTINGS = RolloutSettings(interval_s=1, settle_s=0, lease_ttl_s=10)
T0 = 5_000.0


def test_exactly_one_replica_acts_and_takeover(pg_store, pg_database_url, tmp_path):
    cand, stable = project(pg_store, tmp_path)
    gate(pg_store, cand, stable)
    plan = plan_from_json({"deployment": "d", "candidate": "bot@2", "min_requests": 10_000,
                           "analysis": {"metrics": [{"metric": "error_rate", "margin": 0.03, "relative": False}]},
                           "steps": [{"weight": {"bp": 1000}}]})
    ro = actions.start(pg_store, plan, actor="test", initial_state=initial_state, now=T0)
    other = open_store(pg_database_url)
    try:
        a = Controller(pg_store, SETTINGS, holder="replica-a")
        b = Controller(other, SETTINGS, holder="replica-b")
        acted = []
        for k in range(6):  # both look every second; only the lease holder acts
            now = T0 + 1 + k
            traffic(pg_store, cand, stable, t0=now - 1, seconds=1, per_arm=50, seed=k)
            for name, c in (("a", a), ("b", b)) if k % 2 else (("b", b), ("a", a)):
                if c.tick(now=now):
                    acted.append(name)
        assert len(acted) == 6 and len(set(acted)) == 1  # one look per round, always by the same replica
        holder = rs.lease_holder(pg_store, "rollouts")[0]
        survivor = b if holder == "replica-a" else a
        # the holder dies: no more renewals; the survivor takes over once the lease has expired
        assert survivor.tick(now=T0 + 7) == []
        later = T0 + 6 + SETTINGS.lease_ttl_s + 1
        assert [d.action for _, d in survivor.tick(now=later)] == ["continue"]
        assert rs.lease_holder(pg_store, "rollouts")[0] == survivor.holder
        cell = rs.get(pg_store, ro.id).analysis["cells"]["error_rate"]["(all)"]
        assert cell["canary"]["n"] == 300  # every window counted once, whoever looked
    finally:
        other.close()


def test_two_servers_one_controller_and_takeover_on_shutdown(pg_store, pg_database_url, tmp_path):
    """Two real servers (their own store connections, controllers looking every 0.1 s): while the first
    holds the lease the second never looks; when the first shuts down (releasing the lease), the second
    takes over. Waits are bounded polls of state, never timing assertions."""
    import time

    from sluice.rollout.api import RolloutService, make_router
    from sluice.server.app import create_app
    from sluice.server.runner import running

    project(pg_store, tmp_path)
    settings = RolloutSettings(interval_s=0.1, settle_s=0, lease_ttl_s=30)
    stores = [open_store(pg_database_url), open_store(pg_database_url)]
    services = [RolloutService(s, settings) for s in stores]

    def until(cond) -> bool:
        for _ in range(600):  # at most ~60 s on a loaded machine
            if cond():
                return True
            time.sleep(0.1)
        return False

    first = running(create_app(stores[0], routers=[make_router(services[0])]))
    try:
        first.__enter__()
        assert until(lambda: services[0].controller.looks > 0)  # the first server takes the lease
        with running(create_app(stores[1], routers=[make_router(services[1])])):
            seen = services[0].controller.looks
            assert until(lambda: services[0].controller.looks >= seen + 10)
            assert services[1].controller.looks == 0  # the second server runs but does not act
            first.__exit__(None, None, None)  # the first one shuts down (its lease is released)
            first = None
            assert until(lambda: services[1].controller.looks > 0)  # takeover
            assert rs.lease_holder(pg_store, "rollouts")[0] == services[1].controller.holder
    finally:
        if first is not None:
            first.__exit__(None, None, None)
        for s in stores:
            s.close()
