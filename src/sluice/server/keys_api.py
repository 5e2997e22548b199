"""``/api/keys``: create, list and revoke API keys through a running server (admin scope).

With the embedded store, ``sluice serve`` holds the DuckDB file; ``sluice keys …`` then goes
through these endpoints (cli/remote.py) instead of stopping the gateway. While no key exists the
server is open (security.py), so the first admin key can be created this way too.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict

import orjson
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from sluice.auth.keys import create_key, list_keys, revoke_key
from sluice.errors import NotFoundError, SluiceError
from sluice.server.security import ADMIN_SCOPES, AuthFailed, authorize

router = APIRouter()
BODY_MAX_BYTES = 4096


@router.get("/api/keys", summary="API keys (never their secrets)")
async def keys(request: Request, all: bool = False) -> JSONResponse:  # noqa: A002 - the query parameter's name
    try:
        authorize(request, ADMIN_SCOPES)
    except AuthFailed as e:
        return JSONResponse({"error": e.message}, e.status)
    found = await asyncio.to_thread(list_keys, request.app.state.store, all)
    return JSONResponse({"keys": [asdict(k) for k in found]})


@router.post("/api/keys", summary="Create a key; the secret is in this answer only",
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                 "type": "object", "required": ["name"],
                 "properties": {"name": {"type": "string"}, "scope": {"type": "string", "default": "ingest"}}}}}}})
async def create(request: Request) -> JSONResponse:
    try:
        authorize(request, ADMIN_SCOPES)
    except AuthFailed as e:
        return JSONResponse({"error": e.message}, e.status)
    raw = await request.body()
    if len(raw) > BODY_MAX_BYTES:
        return JSONResponse({"error": f"body exceeds {BODY_MAX_BYTES} bytes"}, 413)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return JSONResponse({"error": f"body is not valid JSON: {e}"}, 400)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) \
            or not isinstance(body.get("scope", "ingest"), str):
        return JSONResponse({"error": "body must be {\"name\": str, \"scope\": str}"}, 400)
    try:
        rec, secret = await asyncio.to_thread(create_key, request.app.state.store, body["name"],
                                              body.get("scope", "ingest"))
    except SluiceError as e:
        return JSONResponse({"error": str(e)}, 400)
    return JSONResponse(asdict(rec) | {"secret": secret}, 201)


@router.delete("/api/keys/{key_id}", summary="Revoke a key")
async def revoke(request: Request, key_id: str) -> JSONResponse:
    try:
        authorize(request, ADMIN_SCOPES)
    except AuthFailed as e:
        return JSONResponse({"error": e.message}, e.status)
    try:
        rec = await asyncio.to_thread(revoke_key, request.app.state.store, key_id)
    except NotFoundError as e:
        return JSONResponse({"error": str(e)}, 404)
    return JSONResponse(asdict(rec))
