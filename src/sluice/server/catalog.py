"""Read APIs over what the gate writes (admin scope): releases, datasets, runs and gate records.

Mounted by ``sluice serve`` next to the telemetry and gateway routers. Everything is read-only;
releases and datasets are registered with the CLI, gates are recorded by ``sluice gate``.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any, Callable

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from sluice.errors import NotFoundError, SluiceError
from sluice.server.security import READ_SCOPES, AuthFailed, authorize

router = APIRouter()


async def _read(request: Request, fn: Callable[[Any], Any]) -> JSONResponse:
    """Authorise, run a store read off the event loop, map Sluice errors to 404/400."""
    try:
        authorize(request, READ_SCOPES)
    except AuthFailed as e:
        return JSONResponse({"error": e.message}, e.status)
    try:
        body = await asyncio.to_thread(fn, request.app.state.store)
    except NotFoundError as e:
        return JSONResponse({"error": str(e)}, 404)
    except SluiceError as e:
        return JSONResponse({"error": str(e)}, 400)
    return JSONResponse(body)


def _release(rec) -> dict[str, Any]:
    models = sorted({c.get("model", "?") for c in (rec.manifest.get("components") or {}).values()})
    return {"digest": rec.digest, "name": rec.name, "version": rec.version, "created_at": rec.created_at,
            "source": rec.source, "files": rec.files, "models": models}


@router.get("/api/releases", summary="Registered releases, newest first")
async def releases(request: Request, name: str | None = None) -> JSONResponse:
    return await _read(request, lambda s: {"releases": [_release(r) for r in s.list_releases(name)]})


@router.get("/api/releases/{ref:path}", summary="One release: name@version, name, digest or digest prefix")
async def release(request: Request, ref: str) -> JSONResponse:
    from sluice.release.registry import resolve_release

    def one(store):
        if "/" in ref or ref.endswith((".yaml", ".yml")) or ref.startswith("."):
            raise NotFoundError(f"no release '{ref}' (paths are not accepted here)")
        rec = resolve_release(store, ref, paths=False)
        return _release(rec) | {"manifest": rec.manifest}

    return await _read(request, one)


@router.get("/api/datasets", summary="Dataset versions, newest first per name")
async def datasets(request: Request, name: str | None = None) -> JSONResponse:
    return await _read(request, lambda s: {"datasets": [asdict(d) for d in s.list_datasets(name)]})


@router.get("/api/runs", summary="Recent runs")
async def runs(request: Request, limit: int = 50) -> JSONResponse:
    return await _read(request, lambda s: {"runs": [asdict(r) for r in s.list_runs(max(1, min(limit, 500)))]})


@router.get("/api/gates", summary="Recent gate records")
async def gates(request: Request, limit: int = 50) -> JSONResponse:
    return await _read(request, lambda s: {"gates": [asdict(g) for g in s.list_gates(max(1, min(limit, 500)))]})


@router.get("/api/gates/{gate_id}", summary="One gate record")
async def gate(request: Request, gate_id: str) -> JSONResponse:
    def one(store):
        rec = store.get_gate(gate_id)
        if rec is None:
            raise NotFoundError(f"no gate '{gate_id}'")
        return asdict(rec)

    return await _read(request, one)
