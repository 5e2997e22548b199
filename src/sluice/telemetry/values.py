"""Values from outside (OTLP attributes, feedback, upstream usage) that must not poison storage
or totals.

- ``dumps``: JSON text of any decoded value. orjson refuses integers beyond 64 bits and nesting
  past 255 levels (a ``TypeError`` that turned one bad attribute into a 500, or a batch that
  never commits); such integers are kept as their decimal text and such depths as JSON text
  made by the standard library.
- ``depth``: how deeply a decoded value nests (decoders refuse bodies nested past ``MAX_DEPTH``).
- ``bound_id``: user, session and cohort values (3 MB ones were stored whole) cut to 256
  characters, distinct values staying distinct.
- ``usage_problem``: token counts and costs that are negative or absurd (cost −1 USD per request,
  1e300) are flagged and left out of the typed columns, so sums over them stay true.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import orjson

INT64 = 1 << 63
MAX_DEPTH = 64  # attribute and feedback values nested deeper are refused with a 400
MAX_TOKENS = 1_000_000_000  # per span; no model takes or writes more in one call (10M-token contexts exist)
MAX_COST = 1_000_000.0  # USD per span
MAX_ID_CHARS = 256  # user, session, cohort, deployment, release, route values


def bound_id(value: str | None) -> str | None:
    """An identifier cut to ``MAX_ID_CHARS``: a prefix plus a digest of the whole, so two long
    values stay distinct (and a user stays in one canary bucket) while no row holds megabytes."""
    if value is None or len(value) <= MAX_ID_CHARS:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:23]
    return value[:MAX_ID_CHARS - 24] + "~" + digest


def fits_int64(n: int) -> bool:
    return -INT64 <= n < INT64


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of lists/dicts, counted up to ``limit + 1`` (no deeper walk)."""
    best = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            items = v.values()
        elif isinstance(v, list):
            items = v
        else:
            continue
        best = max(best, d)
        if best > limit:
            return best
        stack.extend((x, d + 1) for x in items)
    return best


def _safe(value: Any, level: int) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if fits_int64(value) else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (dict, list)) and level >= MAX_DEPTH:
        try:
            return json.dumps(value, default=str)  # the rest of the structure, kept as text
        except (RecursionError, ValueError):
            return "[nested too deeply to keep]"
    if isinstance(value, dict):
        return {str(k): _safe(v, level + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_safe(v, level + 1) for v in value]
    return value


def dumps(value: Any, option: int = 0) -> str:
    """JSON text of ``value``; values orjson refuses are kept as text instead of raising."""
    try:
        return orjson.dumps(value, option=option).decode()
    except TypeError:
        return orjson.dumps(_safe(value, 0), option=option).decode()


def usage_problem(input_tokens: Any, output_tokens: Any, total_tokens: Any, cost: Any) -> str | None:
    """Why reported usage cannot be summed (None: it can)."""
    for name, v in (("input_tokens", input_tokens), ("output_tokens", output_tokens),
                    ("total_tokens", total_tokens)):
        if v is not None and not (0 <= v <= MAX_TOKENS):
            return f"{name} {v} is outside 0..{MAX_TOKENS}"
    if cost is not None and not (0.0 <= cost <= MAX_COST):
        return f"cost {cost} is outside 0..{MAX_COST:g} USD"
    return None
