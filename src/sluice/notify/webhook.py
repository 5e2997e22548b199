"""Webhooks through a store outbox: JSON payloads, signed, retried with backoff until delivered.

``enqueue`` writes the message in the same store as the event it reports, so a crash between the
decision and the delivery loses nothing; ``deliver_due`` (run by one process, e.g. the rollout
controller's lease holder) posts what is due and reschedules failures with exponential backoff
(``base · 2^attempts``, capped) until ``max_attempts``, then marks the message failed.

Each request carries ``X-Sluice-Signature: sha256=<hex>``, the HMAC-SHA256 of
``<timestamp>.<body>`` under the secret read from the environment variable named by ``secret_env``
at send time (secrets are never stored), and ``X-Sluice-Timestamp`` so a receiver can refuse
replays. ``verify`` is the receiver's side. Generic on purpose: url, payload, secret_env — alerts
use the same outbox.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
import uuid
from typing import Any, Callable

import httpx
import orjson

log = logging.getLogger("sluice.notify")
SIGNATURE = "x-sluice-signature"
TIMESTAMP = "x-sluice-timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """The receiver's check (constant-time)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def enqueue(store: Any, url: str, payload: dict[str, Any], secret_env: str | None = None,
            now: float | None = None) -> str:
    """Queue one message; returns its id (also sent as ``X-Sluice-Delivery``)."""
    now = time.time() if now is None else now
    mid = f"wh-{uuid.uuid4().hex[:16]}"
    store.db.execute("INSERT INTO webhook_outbox (id, url, secret_env, payload, attempts, next_at, status, "
                     "last_error, created_at, delivered_at) VALUES (?, ?, ?, ?, 0, ?, 'pending', NULL, ?, NULL)",
                     [mid, url, secret_env, orjson.dumps(payload).decode(), now, now])
    return mid


def pending(store: Any, limit: int = 100) -> list[dict[str, Any]]:
    rows = store.db.query("SELECT id, url, status, attempts, next_at, last_error FROM webhook_outbox "
                          "ORDER BY created_at LIMIT ?", [limit])
    return [{"id": r[0], "url": r[1], "status": r[2], "attempts": int(r[3]), "next_at": float(r[4]),
             "last_error": r[5]} for r in rows]


def deliver_due(store: Any, *, now: float | None = None, timeout_s: float = 5.0, max_attempts: int = 8,
                backoff_base_s: float = 1.0, backoff_cap_s: float = 300.0, batch: int = 50,
                post: Callable[..., Any] | None = None) -> int:
    """Send the messages that are due; the number delivered. Blocking: run it in a worker thread."""
    now = time.time() if now is None else now
    rows = store.db.query("SELECT id, url, secret_env, payload, attempts FROM webhook_outbox "
                          "WHERE status = 'pending' AND next_at <= ? ORDER BY next_at LIMIT ?", [now, batch])
    if not rows:
        return 0
    delivered = 0
    with httpx.Client(timeout=timeout_s) as client:
        send = post or client.post
        for mid, url, secret_env, payload, attempts in rows:
            error = _send(send, mid, url, secret_env, payload.encode() if isinstance(payload, str) else payload)
            attempts = int(attempts) + 1
            if error is None:
                store.db.execute("UPDATE webhook_outbox SET status = 'delivered', attempts = ?, delivered_at = ?, "
                                 "last_error = NULL WHERE id = ?", [attempts, time.time(), mid])
                delivered += 1
                continue
            status = "failed" if attempts >= max_attempts else "pending"
            delay = min(backoff_cap_s, backoff_base_s * 2 ** (attempts - 1))
            store.db.execute("UPDATE webhook_outbox SET status = ?, attempts = ?, next_at = ?, last_error = ? "
                             "WHERE id = ?", [status, attempts, now + delay, error[:500], mid])
            if status == "failed":
                log.warning("webhook %s to %s failed %d times, giving up: %s", mid, url, attempts, error)
    return delivered


def _send(send: Callable[..., Any], mid: str, url: str, secret_env: str | None, body: bytes) -> str | None:
    """None when the receiver answered 2xx; the reason otherwise."""
    ts = str(int(time.time()))
    headers = {"content-type": "application/json", "x-sluice-delivery": mid, TIMESTAMP: ts}
    if secret_env:
        secret = os.environ.get(secret_env)
        if not secret:
            return f"the secret's environment variable {secret_env} is not set"
        headers[SIGNATURE] = sign(secret, ts, body)
    try:
        resp = send(url, content=body, headers=headers)
    except httpx.HTTPError as e:
        return f"{type(e).__name__}: {e}"
    if 200 <= resp.status_code < 300:
        return None
    return f"HTTP {resp.status_code}"
