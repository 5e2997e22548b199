"""Catalog pages: gate runs (verdict, cohort × evaluator table, regressed rows), releases (manifest,
components, the diff of any two) and datasets (versions, rows, cohort mix)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from sluice.errors import NotFoundError
from sluice.gate.measures import ALL
from sluice.gate.report.table import interval, pvalue, rate, signed, table_rows
from sluice.gate.reports_store import get_gate_report
from sluice.release.diff import diff_releases
from sluice.release.registry import load_bundle
from sluice.store.sql import loads
from sluice.web.redact import redact
from sluice.web.views import Page, register

LIST_LIMIT = 200
DATASET_ROWS_SHOWN = 50


def gates(request: Request, store: Any):
    return "gates.html", {"title": "Gate runs", "gates": store.list_gates(LIST_LIMIT), "limit": LIST_LIMIT,
                          "names": _release_names(store)}


def gate(request: Request, store: Any):
    rec = store.get_gate(request.path_params["gate_id"])
    if rec is None:
        raise NotFoundError(f"no gate '{request.path_params['gate_id'][:80]}'")
    result = get_gate_report(store, rec.id)
    context: dict[str, Any] = {"title": f"Gate {rec.id}", "rec": rec, "result": result,
                               "names": _release_names(store)}
    if result is not None:
        ids = [d.row_id for d in result.regressed_rows]
        context["contexts"] = _row_contexts(store, rec.dataset_version, ids)
        context["table"] = [_table_row(r) for r in table_rows(result)]
        context["latency"] = [(lat, result.cost_for(lat.cohort)) for lat in result.latency]
        context["all"] = ALL
    return "gate.html", context


def _table_row(r) -> dict[str, Any]:
    m = r.measure
    return {"evaluator": m.evaluator, "cohort": r.cohort_label, "rows": m.n_paired,  # judged on both sides
            "baseline": rate(m.pass_rate_baseline), "candidate": rate(m.pass_rate_candidate),
            "delta": signed(m.pass_delta), "ci": interval(m.pass_delta_ci), "regressed": m.baseline_only,
            "improved": m.candidate_only, "p": pvalue(m.mcnemar_p), "score_delta": signed(m.score_delta, False),
            "score_ci": interval(m.score_delta_ci, False), "status": r.status,
            "why": " | ".join(c.message for c in r.checks)}


def _row_contexts(store: Any, version: str, ids: list[str]) -> dict[str, list[str]]:
    """The retrieved documents of the regressed rows, read from the dataset version they ran on."""
    if not ids:
        return {}
    marks = ", ".join("?" for _ in ids)
    out = {}
    for row_id, body in store.db.query(
            f"SELECT row_id, body FROM dataset_rows WHERE version = ? AND row_id IN ({marks})", [version, *ids]):
        docs = (loads(body) or {}).get("context") or []
        out[row_id] = [d.get("text", str(d)) if isinstance(d, dict) else str(d) for d in docs]
    return out


def _release_names(store: Any) -> dict[str, str]:
    return {r.digest: f"{r.name}@{r.version}" for r in store.list_releases()}


def releases(request: Request, store: Any):
    recs = store.list_releases()[:LIST_LIMIT]
    return "releases.html", {"title": "Releases", "releases": recs, "limit": LIST_LIMIT}


def _one_release(store: Any, digest: str):
    rec = store.get_release(digest)
    if rec is None:
        raise NotFoundError(f"no release with digest '{digest[:80]}'")
    return rec


def release(request: Request, store: Any):
    rec = _one_release(store, request.path_params["digest"])
    components = redact(rec.manifest.get("components") or {})
    others = [r for r in store.list_releases(rec.name) if r.digest != rec.digest][:LIST_LIMIT]
    return "release.html", {"title": f"Release {rec.name}@{rec.version}", "rec": rec,
                            "manifest": redact(rec.manifest), "components": components, "others": others}


def release_diff(request: Request, store: Any):
    a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
    if not a or not b:
        raise Page(400, "Choose two releases", "the diff needs two release digests: ?a=…&b=…", "/ui/releases")
    ra, rb = _one_release(store, a), _one_release(store, b)
    changes = diff_releases(load_bundle(store, ra), load_bundle(store, rb))
    view = [{"path": c.path, "kind": c.kind, "before": redact(c.before, c.path), "after": redact(c.after, c.path),
             "text_diff": c.text_diff, "sampling": c.is_sampling} for c in changes]
    return "release_diff.html", {"title": "Release diff", "a": ra, "b": rb, "changes": view}


def datasets(request: Request, store: Any):
    recs = store.list_datasets()
    names: dict[str, list] = {}
    for d in recs:
        names.setdefault(d.name, []).append(d)
    return "datasets.html", {"title": "Datasets", "names": names}


def dataset(request: Request, store: Any):
    name = request.path_params["name"]
    versions = store.list_datasets(name)
    if not versions:
        raise NotFoundError(f"no dataset '{name[:80]}'")
    wanted = request.query_params.get("version")
    current = store.get_dataset(name, wanted) if wanted else versions[0]
    if current is None:
        raise NotFoundError(f"dataset '{name}' has no version '{wanted[:80]}'")
    rows = store.db.query("SELECT body FROM dataset_rows WHERE version = ? ORDER BY idx LIMIT ?",
                          [current.version, DATASET_ROWS_SHOWN])
    total = sum(current.cohorts.values()) or 1
    mix = sorted(((c, n, n / total) for c, n in current.cohorts.items()), key=lambda x: (-x[1], x[0]))
    return "dataset.html", {"title": f"Dataset {name}", "name": name, "versions": versions, "current": current,
                            "rows": [redact(loads(r[0])) for r in rows], "mix": mix, "shown": DATASET_ROWS_SHOWN}


def mount(router: APIRouter) -> None:
    register(router, "/ui/gates", gates)
    register(router, "/ui/gates/{gate_id}", gate)
    register(router, "/ui/releases", releases)
    register(router, "/ui/releases/diff", release_diff)
    register(router, "/ui/releases/{digest}", release)
    register(router, "/ui/datasets", datasets)
    register(router, "/ui/datasets/{name}", dataset)
