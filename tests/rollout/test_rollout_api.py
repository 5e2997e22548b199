"""/api/rollouts on a real server with the real gateway and a scripted upstream: the gate is enforced,
a canary that fails over to stable is judged as the canary's, the rollback reaches the router at once."""

from __future__ import annotations

import time

import httpx

from rollout_setup import project
from sluice.gateway.app import make_gateway
from sluice.gateway.config import GatewaySettings
from sluice.rollout.api import RolloutService, make_router
from sluice.rollout.settings import RolloutSettings
from sluice.server.app import create_app
from sluice.server.runner import running
from sluice.testing.upstream import scripted_upstream

PLAN = {"deployment": "d", "candidate": "bot@2", "min_requests": 20,
        "analysis": {"metrics": [{"metric": "fallback_rate", "margin": 0.05, "relative": False, "critical": True,
                                  "min_samples": 20}]},
        "steps": [{"weight": {"bp": 5000}}, {"weight": {"bp": 8000}}]}


def _wait_for_spans(store, n: int) -> None:
    for _ in range(400):  # bounded: the writer commits spans in the background
        if store.db.query_one("SELECT count(*) FROM spans")[0] >= n:
            return
        time.sleep(0.05)
    raise AssertionError("spans were not written")


def test_rollout_over_http_with_the_real_gateway(duckdb_store, tmp_path):
    store = duckdb_store
    with scripted_upstream(modes={"m-2": "500"}) as upstream:  # the candidate's model always fails
        project(store, tmp_path, base_url=upstream)
        gateway = make_gateway(GatewaySettings(retries=0), store)
        service = RolloutService(store, RolloutSettings(enabled=False, settle_s=0), reload=gateway.reload)
        app = create_app(store, routers=[gateway.router, make_router(service)])
        with running(app) as url, httpx.Client(timeout=10) as httpx_:
            refused = httpx_.post(url + "/api/rollouts", json={"plan": PLAN})
            assert refused.status_code == 412 and "no passing gate" in refused.json()["error"]
            bad = httpx_.post(url + "/api/rollouts", json={"plan": {**PLAN, "steps": [{"weight": {"bp": -1}}]},
                                                           "force": True, "reason": "x"})
            assert bad.status_code == 400 and "steps[0].weight.bp" in bad.json()["error"]
            r = httpx_.post(url + "/api/rollouts", json={"plan": PLAN, "force": True, "reason": "e2e test"})
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            assert httpx_.post(url + "/api/rollouts", json={"plan": PLAN, "force": True,
                                                            "reason": "again"}).status_code == 409
            routes = [httpx_.post(url + "/v1/chat/completions", json={
                "model": "d", "user": f"u{i}", "messages": [{"role": "user", "content": "hi"}]}).headers["x-sluice-route"]
                for i in range(200)]
            assert routes.count("fallback") > 50 and routes.count("stable") > 50  # canary users answered by stable
            _wait_for_spans(store, 200)
            [(got, decision)] = service.controller.tick(now=time.time() + 1)
            assert got == rid and decision.action == "rollback", decision.reason
            view = httpx_.get(url + f"/api/rollouts/{rid}").json()
            assert view["status"] == "rolled_back" and view["forced_reason"] == "e2e test"
            f = next(f for f in view["last_decision"]["findings"] if f["cohort"] == "(all)")
            assert f["metric"] == "fallback_rate" and f["canary"] == 1.0 and f["stable"] == 0.0
            kinds = [e["kind"] for e in httpx_.get(url + f"/api/rollouts/{rid}/events").json()["data"]]
            assert kinds == ["start", "forced_start", "rollback"]
            after = [httpx_.post(url + "/v1/chat/completions", json={
                "model": "d", "user": f"u{i}", "messages": [{"role": "user", "content": "hi"}]}).headers["x-sluice-route"]
                for i in range(20)]
            assert set(after) == {"stable"}  # the whole canary is off, on this replica at once
            assert httpx_.post(url + f"/api/rollouts/{rid}/abort", json={}).status_code == 409
            assert httpx_.post(url + f"/api/rollouts/{rid}/explode", json={}).status_code == 404
            listed = httpx_.get(url + "/api/rollouts", params={"deployment": "d"}).json()["data"]
            assert [x["id"] for x in listed] == [rid]
            assert "/api/rollouts" in httpx_.get(url + "/openapi.json").json()["paths"]
