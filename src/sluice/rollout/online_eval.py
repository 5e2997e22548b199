"""Online evaluation during a rollout: the gate's evaluators on a sampled share of live traces.

Every look, the poller takes the new request spans of each running rollout's deployment — from the
gateway or sent by apps over OTLP, both arms — and keeps those whose trace id hashes under the
plan's ``online_eval.sample_rate`` (one rule for both arms, so the two are sampled alike). Each kept
trace becomes a job in a bounded queue; worker threads run the evaluators (the plan's list, else the
evaluators of the gate record's candidate run) and store the results with ``record_online_eval``,
where the rollout's ``eval_fail_rate:<evaluator>`` metrics read them. A slow or failing evaluator
never touches serving: a full queue drops the job and counts it (``dropped``), an exception becomes
an error result (not counted as a fail).

Evaluator fields come from the trace: ``response`` from the request span's output, ``query`` from
its input (the last user message of a chat request), ``context`` from the request's
``metadata.context`` or the trace's retriever spans (OpenInference ``retrieval.documents``).
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

import orjson

from sluice.evals import build
from sluice.evals.base import safe_evaluate
from sluice.rollout import store as rs
from sluice.rollout.collect import Arms
from sluice.telemetry.feedback import record_online_eval

log = logging.getLogger("sluice.rollout")


def sampled(trace_id: str, rate: float) -> bool:
    """Deterministic in the trace id, independent of the arm: the same share of both arms."""
    if rate <= 0:
        return False
    if rate >= 1:
        return True
    h = int.from_bytes(hashlib.blake2b(trace_id.encode(), digest_size=8, person=b"sluice-oe").digest(), "big")
    return h / 2**64 < rate


@dataclass
class Job:
    rollout_id: str
    trace_id: str
    span_id: str
    fields: dict[str, Any]
    evaluators: tuple[str, ...]


def _last_user(value: Any) -> tuple[str | None, list[str]]:
    """(query, context) from a span's ``input.value``: a chat request body, or plain text."""
    if not isinstance(value, str):
        return None, []
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        return value, []
    if not isinstance(body, dict):
        return value, []
    query = None
    for m in reversed(body.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            query = c if isinstance(c, str) else orjson.dumps(c).decode()
            break
    ctx = (body.get("metadata") or {}).get("context") if isinstance(body.get("metadata"), dict) else None
    context = [ctx] if isinstance(ctx, str) else [str(c) for c in ctx] if isinstance(ctx, list) else []
    return query, context


def fields_of(attrs: dict[str, Any], retrieved: list[str]) -> dict[str, Any]:
    query, context = _last_user(attrs.get("input.value"))
    return {"response": attrs.get("output.value"), "query": query, "context": context or retrieved,
            "metadata": {}}


@dataclass
class OnlineEvaluation:
    store: Any
    queue_max: int = 1000
    workers: int = 1
    enqueued: int = 0
    dropped: int = 0
    evaluated: int = 0
    failed: int = 0
    _queue: queue.Queue = field(init=False)
    _threads: list[threading.Thread] = field(default_factory=list, init=False)
    _since: dict[str, int] = field(default_factory=dict, init=False)
    _built: dict[str, Any] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._queue = queue.Queue(maxsize=self.queue_max)

    # the worker threads ----------------------------------------------------------------------
    def start(self) -> None:
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"sluice-online-eval-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout_s: float = 10.0) -> None:
        for _ in self._threads:
            try:
                self._queue.put(None, timeout=timeout_s)
            except queue.Full:
                pass
        for t in self._threads:
            t.join(timeout_s)
        self._threads.clear()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self.run(job)
            except Exception:  # noqa: BLE001 - the worker keeps going
                self.failed += 1
                log.warning("online evaluation of trace %s failed", job.trace_id, exc_info=True)

    def run(self, job: Job) -> None:
        for name in job.evaluators:
            ev = self._evaluator(name)
            if ev is None:
                continue
            record_online_eval(self.store, job.trace_id, safe_evaluate(ev, job.fields), span_id=job.span_id)
            self.evaluated += 1

    def _evaluator(self, spec: Any) -> Any:
        key = spec if isinstance(spec, str) else orjson.dumps(spec, option=orjson.OPT_SORT_KEYS).decode()
        if key not in self._built:
            try:
                self._built[key] = build(spec)
            except Exception as e:  # noqa: BLE001 - an evaluator that cannot be built is skipped, once logged
                log.warning("online evaluation: cannot build evaluator %s: %s", key, e)
                self._built[key] = None
        return self._built[key]

    def offer(self, job: Job) -> bool:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.dropped += 1
            return False
        self.enqueued += 1
        return True

    # the poller (blocking store reads: run from a worker thread) ------------------------------
    def poll(self, now_ns: int, settle_ns: int = 0) -> int:
        """Queue the sampled new traces of every running rollout; the number queued."""
        queued = 0
        until = now_ns - settle_ns
        for ro in rs.list_rollouts(self.store, status=("running",), limit=1000):
            cfg = ro.plan.get("online_eval") or {}
            rate = float(cfg.get("sample_rate") or 0.0)
            names = self.evaluators_for(ro, cfg)
            since = self._since.get(ro.id, int(ro.state.get("window_ns", until)))
            self._since[ro.id] = max(since, until)
            if rate <= 0 or not names or until <= since:
                continue
            queued += self._poll_one(ro, rate, names, since, until)
        return queued

    def evaluators_for(self, ro: rs.Rollout, cfg: dict[str, Any]) -> tuple[Any, ...]:
        if cfg.get("evaluators"):
            return tuple(cfg["evaluators"])
        if ro.gate_id:
            gate = self.store.get_gate(ro.gate_id)
            run = self.store.get_run(gate.candidate_run) if gate and gate.candidate_run else None
            if run is not None:
                return tuple({"name": s["name"], "args": s.get("args") or {}} for s in run.evaluators)
        return ()

    def _poll_one(self, ro: rs.Rollout, rate: float, names: tuple[Any, ...], since: int, until: int) -> int:
        arms = Arms(ro.deployment, Arms.names(ro.candidate_digest, ro.candidate_ref),
                    Arms.names(ro.stable_digest, ro.stable_ref))
        rows = self.store.db.query(
            "SELECT trace_id, span_id, route, release, attributes FROM spans WHERE deployment = ? AND is_request "
            "AND start_ns >= ? AND start_ns < ?", [ro.deployment, since, until])
        queued = 0
        for trace, span, route, release, text in rows:
            if not sampled(trace, rate):
                continue
            attrs = orjson.loads(text) if text else {}
            if arms.arm_of(attrs.get("sluice.arm"), route or "", release or "") is None:
                continue
            job = Job(ro.id, trace, span, fields_of(attrs, self._retrieved(trace)), names)
            queued += self.offer(job)
        return queued

    def _retrieved(self, trace: str) -> list[str]:
        rows = self.store.db.query("SELECT attributes FROM spans WHERE trace_id = ? AND kind = 'RETRIEVER'", [trace])
        out = []
        for (text,) in rows:
            a = orjson.loads(text) if text else {}
            i = 0
            while f"retrieval.documents.{i}.document.content" in a:
                out.append(str(a[f"retrieval.documents.{i}.document.content"]))
                i += 1
        return out
