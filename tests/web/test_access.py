"""Who may see the dashboard: open while no key exists, then read/admin keys through a cookie."""

from __future__ import annotations

import html

import httpx
import pytest

from sluice.auth import keys
from sluice.server.app import create_app
from sluice.server.runner import running
from sluice.web import dashboard_router
from sluice.web.access import COOKIE


_RINGS: list = []


def create_key(store, name: str, scope: str):
    """Create a key and let the running server's key snapshot see it at once (it re-reads within a
    second by itself; the tests should not wait for that)."""
    made = keys.create_key(store, name, scope)
    for ring in _RINGS:
        ring.refresh()
    return made


@pytest.fixture
def server(duckdb_store):
    app = create_app(duckdb_store, routers=[dashboard_router()])
    _RINGS[:] = [app.state.keyring]
    with running(app) as url:
        yield url, duckdb_store
    _RINGS.clear()


def test_open_while_no_key_exists(server):
    url, _ = server
    r = httpx.get(url + "/ui/deployments", timeout=30)
    assert r.status_code == 200 and "open (no keys)" in r.text


def test_keys_required_once_one_exists_and_login_sets_a_strict_cookie(server):
    url, store = server
    _, read_key = create_key(store, "viewer", "read")
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.get("/ui/gates")
        assert r.status_code == 303 and r.headers["location"] == "/ui/login?next=/ui/gates"
        r = c.post("/ui/login", data={"key": read_key, "next": "/ui/gates"})
        assert r.status_code == 303 and r.headers["location"] == "/ui/gates"
        cookie = r.headers["set-cookie"]
        assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert "Path=/ui" in cookie
        page = c.get("/ui/gates")
        assert page.status_code == 200 and "viewer (read)" in page.text
        assert read_key not in page.text and read_key.split("_", 3)[3] not in page.text
        assert c.post("/ui/logout").status_code == 303
        c.cookies.clear()
        assert c.get("/ui/gates").status_code == 303


@pytest.mark.parametrize("scope", ["ingest", "gateway"])
def test_keys_without_read_scope_cannot_sign_in(server, scope):
    url, store = server
    _, key = create_key(store, "k", scope)
    r = httpx.post(url + "/ui/login", data={"key": key}, timeout=30)
    assert r.status_code == 401
    assert f"scope '{scope}' cannot view the dashboard" in html.unescape(r.text)
    assert key not in r.text
    r = httpx.get(url + "/ui/gates", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 403


def test_wrong_key_and_foreign_next_are_refused(server):
    url, store = server
    _, key = create_key(store, "viewer", "read")
    r = httpx.post(url + "/ui/login", data={"key": key + "x"}, timeout=30)
    assert r.status_code == 401 and "not valid" in r.text
    r = httpx.post(url + "/ui/login", data={"key": key, "next": "https://evil.example/"}, timeout=30)
    assert r.status_code == 303 and r.headers["location"] == "/ui"
    r = httpx.post(url + "/ui/login", data={"key": key, "next": "//evil.example/ui"}, timeout=30)
    assert r.headers["location"] == "/ui"


def test_header_key_works_for_scripts(server):
    url, store = server
    _, key = create_key(store, "bench", "admin")
    r = httpx.get(url + "/ui/releases", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 200 and "bench (admin)" in r.text


def test_pages_send_a_strict_content_security_policy(server):
    url, _ = server
    r = httpx.get(url + "/ui/releases", timeout=30)
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    for asset in ("uPlot.iife.min.js", "uPlot.min.css", "dashboard.js", "dashboard.css", "uPlot.LICENSE.txt"):
        got = httpx.get(f"{url}/ui/static/{asset}", timeout=30)
        assert got.status_code == 200 and len(got.content) > 100, asset
    assert httpx.get(url + "/ui/static/../../pyproject.toml", timeout=30).status_code == 404


def test_actions_need_an_admin_key(server):
    url, store = server
    _, read_key = create_key(store, "viewer", "read")
    r = httpx.post(url + "/ui/rollouts/ro-x/pause", headers={"Authorization": f"Bearer {read_key}"},
                   data={"reason": "x"}, timeout=30)
    assert r.status_code == 403 and "needs admin" in html.unescape(r.text)
    _, admin_key = create_key(store, "ops", "admin")
    r = httpx.post(url + "/ui/rollouts/ro-x/pause", headers={"Authorization": f"Bearer {admin_key}"},
                   data={"reason": "x"}, timeout=30)
    assert r.status_code == 404 and "ro-x" in html.unescape(r.text)
