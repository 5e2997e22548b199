"""Keeping the secrets Sluice holds out of any text it keeps or answers with.

An upstream that echoes its request (some proxies do, in error bodies) hands back the API key
Sluice sent it; that text would otherwise reach the client's error body, stored spans, run rows
and the gate's reports. Every secret value is remembered when it is read from the environment
(``remember``, called by ``env_value``), and ``redact`` replaces each of them — plus any
``Authorization`` value, bearer token or Sluice API key — wherever upstream text is kept.
"""

from __future__ import annotations

import re
import threading
from typing import Any

MASK = "[redacted]"
_MIN_SECRET = 6  # shorter values would mask ordinary words; no real key is this short
_secrets: frozenset[str] = frozenset()
_lock = threading.Lock()
_PATTERNS = re.compile(
    r"(?i)(?<=authorization: )[^\s\"',}]+(?: [^\s\"',}]+)?"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|sluice_(?:ingest|admin|gateway)_[0-9a-f]+_[A-Za-z0-9_-]+"
)


def remember(value: str | None) -> None:
    """Add a secret value (an API key, a header value from ``headers_env``)."""
    global _secrets
    if value and len(value) >= _MIN_SECRET and value not in _secrets:
        with _lock:
            _secrets = _secrets | {value}


def redact(text: str | None) -> str | None:
    """``text`` with every known secret and credential-looking value replaced by ``[redacted]``."""
    if not text:
        return text
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    if ("earer" in text or "uthorization" in text or "sluice_" in text
            or "EARER" in text or "UTHORIZATION" in text):
        text = _PATTERNS.sub(lambda m: "Bearer " + MASK if m.group(0)[:6].lower() == "bearer" else MASK, text)
    return text


def redact_value(value: Any) -> Any:
    """``redact`` applied to every string inside a JSON-like value."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    return value


def contains_secret(text: str) -> bool:
    return any(s in text for s in _secrets)
