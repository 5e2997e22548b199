"""The writer's side of trace attribution: read the recorded rows, apply ``attribution.plan``,
write ``trace_attribution`` and fix up stored spans, inside the write's transaction.

DuckDB takes the traces of a write as registered relations (one statement each); PostgreSQL
uses ``= ANY`` and ``executemany`` with the ``spans (trace_id)`` index. Only the writer thread
of a process writes these rows; several PostgreSQL writers (replicas) may each see a slightly
older row, so a late root can leave a child of a concurrently written batch at ``default``.
Rows older than ``RETENTION_S`` are pruned: a span arriving a day after its root is not
expected from any exporter.
"""

from __future__ import annotations

import time

import numpy as np

from sluice.telemetry.attribution import Known, Plan, plan
from sluice.telemetry.schema import SPAN_COLUMNS

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


def plan_for(group_columns: list[list[tuple]], known_rows) -> tuple[Plan, list]:
    """The plan for a group of batches (``SpanBatch.columns`` each); ``known_rows(trace_ids)``
    returns the recorded ``trace_attribution`` rows of those traces."""
    trace_ids = concat(group_columns, _T)
    known = {r[0]: Known(r[1], r[2], r[3], bool(r[4]), r[5]) for r in known_rows(sorted(set(trace_ids)))}
    return plan(trace_ids, concat(group_columns, _S), concat(group_columns, _P), concat(group_columns, _START),
                concat(group_columns, _D), concat(group_columns, _R), concat(group_columns, _C), known), trace_ids


class Pruner:
    def __init__(self) -> None:
        self._last = time.monotonic()

    def due(self) -> bool:
        if time.monotonic() - self._last < PRUNE_EVERY_S:
            return False
        self._last = time.monotonic()
        return True


# DuckDB --------------------------------------------------------------------------------------
def duck_apply(conn, group_columns: list[list[tuple]], pruner: Pruner) -> Plan:
    def known_rows(trace_ids: list[str]):
        if not trace_ids:
            return []
        conn.register("sluice_attr_traces", {"trace_id": np.array(trace_ids, dtype=object)})
        try:
            return conn.execute(f"SELECT {_COLS} FROM trace_attribution "
                                "WHERE trace_id IN (SELECT trace_id FROM sluice_attr_traces)").fetchall()
        finally:
            conn.unregister("sluice_attr_traces")

    p, _ = plan_for(group_columns, known_rows)
    now = time.time()
    if p.upserts:
        rows = list(p.upserts.items())
        conn.register("sluice_attr_rows", {
            "trace_id": np.array([t for t, _ in rows], dtype=object),
            "deployment": np.array([k.deployment for _, k in rows], dtype=object),
            "release": np.array([k.release for _, k in rows], dtype=object),
            "cohort": np.array([k.cohort for _, k in rows], dtype=object),
            "from_root": np.array([k.from_root for _, k in rows], dtype=bool),
            "pending_since": np.array([-1 if k.pending_since is None else k.pending_since for _, k in rows],
                                      dtype=np.int64),
        })
        try:
            conn.execute(f"INSERT OR REPLACE INTO trace_attribution ({_COLS}) SELECT trace_id, deployment, release, "
                         f"cohort, from_root, NULLIF(pending_since, -1), {now!r} FROM sluice_attr_rows")
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
    if pruner.due():
        conn.execute(f"DELETE FROM trace_attribution WHERE updated_at < {now - RETENTION_S!r}")
    return p


_FIXUP = """
UPDATE spans AS s SET
    deployment = CASE WHEN s.unattributed & 1 <> 0 AND f.deployment <> '' THEN f.deployment ELSE s.deployment END,
    release = CASE WHEN s.unattributed & 2 <> 0 AND f.release <> '' THEN f.release ELSE s.release END,
    cohort = CASE WHEN s.unattributed & 4 <> 0 AND f.cohort <> '' THEN f.cohort ELSE s.cohort END,
    unattributed = s.unattributed & f.keep
FROM sluice_attr_fix AS f
WHERE s.trace_id = f.trace_id AND s.unattributed <> 0"""


# PostgreSQL ----------------------------------------------------------------------------------
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


def pg_apply(cur, group_columns: list[list[tuple]], pruner: Pruner) -> Plan:
    def known_rows(trace_ids: list[str]):
        if not trace_ids:
            return []
        cur.execute(f"SELECT {_COLS} FROM trace_attribution WHERE trace_id = ANY(%s)", [trace_ids])
        return cur.fetchall()

    p, _ = plan_for(group_columns, known_rows)
    now = time.time()
    if p.upserts:
        cur.executemany(_PG_UPSERT, [(t, k.deployment, k.release, k.cohort, k.from_root, k.pending_since, now)
                                     for t, k in p.upserts.items()])
    if p.fixups:
        cur.executemany(_PG_FIXUP, [{"d": f.deployment, "r": f.release, "c": f.cohort, "keep": f.keep,
                                     "t": f.trace_id, "since": f.since} for f in p.fixups])
    if pruner.due():
        cur.execute("DELETE FROM trace_attribution WHERE updated_at < %s", [now - RETENTION_S])
    return p
