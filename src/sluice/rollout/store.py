"""Rollouts as stored: the rollout row (plan, step, analysis state), its append-only event log,
the webhook outbox and the controller's lease.

Everything the controller knows lives here, so a restarted server resumes mid-step with the same
sequential test (the analysis state is JSON), and several replicas on one PostgreSQL agree on who
acts (``lease``). Every function is a blocking store call: the server runs them in a worker thread.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from sluice.audit.log import append_audit
from sluice.store.migrations import migration

ACTIVE = ("running", "paused")
FINAL = ("promoted", "rolled_back", "aborted")
# held / narrowed wait for a person (resume, promote or abort) and still own the deployment

migration(
    "0900_rollouts",
    """
    CREATE TABLE IF NOT EXISTS rollouts (
        id TEXT PRIMARY KEY,
        deployment TEXT NOT NULL,
        status TEXT NOT NULL,
        candidate_ref TEXT NOT NULL,
        candidate_digest TEXT NOT NULL,
        stable_ref TEXT NOT NULL,
        stable_digest TEXT NOT NULL,
        plan {json} NOT NULL,
        step_index INTEGER NOT NULL,
        step_started_at {float} NOT NULL,
        state {json} NOT NULL,
        analysis {json} NOT NULL,
        last_decision {json},
        gate_id TEXT,
        forced_reason TEXT,
        created_by TEXT NOT NULL,
        created_at {float} NOT NULL,
        updated_at {float} NOT NULL,
        finished_at {float}
    );
    CREATE SEQUENCE IF NOT EXISTS rollout_event_seq;
    CREATE TABLE IF NOT EXISTS rollout_events (
        seq {bigint} NOT NULL,
        rollout_id TEXT NOT NULL,
        ts {float} NOT NULL,
        actor TEXT NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        figures {json} NOT NULL
    );
    CREATE TABLE IF NOT EXISTS webhook_outbox (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        secret_env TEXT,
        payload {json} NOT NULL,
        attempts INTEGER NOT NULL,
        next_at {float} NOT NULL,
        status TEXT NOT NULL,
        last_error TEXT,
        created_at {float} NOT NULL,
        delivered_at {float}
    );
    CREATE TABLE IF NOT EXISTS controller_lease (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at {float} NOT NULL
    );
    """,
)


@dataclass
class Rollout:
    id: str
    deployment: str
    status: str
    candidate_ref: str
    candidate_digest: str
    stable_ref: str
    stable_digest: str
    plan: dict[str, Any]
    step_index: int = 0
    step_started_at: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)  # controller bookkeeping: windows, frozen quantiles, drops
    analysis: dict[str, Any] = field(default_factory=dict)  # the analysis' own JSON state
    last_decision: dict[str, Any] | None = None
    gate_id: str | None = None
    forced_reason: str | None = None
    created_by: str = "cli"
    created_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None

    def view(self) -> dict[str, Any]:
        """The JSON the API and ``--json`` print (analysis state left out: it is the test's internals)."""
        return {"id": self.id, "deployment": self.deployment, "status": self.status,
                "candidate": {"ref": self.candidate_ref, "digest": self.candidate_digest},
                "stable": {"ref": self.stable_ref, "digest": self.stable_digest},
                "step": self.step_index, "steps": len(self.plan.get("steps", [])),
                "step_started_at": self.step_started_at, "dropped_cohorts": self.state.get("dropped", []),
                "last_decision": self.last_decision, "gate_id": self.gate_id, "forced_reason": self.forced_reason,
                "created_by": self.created_by, "created_at": self.created_at, "updated_at": self.updated_at,
                "finished_at": self.finished_at, "plan": self.plan}


_COLS = ("id, deployment, status, candidate_ref, candidate_digest, stable_ref, stable_digest, plan, step_index, "
         "step_started_at, state, analysis, last_decision, gate_id, forced_reason, created_by, created_at, "
         "updated_at, finished_at")


def _dumps(v: Any) -> str:
    return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()


def _row(r: tuple) -> Rollout:
    return Rollout(id=r[0], deployment=r[1], status=r[2], candidate_ref=r[3], candidate_digest=r[4],
                   stable_ref=r[5], stable_digest=r[6], plan=orjson.loads(r[7]), step_index=int(r[8]),
                   step_started_at=float(r[9]), state=orjson.loads(r[10]), analysis=orjson.loads(r[11]),
                   last_decision=orjson.loads(r[12]) if r[12] else None, gate_id=r[13], forced_reason=r[14],
                   created_by=r[15], created_at=float(r[16]), updated_at=float(r[17]),
                   finished_at=float(r[18]) if r[18] is not None else None)


def new_id() -> str:
    return f"ro-{uuid.uuid4().hex[:12]}"


def insert(store: Any, ro: Rollout) -> None:
    now = time.time()
    ro.created_at = ro.created_at or now
    ro.updated_at = now
    store.db.execute(
        f"INSERT INTO rollouts ({_COLS}) VALUES ({', '.join('?' * 19)})",
        [ro.id, ro.deployment, ro.status, ro.candidate_ref, ro.candidate_digest, ro.stable_ref, ro.stable_digest,
         _dumps(ro.plan), ro.step_index, ro.step_started_at, _dumps(ro.state), _dumps(ro.analysis),
         _dumps(ro.last_decision) if ro.last_decision is not None else None, ro.gate_id, ro.forced_reason,
         ro.created_by, ro.created_at, ro.updated_at, ro.finished_at])


def save(store: Any, ro: Rollout) -> None:
    """Write back the mutable part of a rollout (status, step, states, decision)."""
    ro.updated_at = time.time()
    store.db.execute(
        "UPDATE rollouts SET status = ?, stable_ref = ?, stable_digest = ?, step_index = ?, step_started_at = ?, "
        "state = ?, analysis = ?, last_decision = ?, updated_at = ?, finished_at = ? WHERE id = ?",
        [ro.status, ro.stable_ref, ro.stable_digest, ro.step_index, ro.step_started_at, _dumps(ro.state),
         _dumps(ro.analysis), _dumps(ro.last_decision) if ro.last_decision is not None else None, ro.updated_at,
         ro.finished_at, ro.id])


def get(store: Any, rollout_id: str) -> Rollout | None:
    r = store.db.query_one(f"SELECT {_COLS} FROM rollouts WHERE id = ?", [rollout_id])
    return _row(r) if r else None


def list_rollouts(store: Any, *, deployment: str | None = None, status: tuple[str, ...] | None = None,
                  limit: int = 50) -> list[Rollout]:
    """Newest first."""
    clauses, params = [], []
    if deployment:
        clauses.append("deployment = ?")
        params.append(deployment)
    if status:
        clauses.append("status IN (" + ", ".join("?" * len(status)) + ")")
        params.extend(status)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = store.db.query(f"SELECT {_COLS} FROM rollouts {where} ORDER BY created_at DESC LIMIT ?", params + [limit])
    return [_row(r) for r in rows]


def open_for(store: Any, deployment: str) -> Rollout | None:
    """The deployment's rollout that is not finished (running, paused, held or narrowed), if any."""
    rows = store.db.query(f"SELECT {_COLS} FROM rollouts WHERE deployment = ? AND status NOT IN (?, ?, ?) "
                          "ORDER BY created_at DESC LIMIT 1", [deployment, *FINAL])
    return _row(rows[0]) if rows else None


# event log ---------------------------------------------------------------------------------
def append_event(store: Any, rollout_id: str, actor: str, kind: str, message: str,
                 figures: dict[str, Any] | None = None) -> int:
    """Append one event (append-only: nothing updates or deletes these rows); returns its sequence number.
    The same event goes to the audit log (``rollout.<kind>``) in the same transaction."""
    with store.db.transaction():
        seq = int(store.db.query_one("SELECT nextval('rollout_event_seq')")[0])
        store.db.execute("INSERT INTO rollout_events (seq, rollout_id, ts, actor, kind, message, figures) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)",
                         [seq, rollout_id, time.time(), actor, kind, message, _dumps(figures or {})])
        row = store.db.query_one("SELECT deployment FROM rollouts WHERE id = ?", [rollout_id])
        append_audit(store, actor, f"rollout.{kind}", rollout_id, None,
                     {"message": message, "figures": figures or {}, "event_seq": seq},
                     deployment=row[0] if row else rollout_id.removeprefix("deployment:")
                     if rollout_id.startswith("deployment:") else None)
    return seq


def events(store: Any, rollout_id: str, *, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
    rows = store.db.query("SELECT seq, ts, actor, kind, message, figures FROM rollout_events "
                          "WHERE rollout_id = ? AND seq > ? ORDER BY seq LIMIT ?", [rollout_id, after, limit])
    return [{"seq": int(s), "at": float(t), "actor": a, "kind": k, "message": m, "figures": orjson.loads(f)}
            for s, t, a, k, m, f in rows]


# lease -------------------------------------------------------------------------------------
def acquire_lease(store: Any, name: str, holder: str, ttl_s: float, now: float | None = None) -> bool:
    """Take or renew the lease ``name`` for ``ttl_s``; True when ``holder`` has it afterwards.

    One conditional statement each way (insert when absent; update when ours or expired), so two
    replicas racing for an expired lease cannot both win: the row update is atomic in both backends.
    """
    now = time.time() if now is None else now
    store.db.execute("INSERT INTO controller_lease (name, holder, expires_at) VALUES (?, ?, ?) "
                     "ON CONFLICT (name) DO NOTHING", [name, holder, now + ttl_s])
    got = store.db.query("UPDATE controller_lease SET holder = ?, expires_at = ? "
                         "WHERE name = ? AND (holder = ? OR expires_at < ?) RETURNING holder",
                         [holder, now + ttl_s, name, holder, now])
    return bool(got) and got[0][0] == holder


def release_lease(store: Any, name: str, holder: str) -> None:
    store.db.execute("UPDATE controller_lease SET expires_at = 0 WHERE name = ? AND holder = ?", [name, holder])


def lease_holder(store: Any, name: str) -> tuple[str, float] | None:
    r = store.db.query_one("SELECT holder, expires_at FROM controller_lease WHERE name = ?", [name])
    return (r[0], float(r[1])) if r else None
