"""Who may see the dashboard, and how a browser proves it.

The dashboard sits behind the same keys as the API. A browser cannot send ``Authorization``
headers on a plain link, so the login page takes a pasted key once, checks it, and keeps it in an
``HttpOnly``, ``SameSite=Strict`` cookie (scripts cannot read it; other sites cannot make the
browser send it, which is also what protects the action forms from cross-site posts). A header
key works too (scripts, the benchmark). Viewing needs a ``read`` or ``admin`` key; actions need
``admin``. While the store holds no key at all the dashboard is open, as the API is
(``sluice serve`` refuses a non-loopback bind in that state).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from sluice.auth.keys import ADMIN, READ, ApiKey, KeyRing
from sluice.server.security import presented_key

COOKIE = "sluice_ui_key"
VIEW_SCOPES = frozenset({READ, ADMIN})
ACT_SCOPES = frozenset({ADMIN})


@dataclass(frozen=True)
class Viewer:
    """The person looking: ``key`` is None when auth is off (no key exists)."""

    key: ApiKey | None

    @property
    def can_act(self) -> bool:
        return self.key is None or self.key.scope in ACT_SCOPES

    @property
    def label(self) -> str:
        return "open (no keys)" if self.key is None else f"{self.key.name} ({self.key.scope})"


class NotAllowed(Exception):
    """401 (no valid key: show the login page) or 403 (a key whose scope is too small)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def viewer(request: Request, scopes: frozenset[str] = VIEW_SCOPES) -> Viewer:
    """The verified viewer of a request, from its header key or its cookie; raises ``NotAllowed``."""
    ring: KeyRing = request.app.state.keyring
    if not ring.enforced():
        return Viewer(None)
    token = presented_key(request) or request.cookies.get(COOKIE)
    if not token:
        raise NotAllowed(401, "sign in with an API key that has the read or admin scope")
    key = ring.verify(token)
    if key is None:
        raise NotAllowed(401, "that key is not valid (revoked, or mistyped); sign in again")
    if key.scope not in scopes:
        need = "admin" if scopes == ACT_SCOPES else "read or admin"
        raise NotAllowed(403, f"a key with scope '{key.scope}' cannot do this (it needs {need})")
    return Viewer(key)


def check_login(request: Request, token: str) -> ApiKey | str:
    """The key a login form names, or the reason it is refused (never echoing the key)."""
    token = token.strip()
    if not token:
        return "paste an API key"
    key = request.app.state.keyring.verify(token)
    if key is None:
        return "that key is not valid (revoked, or mistyped)"
    if key.scope not in VIEW_SCOPES:
        return f"a key with scope '{key.scope}' cannot view the dashboard (use a read or admin key)"
    return key
