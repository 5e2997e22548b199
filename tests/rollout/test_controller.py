"""The controller end to end over a real store and the real analysis: each decision applied to the
deployment, narrowing, manual pauses, restart resume, config parity, decisions to the webhook outbox.
Time is passed in (``tick(now=...)``): nothing here waits on a clock."""

from __future__ import annotations

import pytest

from rollout_setup import gate, project, traffic
from rollout_spans import app_span, put
from sluice.gateway import deployment_store
from sluice.rollout import actions
from sluice.rollout import store as rs
from sluice.rollout.controller import Controller, initial_state
from sluice.rollout.plan import plan_from_json
from sluice.rollout.settings import RolloutSettings

SETTINGS = RolloutSettings(interval_s=1, settle_s=0, lease_ttl_s=5)
T0 = 1_000.0


def _plan(**over):
    base = {"deployment": "d", "candidate": "bot@2", "min_requests": 100,
            "analysis": {"metrics": [{"metric": "error_rate", "margin": 0.03, "relative": False, "critical": True,
                                      "min_samples": 100}]},
            "steps": [{"weight": {"bp": 1000}}, {"weight": {"bp": 10000}}]}
    base.update(over)
    return plan_from_json(base)


def _start(store, plan, **kw) -> rs.Rollout:
    return actions.start(store, plan, actor="test", initial_state=initial_state, now=T0, **kw)


def _dep(store):
    return deployment_store.load(store)[1]["d"][0]


def test_critical_regression_rolls_back_whole_canary(store, tmp_path):
    cand, stable = project(store, tmp_path)
    gate(store, cand, stable)
    ro = _start(store, _plan())
    assert _dep(store).canary.weight_bp == 1000
    traffic(store, cand, stable, t0=T0, seconds=60, per_arm=2000, canary_err=0.2, stable_err=0.02)
    [(rid, d)] = Controller(store, SETTINGS).tick(now=T0 + 61)
    assert rid == ro.id and d.action == "rollback", d.reason
    dep = _dep(store)
    assert dep.canary.weight_bp == 0 and dep.shadow is None and dep.stable == "bot@1"
    got = rs.get(store, ro.id)
    assert got.status == "rolled_back" and got.finished_at == T0 + 61
    ev = rs.events(store, ro.id)[-1]
    assert ev["kind"] == "rollback" and ev["actor"] == "controller"
    f = next(f for f in ev["figures"]["findings"] if f["cohort"] == "(all)")
    assert f["metric"] == "error_rate" and f["outcome"] == "fail" and f["canary"] > 0.15 and f["stable"] < 0.05
    assert f["canary_samples"] == 2000 and f["rule"]
    assert Controller(store, SETTINGS).tick(now=T0 + 62) == []  # finished: nothing more to do


def test_healthy_canary_advances_then_promotes(store, tmp_path):
    cand, stable = project(store, tmp_path)
    gate(store, cand, stable)
    ro = _start(store, _plan())
    c = Controller(store, SETTINGS)
    assert c.tick(now=T0 + 1)[0][1].action == "continue"  # no data: no advance
    traffic(store, cand, stable, t0=T0 + 1, seconds=60, per_arm=6000, seed=2)
    [(_, d)] = c.tick(now=T0 + 62)
    assert d.action == "advance", d.reason
    assert _dep(store).canary.weight_bp == 10000 and rs.get(store, ro.id).step_index == 1
    traffic(store, cand, stable, t0=T0 + 62, seconds=60, per_arm=6000, seed=3)
    [(_, d)] = c.tick(now=T0 + 123)
    assert d.action == "promote", d.reason
    dep = _dep(store)
    assert dep.stable == "bot@2" and dep.canary is None
    got = rs.get(store, ro.id)
    assert got.status == "promoted" and got.stable_ref == "bot@1"  # the rollback target is kept
    assert [e["kind"] for e in rs.events(store, ro.id)] == ["start", "advance", "promote"]
