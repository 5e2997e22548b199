"""``sluice audit TRACE_ID``: which release answered, configured how, approved by whom.

Works for gateway traces (the gateway's own span) and traces ingested over OTLP (attributed by
the telemetry settings). Every part degrades to a sentence saying what is known: an unknown trace
id, a span with no release attribution, a release this store never registered, a release no
gate approved, a store without rollout records.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sluice.audit.components import GUARDRAIL_ATTRIBUTE, describe_release, guardrail_outcomes
from sluice.audit.log import list_audit
from sluice.errors import SluiceError
from sluice.release.registry import load_bundle
from sluice.telemetry.traces import get_trace

GATEWAY_SERVICE = "sluice-gateway"
AROUND_S = 24 * 3600.0  # rollout decisions shown: this long either side of the answer


def audit_trace(store: Any, trace_id: str) -> dict[str, Any]:
    """The audit of one trace as a JSON-able dict; ``found`` is False for an unknown id."""
    tid = (trace_id or "").strip().lower()
    trace = get_trace(store, tid)
    spans = trace["spans"]
    report: dict[str, Any] = {"trace_id": tid, "found": bool(spans or trace["feedback"]), "notes": [],
                              "answer": None, "other_spans": [], "release": None, "gate": None,
                              "deployment_change": None, "rollout": [], "feedback": trace["feedback"],
                              "evaluations": trace["evaluations"]}
    notes = report["notes"]
    if not spans:
        notes.append(f"no spans stored for trace {tid}" + (" (feedback exists: its trace has not arrived)"
                                                              if trace["feedback"] else
                                                              " (a trace served a moment ago may not be written yet)"))
        return report
    answer = _answer_span(spans)
    report["answer"] = _answer(answer)
    report["other_spans"] = [{"span_id": s["span_id"], "name": s["name"], "kind": s["kind"], "route": s["route"],
                              "release": s["release"], "status": s["status"]} for s in spans if s is not answer]
    at = answer["start_ns"] / 1e9
    record = _release_record(store, answer["release"], at, notes)
    if record is not None:
        bundle = None
        try:
            bundle = load_bundle(store, record)
        except SluiceError as e:
            notes.append(f"release files could not be loaded ({e}); prompt digests come from the manifest")
        release = describe_release(record, bundle)
        overall, release["guardrails"] = guardrail_outcomes(release["guardrails"],
                                                            answer["attributes"].get(GUARDRAIL_ATTRIBUTE))
        release["guardrail_outcome"] = overall
        report["release"] = release
        report["gate"] = _gate(store, record.digest, at, notes)
    if answer["deployment"]:
        report["deployment_change"] = _deployment_change(store, answer["deployment"], at)
        report["rollout"] = _rollout(store, answer["deployment"], at, notes)
    else:
        notes.append("the span names no deployment")
    return report


def _answer_span(spans: list[dict[str, Any]]) -> dict[str, Any]:
    """The span that answered the user: a request span not on the shadow route, else the root."""
    requests = [s for s in spans if s["is_request"] and s["route"] != "shadow"]
    attributed = [s for s in requests if s["release"]]
    return (attributed or requests or [s for s in spans if s["release"]] or spans)[0]


def _answer(s: dict[str, Any]) -> dict[str, Any]:
    a = s["attributes"]
    return {"span_id": s["span_id"], "name": s["name"], "at": _iso(s["start_ns"] / 1e9),
            "source": "gateway" if s["service"] == GATEWAY_SERVICE else "otlp", "service": s["service"],
            "deployment": s["deployment"] or None, "route": s["route"] or None, "cohort": s["cohort"],
            "release": s["release"] or None, "release_ref": a.get("sluice.release_ref"),
            "status": s["status"], "error_type": s["error_type"], "model": s["model"], "provider": s["provider"],
            "fallback_used": s["fallback_used"], "cache_hit": s["cache_hit"], "pinned": bool(a.get("sluice.pinned")),
            "duration_ms": s["duration_ms"], "input_tokens": s["input_tokens"], "output_tokens": s["output_tokens"],
            "cost": s["cost"], "user_id": s["user_id"], "session_id": s["session_id"]}


def _release_record(store: Any, traced: str, at: float, notes: list[str]) -> Any:
    """The stored release a span's release attribute names: a digest, or ``name@version``
    (the newest registered before the answer). Paths are never followed."""
    if not traced:
        notes.append("the span carries no release attribution (none of the telemetry release attributes, "
                      "e.g. sluice.release or service.version, was set)")
        return None
    if traced.startswith("sha256:"):
        record = store.get_release(traced)
        if record is None:
            notes.append(f"release {traced} is not registered in this store")
        return record
    name, sep, version = traced.partition("@")
    matches = [r for r in store.list_releases(name) if not sep or r.version == version]
    if not matches:
        notes.append(f"release '{traced}' (as traced) matches no registered release")
        return None
    before = [r for r in matches if r.created_at <= at] or matches
    if len({r.digest for r in before}) > 1:
        notes.append(f"'{traced}' names {len(before)} registered releases; the newest registered before the "
                     "answer is shown (trace a digest to be exact)")
    return before[0]


def _gate(store: Any, digest: str, at: float, notes: list[str]) -> dict[str, Any] | None:
    """The passing gate record of this release as candidate, newest before the answer."""
    every = store.list_gates(10_000)
    gates = [g for g in every if g.candidate_digest == digest]
    earlier = [g for g in gates if g.created_at <= at]
    chosen = next((g for g in earlier if g.verdict == "pass"), None)
    if chosen is None:
        if earlier:
            chosen = earlier[0]
            notes.append(f"no gate passed this release before the answer; the newest gate verdict was "
                         f"{chosen.verdict}")
        else:
            as_baseline = [g.id for g in every if g.baseline_digest == digest]
            notes.append("no gate record has this release as candidate before the answer"
                         + (f" (it was the baseline of {', '.join(as_baseline[:3])})" if as_baseline else ""))
            forced = _forced(store, digest)
            if forced is not None:
                notes.append(f"it was given traffic without a passing gate (forced): {forced}")
            return None
    entry = next(iter(list_audit(store, subject=chosen.id, action_prefix="gate.run", limit=1)), None)
    forced = _forced(store, digest)
    return {"id": chosen.id, "verdict": chosen.verdict, "approved": chosen.verdict == "pass",
            "dataset": f"{chosen.dataset_name}@{chosen.dataset_version}", "dataset_name": chosen.dataset_name,
            "dataset_version": chosen.dataset_version, "policy_digest": chosen.policy_digest,
            "baseline": chosen.baseline_digest, "baseline_ref": chosen.summary.get("baseline"),
            "at": _iso(chosen.created_at), "by": entry.actor if entry else None,
            "forced": forced is not None, "forced_reason": forced}


def _has_table(store: Any, name: str) -> bool:
    return bool(store.db.query_one("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name])[0])


def _forced(store: Any, digest: str) -> str | None:
    """A rollout that overrode the gate for this release: its ``forced_reason`` in the rollouts
    table (when the rollout controller's tables exist), or ``forced`` in a rollout audit entry."""
    try:
        if _has_table(store, "rollouts"):
            row = store.db.query_one("SELECT forced_reason FROM rollouts WHERE candidate_digest = ? AND "
                                     "forced_reason IS NOT NULL ORDER BY created_at DESC LIMIT 1", [digest])
            if row:
                return str(row[0])
    except Exception:  # noqa: BLE001 - another version's rollout table: fall back to the audit log
        pass
    for e in reversed(list_audit(store, action_prefix="rollout.", limit=10_000)):
        after = e.after if isinstance(e.after, dict) else {}
        figures = after.get("figures") if isinstance(after.get("figures"), dict) else {}
        if after.get("forced") and digest in (after.get("candidate"), after.get("candidate_digest"),
                                              after.get("release")):
            return str(after.get("reason") or "forced (no reason recorded)")
        if e.action.startswith("rollout.forced") and figures.get("candidate") == digest:  # the controller's mirror
            return str(after.get("message") or "forced (no reason recorded)")
    return None


def _deployment_change(store: Any, deployment: str, at: float) -> dict[str, Any] | None:
    """The last change to the deployment before the answer: the configuration it was served under."""
    changes = list_audit(store, deployment=deployment, until=at, action_prefix="deployment.", limit=1)
    if not changes:
        return None
    e = changes[-1]
    return {"seq": e.seq, "at": _iso(e.created_at), "actor": e.actor, "action": e.action, "config": e.after}


def _rollout(store: Any, deployment: str, at: float, notes: list[str]) -> list[dict[str, Any]]:
    """Rollout decisions within a day of the answer: the controller's event log when its tables
    exist (it mirrors each event into the audit log), else the rollout entries of the audit log."""
    out = [{"source": "audit", "at": _iso(e.created_at), "actor": e.actor, "action": e.action,
            "subject": e.subject, "detail": e.after}
           for e in list_audit(store, deployment=deployment, since=at - AROUND_S, until=at + AROUND_S,
                               action_prefix="rollout.", limit=200)
           if not (isinstance(e.after, dict) and "event_seq" in e.after)]  # mirrored: read from the table below
    try:
        if _has_table(store, "rollout_events") and _has_table(store, "rollouts"):
            rows = store.db.query(
                "SELECT e.ts, e.actor, e.kind, e.rollout_id, e.message FROM rollout_events e "
                "LEFT JOIN rollouts r ON r.id = e.rollout_id WHERE (r.deployment = ? OR e.rollout_id = ?) "
                "AND e.ts >= ? AND e.ts < ? ORDER BY e.ts, e.seq LIMIT 200",
                [deployment, f"deployment:{deployment}", at - AROUND_S, at + AROUND_S])
            out += [{"source": "rollout", "at": _iso(float(ts)), "actor": actor, "action": f"rollout.{kind}",
                     "subject": rid, "detail": message} for ts, actor, kind, rid, message in rows]
    except Exception as e:  # noqa: BLE001 - a rollout schema this version does not know: say so
        notes.append(f"rollout records could not be read ({type(e).__name__})")
    return sorted(out, key=lambda d: d["at"])


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
