"""Request authentication: which key a request carries and whether its scope admits it.

Ingest endpoints take ``Authorization: Bearer <key>`` (or ``X-Api-Key``, which traceAI's exporter
sends) with scope ``ingest`` or ``admin``; the read-only ``GET /api/*`` endpoints take ``read`` or
``admin`` (``READ_SCOPES``), everything that acts or shows keys needs ``admin``. While no key exists in the
store the server is open, which is why every entry point refuses a non-loopback bind without keys
(``refuse_open_bind``); once the store has held a key it stays closed.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from sluice.auth.keys import ADMIN, INGEST, READ, SCOPES, ApiKey, KeyRing

INGEST_SCOPES = frozenset({INGEST, ADMIN})
ADMIN_SCOPES = frozenset({ADMIN})
READ_SCOPES = frozenset({READ, ADMIN})  # what the dashboard shows, as JSON
ANY_SCOPE = frozenset(SCOPES)


class AuthFailed(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key") or None


def authorize(request: Request, scopes: frozenset[str]) -> ApiKey | None:
    """The verified key, None when auth is not enforced; raises ``AuthFailed`` (401/403)."""
    ring: KeyRing = request.app.state.keyring
    if not ring.enforced():
        return None
    token = presented_key(request)
    if token is None:
        ring.rejected += 1
        raise AuthFailed(401, "missing API key (Authorization: Bearer <key> or X-Api-Key)")
    key = ring.verify(token)
    if key is None:
        ring.rejected += 1
        raise AuthFailed(401, "invalid or revoked API key")
    if key.scope not in scopes:
        ring.rejected += 1
        raise AuthFailed(403, f"a key with scope '{key.scope}' cannot use this endpoint")
    return key


def denied(request: Request, scopes: frozenset[str] = ADMIN_SCOPES) -> JSONResponse | None:
    """The 401/403 answer for a request its key does not admit, None when it may go on."""
    try:
        authorize(request, scopes)
    except AuthFailed as e:
        return JSONResponse({"error": e.message}, e.status)
    return None


def refuse_open_bind(host: str, ring: KeyRing, insecure: bool) -> None:
    """Every entry point that binds a socket calls this: with no key in the store anyone could
    write spans, read metrics and call the gateway, so only loopback is allowed then."""
    from sluice.errors import ConfigError
    from sluice.server.runner import LOOPBACK

    if host not in LOOPBACK and not insecure and not ring.enforced():
        raise ConfigError(f"refusing to bind {host} with no API key: anyone could write spans and read metrics. "
                          "Create keys with 'sluice keys create NAME --scope ingest|admin|gateway' or pass --insecure")
