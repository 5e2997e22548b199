"""Webhooks to a real local HTTP receiver: signed, retried with backoff from the outbox, given up on."""

from __future__ import annotations

import orjson

from rollout_receiver import receiver
from sluice.notify import webhook


def test_signed_delivery_with_retry(store, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    with receiver([500]) as (url, rec):
        mid = webhook.enqueue(store, url, {"type": "rollout.decision", "action": "rollback"}, "HOOK_SECRET", now=100.0)
        assert webhook.deliver_due(store, now=100.0, backoff_base_s=10) == 0  # receiver said 500
        [row] = webhook.pending(store)
        assert (row["status"], row["attempts"], row["next_at"], row["last_error"]) == ("pending", 1, 110.0, "HTTP 500")
        assert webhook.deliver_due(store, now=105.0, backoff_base_s=10) == 0  # not due yet: nothing sent
        assert len(rec.requests) == 1
        assert webhook.deliver_due(store, now=111.0, backoff_base_s=10) == 1
        assert webhook.pending(store)[0]["status"] == "delivered"
        assert webhook.deliver_due(store, now=500.0) == 0  # delivered once only
    assert len(rec.requests) == 2
    headers, body = rec.requests[-1]
    assert orjson.loads(body) == {"type": "rollout.decision", "action": "rollback"}
    assert headers["x-sluice-delivery"] == mid
    assert webhook.verify("s3cret", headers["x-sluice-timestamp"], body, headers["x-sluice-signature"])
    assert not webhook.verify("wrong", headers["x-sluice-timestamp"], body, headers["x-sluice-signature"])
    assert not webhook.verify("s3cret", headers["x-sluice-timestamp"], body + b" ", headers["x-sluice-signature"])


def test_gives_up_after_max_attempts_and_missing_secret_is_an_error(store, monkeypatch):
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    with receiver() as (url, rec):
        webhook.enqueue(store, url, {"n": 1}, "NO_SUCH_SECRET", now=0.0)
        for t in (0.0, 10.0, 20.0):
            webhook.deliver_due(store, now=t, max_attempts=3, backoff_base_s=1)
    [row] = webhook.pending(store)
    assert row["status"] == "failed" and row["attempts"] == 3 and "NO_SUCH_SECRET" in row["last_error"]
    assert rec.requests == []  # never sent unsigned


def test_unreachable_receiver_is_retried(store):
    webhook.enqueue(store, "http://127.0.0.1:9/hook", {"n": 1}, None, now=0.0)
    assert webhook.deliver_due(store, now=0.0, timeout_s=2) == 0
    [row] = webhook.pending(store)
    assert row["status"] == "pending" and row["attempts"] == 1 and row["last_error"]


def test_service_delivers_decisions_signed_by_the_lease_holder_only(store, monkeypatch):
    from sluice.rollout import store as rs
    from sluice.rollout.api import RolloutService
    from sluice.rollout.settings import RolloutSettings

    monkeypatch.setenv("ROLLOUT_HOOK_SECRET", "k3y")
    with receiver() as (url, rec):
        settings = RolloutSettings(interval_s=1, lease_ttl_s=60, webhook={"url": url, "secret_env": "ROLLOUT_HOOK_SECRET"})
        holder, other = RolloutService(store, settings), RolloutService(store, settings)
        assert rs.acquire_lease(store, "rollouts", holder.controller.holder, 60)
        holder.notify({"type": "rollout.decision", "decision": {"action": "promote"}})
        assert other.side_work() == 0 and rec.requests == []  # not the lease holder: sends nothing
        assert holder.side_work() == 1
    [(headers, body)] = rec.requests
    assert orjson.loads(body)["decision"] == {"action": "promote"}
    assert webhook.verify("k3y", headers["x-sluice-timestamp"], body, headers["x-sluice-signature"])
