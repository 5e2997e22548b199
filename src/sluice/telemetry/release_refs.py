"""A release filter in any form the output shows, turned into the values spans carry.

Spans record the release as traced: the gateway writes the digest (``sha256:…``), apps write
whatever they set (``support-agent@1.0.0``, a bare version, a project version). Tables print a
registered digest as ``name@version`` and an unknown one as its 19-character short form. So a
filter is matched against both: the text as given (when some span carries it) and, when it
names a registered release (``name@version``, ``name``, a short or full digest), that release's
digest and ``name@version``. A filter matching neither is an error naming it.
"""

from __future__ import annotations

from typing import Any

from sluice.digest import PREFIX
from sluice.errors import ConfigError, NotFoundError


def traced_values(store: Any, ref: str) -> tuple[str, ...]:
    """The ``spans.release`` values that ``ref`` stands for (at least one); ``NotFoundError`` if none."""
    from sluice.release.registry import resolve_release

    ref = ref.strip()
    if not ref:
        raise ConfigError("empty --release")
    values: list[str] = []
    if _traced(store, "release = ?", [ref]):
        values.append(ref)
    try:
        record = None if "/" in ref or ref.endswith((".yaml", ".yml")) else resolve_release(store, ref)
    except NotFoundError as e:
        record, missing = None, e
    except ConfigError as e:  # an ambiguous or too short digest prefix: say so, even if traced literally
        if values:
            return tuple(values)
        raise e
    else:
        missing = None
    if record is not None:
        values += [v for v in (record.digest, f"{record.name}@{record.version}") if v not in values]
        return tuple(values)
    if values:
        return tuple(values)
    short = ref.removeprefix(PREFIX)
    if short and all(c in "0123456789abcdef" for c in short.lower()) and len(short) >= 6:
        rows = _traced(store, "release LIKE ?", [PREFIX + short.lower() + "%"], distinct=True)
        if len(rows) == 1:  # a digest prefix of an unregistered release, as the table shortens it
            return (rows[0],)
    hint = str(missing).split("not found", 1)[-1] if missing else ""
    raise NotFoundError(f"unknown release '{ref}': no span carries it and it names no registered release{hint}")


def _traced(store: Any, where: str, params: list, *, distinct: bool = False) -> list[str]:
    sql = (f"SELECT DISTINCT release FROM spans WHERE {where} LIMIT 2" if distinct
           else f"SELECT release FROM spans WHERE {where} LIMIT 1")
    return [r[0] for r in store.db.query(sql, params)]
