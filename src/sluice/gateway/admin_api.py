"""``GET /api/deployments``, ``GET|PUT|DELETE /api/deployments/{name}`` (admin keys): the deployments the
gateway routes by, as stored — the way an operator (or the rollout controller) changes a canary's
weight, its shadow or its releases on every replica at once.

``PUT`` takes the same fields as a ``gateway.deployments.<name>`` entry of ``sluice.yaml`` and
replaces the deployment whole. Its releases must resolve (400 naming the field otherwise). The
replica that took the write reloads at once; the others on their next poll of the version.
Giving a release canary weight needs a stored passing gate of it against the stable release
(412 ``gate_required`` otherwise); ``?force=true&reason=...`` overrides and is recorded in the
rollout event log under ``deployment:<name>``.
``DELETE`` stops serving the deployment (404 ``model_not_found`` for its requests) on every replica.
Both are recorded in the audit log under the calling key's name.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

import orjson
from pydantic import ValidationError

from sluice.audit.log import key_actor
from sluice.errors import ConfigError
from sluice.gateway import deployment_store, protocol
from sluice.gateway.config import Deployment
from sluice.gateway.execute import GatewayFailure
from sluice.rollout.actions import GateRequired, check_put


def _bad(message: str, param: str | None = None) -> GatewayFailure:
    failure = GatewayFailure(400, message, "invalid_request_error", "invalid_deployment")
    failure.param = param
    return failure


def _view(name: str, dep: Deployment, version: int, updated_at: float, resolved: Any = None) -> dict[str, Any]:
    out = {"name": name, "version": version, "updated_at": updated_at, **dep.model_dump(mode="json")}
    if resolved is not None:
        out["releases"] = {route: release.digest for route, release in resolved.releases()}
    return out


async def list_deployments(gw: Any, scope, receive, send) -> None:
    _, stored = await asyncio.to_thread(deployment_store.load, gw.store)
    data = [_view(n, d, v, t, gw.deployments.get(n)) for n, (d, v, t) in stored.items()]
    await protocol.send_json(send, 200, orjson.dumps({"data": data}), [])


async def get_deployment(gw: Any, scope, receive, send) -> None:
    name = scope["path_params"]["name"]
    _, stored = await asyncio.to_thread(deployment_store.load, gw.store)
    if name not in stored:
        raise GatewayFailure(404, f"no deployment named '{name[:200]}'", "invalid_request_error", "not_found")
    dep, version, updated = stored[name]
    await protocol.send_json(send, 200, orjson.dumps(_view(name, dep, version, updated, gw.deployments.get(name))), [])


async def put_deployment(gw: Any, scope, receive, send) -> None:
    name = scope["path_params"]["name"]
    if not name or len(name) > 200:
        raise _bad("a deployment name is 1 to 200 characters", "name")
    raw = await protocol.read_body(receive, protocol.headers_of(scope), gw.settings.max_body_bytes)
    try:
        dep = Deployment.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError as e:
        raise _bad(f"the request body is not valid JSON ({e})") from None
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise _bad(f"{where}: {err['msg']}", where) from None

    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    force = (query.get("force") or ["false"])[-1].lower() in ("1", "true", "yes")
    reason = (query.get("reason") or [None])[-1]

    def write() -> tuple[int, Any]:
        resolved = gw.resolver.deployment(name, dep)  # every release must resolve before it is stored
        if getattr(gw, "require_gate", True):  # no live canary traffic without a passing gate
            check_put(gw.store, name, dep, force=force, reason=reason, actor=key_actor(scope.get("sluice.key")))
        version = deployment_store.put(gw.store, name, dep, key_actor(scope.get("sluice.key")))
        gw.reload()
        return version, resolved

    try:
        version, resolved = await asyncio.to_thread(write)
    except GateRequired as e:
        raise GatewayFailure(412, e.message, "invalid_request_error", "gate_required") from None
    except ConfigError as e:
        field = e.location.field if e.location else None
        raise _bad(f"{field}: {e.message}" if field else e.message, field) from None
    _, stored = await asyncio.to_thread(deployment_store.load, gw.store)
    _, _, updated = stored[name]
    await protocol.send_json(send, 200, orjson.dumps(_view(name, dep, version, updated, resolved)), [])


async def delete_deployment(gw: Any, scope, receive, send) -> None:
    name = scope["path_params"]["name"]

    def remove() -> int | None:
        version = deployment_store.delete(gw.store, name, key_actor(scope.get("sluice.key")))
        if version is not None:
            gw.reload()
        return version

    version = await asyncio.to_thread(remove)
    if version is None:
        raise GatewayFailure(404, f"no deployment named '{name[:200]}'", "invalid_request_error", "not_found")
    await protocol.send_json(send, 200, orjson.dumps({"name": name, "deleted": True, "version": version}), [])
