"""API keys for ``sluice serve``: ingest keys (spans, feedback), gateway keys (chat completions) and
admin keys (everything), each kept to its own endpoints."""

from sluice.auth.keys import ADMIN, GATEWAY, INGEST, SCOPES, ApiKey, KeyRing, create_key, list_keys, revoke_key

__all__ = ["ADMIN", "GATEWAY", "INGEST", "SCOPES", "ApiKey", "KeyRing", "create_key", "list_keys", "revoke_key"]
