"""``sluice gate`` as a function: resolve, run both releases, score, judge, report, record.

Both runs go through the runner's cache and resume, so gating the same pair twice costs nothing,
and a gate against an unchanged baseline re-runs only the candidate. Scoring happens after a run,
in batches (embedding evaluators embed many rows at once), and is stored back on the run's rows.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from sluice.audit.log import append_audit, local_actor
from sluice.config import Settings
from sluice.dataset.row import Row
from sluice.dataset.version import load_rows, parse_ref
from sluice.evals import build, evaluate_rows, evaluator_spec, label_of
from sluice.evals.base import Evaluator
from sluice.gate import GatePolicy, GateResult, RunInfo, default_policy, load_policy, run_gate
from sluice.gate.compare import EvaluatorSpec
from sluice.gate.report import write_reports
from sluice.gate.reports_store import put_gate_report
from sluice.release.bundle import ReleaseBundle
from sluice.release.registry import resolve_bundle
from sluice.runner import run_release
from sluice.runner.messages import tool_specs
from sluice.runner.record import RowOutput, RowRecord
from sluice.store import GateRecord, SqlStore


@dataclass
class GateOptions:
    candidate: str
    baseline: str
    dataset: str
    policy: str | None = None
    json: str | None = None
    junit: str | None = None
    markdown: str | None = None
    html: str | None = None
    fresh: bool = False  # ignore cached responses and stored runs
    progress: bool = True
    reports_dir: str | None = None  # where the HTML report goes when --html is not given
    actor: str | None = None  # who ran it, for the audit log (default: the local user)


@dataclass
class GateOutcome:
    result: GateResult
    record: GateRecord
    reports: list[Path] = field(default_factory=list)


def default_evaluators(rows: list[Row]) -> list[dict[str, Any]]:
    """With no evaluators in the policy, judge what the dataset can support."""
    specs: list[dict[str, Any]] = []
    if any(r.context for r in rows):
        specs.append({"name": "groundedness"})
    if any(r.expected_answer for r in rows):
        specs.append({"name": "task_completion"})
    if any(r.expected_tool for r in rows):
        specs.append({"name": "tool_selection_accuracy"})
    if any("must_refuse" in r.policy_labels for r in rows):
        specs.append({"name": "refusal"})
    specs.append({"name": "pii_leak"})
    return specs


def build_evaluators(policy: GatePolicy, rows: list[Row]) -> list[Evaluator]:
    specs = [{"name": r.name, "args": r.args} for r in policy.evaluators] or default_evaluators(rows)
    return [build(s) for s in specs]


def run(store: SqlStore, settings: Settings, opts: GateOptions, console: Console) -> GateOutcome:
    policy = load_policy(opts.policy) if opts.policy else default_policy()
    candidate = resolve_bundle(store, opts.candidate)
    baseline = resolve_bundle(store, opts.baseline)
    name, version = parse_ref(opts.dataset)
    dataset, rows = load_rows(store, name, version)
    evaluators = build_evaluators(policy, rows)
    specs = [evaluator_spec(ev) for ev in evaluators]

    sides = {}
    for label, bundle in (("candidate", candidate), ("baseline", baseline)):
        console.print(f"[bold]{label}[/] {bundle.ref} [dim]{bundle.digest[:19]}[/]")
        run_id, records = _execute(store, settings, bundle, rows, dataset.name, dataset.version, specs, opts)
        _score(store, run_id, bundle, rows, records, evaluators)
        info = RunInfo(ref=bundle.ref, digest=bundle.digest, dataset_name=dataset.name,
                       dataset_version=dataset.version, run_id=run_id,
                       evaluators=[EvaluatorSpec(**s) for s in specs])
        sides[label] = (info, {rid: RowRecord.model_validate(r) for rid, r in records.items()})

    (cinfo, crecs), (binfo, brecs) = sides["candidate"], sides["baseline"]
    result = run_gate(policy, rows, crecs, brecs, cinfo, binfo, candidate.release, baseline.release)
    gate_id = f"gate-{uuid.uuid4().hex[:12]}"
    html = opts.html or (str(Path(opts.reports_dir) / f"{gate_id}.html") if opts.reports_dir else None)
    if html:
        Path(html).parent.mkdir(parents=True, exist_ok=True)
    reports = write_reports(result, json=opts.json, junit=opts.junit, markdown=opts.markdown, html=html)
    record = GateRecord(id=gate_id, candidate_digest=candidate.digest,
                        baseline_digest=baseline.digest, dataset_name=dataset.name,
                        dataset_version=dataset.version, policy_digest=policy.digest, verdict=result.verdict,
                        exit_code=result.exit_code, summary=result.summary(), candidate_run=cinfo.run_id,
                        baseline_run=binfo.run_id)
    with store.db.transaction():
        store.put_gate(record)
        put_gate_report(store, gate_id, result)
        append_audit(store, opts.actor or local_actor(), "gate.run", gate_id, None, gate_audit(record, candidate.ref,
                                                                                          baseline.ref))
    return GateOutcome(result=result, record=record, reports=reports)


def gate_audit(record: GateRecord, candidate_ref: str, baseline_ref: str) -> dict[str, Any]:
    """What the audit log keeps of a gate run: enough to find the record and read its verdict."""
    return {"verdict": record.verdict, "exit_code": record.exit_code, "candidate": record.candidate_digest,
            "candidate_ref": candidate_ref, "baseline": record.baseline_digest, "baseline_ref": baseline_ref,
            "dataset": f"{record.dataset_name}@{record.dataset_version}", "policy_digest": record.policy_digest}


def _execute(store: SqlStore, settings: Settings, bundle: ReleaseBundle, rows: list[Row], dataset_name: str,
             dataset_version: str, specs: list[dict[str, Any]], opts: GateOptions) -> tuple[str, dict[str, dict]]:
    limits = {name: p.rate_limit_rps for name, p in settings.providers.items() if p.rate_limit_rps}
    limits |= {p.base_url: p.rate_limit_rps for p in settings.providers.values() if p.rate_limit_rps and p.base_url}
    result = asyncio.run(run_release(
        bundle, rows, store=store, dataset_version=dataset_version, dataset_name=dataset_name, evaluators=specs,
        concurrency=settings.runner.concurrency, retries=settings.runner.retries, rate_limits=limits or None,
        timeout=settings.runner.timeout_s, use_cache=not opts.fresh, progress=opts.progress,
        run_id=f"run-{uuid.uuid4().hex[:12]}" if opts.fresh else None,
    ))
    return result.run_id, result.records


def _score(store: SqlStore, run_id: str, bundle: ReleaseBundle, rows: list[Row], records: dict[str, dict],
           evaluators: list[Evaluator]) -> None:
    """Score the rows that have no results yet (all of them on a new run), and store them."""
    labels = [label_of(ev) for ev in evaluators]
    todo = [r for r in rows if r.id in records and any(lb not in records[r.id].get("evals", {}) for lb in labels)]
    if not todo:
        return
    pairs = [(r, RowOutput.model_validate(records[r.id]["output"])) for r in todo]
    scored = evaluate_rows(evaluators, pairs, tools=tool_specs(bundle.release, bundle.files))
    updates = []
    for row, results in zip(todo, scored):
        rec = records[row.id]
        rec["evals"] = {label: res.model_dump(mode="json") for label, res in results.items()}
        rec["cohort"] = row.cohort
        updates.append((row.id, row.cohort, rec))
    store.put_run_rows(run_id, updates)
