"""Append to and read the audit log: everything that changes what users get.

``append_audit`` is the one way in. Entries are never updated or deleted; each carries the hash
of the one before it, so ``verify_chain`` can prove nothing was edited, dropped or reordered
since it was written. Appends are serialised: inside the caller's transaction (so an entry
commits with the change it records), under a PostgreSQL transaction-level advisory lock so that
several replicas extend one chain.

Actors are names, never secrets: ``key:<key name>`` for an API call, ``cli:<os user>`` for a
local command, ``config:<file>`` for a deployment seeded from ``sluice.yaml`` at start-up,
``anonymous`` for an API call while the server runs without keys. Other parts (the rollout
controller) pass their own, e.g. ``rollout-controller``.
"""

from __future__ import annotations

import getpass
import hashlib
import time
from dataclasses import asdict, dataclass
from typing import Any

import orjson

GENESIS = "sha256:" + "0" * 64
_LOCK_KEY = 0x51_1CE_A0D  # pg_advisory_xact_lock key of the audit chain
_COLS = "seq, created_at, actor, action, subject, deployment, before_state, after_state, prev_hash, hash"


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    created_at: float
    actor: str
    action: str
    subject: str
    deployment: str | None
    before: Any
    after: Any
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    entries: int
    bad_seq: int | None = None
    reason: str = ""


def local_actor() -> str:
    """Who runs this process, for changes made from the command line."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no passwd entry (containers): still say it was local
        return "cli:unknown"


def key_actor(key: Any) -> str:
    """The audit name of an API caller: its key's name (never the secret)."""
    return f"key:{key.name}" if key is not None else "anonymous"


def _text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


def entry_hash(prev_hash: str, seq: int, created_at: float, actor: str, action: str, subject: str,
               deployment: str | None, before_text: str | None, after_text: str | None) -> str:
    """The hash of one entry: its predecessor's hash and every stored field, as stored."""
    body = orjson.dumps([prev_hash, seq, created_at, actor, action, subject, deployment, before_text, after_text])
    return "sha256:" + hashlib.sha256(body).hexdigest()


def chain_lock(store: Any) -> None:
    """Inside a transaction: hold the chain's lock until it ends, so a read-decide-write of the
    caller (seeding a deployment) and its audit entry are not raced by another replica."""
    if store.db.dialect.name == "postgres":
        store.db.execute("SELECT pg_advisory_xact_lock(?)", [_LOCK_KEY])


def append_audit(store: Any, actor: str, action: str, subject: str, before: Any = None, after: Any = None, *,
                 deployment: str | None = None, at: float | None = None) -> AuditEntry:
    """Record one change (``action`` such as ``deployment.changed``; ``before``/``after`` JSON-able).

    Blocking: call it from a worker thread on the serving paths. Joins the caller's transaction
    when there is one, so the entry commits or rolls back with the change it describes.
    """
    db = store.db
    before_text, after_text = _text(before), _text(after)
    with db.transaction():
        chain_lock(store)
        last = db.query_one("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        seq, prev = (int(last[0]) + 1, last[1]) if last else (1, GENESIS)
        created = float(at if at is not None else time.time())
        digest = entry_hash(prev, seq, created, actor, action, subject, deployment, before_text, after_text)
        db.execute(f"INSERT INTO audit_log ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [seq, created, actor, action, subject, deployment, before_text, after_text, prev, digest])
    return AuditEntry(seq, created, actor, action, subject, deployment, before, after, prev, digest)


def _entry(r: tuple) -> AuditEntry:
    return AuditEntry(int(r[0]), float(r[1]), r[2], r[3], r[4], r[5],
                      orjson.loads(r[6]) if r[6] is not None else None,
                      orjson.loads(r[7]) if r[7] is not None else None, r[8], r[9])


def list_audit(store: Any, *, since: float | None = None, until: float | None = None,
               deployment: str | None = None, action_prefix: str | None = None,
               subject: str | None = None, limit: int = 1000) -> list[AuditEntry]:
    """Entries oldest first (the newest ``limit`` of those that match)."""
    clauses, params = [], []
    for sql, value in (("created_at >= ?", since), ("created_at < ?", until), ("deployment = ?", deployment),
                       ("subject = ?", subject)):
        if value is not None:
            clauses.append(sql)
            params.append(value)
    if action_prefix:
        clauses.append("substr(action, 1, ?) = ?")
        params += [len(action_prefix), action_prefix]
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = store.db.query(f"SELECT {_COLS} FROM audit_log {where} ORDER BY seq DESC LIMIT ?", params + [limit])
    return [_entry(r) for r in reversed(rows)]


def verify_chain(store: Any, batch: int = 1000) -> ChainCheck:
    """Recompute every hash in order: the first entry that does not fit is reported."""
    prev, expected_seq, count = GENESIS, 1, 0
    while True:
        rows = store.db.query(f"SELECT {_COLS} FROM audit_log WHERE seq >= ? ORDER BY seq LIMIT ?",
                              [expected_seq, batch])
        for r in rows:
            seq = int(r[0])
            if seq != expected_seq:
                return ChainCheck(False, count, expected_seq, f"entry {expected_seq} is missing")
            if r[8] != prev:
                return ChainCheck(False, count, seq, f"entry {seq} does not follow entry {seq - 1}")
            if entry_hash(r[8], seq, float(r[1]), r[2], r[3], r[4], r[5], r[6], r[7]) != r[9]:
                return ChainCheck(False, count, seq, f"entry {seq} was altered after it was written")
            prev, expected_seq, count = r[9], seq + 1, count + 1
        if len(rows) < batch:
            break
    return ChainCheck(True, count)
