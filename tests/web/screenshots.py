"""Screenshots of the main dashboard pages for docs/dashboard.md.

    .venv/bin/python tests/web/screenshots.py docs/img

Seeds a server the way the browser tests do (the demo's gate runs, a canary deployment with live
traffic), adds six hours of synthetic history to the same deployment so the charts have a shape
(the canary slower and failing more often for the ``pro`` cohort), and saves one PNG per page in
light and dark mode.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from web_seed import Seeded, build_demo_store, gateway_app, make_release, seed_traffic, start_rollout  # noqa: E402

from sluice.evals.result import EvalResult  # noqa: E402
from sluice.server.runner import running  # noqa: E402
from sluice.store import open_store  # noqa: E402
from sluice.telemetry.feedback import record_online_eval  # noqa: E402
from sluice.telemetry.schema import SPAN_COLUMNS  # noqa: E402
from sluice.testing.upstream import scripted_upstream  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def history(store, stable: str, canary: str, hours: int = 6, per_minute: int = 40) -> None:
    rng = random.Random(7)
    now = time.time_ns()
    rows, evals = [], []
    for m in range(hours * 60, 0, -1):
        for k in range(per_minute):
            route = "canary" if rng.random() < 0.2 else "stable"
            cohort = rng.choice(("free", "pro"))
            slow = route == "canary" and cohort == "pro" and m < 150
            lat = rng.lognormvariate(5.6 if not slow else 6.1, 0.35)
            err = rng.random() < (0.06 if slow else 0.01)
            tid = f"{rng.getrandbits(128):032x}"
            d = dict.fromkeys(SPAN_COLUMNS)
            d.update(trace_id=tid, span_id=f"{rng.getrandbits(64):016x}", parent_id="", name="gateway chat",
                     kind="CHAIN", start_ns=now - m * 60_000_000_000 + k * 1_000_000_000, duration_ms=lat,
                     status="ERROR" if err else "OK", deployment="support",
                     release=canary if route == "canary" else stable, route=route, cohort=cohort,
                     fallback_used=False, cache_hit=False, is_request=True, attributes="{}", ingested_at=0.0)
            rows.append(tuple(d[c] for c in SPAN_COLUMNS))
            if k % 4 == 0:
                evals.append((tid, rng.random() > (0.25 if slow else 0.08)))
    store.db.insert_rows(f"spans ({', '.join(SPAN_COLUMNS)})", rows)
    for tid, ok in evals:
        record_online_eval(store, tid, EvalResult(score=float(ok), passed=ok, evaluator="groundedness", version="1"))


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        store = open_store(f"duckdb:///{build_demo_store(root)}")
        stack.callback(store.close)
        upstream = stack.enter_context(scripted_upstream(latency_ms=120))
        stable = make_release(store, root, "chat", "1.0", upstream)
        canary = make_release(store, root, "chat", "2.0", upstream)
        app = gateway_app(store, "chat@1.0", "chat@2.0")
        url = stack.enter_context(running(app))
        gates = {g.verdict: g.id for g in store.list_gates()}
        seeded = Seeded(url=url, store=store, fail_gate=gates["fail"], pass_gate=gates["pass"])
        seed_traffic(seeded)
        history(store, stable, canary)
        rollout = start_rollout(app)
        trace = sorted(seeded.failed_evals)[0]
        shots = {"deployments": "/ui/deployments", "deployment": "/ui/deployments/support?window=6h",
                 "gate": f"/ui/gates/{seeded.fail_gate}", "release-diff": f"/ui/releases/diff?a={stable}&b={canary}",
                 "datasets": "/ui/datasets/support", "traces": "/ui/traces?deployment=support",
                 "trace": f"/ui/traces/{trace}", "rollout": f"/ui/rollouts/{rollout}?window=6h",
                 "audit": f"/ui/audit/{trace}"}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            for scheme in ("light", "dark"):
                page = browser.new_page(viewport={"width": 1360, "height": 900}, color_scheme=scheme)
                for name, path in shots.items():
                    if scheme == "dark" and name not in ("deployment", "gate", "rollout"):
                        continue
                    page.goto(url + path, wait_until="load")
                    charts = page.locator("[data-chart]").count()
                    if charts:
                        page.wait_for_function(f"document.querySelectorAll('[data-ready]').length >= {charts}")
                    suffix = "" if scheme == "light" else "-dark"
                    page.screenshot(path=str(out / f"dashboard-{name}{suffix}.png"), full_page=name in ("deployment", "deployments", "rollout"),
                                    clip=None)
                    print(out / f"dashboard-{name}{suffix}.png")
                page.close()
            browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
