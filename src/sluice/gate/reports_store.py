"""Full gate reports kept in the store, so the dashboard can show a gate run after the fact.

The ``gates`` table holds the compact summary that lists need; the whole ``GateResult`` (every
evaluator × cohort measure with intervals, the regressed rows with inputs, outputs and reasons,
latency and cost) goes here as its JSON report (schema ``sluice.gate.v1``), one row per gate.
Importing this module registers the migration; ``sluice.store.open_store`` imports it first.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from sluice.gate.result import GateResult
from sluice.store.migrations import migration

migration(
    "1400_gate_reports",
    """
    CREATE TABLE IF NOT EXISTS gate_reports (
        gate_id TEXT PRIMARY KEY,
        report {json} NOT NULL,
        created_at {float} NOT NULL
    );
    """,
)


def put_gate_report(store: Any, gate_id: str, result: GateResult) -> None:
    """Store the full report of a recorded gate (its ``gates`` row is written by ``put_gate``)."""
    body = orjson.dumps(result.to_json_dict()).decode()
    store.db.execute("INSERT INTO gate_reports (gate_id, report, created_at) VALUES (?, ?, ?)",
                     [gate_id, body, time.time()])


def get_gate_report(store: Any, gate_id: str) -> GateResult | None:
    """The stored report of one gate (exact id), or None for gates recorded before reports were kept."""
    row = store.db.query_one("SELECT report FROM gate_reports WHERE gate_id = ?", [gate_id])
    if row is None:
        return None
    return GateResult.model_validate(_loads(row[0]))


def _loads(value: Any) -> dict[str, Any]:
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value
