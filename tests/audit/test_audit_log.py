"""The audit log: what is recorded (by whom, before and after), its hash chain, and its
immutability on both stores."""

from __future__ import annotations

import httpx
import pytest

from gateway_fixtures import make_release, serving
from sluice.audit.api import router as audit_router
from sluice.audit.log import append_audit, list_audit, verify_chain
from sluice.auth.keys import create_key, revoke_key
from sluice.gateway.app import make_gateway
from sluice.gateway.config import GatewaySettings
from sluice.server.app import create_app
from sluice.server.runner import running


def test_chain_verifies_and_records_fields(store):
    a = append_audit(store, "cli:alice", "deployment.changed", "d", {"w": 1}, {"w": 2}, deployment="d")
    b = append_audit(store, "key:ops", "key.created", "k1", None, {"name": "ops"})
    assert (a.seq, b.seq) == (1, 2) and b.prev_hash == a.hash and a.hash != b.hash
    got = list_audit(store)
    assert [(e.actor, e.action, e.subject, e.before, e.after) for e in got] == [
        ("cli:alice", "deployment.changed", "d", {"w": 1}, {"w": 2}), ("key:ops", "key.created", "k1", None,
                                                                       {"name": "ops"})]
    assert [e.subject for e in list_audit(store, deployment="d")] == ["d"]
    assert list_audit(store, since=b.created_at + 1) == []
    assert verify_chain(store).ok and verify_chain(store).entries == 2


def test_tampering_is_detected_on_duckdb(duckdb_store):
    """DuckDB has no triggers: an edit made outside Sluice shows up as a broken chain."""
    for i in range(3):
        append_audit(duckdb_store, "cli:x", "release.registered", f"r@{i}", None, {"i": i})
    duckdb_store.db.execute("UPDATE audit_log SET after_state = '{\"i\": 9}' WHERE seq = 2")
    check = verify_chain(duckdb_store)
    assert not check.ok and check.bad_seq == 2 and "altered" in check.reason and check.entries == 1
    duckdb_store.db.execute("DELETE FROM audit_log WHERE seq = 2")
    check = verify_chain(duckdb_store)
    assert not check.ok and check.bad_seq == 2 and "missing" in check.reason


@pytest.mark.postgres
def test_postgres_refuses_update_and_delete(pg_store):
    import psycopg

    append_audit(pg_store, "cli:x", "release.registered", "r@1", None, {"i": 1})
    for stmt in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(psycopg.Error, match="append-only"):
            pg_store.db.execute(stmt)
    assert [e.actor for e in list_audit(pg_store)] == ["cli:x"] and verify_chain(pg_store).ok


def test_changes_are_recorded_with_their_actor(store, tmp_path, upstream):
    """Release registered, deployment seeded (only when the file changes), changed and deleted
    through the API under the key's name, keys created and revoked — never a secret."""
    stable = make_release(store, tmp_path, "bot", "1", upstream, model="m-stable")
    canary = make_release(store, tmp_path, "bot", "2", upstream, model="m-canary")
    admin_rec, admin = create_key(store, "ops-team", "admin")
    settings = GatewaySettings.model_validate({"deployments": {"d": {"stable": stable}}})
    make_gateway(settings, store)
    make_gateway(settings, store)  # unchanged file: nothing new to record
    auth = {"authorization": f"Bearer {admin}"}
    with serving(store, settings) as (url, gw):
        r = httpx.put(url + "/api/deployments/d", headers=auth,  # no gate stored: forced, with a reason
                      params={"force": "true", "reason": "audit test"},
                      json={"stable": stable, "canary": {"release": canary, "weight_bp": 500}})
        assert r.status_code == 200, r.text
        assert httpx.delete(url + "/api/deployments/d", headers=auth).status_code == 200
    other, _ = create_key(store, "temp", "ingest")
    revoke_key(store, other.id)
    entries = list_audit(store)
    actions = [(e.action, e.subject) for e in entries]
    assert actions == [("release.registered", "bot@1"), ("release.registered", "bot@2"),
                       ("key.created", admin_rec.id), ("deployment.created", "d"),
                       ("rollout.forced_weight", "deployment:d"), ("deployment.changed", "d"),
                       ("deployment.deleted", "d"), ("key.created", other.id), ("key.revoked", other.id)]
    by = {(e.action, e.subject): e for e in entries}
    forced = by[("rollout.forced_weight", "deployment:d")]  # the gate override, mirrored from the rollout log
    assert forced.actor == "key:ops-team" and forced.deployment == "d" and "audit test" in forced.after["message"]
    assert by[("release.registered", "bot@2")].after["digest"] == store.list_releases("bot")[0].digest
    seeded = by[("deployment.created", "d")]
    assert seeded.actor == "config:sluice.yaml" and seeded.before is None and seeded.after["stable"] == stable
    changed = by[("deployment.changed", "d")]
    assert changed.actor == "key:ops-team" and changed.deployment == "d"
    assert changed.before["canary"] is None and changed.after["canary"]["weight_bp"] == 500
    deleted = by[("deployment.deleted", "d")]
    assert deleted.actor == "key:ops-team" and deleted.after is None and deleted.before["canary"]["release"] == canary
    assert by[("key.revoked", other.id)].after == {"name": "temp", "scope": "ingest", "revoked": True}
    text = str([e.as_dict() for e in entries])
    assert admin.split("_")[-1] not in text  # the secret never reaches the log
    assert verify_chain(store).ok


def test_reseeding_a_changed_entry_is_recorded(duckdb_store, tmp_path, upstream):
    one = make_release(duckdb_store, tmp_path, "bot", "1", upstream)
    two = make_release(duckdb_store, tmp_path, "bot", "2", upstream)
    make_gateway(GatewaySettings.model_validate({"deployments": {"d": {"stable": one}}}), duckdb_store)
    make_gateway(GatewaySettings.model_validate({"deployments": {"d": {"stable": two}}}), duckdb_store)
    seeds = list_audit(duckdb_store, action_prefix="deployment.")
    assert [(e.action, e.before and e.before["stable"], e.after["stable"]) for e in seeds] == [
        ("deployment.created", None, one), ("deployment.changed", one, two)]


def test_http_log_needs_admin_and_filters(duckdb_store):
    append_audit(duckdb_store, "cli:x", "deployment.created", "a", None, {"stable": "r@1"}, deployment="a")
    append_audit(duckdb_store, "cli:x", "deployment.created", "b", None, {"stable": "r@1"}, deployment="b")
    _, ingest = create_key(duckdb_store, "app", "ingest")
    _, admin = create_key(duckdb_store, "ops", "admin")
    app = create_app(duckdb_store, routers=[audit_router])
    with running(app) as url:
        assert httpx.get(url + "/api/audit/log").status_code == 401
        assert httpx.get(url + "/api/audit/log", headers={"authorization": f"Bearer {ingest}"}).status_code == 403
        auth = {"authorization": f"Bearer {admin}"}
        body = httpx.get(url + "/api/audit/log", params={"deployment": "b"}, headers=auth).json()
        assert [(e["subject"], e["after"]) for e in body["entries"]] == [("b", {"stable": "r@1"})]
        keys = httpx.get(url + "/api/audit/log", params={"action": "key."}, headers=auth).json()["entries"]
        assert [e["after"]["name"] for e in keys] == ["app", "ops"]
        assert httpx.get(url + "/api/audit/log", params={"since": "yesterday"}, headers=auth).status_code == 400
        assert httpx.get(url + "/api/audit/verify", headers=auth).json() == {"ok": True, "entries": 4, "bad_seq": None,
                                                                            "reason": ""}


def test_no_sluice_code_updates_or_deletes_the_log():
    """DuckDB has no triggers, so the guarantee there is that no code path issues either."""
    import re
    from pathlib import Path

    import sluice

    offenders = [str(p) for p in Path(sluice.__file__).parent.rglob("*.py")
                 if re.search(r"(UPDATE\s+audit_log|DELETE\s+FROM\s+audit_log|TRUNCATE\s+audit_log)",
                              p.read_text(), re.I)]
    assert offenders == []
