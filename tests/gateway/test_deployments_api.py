"""Deployments in the store: the admin API, seeding from sluice.yaml, and two gateway replicas
(separate processes on one PostgreSQL database) applying a weight change made through one of them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from gateway_fixtures import make_release, serving
from sluice.auth.keys import create_key
from sluice.gateway.app import make_gateway
from sluice.gateway.config import GatewaySettings
from sluice.gateway.routing import bucket
from sluice.testing.upstream import scripted_upstream

CHAT = {"messages": [{"role": "user", "content": "hello"}]}


def test_put_changes_routing_and_is_kept(duckdb_store, tmp_path, upstream):
    stable = make_release(duckdb_store, tmp_path, "bot", "1", upstream, model="m-stable")
    canary = make_release(duckdb_store, tmp_path, "bot", "2", upstream, model="m-canary")
    _, admin = create_key(duckdb_store, "ops", "admin")
    _, app_key = create_key(duckdb_store, "app", "gateway")
    auth = {"authorization": f"Bearer {admin}"}
    settings = {"deployments": {"d": {"stable": stable}}}
    with serving(duckdb_store, settings) as (url, gw):
        listed = httpx.get(url + "/api/deployments", headers=auth).json()["data"]
        assert [(d["name"], d["stable"], d["canary"]) for d in listed] == [("d", stable, None)]
        assert httpx.get(url + "/api/deployments", headers={"authorization": f"Bearer {app_key}"}).status_code == 403
        assert httpx.put(url + "/api/deployments/d", json={"stable": stable}).status_code == 401
        gated = {"stable": stable, "canary": {"release": canary, "weight_bp": 10000}}
        refused = httpx.put(url + "/api/deployments/d", headers=auth, json=gated)  # no passing gate stored
        assert refused.status_code == 412 and refused.json()["error"]["code"] == "gate_required", refused.text
        r = httpx.put(url + "/api/deployments/d", headers=auth, json=gated, params={"force": "true", "reason": "test"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["releases"]["canary"] == gw.deployments["d"].canary.digest and body["version"] > listed[0]["version"]
        answer = httpx.post(url + "/v1/chat/completions", json={"model": "d", **CHAT},
                            headers={"authorization": f"Bearer {app_key}"})
        assert answer.headers["x-sluice-route"] == "canary" and answer.json()["model"] == "m-canary"
        # a new deployment through the API is served and listed at once
        assert httpx.put(url + "/api/deployments/e", headers=auth, json={"stable": stable}).status_code == 200
        models = httpx.get(url + "/v1/models", headers=auth).json()["data"]
        assert [m["id"] for m in models] == ["d", "e"]
        # bad input: 400 naming the field; nothing changes
        bad = httpx.put(url + "/api/deployments/d", headers=auth, json={"stable": stable, "canary": {"release": canary,
                                                                                                      "weight_bp": 20000}})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "canary.weight_bp"
        ghost = httpx.put(url + "/api/deployments/d", headers=auth, json={"stable": "ghost@9"})
        assert ghost.status_code == 400 and "gateway.deployments.d.stable" in ghost.json()["error"]["message"]
        assert httpx.get(url + "/api/deployments/nope", headers=auth).status_code == 404
        assert httpx.get(url + "/api/deployments/d", headers=auth).json()["canary"]["weight_bp"] == 10000
    # a restart with the same config keeps the API's change; a changed config entry re-seeds
    again = make_gateway(GatewaySettings.model_validate(settings), duckdb_store)
    assert again.deployments["d"].canary is not None and set(again.deployments) == {"d", "e"}
    edited = {"deployments": {"d": {"stable": canary}}}
    third = make_gateway(GatewaySettings.model_validate(edited), duckdb_store)
    assert third.deployments["d"].stable.ref == canary and third.deployments["d"].canary is None


def test_delete_stops_serving_and_survives_a_restart(duckdb_store, tmp_path, upstream):
    stable = make_release(duckdb_store, tmp_path, "bot", "1", upstream)
    _, admin = create_key(duckdb_store, "ops", "admin")
    _, app_key = create_key(duckdb_store, "app", "gateway")
    auth = {"authorization": f"Bearer {admin}"}
    settings = {"deployments": {"d": {"stable": stable}, "keep": {"stable": stable}}}
    with serving(duckdb_store, settings) as (url, gw):
        before = httpx.get(url + "/api/deployments/d", headers=auth).json()["version"]
        assert httpx.delete(url + "/api/deployments/d", headers={"authorization": f"Bearer {app_key}"}).status_code == 403
        r = httpx.delete(url + "/api/deployments/d", headers=auth)
        assert r.status_code == 200 and r.json()["deleted"] is True and r.json()["version"] > before
        assert "d" not in gw.deployments and gw.version == r.json()["version"]
        gone = httpx.post(url + "/v1/chat/completions", json={"model": "d", **CHAT},
                          headers={"authorization": f"Bearer {app_key}"})
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "model_not_found"
        assert [m["id"] for m in httpx.get(url + "/v1/models", headers=auth).json()["data"]] == ["keep"]
        assert [d["name"] for d in httpx.get(url + "/api/deployments", headers=auth).json()["data"]] == ["keep"]
        assert httpx.delete(url + "/api/deployments/d", headers=auth).status_code == 404  # already gone
        assert httpx.get(url + "/api/deployments/d", headers=auth).status_code == 404
    # the same sluice.yaml does not bring it back; a changed entry or a PUT does
    assert set(make_gateway(GatewaySettings.model_validate(settings), duckdb_store).deployments) == {"keep"}
    with serving(duckdb_store, settings) as (url, gw):
        assert httpx.put(url + "/api/deployments/d", headers=auth, json={"stable": stable}).status_code == 200
        assert set(gw.deployments) == {"d", "keep"}


def _replica(store_url: str, config: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "sluice.gateway", "--store", store_url, "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    if not line.startswith("listening "):
        proc.kill()
        raise AssertionError(f"replica did not start: {line!r} {proc.stderr.read()[-2000:]}")
    return proc, line.split()[1]


@pytest.mark.postgres
def test_two_replicas_on_postgres_apply_a_weight_change(pg_store, pg_database_url, tmp_path):
    with scripted_upstream() as up:
        stable = make_release(pg_store, tmp_path, "bot", "1", up, model="m-stable")
        canary = make_release(pg_store, tmp_path, "bot", "2", up, model="m-canary")
        config = tmp_path / "sluice.yaml"
        config.write_text(yaml.safe_dump({"gateway": {"deployments": {"d": {
            "stable": stable, "canary": {"release": canary, "weight_bp": 0}, "salt": "s1"}},
            "shed_lag_ms": 0}}))  # no lag shedding: this test must not see 503s on a loaded machine
        users = [f"user-{i}" for i in range(40)]
        to_canary = [u for u in users if bucket("s1", u) < 5000]
        a, url_a = _replica(pg_database_url, config)
        b = None
        try:
            b, url_b = _replica(pg_database_url, config)

            def route(url: str, user: str) -> str:
                r = httpx.post(url + "/v1/chat/completions", json={"model": "d", "user": user, **CHAT}, timeout=10)
                assert r.status_code == 200, (r.status_code, r.text)
                return r.headers["x-sluice-route"]

            def releases(url: str) -> dict[str, str]:
                return {u: route(url, u) for u in users}

            assert set(releases(url_a).values()) == set(releases(url_b).values()) == {"stable"}
            r = httpx.put(url_a + "/api/deployments/d", timeout=10, params={"force": "true", "reason": "test"}, json={
                "stable": stable, "canary": {"release": canary, "weight_bp": 5000}, "salt": "s1"})
            assert r.status_code == 200, r.text
            changed = time.monotonic()
            waited = None
            for _ in range(100):  # bounded: the other replica polls every 0.25 s
                probe = httpx.post(url_b + "/v1/chat/completions", json={"model": "d", "user": to_canary[0], **CHAT},
                                   timeout=10)
                if probe.headers["x-sluice-route"] == "canary":
                    waited = time.monotonic() - changed
                    break
                time.sleep(0.05)
            assert waited is not None
            expected = {u: ("canary" if u in to_canary else "stable") for u in users}
            assert releases(url_a) == releases(url_b) == expected  # same users on the same arms on both
            canary_digest = r.json()["releases"]["canary"]
            assert probe.headers["x-sluice-release"] == canary_digest
            print(f"weight change reached the second replica after {waited * 1000:.0f} ms")
        finally:
            for proc in (a, b):
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=10)


def test_a_duckdb_store_is_not_polled(duckdb_store, tmp_path, upstream):
    # one process holds a DuckDB file: its deployment writes come through this gateway's API,
    # which reloads at once (test_put_changes_routing_and_is_kept), so no poller runs
    ref = make_release(duckdb_store, tmp_path, "bot", "1", upstream)
    with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}, "reload_interval_s": 0.25}) as (_, gw):
        assert gw.store is duckdb_store and gw._poller is None


def test_a_store_whose_gateway_made_the_table_itself_migrates_cleanly(tmp_path):
    """Before migration 0200 the gateway created gateway_deployments at start-up; keep such rows."""
    from sluice.gateway import deployment_store
    from sluice.gateway.config import Deployment
    from sluice.store import open_store

    url = f"duckdb:///{tmp_path}/old.duckdb"
    store = open_store(url)
    deployment_store.put(store, "d", Deployment.model_validate({"stable": "bot@1"}))
    store.db.execute("DELETE FROM sluice_migrations WHERE name = '0200_gateway_deployments'")
    store.close()
    again = open_store(url)
    try:
        assert "0200_gateway_deployments" in again.applied_migrations()
        _, stored = deployment_store.load(again)
        assert stored["d"][0].stable == "bot@1"
    finally:
        again.close()
