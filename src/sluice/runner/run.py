"""Execute a release over dataset rows: bounded concurrency, per-upstream rate limits, retries,
a response cache, batched storage and resume.

A run is identified by (release digest, dataset version, evaluators digest): running the same
triple again finds the stored run and executes only the rows it lacks, so an interrupted run
(Ctrl-C, crash) resumes where its last flushed batch ended. Row failures are recorded on the row,
never raised: a run always finishes with every row accounted for.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Mapping

import httpx
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sluice.dataset.row import Row
from sluice.digest import digest_of
from sluice.errors import DataError, Location
from sluice.evals.result import EvalResult
from sluice.release.model import Release
from sluice.runner.messages import Render
from sluice.runner.pacing import RateLimits, RetryPolicy
from sluice.runner.record import RowOutput
from sluice.providers.http import make_client
from sluice.runner.targets import CallContext, make_target
from sluice.runner.writer import RunWriter
from sluice.store.base import Store
from sluice.store.records import RunRecord

Evaluate = Callable[[Row, RowOutput], "dict[str, EvalResult] | Awaitable[dict[str, EvalResult]]"]
CACHE_CHUNK = 500


@dataclass
class RunResult:
    run_id: str
    status: str  # done | interrupted
    records: dict[str, dict[str, Any]]  # row id -> RowRecord JSON, for every row of the run
    executed: int = 0  # rows sent to the target this time
    cached: int = 0  # rows answered from the response cache this time
    resumed: int = 0  # rows already stored by an earlier, interrupted attempt
    summary: dict[str, Any] = field(default_factory=dict)


def _rows(rows: Iterable[Row | Mapping[str, Any]]) -> list[tuple[Row, dict[str, Any]]]:
    out: list[tuple[Row, dict[str, Any]]] = []
    seen: set[str] = set()
    for i, item in enumerate(rows):
        if isinstance(item, Row):
            row, row_json = item, item.model_dump(mode="json")
        else:
            try:
                row, row_json = Row.model_validate(item), dict(item)
            except ValidationError as e:
                err = e.errors()[0]
                raise DataError(err["msg"], Location(row=item.get("id", i + 1) if isinstance(item, Mapping) else i + 1,
                                                     field=".".join(map(str, err["loc"])) or None)) from None
        if row.id in seen:
            raise DataError("duplicate row id", Location(row=row.id, field="id"))
        seen.add(row.id)
        out.append((row, row_json))
    return out


def _unpack(release: Any) -> tuple[Release, str, Mapping[str, bytes], Path | None]:
    """Accept a ReleaseBundle (digest, files, root) or a bare Release (digest of its manifest)."""
    if isinstance(release, Release):
        return release, digest_of(release.model_dump(mode="json", by_alias=True, exclude_none=True)), {}, None
    return release.release, release.digest, release.files, release.root


async def run_release(release: Any, rows: Iterable[Row | Mapping[str, Any]], *, store: Store,
                      dataset_version: str, dataset_name: str = "", evaluate: Evaluate | None = None,
                      evaluators: list[dict[str, Any]] | None = None, concurrency: int = 16,
                      rate_limits: dict[str, float] | None = None, retries: int = 3,
                      retry_policy: RetryPolicy | None = None, timeout: float | None = None,
                      use_cache: bool = True, progress: bool = True, run_id: str | None = None,
                      root: Path | None = None, render: Render | None = None,
                      client: httpx.AsyncClient | None = None, batch_rows: int = 50,
                      flush_interval_s: float = 0.5) -> RunResult:
    """Run ``release`` (a ReleaseBundle, or a Release plus ``root``) on ``rows``.

    ``evaluate(row, output)`` (sync or async) returns the evaluator results stored with each row;
    ``evaluators`` describes them (name, version, args) and is part of the run's identity.
    ``timeout`` bounds one row, retries and fallbacks included; ``retries`` is per model.
    """
    model, digest, files, bundle_root = _unpack(release)
    root = root or bundle_root
    items = _rows(rows)
    evaluators = list(evaluators or [])
    evaluators_digest = digest_of(evaluators)
    policy = retry_policy or RetryPolicy(retries=retries)
    own_client = client is None
    client = client or make_client(max_connections=max(concurrency, 1) * 2)
    try:
        ctx = CallContext(policy=policy, limits=RateLimits(rate_limits), client=client, files=files, root=root)
        target = make_target(model, ctx, render)
        target.preflight()
        # every store call runs in a worker thread: another run may share this event loop
        run = await asyncio.to_thread(_open_run, store, run_id, digest, dataset_name, dataset_version,
                                      evaluators_digest, evaluators)
        stored = await asyncio.to_thread(store.get_run_rows, run.id) if run.status != "new" else {}
        if run.status == "new":
            run.status = "running"
            await asyncio.to_thread(store.create_run, run)
        elif run.status != "running":
            await asyncio.to_thread(store.update_run, run.id, status="running", summary=run.summary)
        records: dict[str, dict[str, Any]] = dict(stored)
        # rows stored with a target error are tried again: an upstream that was down is not an answer
        pending = [(r, j) for r, j in items if r.id not in stored or (stored[r.id].get("output") or {}).get("error")]
        cache_params = model.responder.params.as_request() if model.target.type == "chat" else {}
        keys = {r.id: digest_of({"release": digest, "row": j, "params": cache_params}) for r, j in pending} \
            if use_cache else {}
        hits = await asyncio.to_thread(_cache_lookup, store, list(keys.values())) if use_cache else {}
        writer = RunWriter(store, run.id, batch_rows=batch_rows, interval_s=flush_interval_s)
        counts = Counter()
        work = iter(pending)
        bar = _Bar(progress, model.ref, len(items), len(items) - len(pending))

        async def one(row: Row, row_json: dict[str, Any]) -> None:
            key = keys.get(row.id)
            hit = hits.get(key) if key else None
            if hit is not None:
                out = RowOutput.model_validate({**hit, "row_id": row.id, "cached": True})
                counts["cached"] += 1
            else:
                counts["executed"] += 1
                try:
                    async with asyncio.timeout(timeout):
                        out = await target.run(row, row_json)
                except TimeoutError:
                    out = RowOutput(row_id=row.id, error=f"row timed out after {timeout:g}s", error_kind="timeout")
                except Exception as e:  # noqa: BLE001 - a bug on one row must not lose the run
                    out = RowOutput(row_id=row.id, error=f"internal error: {type(e).__name__}: {e}",
                                    error_kind="internal")
            evals = await _evaluate(evaluate, row, out) if evaluate else {}
            out_json = out.model_dump(mode="json")
            record = {"output": out_json, "evals": evals, "cohort": row.cohort}
            cache_item = None
            if key and hit is None and out.error is None:
                cache_item = (key, {k: v for k, v in out_json.items() if k not in ("row_id", "cached")})
            await writer.add(row.id, row.cohort, record, cache_item)
            records[row.id] = record
            bar.advance()

        async def worker() -> None:
            for row, row_json in work:  # one shared iterator: each row is taken once
                await one(row, row_json)

        n_workers = max(1, min(concurrency, len(pending)))
        ticker = asyncio.create_task(writer.tick())
        tasks = [asyncio.create_task(worker()) for _ in range(n_workers)] if pending else []
        bar.start()
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            writer.flush_now()
            store.update_run(run.id, status="interrupted", summary=summarize(records, len(items)))
            raise
        finally:
            ticker.cancel()
            bar.stop()
        await writer.flush()
        summary = summarize(records, len(items))
        await asyncio.to_thread(store.update_run, run.id, status="done", summary=summary)
        return RunResult(run_id=run.id, status="done", records=records, executed=counts["executed"],
                         cached=counts["cached"], resumed=len(stored), summary=summary)
    finally:
        if own_client:
            await client.aclose()


def _open_run(store: Store, run_id: str | None, digest: str, dataset_name: str, dataset_version: str,
              evaluators_digest: str, evaluators: list[dict[str, Any]]) -> RunRecord:
    """The stored run to continue, or a new (unsaved, status "new") one."""
    run = store.get_run(run_id) if run_id else store.find_run(digest, dataset_version, evaluators_digest)
    if run is not None:
        if (run.release_digest, run.dataset_version, run.evaluators_digest) != (digest, dataset_version,
                                                                                evaluators_digest):
            raise DataError(f"run {run.id} belongs to another release, dataset version or evaluator set",
                            Location(field="run_id"))
        return run
    return RunRecord(id=run_id or f"run-{uuid.uuid4().hex[:12]}", release_digest=digest, dataset_name=dataset_name,
                     dataset_version=dataset_version, evaluators_digest=evaluators_digest, evaluators=evaluators,
                     status="new", created_at=time.time())


def _cache_lookup(store: Store, keys: list[str]) -> dict[str, dict[str, Any]]:
    hits: dict[str, dict[str, Any]] = {}
    for i in range(0, len(keys), CACHE_CHUNK):
        hits.update(store.cache_get(keys[i:i + CACHE_CHUNK]))
    return hits


async def _evaluate(evaluate: Evaluate, row: Row, out: RowOutput) -> dict[str, Any]:
    result = evaluate(row, out)
    if inspect.isawaitable(result):
        result = await result
    return {name: r.model_dump(mode="json") for name, r in result.items()}


def summarize(records: Mapping[str, Mapping[str, Any]], total: int) -> dict[str, Any]:
    """Counts, tokens, cost and latency percentiles over a run's stored records."""
    errors: Counter[str] = Counter()
    models: Counter[str] = Counter()
    latencies: list[float] = []
    prompt = completion = cached = fallbacks = 0
    cost = 0.0
    priced = False
    for rec in records.values():
        out = rec["output"]
        if out.get("error"):
            errors[out.get("error_kind") or "unknown"] += 1
            continue
        usage = out.get("usage") or {}
        prompt += usage.get("prompt_tokens", 0)
        completion += usage.get("completion_tokens", 0)
        if out.get("cost") is not None:
            cost += out["cost"]
            priced = True
        cached += bool(out.get("cached"))
        fallbacks += bool(out.get("fallback_from"))
        models[out.get("model") or "?"] += 1
        latencies.append(out.get("latency_ms", 0.0))
    latencies.sort()

    def pct(q: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 3) if latencies else None

    return {"rows": total, "completed": len(records), "ok": len(records) - sum(errors.values()),
            "errors": sum(errors.values()), "errors_by_kind": dict(errors), "cached": cached,
            "fallbacks": fallbacks, "models": dict(models), "prompt_tokens": prompt,
            "completion_tokens": completion, "cost": round(cost, 8) if priced else None,
            "latency_ms_p50": pct(0.5), "latency_ms_p95": pct(0.95)}


class _Bar:
    """A rich progress bar, silent when disabled or when stderr is not a terminal."""

    def __init__(self, enabled: bool, label: str, total: int, done: int):
        console = Console(stderr=True)
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=console, transient=False,
                                 disable=not enabled or not console.is_terminal)
        self.task = self.progress.add_task(label, total=total, completed=done)

    def start(self) -> None:
        self.progress.start()

    def advance(self) -> None:
        self.progress.advance(self.task)

    def stop(self) -> None:
        self.progress.stop()

