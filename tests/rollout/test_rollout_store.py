"""The rollout tables on both backends: rows round-trip, the event log appends, the lease is exclusive."""

from __future__ import annotations

from sluice.rollout import store as rs


def _rollout(deployment="support") -> rs.Rollout:
    return rs.Rollout(id=rs.new_id(), deployment=deployment, status="running", candidate_ref="bot@1.1",
                      candidate_digest="sha256:c", stable_ref="bot@1.0", stable_digest="sha256:s",
                      plan={"steps": [{"weight": {"bp": 100}}]}, step_started_at=5.0,
                      state={"window_ns": 7}, analysis={"e": [1.5, 2]})


def test_rollout_round_trip_and_open_for(store):
    ro = _rollout()
    rs.insert(store, ro)
    got = rs.get(store, ro.id)
    assert got.state == {"window_ns": 7} and got.analysis == {"e": [1.5, 2]} and got.status == "running"
    got.status, got.step_index, got.last_decision = "held", 2, {"action": "hold"}
    rs.save(store, got)
    again = rs.get(store, ro.id)
    assert (again.status, again.step_index, again.last_decision) == ("held", 2, {"action": "hold"})
    assert rs.open_for(store, "support").id == ro.id
    again.status = "promoted"
    rs.save(store, again)
    assert rs.open_for(store, "support") is None
    assert [r.id for r in rs.list_rollouts(store, deployment="support")] == [ro.id]


def test_event_log_is_ordered_and_paged(store):
    ro = _rollout()
    rs.insert(store, ro)
    a = rs.append_event(store, ro.id, "alice", "start", "started", {"weight_bp": 100})
    b = rs.append_event(store, ro.id, "controller", "decision", "advance", {"n": 3})
    assert b > a
    evs = rs.events(store, ro.id)
    assert [(e["actor"], e["kind"]) for e in evs] == [("alice", "start"), ("controller", "decision")]
    assert evs[0]["figures"] == {"weight_bp": 100}
    assert [e["seq"] for e in rs.events(store, ro.id, after=a)] == [b]


def test_lease_is_exclusive_until_it_expires(store):
    assert rs.acquire_lease(store, "rollouts", "A", 10, now=100.0)
    assert not rs.acquire_lease(store, "rollouts", "B", 10, now=105.0)
    assert rs.acquire_lease(store, "rollouts", "A", 10, now=105.0)  # renewal
    assert not rs.acquire_lease(store, "rollouts", "B", 10, now=114.0)
    assert rs.acquire_lease(store, "rollouts", "B", 10, now=116.0)  # A stopped renewing: takeover
    assert rs.lease_holder(store, "rollouts")[0] == "B"
    assert not rs.acquire_lease(store, "rollouts", "A", 10, now=117.0)
    rs.release_lease(store, "rollouts", "B")
    assert rs.acquire_lease(store, "rollouts", "A", 10, now=118.0)
