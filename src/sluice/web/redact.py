"""Keep secrets off the dashboard: span attributes and manifests may carry headers or keys.

An attribute whose name says it is a credential (``authorization``, ``api_key``, ``cookie``…) or
whose text looks like a known key shape (``sk-…``, ``Bearer …``, AWS, GitHub, Slack, Google,
Hugging Face, private keys) is shown as ``[redacted]``. Names are matched on their last dotted
part too, so ``http.request.header.authorization`` is caught.
"""

from __future__ import annotations

import re
from typing import Any

from sluice.release.secrets import KEY_PATTERNS, SECRET_FIELD_NAMES

REDACTED = "[redacted]"
_EXTRA_NAMES = {"cookie", "set-cookie", "x-api-key", "api-key", "proxy-authorization", "key", "credentials"}
_SLUICE_KEY = re.compile(r"\bsluice_(?:ingest|admin|gateway|read)_[0-9a-f]+_[A-Za-z0-9_\-]{20,}")


def secret_name(name: str) -> bool:
    last = re.split(r"[.\[\]]", name.lower().strip())
    parts = [p for p in last if p]
    tail = parts[-1] if parts else name.lower()
    norm = tail.replace("-", "_")
    return tail in _EXTRA_NAMES or norm in SECRET_FIELD_NAMES or norm.endswith(("_api_key", "_secret", "_token",
                                                                                "_password"))


def secret_text(text: str) -> bool:
    return bool(_SLUICE_KEY.search(text)) or any(p.search(text) for p in KEY_PATTERNS)


def redact(value: Any, name: str = "") -> Any:
    """A copy of ``value`` (JSON-like) with secret-looking entries replaced."""
    if name and secret_name(name) and value not in (None, "", [], {}):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str) and secret_text(value):
        return REDACTED
    return value
