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
            "steps": [{"weight": {"bp": 1000}}, {"weight": {"bp": 5000}}]}
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
    assert _dep(store).canary.weight_bp == 5000 and rs.get(store, ro.id).step_index == 1
    traffic(store, cand, stable, t0=T0 + 62, seconds=60, per_arm=6000, seed=3)
    [(_, d)] = c.tick(now=T0 + 123)
    assert d.action == "promote", d.reason
    dep = _dep(store)
    assert dep.stable == "bot@2" and dep.canary is None
    got = rs.get(store, ro.id)
    assert got.status == "promoted" and got.stable_ref == "bot@1"  # the rollback target is kept
    assert [e["kind"] for e in rs.events(store, ro.id)] == ["start", "advance", "promote"]


def test_failing_cohort_is_narrowed_away_and_rest_carries_on(store, tmp_path):
    cand, stable = project(store, tmp_path)
    gate(store, cand, stable)
    # harm only beyond 3 points: all traffic together (+2.5 points) is not harmed, the free cohort (+25) is
    metrics = [{"metric": "error_rate", "margin": 0.03, "harm_margin": 0.03, "relative": False, "critical": True,
                "min_samples": 100}]
    ro = _start(store, _plan(cohorts=["free", "enterprise"], allow_narrow=True, analysis={"metrics": metrics}))
    traffic(store, cand, stable, t0=T0, seconds=60, per_arm=3000, cohorts={"free": 0.1, "enterprise": 0.9},
            cohort_err={"free": 0.27, "enterprise": 0.02}, stable_err=0.02, seed=4)
    [(_, d)] = Controller(store, SETTINGS).tick(now=T0 + 61)
    assert d.action == "narrow" and d.cohorts_to_drop == ("free",), d.reason
    dep = _dep(store)
    assert dep.canary.never_cohorts == ["free"] and dep.canary.weight_bp == 1000
    got = rs.get(store, ro.id)
    assert got.status == "running" and got.state["dropped"] == ["free"]
    ev = rs.events(store, ro.id)[-1]
    assert ev["kind"] == "narrow" and "free" in ev["message"]


def test_non_critical_failure_holds_for_a_person(store, tmp_path):
    cand, stable = project(store, tmp_path)
    gate(store, cand, stable)
    plan = _plan(analysis={"metrics": [{"metric": "error_rate", "margin": 0.03, "relative": False,
                                        "min_samples": 100}]})
    ro = _start(store, plan)
    traffic(store, cand, stable, t0=T0, seconds=60, per_arm=2000, canary_err=0.2, seed=5)
    [(_, d)] = Controller(store, SETTINGS).tick(now=T0 + 61)
    assert d.action == "hold", d.reason
    assert rs.get(store, ro.id).status == "held" and _dep(store).canary.weight_bp == 1000  # traffic as it was
    assert Controller(store, SETTINGS).tick(now=T0 + 62) == []  # held: the controller waits for a person
    actions.abort(store, ro.id, "alice", "bad errors")
    assert _dep(store).canary.weight_bp == 0 and rs.get(store, ro.id).status == "aborted"
    assert rs.events(store, ro.id)[-1]["actor"] == "alice"


def test_manual_pause_step_waits_for_resume(store, tmp_path):
    cand, stable = project(store, tmp_path)
    gate(store, cand, stable)
    ro = _start(store, _plan(min_requests=0, steps=[{"pause": {"until": "manual"}}, {"weight": {"bp": 500}}]))
    c = Controller(store, SETTINGS)
    assert c.tick(now=T0 + 1)[0][1].action == "hold"
    assert rs.get(store, ro.id).status == "held"
    actions.resume(store, ro.id, "bob")
    [(_, d)] = c.tick(now=T0 + 2)
    assert d.action == "advance" and _dep(store).canary.weight_bp == 500, d.reason


def test_restart_resumes_mid_step_with_the_same_test(store, tmp_path):
    cand, stable = project(store, tmp_path)
    gate(store, cand, stable)
    ro = _start(store, _plan(min_requests=5000))  # the step cannot end on this much traffic
    traffic(store, cand, stable, t0=T0, seconds=30, per_arm=800, seed=6)
    first = Controller(store, SETTINGS, holder="replica-1")
    assert first.tick(now=T0 + 31)[0][1].action == "continue"
    before = rs.get(store, ro.id)
    assert before.analysis["cells"]["error_rate"]["(all)"]["canary"]["n"] == 800
    assert before.state["window_ns"] == int((T0 + 31) * 1e9) and before.state["canary"] == 800
    # the process dies (its lease lapses); a new one reads the same store and continues the same test
    traffic(store, cand, stable, t0=T0 + 31, seconds=30, per_arm=700, seed=7)
    second = Controller(store, SETTINGS, holder="replica-2")
    assert second.tick(now=T0 + 32) == []  # the first one's lease has not expired yet
    [(_, d)] = second.tick(now=T0 + 31 + SETTINGS.lease_ttl_s + 30)
    after = rs.get(store, ro.id)
    assert d.action == "continue" and after.step_index == 0 and after.status == "running"
    assert after.analysis["cells"]["error_rate"]["(all)"]["canary"]["n"] == 1500  # nothing counted twice or lost
    assert after.state["canary"] == 1500 and after.step_started_at == T0


def test_config_parity_holds_naming_the_field(store, tmp_path):
    cand, stable = project(store, tmp_path, candidate_params={"temperature": 0.2})
    gate(store, cand, stable)
    ro = _start(store, _plan())
    put(store, [app_span(deployment="d", release="bot@2", start_s=T0 + 5,
                         attributes={"gen_ai.request.temperature": 0.9})])
    [(_, d)] = Controller(store, SETTINGS).tick(now=T0 + 10)
    assert d.action == "hold" and "temperature" in d.reason and "0.9" in d.reason
    got = rs.get(store, ro.id)
    assert got.status == "held" and got.last_decision["parity"][0]["field"] == "temperature"


def test_decisions_go_to_the_webhook_outbox(store, tmp_path):
    from sluice.notify import webhook

    cand, stable = project(store, tmp_path)
    gate(store, cand, stable)
    ro = _start(store, _plan(webhook="http://127.0.0.1:1/hook"))
    sent = []
    c = Controller(store, SETTINGS, notify=lambda payload, url: sent.append((url, payload)) or webhook.enqueue(
        store, url, payload))
    traffic(store, cand, stable, t0=T0, seconds=60, per_arm=2000, canary_err=0.2, seed=8)
    c.tick(now=T0 + 61)
    [(url, payload)] = sent
    assert url == "http://127.0.0.1:1/hook" and payload["rollout"] == ro.id and payload["status"] == "rolled_back"
    assert payload["decision"]["action"] == "rollback" and payload["decision"]["findings"]
    assert webhook.pending(store)[0]["status"] == "pending"


def test_gate_enforcement_and_forced_start(store, tmp_path):
    cand, stable = project(store, tmp_path)
    with pytest.raises(actions.GateRequired) as e:
        _start(store, _plan())
    assert "no passing gate of bot@2 against the stable release bot@1" in str(e.value)
    gate(store, cand, stable, "pass", at=1.0)
    gate(store, cand, stable, "fail", at=2.0)  # the newest record decides
    with pytest.raises(actions.GateRequired):
        _start(store, _plan())
    with pytest.raises(Exception) as e:
        _start(store, _plan(), force=True)
    assert "--reason" in str(e.value)
    ro = _start(store, _plan(), force=True, reason="hotfix for incident 42")
    assert ro.forced_reason == "hotfix for incident 42" and ro.gate_id is None
    kinds = [(ev["kind"], ev["actor"]) for ev in rs.events(store, ro.id)]
    assert kinds == [("start", "test"), ("forced_start", "test")]
    with pytest.raises(actions.Conflict):  # one open rollout per deployment
        _start(store, _plan(), force=True, reason="again")


def test_gate_on_the_plans_dataset(store, tmp_path):
    cand, stable = project(store, tmp_path)
    gate(store, cand, stable, dataset="other")
    with pytest.raises(actions.GateRequired):
        _start(store, _plan(dataset="golden"))
    gid = gate(store, cand, stable, dataset="golden", at=3.0)
    assert _start(store, _plan(dataset="golden")).gate_id == gid


def test_put_giving_canary_weight_is_gated_and_forcing_is_logged(store, tmp_path):
    from sluice.gateway.config import Deployment

    cand, stable = project(store, tmp_path)
    dep = Deployment.model_validate({"stable": "bot@1", "canary": {"release": "bot@2", "weight_bp": 500}})
    with pytest.raises(actions.GateRequired):
        actions.check_put(store, "d", dep, force=False, reason=None, actor="key:ops")
    actions.check_put(store, "d", dep, force=True, reason="load test", actor="key:ops")
    [ev] = rs.events(store, "deployment:d")
    assert (ev["kind"], ev["actor"], ev["figures"]["weight_bp"]) == ("forced_weight", "key:ops", 500)
    actions.check_put(store, "d", dep.model_copy(update={"canary": None}), force=False, reason=None, actor="x")
    gate(store, cand, stable)
    actions.check_put(store, "d", dep, force=False, reason=None, actor="key:ops")  # gated: allowed
    assert len(rs.events(store, "deployment:d")) == 1


def test_no_traffic_never_advances_and_holds_at_max_duration(store, tmp_path):
    cand, stable = project(store, tmp_path)
    gate(store, cand, stable)
    ro = _start(store, _plan(max_duration="10m"))
    c = Controller(store, SETTINGS)
    assert c.tick(now=T0 + 300)[0][1].action == "continue"  # idle canary: no data, no advance
    [(_, d)] = c.tick(now=T0 + 601)
    assert d.action == "hold" and "maximum duration" in d.reason
    assert rs.get(store, ro.id).status == "held" and _dep(store).canary.weight_bp == 1000
