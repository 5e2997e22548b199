"""Fixtures for the dashboard tests: one seeded server per session and a headless Chromium.

The browser is Debian's ``chromium`` driven by Playwright for Python (no browser download):
``.ci/run`` installs it when absent. Without it the browser tests are skipped with a note, except
under ``CI=true``, where a missing browser fails them.
"""

from __future__ import annotations

import os
import shutil
from contextlib import ExitStack

import pytest
from web_seed import Seeded, build_demo_store, gateway_app, make_release, seed_traffic, start_rollout

from sluice.server.runner import running
from sluice.store import open_store
from sluice.testing.upstream import scripted_upstream

CHROMIUM = os.environ.get("SLUICE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    root = tmp_path_factory.mktemp("dashboard")
    path = build_demo_store(root)
    with ExitStack() as stack:
        store = open_store(f"duckdb:///{path}")
        stack.callback(store.close)
        upstream = stack.enter_context(scripted_upstream())
        stable = make_release(store, root, "chat", "1.0", upstream)
        canary = make_release(store, root, "chat", "2.0", upstream)
        app = gateway_app(store, "chat@1.0", "chat@2.0")
        url = stack.enter_context(running(app))
        gates = {g.verdict: g.id for g in store.list_gates()}
        s = Seeded(url=url, store=store, fail_gate=gates["fail"], pass_gate=gates["pass"],
                   releases={"chat@1.0": stable, "chat@2.0": canary})
        seed_traffic(s)
        s.rollout = start_rollout(app)
        yield s


@pytest.fixture(scope="module")
def browser(seeded):
    """Started after the seeding, and stopped with the module: Playwright's sync API keeps an event
    loop running on this thread while it is open, and ``asyncio.run`` (the demo's gate runs, other
    test modules) refuses to start inside one."""
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " (CI=true: browser tests must run)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        yield b
        b.close()


class Tab:
    """A page that records console errors and uncaught exceptions."""

    def __init__(self, page, base: str):
        self.page = page
        self.base = base
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.set_default_timeout(30_000)

    def open(self, path: str):
        return self.page.goto(self.base + path, wait_until="load")


@pytest.fixture
def tab(browser, seeded):
    context = browser.new_context()
    t = Tab(context.new_page(), seeded.url)
    yield t
    context.close()
