"""Create, list, revoke and verify API keys. Only a hash of each secret is stored.

A key reads ``sluice_<scope>_<id>_<secret>``: the id finds the row, the secret (32 random bytes,
URL-safe base64) is checked against its SHA-256 in constant time. A plain fast hash is enough
here because the secret is random with 256 bits of entropy — there is no password to guess — and
it keeps verification cheap on the ingest path. ``KeyRing`` caches verified keys for a few
seconds, which is also how long a revocation takes to reach a running server.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from sluice.audit.log import append_audit, local_actor
from sluice.errors import ConfigError, NotFoundError

INGEST = "ingest"
ADMIN = "admin"
GATEWAY = "gateway"  # may call the gateway's /v1/chat/completions and /v1/models only
READ = "read"  # may view the dashboard (/ui), not act on it
SCOPES = (INGEST, ADMIN, GATEWAY, READ)


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scope: str
    created_at: float
    revoked_at: float | None = None


def create_key(store: Any, name: str, scope: str, actor: str | None = None) -> tuple[ApiKey, str]:
    """Returns the stored record and the full key, which is shown once and never stored.
    Audited as ``actor`` (default: the local user); the audit entry names the key, never its secret."""
    if scope not in SCOPES:
        raise ConfigError(f"unknown key scope '{scope}': use {', '.join(SCOPES[:-1])} or {SCOPES[-1]}")
    if not name.strip():
        raise ConfigError("a key needs a non-empty name")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    rec = ApiKey(key_id, name.strip(), scope, time.time())
    with store.db.transaction():
        store.db.execute(
            "INSERT INTO api_keys (id, name, scope, secret_hash, created_at) VALUES (?, ?, ?, ?, ?)",
            [rec.id, rec.name, rec.scope, _hash(secret), rec.created_at],
        )
        append_audit(store, actor or local_actor(), "key.created", rec.id, None, {"name": rec.name, "scope": rec.scope})
    return rec, f"sluice_{scope}_{key_id}_{secret}"


def list_keys(store: Any, include_revoked: bool = False) -> list[ApiKey]:
    sql = "SELECT id, name, scope, created_at, revoked_at FROM api_keys"
    if not include_revoked:
        sql += " WHERE revoked_at IS NULL"
    return [ApiKey(*r) for r in store.db.query(sql + " ORDER BY created_at, id")]


def revoke_key(store: Any, key_id: str, actor: str | None = None) -> ApiKey:
    with store.db.transaction():
        row = store.db.query_one("SELECT id, name, scope FROM api_keys WHERE id = ? AND revoked_at IS NULL", [key_id])
        if row is None:
            raise NotFoundError(f"no active key with id '{key_id}'")
        store.db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", [time.time(), key_id])
        append_audit(store, actor or local_actor(), "key.revoked", key_id, {"name": row[1], "scope": row[2]},
                     {"name": row[1], "scope": row[2], "revoked": True})
    return next(k for k in list_keys(store, include_revoked=True) if k.id == key_id)


class KeyRing:
    """Verifies presented keys against the store, with a short positive/negative cache."""

    def __init__(self, store: Any, ttl_s: float = 5.0):
        self.store = store
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._any: tuple[float, bool] | None = None
        self._lock = threading.Lock()

    def enforced(self) -> bool:
        """Auth is on as soon as one active key exists (a fresh local store starts open)."""
        now = time.monotonic()
        cached = self._any
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        exists = self.store.db.query_one("SELECT 1 FROM api_keys WHERE revoked_at IS NULL") is not None
        self._any = (now, exists)
        return exists

    def verify(self, presented: str | None) -> ApiKey | None:
        if not presented:
            return None
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(presented)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        key = self._lookup(presented)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[presented] = (now, key)
        return key

    def _lookup(self, presented: str) -> ApiKey | None:
        parts = presented.split("_", 3)
        if len(parts) != 4 or parts[0] != "sluice" or parts[1] not in SCOPES:
            return None
        row = self.store.db.query_one(
            "SELECT id, name, scope, created_at, secret_hash FROM api_keys WHERE id = ? AND revoked_at IS NULL",
            [parts[2]],
        )
        if row is None or row[2] != parts[1] or not hmac.compare_digest(row[4], _hash(parts[3])):
            return None
        return ApiKey(row[0], row[1], row[2], row[3])


def _hash(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()
