"""The dashboard's router: pages under ``/ui``, the login form, and the package's static files.

``sluice serve`` includes ``dashboard_router()`` next to the gateway and the read APIs. The
static files (the vendored uPlot, the stylesheet, the chart script) are read from the installed
package once and served from memory: nothing is fetched from anywhere else at run time.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any
from importlib import resources
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from sluice.web import pages_audit, pages_catalog, pages_live, pages_rollouts
from sluice.web.access import COOKIE, check_login
from sluice.web.render import page
from sluice.web.views import read_form

STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".txt": "text/plain; charset=utf-8"}
COOKIE_MAX_AGE_S = 12 * 3600


def _static_files() -> dict[str, tuple[bytes, str]]:
    root = resources.files("sluice.web") / "static"
    out = {}
    for item in root.iterdir():
        suffix = "." + item.name.rsplit(".", 1)[-1]
        if item.is_file() and suffix in STATIC_TYPES:
            out[item.name] = (item.read_bytes(), STATIC_TYPES[suffix])
    return out


def _safe_next(target: str | None) -> str:
    """Only a local dashboard path: a login form must not send people to another site."""
    if not target:
        return "/ui"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui") or target.startswith("//"):
        return "/ui"
    return target


EXTRA_PAGES: tuple[tuple[str, str], ...] = (("/ui/rollouts", "Rollouts"), ("/ui/audit", "Audit"))


def dashboard_router(rollouts: Any = None) -> APIRouter:
    """``rollouts``: the server's ``RolloutService``, through which the rollout page's actions go
    (webhooks, immediate gateway reload); without it they go straight to the store."""

    @asynccontextmanager
    async def lifespan(app: Any):
        app.state.ui_nav_extra = EXTRA_PAGES
        app.state.ui_rollouts = rollouts
        try:
            yield
        finally:
            dims = getattr(app.state, "ui_trace_dims", None)
            if dims is not None:
                await asyncio.to_thread(dims.close)

    router = APIRouter(lifespan=lifespan)
    static = _static_files()

    @router.get("/ui/static/{name}", include_in_schema=False)
    async def static_file(name: str) -> Response:
        found = static.get(name)
        if found is None:
            return Response("not found\n", 404, media_type="text/plain")
        body, kind = found
        return Response(body, 200, media_type=kind, headers={"cache-control": "public, max-age=3600",
                                                             "x-content-type-options": "nosniff"})

    @router.get("/ui", include_in_schema=False)
    async def index() -> Response:
        return RedirectResponse("/ui/deployments", 303)

    @router.get("/ui/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        return page(request, "login.html", title="Sign in", next=_safe_next(request.query_params.get("next")),
                    error=None)

    @router.post("/ui/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await read_form(request)
        target = _safe_next(form.get("next"))
        key = await asyncio.to_thread(check_login, request, form.get("key", ""))
        if isinstance(key, str):
            return page(request, "login.html", 401, title="Sign in", next=target, error=key)
        response = RedirectResponse(target, 303)
        response.set_cookie(COOKIE, form["key"].strip(), max_age=COOKIE_MAX_AGE_S, path="/ui", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    @router.post("/ui/logout", include_in_schema=False)
    async def logout() -> Response:
        response = RedirectResponse("/ui/login", 303)
        response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
        return response

    pages_live.mount(router)
    pages_catalog.mount(router)
    pages_rollouts.mount(router)
    pages_audit.mount(router)
    return router
