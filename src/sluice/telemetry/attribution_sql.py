"""The writer's side of trace attribution: find what is known of the traces in a write, apply
``attribution.plan``, remember the result, fix up stored spans, inside the write's transaction.

Two memories, so that a plain span (a gateway request, a single-span trace) costs no extra SQL:
- ``recent``: the attribution of the last ``RECENT_TRACES`` traces this writer saw, in memory.
  A child exported after its root (another process, async work) finds the root's values here.
- ``trace_attribution`` (the table): only traces with stored children still waiting for a field
  (``pending_since``). They survive a restart and, on PostgreSQL, are seen by every replica; a
  row is deleted once nothing waits.
DuckDB takes the traces of a write as registered relations (one statement each); PostgreSQL uses
``= ANY`` and ``executemany`` with the ``spans (trace_id)`` index. Several PostgreSQL writers may
each miss the other's in-memory roots; pending children still get fixed when the root reaches
any of them. Pending rows older than ``RETENTION_S`` are pruned.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np

from sluice.telemetry.attribution import Known, Plan, plan
from sluice.telemetry.schema import SPAN_COLUMNS

RECENT_TRACES = 100_000
EMPTY_CHECK_S = 1.0
RETENTION_S = 24 * 3600
PRUNE_EVERY_S = 600.0
_T, _S, _P, _START, _D, _R, _C = (SPAN_COLUMNS.index(c) for c in (
    "trace_id", "span_id", "parent_id", "start_ns", "deployment", "release", "cohort"))
_COLS = "trace_id, deployment, release, cohort, from_root, pending_since, updated_at"


def concat(group_columns: list[list[tuple]], i: int) -> list:
    """Column ``i`` of every batch in the group, as one list."""
    if len(group_columns) == 1:
        return list(group_columns[0][i])
    out: list = []
    for cols in group_columns:
        out.extend(cols[i])
    return out


class TraceAttribution:
    """One per sink (writer connection): ``apply(group_columns)`` inside the write's transaction."""

    def __init__(self, dialect: str):
        self.dialect = dialect
        self.recent: OrderedDict[str, tuple[str, str, str, bool]] = OrderedDict()  # first in, first out
        self._pruned = time.monotonic()
        self._known_empty_at: float | None = None

    def apply(self, cur, group_columns: list[list[tuple]]) -> Plan:
        trace_ids = concat(group_columns, _T)
        distinct = set(trace_ids)
        stored = {r[0]: Known(r[1], r[2], r[3], bool(r[4]), r[5]) for r in self._stored(cur, distinct)}
        known = dict(stored)
        recent = self.recent
        for t in distinct.intersection(recent) if recent else ():
            mem = recent.get(t)
            if mem is not None:
                k = known.get(t)
                known[t] = Known(*mem) if k is None else Known(
                    *(a or b for a, b in zip(k.values(), mem[:3])), k.from_root or mem[3], k.pending_since)
        p = plan(trace_ids, concat(group_columns, _S), concat(group_columns, _P), concat(group_columns, _START),
                 concat(group_columns, _D), concat(group_columns, _R), concat(group_columns, _C), known)
        now = time.time()
        keep = {t: k for t, k in p.upserts.items() if k.pending_since is not None}
        if keep:
            self._known_empty_at = None
        resolved = [t for t, k in p.upserts.items() if k.pending_since is None and t in stored]
        recent.update(p.remember)
        while len(recent) > RECENT_TRACES:
            recent.popitem(last=False)
        if self.dialect == "postgres":
            self._pg_write(cur, keep, resolved, p, now)
        else:
            self._duck_write(cur, keep, resolved, p, now)
        if time.monotonic() - self._pruned > PRUNE_EVERY_S:
            self._pruned = time.monotonic()
            self._execute(cur, "DELETE FROM trace_attribution WHERE updated_at < ?", [now - RETENTION_S])
        return p

    # -------------------------------------------------------------------------------------------
    def _stored(self, cur, trace_ids: set[str]) -> list:
        """The table's rows for these traces; none asked while the table is known to be empty."""
        if not trace_ids or self._empty(cur):
            return []
        if self.dialect == "postgres":
            cur.execute(f"SELECT {_COLS} FROM trace_attribution WHERE trace_id = ANY(%s)", [list(trace_ids)])
            return cur.fetchall()
        cur.register("sluice_attr_traces", {"trace_id": np.array(list(trace_ids), dtype=object)})
        try:
            return cur.execute(f"SELECT {_COLS} FROM trace_attribution "
                               "WHERE trace_id IN (SELECT trace_id FROM sluice_attr_traces)").fetchall()
        finally:
            cur.unregister("sluice_attr_traces")

    def _empty(self, cur) -> bool:
        """Whether no trace waits (asked of the table at most every ``EMPTY_CHECK_S`` while it is
        empty, since another PostgreSQL writer may add rows; set at once when this writer adds)."""
        if self._known_empty_at is not None and time.monotonic() - self._known_empty_at < EMPTY_CHECK_S:
            return True
        self._execute(cur, "SELECT 1 FROM trace_attribution LIMIT 1", [])
        empty = not cur.fetchall()
        self._known_empty_at = time.monotonic() if empty else None
        return empty

    def _execute(self, cur, sql: str, params: list) -> None:
        cur.execute(sql.replace("?", "%s") if self.dialect == "postgres" else sql, params)

    def _duck_write(self, conn, keep: dict[str, Known], resolved: list[str], p: Plan, now: float) -> None:
        if resolved:
            conn.register("sluice_attr_done", {"trace_id": np.array(resolved, dtype=object)})
            try:
                conn.execute("DELETE FROM trace_attribution WHERE trace_id IN (SELECT trace_id FROM sluice_attr_done)")
            finally:
                conn.unregister("sluice_attr_done")
        if keep:
            rows = list(keep.items())
            conn.register("sluice_attr_rows", {
                "trace_id": np.array([t for t, _ in rows], dtype=object),
                "deployment": np.array([k.deployment for _, k in rows], dtype=object),
                "release": np.array([k.release for _, k in rows], dtype=object),
                "cohort": np.array([k.cohort for _, k in rows], dtype=object),
                "from_root": np.array([k.from_root for _, k in rows], dtype=bool),
                "pending_since": np.array([k.pending_since for _, k in rows], dtype=np.int64),
            })
            try:
                conn.execute(f"INSERT OR REPLACE INTO trace_attribution ({_COLS}) SELECT trace_id, deployment, "
                             f"release, cohort, from_root, pending_since, {now!r} FROM sluice_attr_rows")
            finally:
                conn.unregister("sluice_attr_rows")
        if p.fixups:
            conn.register("sluice_attr_fix", {
                "trace_id": np.array([f.trace_id for f in p.fixups], dtype=object),
                "deployment": np.array([f.deployment for f in p.fixups], dtype=object),
                "release": np.array([f.release for f in p.fixups], dtype=object),
                "cohort": np.array([f.cohort for f in p.fixups], dtype=object),
                "keep": np.array([f.keep for f in p.fixups], dtype=np.int64),
            })
            try:
                since = min(f.since for f in p.fixups)  # a constant: zone maps skip older row groups
                conn.execute(_FIXUP + f" AND s.start_ns >= {int(since)}")
            finally:
                conn.unregister("sluice_attr_fix")

    def _pg_write(self, cur, keep: dict[str, Known], resolved: list[str], p: Plan, now: float) -> None:
        if resolved:
            cur.execute("DELETE FROM trace_attribution WHERE trace_id = ANY(%s)", [resolved])
        if keep:
            cur.executemany(_PG_UPSERT, [(t, k.deployment, k.release, k.cohort, k.from_root, k.pending_since, now)
                                         for t, k in keep.items()])
        if p.fixups:
            cur.executemany(_PG_FIXUP, [{"d": f.deployment, "r": f.release, "c": f.cohort, "keep": f.keep,
                                         "t": f.trace_id, "since": f.since} for f in p.fixups])


_FIXUP = """
UPDATE spans AS s SET
    deployment = CASE WHEN s.unattributed & 1 <> 0 AND f.deployment <> '' THEN f.deployment ELSE s.deployment END,
    release = CASE WHEN s.unattributed & 2 <> 0 AND f.release <> '' THEN f.release ELSE s.release END,
    cohort = CASE WHEN s.unattributed & 4 <> 0 AND f.cohort <> '' THEN f.cohort ELSE s.cohort END,
    unattributed = s.unattributed & f.keep
FROM sluice_attr_fix AS f
WHERE s.trace_id = f.trace_id AND s.unattributed <> 0"""

_PG_UPSERT = (f"INSERT INTO trace_attribution ({_COLS}) VALUES (%s, %s, %s, %s, %s, %s, %s) "
              "ON CONFLICT (trace_id) DO UPDATE SET deployment = excluded.deployment, release = excluded.release, "
              "cohort = excluded.cohort, from_root = excluded.from_root, pending_since = excluded.pending_since, "
              "updated_at = excluded.updated_at")
_PG_FIXUP = """
UPDATE spans SET
    deployment = CASE WHEN unattributed & 1 <> 0 AND %(d)s <> '' THEN %(d)s ELSE deployment END,
    release = CASE WHEN unattributed & 2 <> 0 AND %(r)s <> '' THEN %(r)s ELSE release END,
    cohort = CASE WHEN unattributed & 4 <> 0 AND %(c)s <> '' THEN %(c)s ELSE cohort END,
    unattributed = unattributed & %(keep)s
WHERE trace_id = %(t)s AND unattributed <> 0 AND start_ns >= %(since)s"""
