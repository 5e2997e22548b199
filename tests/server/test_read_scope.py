"""A ``read`` key may GET the JSON views the dashboard shows (releases, datasets, gates, deployments,
metrics, traces, audit, alerts, drift, rollouts); every action, and the key list, stays admin."""

from __future__ import annotations

import httpx
import pytest

from sluice.auth.keys import create_key
from sluice.config import Settings
from sluice.server.assemble import assemble
from sluice.server.runner import running

READ_VIEWS = ["/api/releases", "/api/datasets", "/api/gates", "/api/runs", "/api/deployments", "/api/metrics",
              "/api/rollouts", "/api/audit/log", "/api/audit/verify", "/api/alerts"]
# not found for every key that may look: the scope check passed
READ_MISSING = ["/api/traces/" + "ab" * 16, "/api/rollouts/ro-nope", "/api/rollouts/ro-nope/events",
                "/api/gates/nope", "/api/deployments/nope", "/api/drift/nope"]
ADMIN_ONLY = [("GET", "/api/keys", None), ("POST", "/api/rollouts", {"plan": {}}),
              ("POST", "/api/rollouts/ro-nope/pause", {"reason": "x"}),
              ("PUT", "/api/deployments/support", {"releases": {}}), ("DELETE", "/api/deployments/support", None)]


@pytest.fixture
def server(duckdb_store):
    app = assemble(duckdb_store, Settings()).app
    keys = {scope: create_key(duckdb_store, scope, scope)[1] for scope in ("read", "admin", "ingest", "gateway")}
    app.state.keyring.refresh()
    with running(app) as url:
        with httpx.Client(base_url=url, timeout=30) as c:
            yield c, keys


def call(c, keys, scope, method, path, body=None):
    return c.request(method, path, json=body, headers={"Authorization": f"Bearer {keys[scope]}"})


@pytest.mark.parametrize("scope", ["read", "admin"])
def test_read_and_admin_keys_get_the_read_views(server, scope):
    c, keys = server
    for path in READ_VIEWS:
        r = call(c, keys, scope, "GET", path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    for path in READ_MISSING:
        r = call(c, keys, scope, "GET", path)
        assert r.status_code == 404, (path, r.status_code, r.text[:300])


@pytest.mark.parametrize("scope", ["ingest", "gateway"])
def test_other_scopes_cannot_read(server, scope):
    c, keys = server
    for path in READ_VIEWS + READ_MISSING:
        r = call(c, keys, scope, "GET", path)
        assert r.status_code == 403, (path, r.status_code)
    assert c.get("/api/releases").status_code == 401  # and no key at all


def test_actions_and_keys_stay_admin(server):
    c, keys = server
    for method, path, body in ADMIN_ONLY:
        r = call(c, keys, "read", method, path, body)
        assert r.status_code == 403, (method, path, r.status_code, r.text[:300])
        assert "read" in r.text
        r = call(c, keys, "admin", method, path, body)
        assert r.status_code not in (401, 403), (method, path, r.status_code, r.text[:300])
