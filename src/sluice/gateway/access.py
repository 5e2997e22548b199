"""Who may call a gateway endpoint: the bearer key checked against the server's ``KeyRing``.

Kept apart from the handlers so every entry point (chat, models, metrics, the deployments API)
applies one rule with one set of error answers.
"""

from __future__ import annotations

from typing import Any

from sluice.auth.keys import ADMIN, GATEWAY, READ
from sluice.gateway import protocol
from sluice.gateway.execute import GatewayFailure

GATEWAY_SCOPES = frozenset({GATEWAY, ADMIN})
ADMIN_ONLY = frozenset({ADMIN})
READ_OR_ADMIN = frozenset({READ, ADMIN})  # GET /api/deployments[/name]


def authorize(ring: Any, scope, headers: dict[str, str], scopes: frozenset[str] = GATEWAY_SCOPES) -> Any:
    """The caller's key (None while the server runs without keys); raises ``GatewayFailure``
    401/403. ``ring`` is the gateway's own key ring, else the mounting app's."""
    ring = ring or protocol.app_state(scope, "keyring")
    if ring is None or not ring.enforced():
        return None
    token = protocol.bearer(headers)
    if token is None:
        ring.rejected += 1
        raise GatewayFailure(401, "missing API key (Authorization: Bearer <key>)", "invalid_request_error",
                             "missing_api_key")
    key = ring.verify(token)
    if key is None:
        ring.rejected += 1
        raise GatewayFailure(401, "invalid or revoked API key", "invalid_request_error", "invalid_api_key")
    if key.scope not in scopes:
        ring.rejected += 1
        wanted = " or ".join(sorted(scopes))
        raise GatewayFailure(403, f"a key with scope '{key.scope}' cannot use this endpoint (needs {wanted})",
                             "invalid_request_error", "scope_forbidden")
    return key
