"""Durations (``90s``, ``5m``, ``1h``, ``7d``) and instants (ISO-8601, Unix seconds, or a duration
meaning "that long ago") as the CLI and the HTTP API accept them."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

from sluice.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(text: str, field: str = "duration") -> float:
    """Seconds."""
    m = _DURATION.match(text or "")
    if not m:
        raise ConfigError(f"{field} '{text}' is not a duration (examples: 30s, 5m, 1h, 7d)")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def parse_instant_ns(text: str, field: str = "time", now: float | None = None) -> int:
    """Nanoseconds since the epoch. A bare duration means that long before ``now``."""
    now = time.time() if now is None else now
    value = (text or "").strip()
    if _DURATION.match(value) and not value.replace(".", "").isdigit():
        return int((now - parse_duration(value, field)) * 1e9)
    if value.replace(".", "", 1).isdigit():
        return int(float(value) * 1e9)
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{field} '{text}' is not a time (ISO-8601, Unix seconds, or a duration ago like 1h)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1e9)
