"""``sluice dataset from-traces``: turn sampled production traces into a new dataset version.

Selection is over request spans (one per trace) and deterministic for a given seed: traces are
ordered by ``md5(trace_id || seed)``, which both backends compute, so re-running with the same
seed and data yields the same version. Modes:

- ``cohort``   up to ``limit`` traces per cohort (or only ``cohort``);
- ``failure``  traces whose request failed or whose evaluation results include a fail;
- ``feedback`` traces with negative feedback (thumbs_down, escalation, refund, manual_override).

Each trace becomes a ``Row``: ``input`` from the first LLM span's messages (OpenInference
``llm.input_messages.*``, GenAI ``gen_ai.input.messages``) or the root's ``input.value``;
``context`` from retriever spans' ``retrieval.documents.*``; the observed output goes to
``metadata.production_output`` (it is what production said, not an expected answer).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Literal

import orjson

from sluice.dataset.row import ContextDoc, Message, Row
from sluice.dataset.validate import normalise_row
from sluice.digest import digest_of
from sluice.errors import ConfigError, DataError
from sluice.store.records import DatasetRecord
from sluice.telemetry.traces import trace_spans

Mode = Literal["cohort", "failure", "feedback"]
NEGATIVE_FEEDBACK = ("thumbs_down", "escalation", "refund", "manual_override")


def from_traces(store: Any, name: str, *, by: Mode = "cohort", cohort: str | None = None,
                deployment: str | None = None, release: str | tuple[str, ...] | None = None,
                since_ns: int | None = None,
                limit: int = 100, seed: int = 0, description: str = "") -> tuple[DatasetRecord, bool, int]:
    """Store the sample as a dataset version: (record, created, traces skipped for lack of input)."""
    if by not in ("cohort", "failure", "feedback"):
        raise ConfigError(f"unknown sampling mode '{by}': use cohort, failure or feedback")
    if limit <= 0:
        raise ConfigError("--limit must be positive")
    picked = _select(store, by, cohort, deployment, release, since_ns, limit, seed)
    rows, skipped = [], 0
    for trace_id, selected_by in picked:
        row = trace_to_row(trace_spans(store, trace_id), selected_by, _feedback_kinds(store, trace_id))
        if row is None:
            skipped += 1
        else:
            rows.append(row)
    if not rows:
        raise DataError(f"no stored traces match (mode {by}"
                        + (f", {skipped} without a recoverable input" if skipped else "") + ")")
    bodies = [normalise_row(r) for r in rows]
    record = DatasetRecord(name=name, version=digest_of(bodies), row_count=len(rows),
                           cohorts=dict(sorted(Counter(r.cohort for r in rows).items())),
                           created_at=time.time(), description=description or f"sampled from traces by {by}",
                           source=f"traces:{by}")
    existing = store.get_dataset(name, record.version)
    if existing is not None:
        return existing, False, skipped
    return record, store.put_dataset(record, bodies), skipped


def _select(store, by, cohort, deployment, release, since_ns, limit, seed) -> list[tuple[str, str]]:
    clauses, params = ["s.is_request"], []
    for col, value in (("cohort", cohort), ("deployment", deployment), ("release", release)):
        if isinstance(value, tuple):  # any of these (release_refs.traced_values)
            clauses.append(f"s.{col} IN ({', '.join('?' for _ in value)})")
            params.extend(value)
        elif value is not None:
            clauses.append(f"s.{col} = ?")
            params.append(value)
    if since_ns is not None:
        clauses.append("s.start_ns >= ?")
        params.append(since_ns)
    if by == "failure":
        clauses.append("(s.status = 'ERROR' OR s.trace_id IN "
                       "(SELECT trace_id FROM span_evals WHERE passed = false))")
    elif by == "feedback":
        marks = ", ".join("?" for _ in NEGATIVE_FEEDBACK)
        clauses.append(f"s.trace_id IN (SELECT trace_id FROM feedback WHERE kind IN ({marks}))")
        params.extend(NEGATIVE_FEEDBACK)
    order = "md5(s.trace_id || ?)"
    partition = "s.cohort" if by == "cohort" else "1"
    sql = f"""
        SELECT trace_id FROM (
          SELECT s.trace_id, s.cohort, row_number() OVER (PARTITION BY {partition} ORDER BY {order}) AS n,
                 {order} AS h
          FROM spans s WHERE {' AND '.join(clauses)}
        ) ranked WHERE n <= ? ORDER BY cohort, h"""
    rows = store.db.query(sql, [str(seed), str(seed)] + params + [limit])
    seen: dict[str, str] = {}
    for (trace_id,) in rows:
        seen.setdefault(trace_id, by)
    return list(seen.items())


def _feedback_kinds(store: Any, trace_id: str) -> list[str]:
    return [r[0] for r in store.db.query(
        "SELECT DISTINCT kind FROM feedback WHERE trace_id = ? ORDER BY kind", [trace_id])]


def trace_to_row(spans: list[dict[str, Any]], selected_by: str, feedback: list[str]) -> Row | None:
    """A dataset row from one trace's spans, or None when no input can be recovered."""
    if not spans:
        return None
    root = next((s for s in spans if s["is_request"]), spans[0])
    llm = [s for s in spans if s["kind"] == "LLM"]
    messages = next((m for m in (_input_messages(s["attributes"]) for s in llm) if m), None)
    if messages is None:
        messages = _input_from_value(root["attributes"].get("input.value"))
    if not messages:
        return None
    output = next((o for o in (_output_text(s["attributes"]) for s in reversed(llm)) if o is not None), None)
    if output is None:
        output = root["attributes"].get("output.value")
    metadata = {"source": "traces", "selected_by": selected_by, "deployment": root["deployment"],
                "release": root["release"], "route": root["route"], "status": root["status"]}
    if output is not None:
        metadata["production_output"] = output
    if root["error_type"]:
        metadata["error_type"] = root["error_type"]
    if feedback:
        metadata["feedback"] = feedback
    return Row(id=root["trace_id"], input=messages, context=_documents(spans), cohort=root["cohort"],
               trace_id=root["trace_id"], metadata=metadata)


def _input_messages(a: dict[str, Any]) -> list[Message] | None:
    out, i = [], 0
    while f"llm.input_messages.{i}.message.role" in a:
        role = a[f"llm.input_messages.{i}.message.role"]
        content = a.get(f"llm.input_messages.{i}.message.content")
        if role in ("system", "user", "assistant", "tool", "developer"):
            out.append(Message(role=role, content=content if isinstance(content, str) else None))
        i += 1
    if out:
        return out
    raw = a.get("gen_ai.input.messages")
    parsed = _json(raw) if isinstance(raw, str) else raw
    if isinstance(parsed, list):
        for m in parsed:
            if isinstance(m, dict) and m.get("role") in ("system", "user", "assistant", "tool", "developer"):
                text = "".join(p.get("content", "") for p in m.get("parts") or []
                               if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("content"), str))
                out.append(Message(role=m["role"], content=text or m.get("content")))
    return out or None


def _input_from_value(value: Any) -> list[Message] | None:
    if not isinstance(value, str) or not value:
        return None
    parsed = _json(value)
    if isinstance(parsed, dict) and isinstance(parsed.get("messages"), list):
        try:
            return [Message.model_validate(m) for m in parsed["messages"]] or None
        except ValueError:
            return None
    return [Message(role="user", content=value)]


def _output_text(a: dict[str, Any]) -> str | None:
    content = a.get("llm.output_messages.0.message.content")
    if isinstance(content, str):
        return content
    value = a.get("output.value")
    parsed = _json(value) if isinstance(value, str) else None
    if isinstance(parsed, dict):  # an OpenAI response body
        try:
            return parsed["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            return None
    return value if isinstance(value, str) else None


def _documents(spans: list[dict[str, Any]]) -> list[ContextDoc]:
    docs = []
    for s in spans:
        if s["kind"] != "RETRIEVER":
            continue
        a, i = s["attributes"], 0
        while f"retrieval.documents.{i}.document.content" in a:
            p = f"retrieval.documents.{i}.document."
            score = a.get(p + "score")
            docs.append(ContextDoc(text=str(a[p + "content"]), id=_opt_str(a.get(p + "id")),
                                   score=float(score) if isinstance(score, (int, float)) else None))
            i += 1
    return docs


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
