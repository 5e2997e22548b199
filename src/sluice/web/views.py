"""How a dashboard page runs: authorise, read the store off the event loop, render, map errors.

A view is a plain function ``(request, store) -> (template, context)`` (or a ready response)
executed in a worker thread, so neither the key check nor the store reads block the event loop.
Errors become pages, never tracebacks: no key → the login page, a too-small scope → 403, an
unknown id → 404 naming it, bad input → 400 with the reason, anything else → 500 with the error's
type only.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Callable
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from sluice.errors import NotFoundError, SluiceError
from sluice.web.access import ACT_SCOPES, VIEW_SCOPES, NotAllowed, Viewer, viewer
from sluice.web.render import page
from sluice.web.trace_dims import TraceDims

log = logging.getLogger("sluice.web")
_DIMS_LOCK = threading.Lock()
View = Callable[[Request, Any], Any]


class Page(Exception):
    """Raised by a view to answer with a message page (``status`` 400/404/409…)."""

    def __init__(self, status: int, heading: str, message: str, back: str | None = None):
        super().__init__(message)
        self.status, self.heading, self.message, self.back = status, heading, message, back


def register(router: APIRouter, path: str, fn: View, *, methods: tuple[str, ...] = ("GET",),
             scopes: frozenset[str] = VIEW_SCOPES) -> None:
    """Mount ``fn`` at ``path`` as a dashboard page (not in the OpenAPI document)."""

    async def endpoint(request: Request) -> Response:
        form = await read_form(request) if request.method == "POST" else {}
        return await asyncio.to_thread(_run, fn, request, form, scopes)

    endpoint.__name__ = f"ui_{fn.__name__}"
    router.add_api_route(path, endpoint, methods=list(methods), include_in_schema=False)


async def read_form(request: Request, limit: int = 64 * 1024) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the only kind the dashboard's forms send)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return {}
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def _run(fn: View, request: Request, form: dict[str, Any], scopes: frozenset[str]) -> Response:
    try:
        who = viewer(request, scopes)
    except NotAllowed as e:
        if e.status == 401 and request.method == "GET":
            return RedirectResponse(f"/ui/login?next={quote(str(request.url.path), safe='/')}", 303)
        return message(request, None, e.status, "Not allowed", e.message)
    request.state.viewer = who
    request.state.form = form
    try:
        result = fn(request, request.app.state.store)
        if not isinstance(result, Response):
            template, context = result
            result = page(request, template, viewer=who, **context)
    except Page as e:
        return message(request, who, e.status, e.heading, e.message, e.back)
    except NotFoundError as e:
        return message(request, who, 404, "Not found", str(e))
    except SluiceError as e:
        return message(request, who, 400, "Bad request", str(e))
    except Exception as e:  # noqa: BLE001 - a page, never a traceback
        log.exception("dashboard error on %s", request.url.path)
        return message(request, who, 500, "Internal error", f"internal error ({type(e).__name__}); see the server log")
    return result


def message(request: Request, who: Viewer | None, status: int, heading: str, text: str,
            back: str | None = None) -> Response:
    return page(request, "message.html", status, viewer=who, title=heading, heading=heading, message=text,
                back=back, code=status)


def trace_dims(request: Request) -> TraceDims:
    """The app's ``TraceDims``, made on first use, brought up to date for this page."""
    state = request.app.state
    with _DIMS_LOCK:
        dims = getattr(state, "ui_trace_dims", None)
        if dims is None:
            dims = state.ui_trace_dims = TraceDims(state.store)
    dims.before_page()
    return dims


def can_act(request: Request) -> bool:
    who: Viewer | None = getattr(request.state, "viewer", None)
    return who is not None and who.can_act


__all__ = ["ACT_SCOPES", "Page", "register", "message", "can_act"]
