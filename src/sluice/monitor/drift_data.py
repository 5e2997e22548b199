"""Gather what ``drift.judge_drift`` compares: the contract dataset of a deployment's release,
the deployment's recent live inputs, their token lengths and nearest-neighbour similarities.

The contract is the dataset of the newest passing gate of the deployment's current stable
release (or the gate it was the baseline of, for a first release); ``--dataset`` overrides it.
Live inputs are the last user message of the deployment's request spans (the shadow route left
out), newest first. Embeddings come from the offline MiniLM (``evals.backends.embedding``);
nothing is downloaded. Blocking throughout: the server calls it from a worker thread.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import orjson

from sluice.dataset.version import load_rows, parse_ref
from sluice.errors import ConfigError, NotFoundError
from sluice.monitor.drift import DriftInputs, DriftThresholds, from_traces_command, judge_drift
from sluice.release.tokens import count_tokens
from sluice.telemetry.sampling import _input_from_value, _input_messages
from sluice.telemetry.timespec import parse_duration

SELF_SAMPLE = 500  # dataset rows whose own nearest neighbour sets the novelty reference


def drift_report(store: Any, deployment: str, *, dataset: str | None = None, since: str = "7d",
                 max_live: int = 500, max_dataset: int = 2000, embedder: str = "auto",
                 thresholds: DriftThresholds = DriftThresholds(), now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    since_s = parse_duration(since, "--since")
    name, version, found_by = contract_dataset(store, deployment, dataset)
    record, rows = load_rows(store, name, version)
    rows = rows[:max_dataset]
    ds_texts = [r.last_user_text() for r in rows]
    live = live_inputs(store, deployment, int((now - since_s) * 1e9), max_live)
    live_texts = [t for _, t in live]
    vectors = _embed(embedder, ds_texts + live_texts)
    ds_vec, live_vec = vectors[: len(ds_texts)], vectors[len(ds_texts):]
    inputs = DriftInputs(
        dataset_cohorts=[r.cohort for r in rows], live_cohorts=[c for c, _ in live],
        dataset_tokens=count_tokens(ds_texts), live_tokens=count_tokens(live_texts),
        live_nn=_nearest(live_vec, ds_vec), dataset_nn=_self_nearest(ds_vec))
    report = judge_drift(inputs, thresholds)
    report.update({"deployment": deployment, "dataset": f"{record.name}@{record.version}", "dataset_found_by": found_by,
                   "since": since, "embedder": getattr(_embedder(embedder), "model_id", embedder)})
    report["suggestion"] = from_traces_command(record.name, deployment, since) if report["stale"] else None
    return report


def contract_dataset(store: Any, deployment: str, dataset: str | None) -> tuple[str, str | None, str]:
    """(name, version, how it was found) of the dataset the deployment's release was gated on."""
    if dataset:
        name, version = parse_ref(dataset)
        return name, version, "--dataset"
    digest, label = _stable_release(store, deployment)
    gates = store.list_gates(10_000)
    passed = next((g for g in gates if g.candidate_digest == digest and g.verdict == "pass"), None)
    chosen = passed or next((g for g in gates if g.baseline_digest == digest), None)
    if chosen is None:
        raise ConfigError(f"no gate record names a dataset for deployment '{deployment}' (release {label}); "
                          "give one with --dataset NAME[@VERSION]")
    role = "candidate" if passed else "baseline"
    return chosen.dataset_name, chosen.dataset_version, f"gate {chosen.id} ({label} as {role})"


def _stable_release(store: Any, deployment: str) -> tuple[str, str]:
    from sluice.gateway import deployment_store
    from sluice.release.registry import resolve_release

    _, stored = deployment_store.load(store)
    if deployment in stored:
        ref = stored[deployment][0].stable
        return resolve_release(store, ref).digest, ref
    row = store.db.query_one("SELECT release, count(*) AS n FROM spans WHERE deployment = ? AND is_request AND "
                             "release <> '' GROUP BY release ORDER BY n DESC LIMIT 1", [deployment])
    if row is None:
        raise NotFoundError(f"no deployment '{deployment}': not in the gateway's deployments and no traced "
                            "request names it")
    traced = row[0]
    if traced.startswith("sha256:"):
        return traced, traced
    name, _, version = traced.partition("@")
    match = next((r for r in store.list_releases(name) if not version or r.version == version), None)
    if match is None:
        raise ConfigError(f"deployment '{deployment}' is traced with release '{traced}', which is not registered; "
                          "give the dataset with --dataset NAME[@VERSION]")
    return match.digest, traced


def live_inputs(store: Any, deployment: str, since_ns: int, limit: int) -> list[tuple[str, str]]:
    """(cohort, last user message) of the newest request spans that recorded an input."""
    rows = store.db.query(
        "SELECT cohort, attributes FROM spans WHERE deployment = ? AND is_request AND route <> 'shadow' "
        "AND start_ns >= ? ORDER BY start_ns DESC LIMIT ?", [deployment, since_ns, limit])
    out = []
    for cohort, attributes in rows:
        text = last_user_text(orjson.loads(attributes) if attributes else {})
        if text:
            out.append((cohort, text))
    return out


def last_user_text(attributes: dict[str, Any]) -> str | None:
    messages = _input_messages(attributes) or _input_from_value(attributes.get("input.value")) or []
    for m in reversed(messages):
        if m.role == "user" and m.content:
            return m.content
    return None


def _embedder(name: str):
    from sluice.evals.backends.embedding import batch_embedder

    return batch_embedder(name)


def _embed(name: str, texts: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros((0, 1), dtype=np.float32)
    return _embedder(name).embed(texts)


def _nearest(a: np.ndarray, b: np.ndarray) -> list[float]:
    if a.shape[0] == 0 or b.shape[0] == 0:
        return []
    return [float(v) for v in (a @ b.T).max(axis=1)]


def _self_nearest(vectors: np.ndarray) -> list[float]:
    """Each sampled row's best cosine to any *other* row of the dataset."""
    n = vectors.shape[0]
    if n < 2:
        return []
    idx = np.linspace(0, n - 1, num=min(n, SELF_SAMPLE)).astype(int)
    sims = vectors[idx] @ vectors.T
    sims[np.arange(len(idx)), idx] = -np.inf
    return [float(v) for v in sims.max(axis=1)]
