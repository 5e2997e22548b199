"""Request authentication: which key a request carries and whether its scope admits it.

Ingest endpoints take ``Authorization: Bearer <key>`` (or ``X-Api-Key``, which traceAI's exporter
sends) with scope ``ingest`` or ``admin``; read APIs need ``admin``. While no key exists in the
store the server is open, which is why ``sluice serve`` refuses a non-loopback bind without keys.
"""

from __future__ import annotations

from starlette.requests import Request

from sluice.auth.keys import ADMIN, INGEST, ApiKey, KeyRing

INGEST_SCOPES = frozenset({INGEST, ADMIN})
ADMIN_SCOPES = frozenset({ADMIN})


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
        raise AuthFailed(401, "missing API key (Authorization: Bearer <key> or X-Api-Key)")
    key = ring.verify(token)
    if key is None:
        raise AuthFailed(401, "invalid or revoked API key")
    if key.scope not in scopes:
        raise AuthFailed(403, f"a key with scope '{key.scope}' cannot use this endpoint")
    return key
