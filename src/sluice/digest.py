"""Content digests: canonical JSON hashed with SHA-256, tagged ``sha256:`` so a change of algorithm shows."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

PREFIX = "sha256:"


def canonical_json(value: Any) -> bytes:
    """Stable bytes for a JSON-like value: sorted keys, no whitespace, UTF-8."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def sha256_bytes(data: bytes) -> str:
    return PREFIX + hashlib.sha256(data).hexdigest()


def digest_of(value: Any) -> str:
    return sha256_bytes(canonical_json(value))


def short(digest: str, n: int = 12) -> str:
    """The first ``n`` hex characters, for display."""
    return digest.removeprefix(PREFIX)[:n]
