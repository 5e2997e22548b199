"""Templates and formatting for the dashboard: Jinja2 with autoescaping, a strict CSP.

Every page is rendered on the server from store reads; the only script is the package's own
``dashboard.js`` (charts with the vendored uPlot), and chart data travels as JSON in
``<script type="application/json">`` blocks, escaped by ``tojson``. The Content-Security-Policy
allows scripts from the server only, so text from a trace or a dataset row can never run.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

NAV = (("/ui/deployments", "Deployments"), ("/ui/gates", "Gate runs"), ("/ui/releases", "Releases"),
       ("/ui/datasets", "Datasets"), ("/ui/traces", "Traces"))
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "same-origin",
           "cache-control": "no-store"}


def pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x * 100:.{digits}f}%"


def ms(x: float | None) -> str:
    if x is None or x != x:
        return "–"
    return f"{x:,.0f} ms" if x >= 10 else f"{x:.1f} ms"


def when(t: float | int | None) -> str:
    """A Unix time (seconds, or nanoseconds when large) as UTC."""
    if t is None:
        return "–"
    seconds = t / 1e9 if t > 1e12 else t
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def short(digest: str | None, n: int = 12) -> str:
    if not digest:
        return "–"
    return digest[7:7 + n] if digest.startswith("sha256:") else digest[:n]


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def num(x: float | int | None) -> str:
    if x is None:
        return "–"
    return f"{x:,}" if isinstance(x, int) else f"{x:,.3f}"


_env = Environment(loader=PackageLoader("sluice.web", "templates"), autoescape=select_autoescape(default=True),
                   trim_blocks=True, lstrip_blocks=True)
_env.filters.update(pct=pct, ms=ms, when=when, short=short, pretty=pretty, num=num)


def extra_pages(app: Any) -> tuple[tuple[str, str], ...]:
    """Pages that exist only when their part is installed (audit, rollouts); ``dashboard_router``
    records which it mounted."""
    return tuple(getattr(app.state, "ui_nav_extra", None) or ())


def page(request: Any, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the shared context (the viewer, the optional pages)."""
    context.setdefault("viewer", None)
    context.setdefault("title", "")
    body = _env.get_template(template).render(nav=NAV + extra_pages(request.app), path=request.url.path, **context)
    return HTMLResponse(body, status, headers=HEADERS)
