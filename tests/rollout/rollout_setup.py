"""A deployment with two registered releases and (optionally) a gate record, for controller tests."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

from rollout_spans import gateway_span, put
from sluice.gateway import deployment_store
from sluice.gateway.config import Deployment
from sluice.release.loader import load_release
from sluice.release.registry import register
from sluice.store import GateRecord


def release(store: Any, root: Path, version: str, params: dict | None = None,
            base_url: str = "http://127.0.0.1:9/v1") -> str:
    folder = root / f"bot-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    responder = {"provider": "openai", "model": f"m-{version}", "base_url": str(base_url)}
    if params:
        responder["params"] = params
    (folder / "release.yaml").write_text(yaml.safe_dump({"name": "bot", "version": version,
                                                         "components": {"responder": responder}}))
    rec, _ = register(store, load_release(folder))
    return rec.digest


def project(store: Any, root: Path, *, candidate_params: dict | None = None,
            base_url: str = "http://127.0.0.1:9/v1") -> tuple[str, str]:
    """bot@1 (stable of deployment ``d``, model m-1) and bot@2 (model m-2); returns (candidate, stable) digests."""
    stable = release(store, root, "1", base_url=base_url)
    cand = release(store, root, "2", candidate_params, base_url=base_url)
    deployment_store.put(store, "d", Deployment(stable="bot@1"))
    return cand, stable


def gate(store: Any, cand: str, stable: str, verdict: str = "pass", at: float = 1.0, dataset: str = "golden") -> str:
    gid = f"gate-{verdict}-{at}"
    store.put_gate(GateRecord(id=gid, candidate_digest=cand, baseline_digest=stable, dataset_name=dataset,
                              dataset_version="v1", policy_digest="p", verdict=verdict,
                              exit_code=0 if verdict == "pass" else 1, created_at=at))
    return gid


def traffic(store: Any, cand: str, stable: str, *, t0: float, seconds: float, per_arm: int,
            canary_err: float = 0.02, stable_err: float = 0.02, cohorts: dict[str, float] | None = None,
            cohort_err: dict[str, float] | None = None, seed: int = 1) -> None:
    """``per_arm`` requests in each arm spread over ``[t0, t0 + seconds)``; canary errors per cohort if given."""
    rng = random.Random(seed)
    cohorts = cohorts or {"default": 1.0}
    names, weights = list(cohorts), list(cohorts.values())
    spans = []
    for i in range(per_arm):
        t = t0 + seconds * i / per_arm
        for arm, digest, err in (("canary", cand, canary_err), ("stable", stable, stable_err)):
            c = rng.choices(names, weights)[0]
            e = (cohort_err or {}).get(c, err) if arm == "canary" else err
            spans.append(gateway_span(deployment="d", arm=arm, release=digest, start_s=t, cohort=c,
                                      error=rng.random() < e, duration_ms=100 + rng.random() * 50))
    put(store, spans)
