"""The dashboard's rollout page once the controller has looked: its findings table shows the
estimates of the stored decision (the page answered 500 when the template asked for other keys)."""

from __future__ import annotations

import httpx

from rollout_setup import project
from sluice.rollout import store as rs
from sluice.rollout.api import RolloutService
from sluice.rollout.controller import decision_view
from sluice.rollout.measures import Decision, Finding
from sluice.rollout.settings import RolloutSettings
from sluice.server.app import create_app
from sluice.server.runner import running
from sluice.web import dashboard_router


def test_rollout_page_shows_the_last_looks_findings(duckdb_store, tmp_path):
    project(duckdb_store, tmp_path)
    service = RolloutService(duckdb_store, RolloutSettings(enabled=False))
    ro = service.start({"deployment": "d", "candidate": "bot@2", "steps": [{"weight": {"bp": 1000}}]},
                       actor="test", force=True, reason="page test")
    finding = Finding(metric="error_rate", cohort="billing", outcome="pass", critical=True, canary_estimate=0.0124,
                      stable_estimate=0.0376, bound=0.0042, margin=0.02, canary_samples=321, stable_samples=654,
                      rule="non-inferior: e-value 52.3 ≥ 1/α = 20")
    ro.last_decision = decision_view(Decision("advance", "all findings non-inferior", (finding,)), 0)
    rs.save(duckdb_store, ro)

    app = create_app(duckdb_store, routers=[dashboard_router(service)])
    with running(app) as url:
        r = httpx.get(f"{url}/ui/rollouts/{ro.id}", timeout=30)
    assert r.status_code == 200, r.text[:300]
    row = r.text.split('id="findings"', 1)[1].split("</table>", 1)[0]
    for shown in ("billing", "0.012", "0.038", "0.004", "321 / 654", "e-value 52.3"):
        assert shown in row, (shown, row)
