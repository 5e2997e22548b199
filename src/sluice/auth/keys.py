"""Create, list, revoke and verify API keys. Only a hash of each secret is stored.

A key reads ``sluice_<scope>_<id>_<secret>``: the id finds the row, the secret (32 random bytes,
URL-safe base64) is checked against its SHA-256 in constant time. A plain fast hash is enough
here because the secret is random with 256 bits of entropy — there is no password to guess — and
it keeps verification cheap on the ingest path. ``KeyRing`` holds the key table in memory for a
second (a snapshot refreshed off the event loop), which is also how long a revocation takes to
reach a running server.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
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


MAX_TOKEN_BYTES = 256  # a real key is ~70 characters; anything longer is refused unread
log = logging.getLogger("sluice.auth")


class KeyRing:
    """Verifies presented keys against an in-memory snapshot of the key table.

    The request path never touches the store: ``verify`` and ``enforced`` read the snapshot,
    which a background thread (``start``) re-reads every ``refresh_s`` seconds, and sooner when
    an unknown key id is presented (a key created a moment ago). Nothing is cached per presented
    token, so bogus tokens cost no memory; absurdly long ones are refused before parsing.
    Revocations and new keys reach a running server within ``refresh_s``.

    Once the store has held a key (revoked rows stay in the table, so they are the marker), auth
    stays on: revoking the last key closes the server rather than opening it.
    """

    def __init__(self, store: Any, refresh_s: float = 1.0):
        self.store = store
        self.refresh_s = refresh_s
        self._keys: dict[str, tuple[ApiKey, str]] = {}  # id -> (key, secret hash); replaced whole
        self._had_keys = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refreshes = 0
        self.rejected = 0  # 401/403 answers counted by the callers (``/metrics``)
        self.refresh()

    @property
    def ttl_s(self) -> float:
        """The older name of ``refresh_s``. ``0`` re-reads the table on every check — a store query
        on the caller's thread, so only for tests that must see key changes at once."""
        return self.refresh_s

    @ttl_s.setter
    def ttl_s(self, value: float) -> None:
        self.refresh_s = value

    # the snapshot ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the key table (blocking: call it from a worker thread, never the event loop)."""
        rows = self.store.db.query("SELECT id, name, scope, created_at, secret_hash, revoked_at FROM api_keys")
        self._keys = {r[0]: (ApiKey(r[0], r[1], r[2], r[3]), r[4]) for r in rows if r[5] is None}
        self._had_keys = self._had_keys or bool(rows)
        self.refreshes += 1

    def start(self) -> None:
        """Keep the snapshot fresh in a daemon thread until ``stop``."""
        if self._thread is not None or self.refresh_s <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sluice-keyring", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.refresh_s)
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - keep the last snapshot while the store is away
                log.warning("refreshing API keys failed; keeping the previous snapshot", exc_info=True)
            self._stop.wait(min(0.25, self.refresh_s))  # at most a few refreshes a second, whatever is presented

    # the request path -----------------------------------------------------------------------
    def enforced(self) -> bool:
        """Auth is on as soon as the store has held a key (a fresh local store starts open)."""
        if self.refresh_s <= 0:
            self.refresh()
        return self._had_keys

    def verify(self, presented: str | None) -> ApiKey | None:
        if not presented or len(presented) > MAX_TOKEN_BYTES:
            return None
        parts = presented.split("_", 3)
        if len(parts) != 4 or parts[0] != "sluice" or parts[1] not in SCOPES:
            return None
        if self.refresh_s <= 0:
            self.refresh()
        known = self._keys.get(parts[2])
        if known is None:
            self._wake.set()  # perhaps created since the last refresh
            return None
        key, secret_hash = known
        if key.scope != parts[1] or not hmac.compare_digest(secret_hash, _hash(parts[3])):
            return None
        return key


def _hash(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()
