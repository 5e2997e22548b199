"""API keys for ``sluice serve``: ingest keys (spans, feedback) kept apart from admin keys."""

from sluice.auth.keys import ADMIN, INGEST, SCOPES, ApiKey, KeyRing, create_key, list_keys, revoke_key

__all__ = ["ADMIN", "INGEST", "SCOPES", "ApiKey", "KeyRing", "create_key", "list_keys", "revoke_key"]
