"""A one-line summary of what an audit entry changed, for people reading the log."""

from __future__ import annotations

from typing import Any

from sluice.digest import short

_MISSING = object()


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix or "value": value}


def summarize(before: Any, after: Any, limit: int = 6, action: str = "") -> str:
    """``field: old → new`` for changed leaves; a whole value when one side is absent."""
    if action == "gate.run" and isinstance(after, dict):
        dataset = str(after.get("dataset", ""))
        name, _, version = dataset.partition("@")
        return (f"{after.get('candidate_ref', short(str(after.get('candidate'))))} vs "
                f"{after.get('baseline_ref', short(str(after.get('baseline'))))} on {name}@{short(version)}: "
                f"verdict={after.get('verdict')}")
    if action == "release.registered" and isinstance(after, dict):
        return short(str(after.get("digest", "")))
    if before is None and after is None:
        return ""
    if before is None:
        return _short(after)
    if after is None:
        return "was " + _short(before)
    old, new = _flat(before), _flat(after)
    parts = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, _MISSING), new.get(key, _MISSING)
        if a != b:
            parts.append(f"{key}: {_value(a)} → {_value(b)}")
    more = f" (+{len(parts) - limit} more)" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + more


def _value(v: Any) -> str:
    return "-" if v is _MISSING or v is None else str(v)


def _short(value: Any, width: int = 120) -> str:
    if isinstance(value, dict):
        text = ", ".join(f"{k}={v}" for k, v in sorted(_flat(value).items()) if v not in (None, [], {}))
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"
