"""Dashboard page times with 10M spans in the embedded store.

    make bench-dashboard            # = .venv/bin/python bench/dashboard_bench.py
    .venv/bin/python bench/dashboard_bench.py --spans 1000000 --repeat 3

The store is generated once with SQL generators (not the ingest path) and cached under
``~/.cache/sluice-bench/`` (``--cache DIR``): 5M traces over 7 days, each a gateway
request span and its LLM child (10M spans), on 4 deployments × 4 cohorts, routes stable (85 %),
canary (10 %), shadow (3 %), fallback (2 %); 1.5 % errors; an online evaluation result on 5 % of
traces, feedback on 1 %. Spans are written in time order, as ingest writes them. Before each run the
pages are asked for the time of the newest span (``until=``, which the pages offer for looking
back at any moment; the queries are the same as for "now"). Moving 10M spans in time with an
UPDATE instead would leave DuckDB's zone maps on ``start_ns`` useless and every query a full scan.

The server is the one ``sluice serve`` runs (``create_app`` with the dashboard router, DuckDB's
memory capped at 1 GiB by the span writer), in this process, on loopback. Each page is fetched
once to warm up, then ``--repeat`` times; the table gives the median and the slowest full
response time (server render plus transfer, measured by the client). ``--browser`` also loads each
page in headless Chromium and times it until the charts are drawn. Results: bench/results/
dashboard.json and dashboard.md; the target is every page under one second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

from sluice.gateway import deployment_store
from sluice.gateway.config import Deployment
from sluice.server.app import create_app
from sluice.server.runner import running
from sluice.store import open_store
from sluice.telemetry import schema
from sluice.web import dashboard_router

NS = 1_000_000_000
SPAN_NS = 7 * 86_400 * NS
RESULTS = Path(__file__).parent / "results"
TARGET_S = 1.0


def fill(store, spans: int, now_ns: int) -> None:
    traces = spans // 2
    cols = ", ".join(schema.SPAN_COLUMNS)
    step = SPAN_NS // traces
    store.db.execute(f"""
        INSERT INTO spans ({cols})
        SELECT lpad(lower(to_hex(t)), 32, '0'), lpad(lower(to_hex(t * 2 + c)), 16, '0'),
               CASE WHEN c = 0 THEN '' ELSE lpad(lower(to_hex(t * 2)), 16, '0') END,
               CASE WHEN c = 0 THEN 'gateway chat' ELSE 'ChatCompletion' END, CASE WHEN c = 0 THEN 'CHAIN' ELSE 'LLM' END,
               {now_ns - SPAN_NS} + t * {step} + c * 1000,
               CASE WHEN c = 0 THEN 80 + (h % 1000) * 0.9 + CASE WHEN h % 100 = 0 THEN 2500 ELSE 0 END
                    ELSE 70 + (h % 900) END,
               CASE WHEN h % 67 = 0 THEN 'ERROR' ELSE 'OK' END, CASE WHEN h % 67 = 0 THEN 'http_5xx' END,
               CASE WHEN c = 1 THEN 'gpt-4o-mini' END, CASE WHEN c = 1 THEN 'openai' END,
               CASE WHEN c = 1 THEN 420 END, CASE WHEN c = 1 THEN 130 END, CASE WHEN c = 1 THEN 550 END,
               CASE WHEN c = 1 THEN 0.00021 END,
               'dep-' || (h % 4),
               CASE WHEN r < 85 THEN 'sha256:stable' WHEN r < 95 THEN 'sha256:canary'
                    WHEN r < 98 THEN 'sha256:shadow' ELSE 'sha256:stable' END,
               CASE WHEN r < 85 THEN 'stable' WHEN r < 95 THEN 'canary' WHEN r < 98 THEN 'shadow' ELSE 'fallback' END,
               (ARRAY['free', 'pro', 'enterprise', 'internal'])[((h // 7) % 4) + 1],
               r >= 98, false, NULL, NULL, 'session-' || (h % 50000), 'user-' || (h % 200000),
               CASE WHEN c = 1 THEN 20 + h % 300 END, c = 0, 'bench', '{{}}', 0
        FROM (SELECT t, CAST(hash(t) % 1000003 AS BIGINT) AS h, CAST(hash(t * 31 + 7) % 100 AS BIGINT) AS r
              FROM range(?) g(t)) x, range(2) k(c)
        ORDER BY 6""", [traces])
    store.db.execute("""INSERT INTO span_evals
        SELECT lpad(lower(to_hex(t)), 32, '0'), NULL, 'groundedness', hash(t) % 9 <> 0, 0.8, NULL, 'online', 0
        FROM range(?) g(t) WHERE hash(t * 13) % 20 = 0""", [traces])
    store.db.execute("""INSERT INTO feedback
        SELECT 'fb-' || t, lpad(lower(to_hex(t)), 32, '0'),
               CASE WHEN t % 3 = 0 THEN 'thumbs_up' ELSE 'thumbs_down' END, NULL, NULL, 0
        FROM range(?) g(t) WHERE hash(t * 17) % 100 = 0""", [traces])
    for i in range(4):
        deployment_store.put(store, f"dep-{i}", Deployment.model_validate({
            "stable": "bench@1.0", "canary": {"release": "bench@1.1", "weight_bp": 1000},
            "shadow": {"release": "bench@2.0", "percent": 3}}))
    store.db.execute("CHECKPOINT")


def prepare(cache: Path, spans: int) -> Path:
    """The cached store, generated when missing."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"dashboard-{spans}.duckdb"
    fresh = not path.exists()
    store = open_store(f"duckdb:///{path}")
    try:
        if fresh:
            t = time.perf_counter()
            print(f"generating {spans:,} spans into {path} (once; cached)", flush=True)
            fill(store, spans, time.time_ns())
            print(f"  generated in {time.perf_counter() - t:.0f} s", flush=True)
        count = store.db.query_one("SELECT count(*) FROM spans")[0]
        if count != spans:
            raise SystemExit(f"{path} holds {count:,} spans, not {spans:,}: delete it to regenerate")
    finally:
        store.close()
    return path


def pages(store) -> list[str]:
    newest = store.db.query_one("SELECT max(start_ns) FROM spans")[0]
    u = f"until={newest // NS + 1}"
    trace, start = store.db.query_one(
        "SELECT trace_id, start_ns FROM spans WHERE is_request AND deployment = 'dep-1' "
        "AND start_ns >= (SELECT max(start_ns) FROM spans) - ? ORDER BY start_ns DESC LIMIT 1", [3600 * NS])
    old_trace = store.db.query_one("SELECT trace_id FROM spans WHERE is_request AND start_ns < "
                                   "(SELECT min(start_ns) FROM spans) + ? LIMIT 1", [3600 * NS])[0]
    week = f"since={newest // NS - 7 * 86_400}&until={newest // NS + 1}"
    return [f"/ui/deployments?{u}", f"/ui/deployments/dep-1?{u}", f"/ui/deployments/dep-1?window=6h&{u}",
            f"/ui/deployments/dep-1?window=24h&{u}", f"/ui/deployments/dep-1?window=7d&{u}",
            f"/ui/deployments/dep-1?window=7d&cohort=pro&{u}", f"/ui/traces?since={newest // NS - 86_400}",
            f"/ui/traces?deployment=dep-2&cohort=enterprise&status=error&route=canary&{week}",
            f"/ui/traces/{trace}?t={start}", f"/ui/traces/{old_trace}", "/ui/gates", "/ui/releases",
            "/ui/datasets"]


def measure_http(url: str, paths: list[str], repeat: int) -> list[dict]:
    out = []
    with httpx.Client(base_url=url, timeout=120) as c:
        for path in paths:
            r = c.get(path)
            if r.status_code != 200:
                raise SystemExit(f"{path}: HTTP {r.status_code}: {r.text[:300]}")
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                r = c.get(path)
                times.append(time.perf_counter() - t)
            out.append({"page": path, "median_s": statistics.median(times), "max_s": max(times),
                        "bytes": len(r.content)})
            print(f"{path:80} median {out[-1]['median_s'] * 1000:6.0f} ms  max {out[-1]['max_s'] * 1000:6.0f} ms",
                  flush=True)
    return out


def measure_browser(url: str, paths: list[str], repeat: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = browser.new_page()
        for path in paths:
            page.goto(url + path, wait_until="load")
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                page.goto(url + path, wait_until="load")
                charts = page.locator("[data-chart]").count()
                if charts:
                    page.wait_for_function(f"document.querySelectorAll('[data-ready]').length >= {charts}")
                times.append(time.perf_counter() - t)
            out[path] = statistics.median(times)
            print(f"browser {path:72} median {out[path] * 1000:6.0f} ms", flush=True)
        browser.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/sluice-bench"))
    ap.add_argument("--browser", action="store_true", help="also time each page in headless Chromium")
    ap.add_argument("--no-write", action="store_true", help="print only; leave bench/results alone")
    args = ap.parse_args()
    path = prepare(Path(args.cache), args.spans)
    store = open_store(f"duckdb:///{path}")
    app = create_app(store, routers=[dashboard_router()])
    load_before = os.getloadavg()
    with running(app) as url:
        paths = pages(store)
        http = measure_http(url, paths, args.repeat)
        browser = measure_browser(url, paths, max(1, args.repeat // 2)) if args.browser else {}
    load_after = os.getloadavg()
    store.close()
    worst = max(r["max_s"] for r in http)
    result = {"spans": args.spans, "repeat": args.repeat, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after],
              "pages": http, "browser_s": browser, "worst_s": worst, "target_s": TARGET_S, "met": worst < TARGET_S}
    print(f"slowest response {worst * 1000:.0f} ms: target {TARGET_S * 1000:.0f} ms "
          f"{'met' if result['met'] else 'NOT met'} (load average {load_before[0]:.1f} -> {load_after[0]:.1f})")
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "dashboard.json").write_text(json.dumps(result, indent=1) + "\n")
        (RESULTS / "dashboard.md").write_text(markdown(result))
    return 0 if result["met"] else 1


def markdown(r: dict) -> str:
    lines = [f"# Dashboard pages with {r['spans']:,} spans (embedded DuckDB)", "",
             f"{r['when']}, load average {r['load_before'][0]} before, {r['load_after'][0]} after; "
             f"median and slowest of {r['repeat']} fetches after one warm-up (`make bench-dashboard`).", "",
             "| page | median | slowest |" + (" browser, charts drawn |" if r["browser_s"] else ""),
             "|---|---|---|" + ("---|" if r["browser_s"] else "")]
    for p in r["pages"]:
        extra = f" {r['browser_s'][p['page']] * 1000:.0f} ms |" if r["browser_s"] else ""
        lines.append(f"| `{p['page']}` | {p['median_s'] * 1000:.0f} ms | {p['max_s'] * 1000:.0f} ms |{extra}")
    lines += ["", f"Target: every page under {r['target_s'] * 1000:.0f} ms: **{'met' if r['met'] else 'NOT met'}** "
              f"(slowest {r['worst_s'] * 1000:.0f} ms).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
