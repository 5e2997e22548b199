"""Signed webhook delivery for alerts: JSON or Slack-compatible ``text``, retried with backoff.

The wire format is the rollout controller's (``sluice.notify.webhook``: its ``sign``/``verify``),
so one receiver verifies both: ``X-Sluice-Signature: sha256=<hex>``, the HMAC-SHA256 of
``<timestamp>.<body>`` under the secret in the environment variable ``secret_env`` names (read at
send time, never stored), and ``X-Sluice-Timestamp`` so a receiver can refuse replays. Unlike the
rollout outbox, alerts are sent at once (an alert is only worth sending while it is current; an
undelivered one is retried at the next evaluation). Delivery is synchronous and bounded
(``retries`` + 1 attempts, ``backoff_s · 2^n`` between them): the monitor runs it in its worker
thread, never on the event loop.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

import httpx
import orjson

from sluice.monitor.config import Webhook
from sluice.notify.webhook import SIGNATURE, TIMESTAMP, sign, verify  # one wire format for every Sluice webhook

__all__ = ["SIGNATURE", "TIMESTAMP", "alert_text", "payload_for", "send", "sign", "verify"]

log = logging.getLogger("sluice.monitor")


def payload_for(hook: Webhook, alert: dict[str, Any]) -> dict[str, Any]:
    """JSON: the alert itself. Slack: one ``text`` line."""
    if hook.format == "slack":
        return {"text": alert_text(alert)}
    return alert


def alert_text(a: dict[str, Any]) -> str:
    icon = {"firing": ":rotating_light:", "renotify": ":rotating_light:", "resolved": ":white_check_mark:"}
    what = "RESOLVED" if a["event"] == "resolved" else "FIRING" + (" (still)" if a["event"] == "renotify" else "")
    cohort = f" cohort {a['cohort']}" if a.get("cohort") and a["cohort"] != "*all*" else ""
    return f"{icon.get(a['event'], '')} [{what}] {a['monitor']}: {a['deployment']}{cohort} — {a['reason']}".strip()


def send(hook: Webhook, payload: dict[str, Any], *, post: Callable[..., Any] | None = None,
         sleep: Callable[[float], None] = time.sleep) -> tuple[bool, int, str | None]:
    """(delivered, attempts, last error). 2xx is delivered; 4xx other than 408/429 is not retried."""
    body = orjson.dumps(payload)
    secret = os.environ.get(hook.secret_env) if hook.secret_env else None
    if hook.secret_env and not secret:
        return False, 0, f"environment variable {hook.secret_env} (the webhook secret) is not set"
    error = None
    with httpx.Client(timeout=hook.timeout_s) as client:
        do_post = post or client.post
        for attempt in range(hook.retries + 1):
            if attempt:
                sleep(hook.backoff_s * 2 ** (attempt - 1))
            ts = str(int(time.time()))
            headers = {"content-type": "application/json", TIMESTAMP: ts, "user-agent": "sluice-monitor"}
            if secret:
                headers[SIGNATURE] = sign(secret, ts, body)
            try:
                r = do_post(hook.url, content=body, headers=headers)
            except httpx.HTTPError as e:
                error = f"{type(e).__name__}: {e}"
                continue
            if 200 <= r.status_code < 300:
                return True, attempt + 1, None
            error = f"HTTP {r.status_code}"
            if 400 <= r.status_code < 500 and r.status_code not in (408, 429):
                return False, attempt + 1, error
    log.warning("alert webhook %s not delivered: %s", hook.url, error)
    return False, hook.retries + 1, error
