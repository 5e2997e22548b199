"""A server seeded with real data for the dashboard tests, and what was seeded.

- the demo project's two real gate runs (``sluice.workflow.demo``: the fast candidate fails on the
  billing cohort, the careful one passes), with their releases and dataset;
- a canary deployment ``support`` (stable ``chat@1.0``, canary ``chat@2.0`` at 50 %) on the real
  gateway over a scripted upstream, with traffic from 40 users in two cohorts, a few requests
  that fail upstream, feedback on some traces and online evaluation results on others.

Figures the tests check are counted from the gateway's own answers (route headers), never assumed.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import yaml
from rich.console import Console

from sluice.evals.result import EvalResult
from sluice.gateway.app import make_gateway
from sluice.gateway.config import GatewaySettings
from sluice.release.loader import load_release
from sluice.release.registry import register
from sluice.server.app import create_app
from sluice.server.catalog import router as catalog
from sluice.telemetry.feedback import record_online_eval
from sluice.web import dashboard_router
from sluice.workflow import demo

USERS = 40
COHORTS = ("free", "pro")


@dataclass
class Seeded:
    url: str
    store: Any
    fail_gate: str
    pass_gate: str
    routes: Counter = field(default_factory=Counter)  # route -> requests
    route_cohort: Counter = field(default_factory=Counter)  # (route, cohort) -> requests
    errors: Counter = field(default_factory=Counter)  # route -> failed requests
    traces: dict[str, tuple[str, str]] = field(default_factory=dict)  # trace id -> (route, cohort)
    thumbs_down: list[str] = field(default_factory=list)
    failed_evals: list[str] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)
    releases: dict[str, str] = field(default_factory=dict)  # ref -> digest
    rollout: str | None = None


def make_release(store: Any, root: Path, name: str, version: str, base_url: str) -> str:
    folder = root / f"{name}-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"name": name, "version": version, "components": {"responder": {
        "provider": "openai", "model": f"model-{version}", "base_url": str(base_url)}}}
    (folder / "release.yaml").write_text(yaml.safe_dump(manifest))
    record, _ = register(store, load_release(folder))
    return record.digest


def build_demo_store(root: Path) -> Path:
    quiet = Console(quiet=True)
    outcome = demo.run(root / "demo", quiet, quiet, progress=False)
    assert outcome.ok, "the demo's gates did not give their known verdicts"
    return root / "demo" / ".sluice" / "sluice.duckdb"


def seed_traffic(seeded: Seeded) -> None:
    client = openai.OpenAI(base_url=seeded.url + "/v1", api_key="unused", max_retries=0, timeout=30)
    n = 0
    for i in range(USERS):
        cohort = COHORTS[i % 2]
        for j in range(2):
            fail = i % 10 == 3 and j == 0  # four requests that the upstream answers with a 400
            text = f"question {j} from user {i}" + (" [[400]]" if fail else "")
            try:
                raw = client.chat.completions.with_raw_response.create(
                    model="support", messages=[{"role": "user", "content": text}], user=f"user-{i}",
                    extra_headers={"x-sluice-cohort": cohort})
                headers = raw.headers
            except openai.APIStatusError as e:
                headers = e.response.headers
            route, trace = headers["x-sluice-route"], headers["x-sluice-trace-id"]
            seeded.routes[route] += 1
            seeded.route_cohort[(route, cohort)] += 1
            seeded.errors[route] += int(fail)
            seeded.traces[trace] = (route, cohort)
            n += 1
    _wait_for_spans(seeded.store, n)
    with httpx.Client(base_url=seeded.url, timeout=30) as http:
        for k, trace in enumerate(sorted(seeded.traces)):
            if k % 8 == 0:
                r = http.post("/api/feedback", json={"trace_id": trace, "kind": "thumbs_down", "comment": "wrong"})
                assert r.status_code == 200, r.text
                seeded.thumbs_down.append(trace)
    for k, trace in enumerate(sorted(seeded.traces)):
        if k % 5 == 0:
            passed = k % 10 != 0
            record_online_eval(seeded.store, trace, EvalResult(score=1.0 if passed else 0.0, passed=passed,
                                                               evaluator="groundedness", version="1",
                                                               reason="seeded"))
            seeded.evaluated.append(trace)
            if not passed:
                seeded.failed_evals.append(trace)


def _wait_for_spans(store: Any, n: int, timeout_s: float = 60.0) -> None:
    """Spans reach the store through the writer's queue: wait (bounded) until all requests are in."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = store.db.query_one("SELECT count(*) FROM spans WHERE is_request AND deployment = 'support'")[0]
        if got >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"only {got} of {n} request spans were stored within {timeout_s:.0f} s")


def gateway_app(store: Any, stable: str, canary: str):
    """The server as ``sluice serve`` assembles it; the rollout controller's loop is off (the
    tests act on the rollout by hand, nothing moves it behind their back)."""
    from sluice.audit.api import router as audit_api
    from sluice.rollout.api import RolloutService, make_router
    from sluice.rollout.settings import RolloutSettings

    settings = GatewaySettings.model_validate({"deployments": {"support": {
        "stable": stable, "canary": {"release": canary, "weight_bp": 5000}}}, "retries": 0})
    gateway = make_gateway(settings, store)
    rollouts = RolloutService(store, RolloutSettings(enabled=False), reload=gateway.reload)
    app = create_app(store, routers=[gateway.router, catalog, make_router(rollouts), audit_api,
                                     dashboard_router(rollouts)])
    app.state.test_rollouts = rollouts
    return app


def start_rollout(app: Any) -> str:
    """A running rollout of chat@2.0 on ``support`` (forced: no gate ran for these releases)."""
    ro = app.state.test_rollouts.start({"deployment": "support", "candidate": "chat@2.0", "min_requests": 10,
                                        "steps": [{"weight": {"bp": 5000}}, {"weight": {"bp": 9000}}]},
                                       actor="test", force=True, reason="dashboard test")
    return ro.id
