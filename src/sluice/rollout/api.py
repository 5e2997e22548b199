"""``/api/rollouts…`` (admin keys) and the rollout part of ``sluice serve``.

    POST /api/rollouts                       start: {"plan": {...}} or {"plan_yaml": "..."}, "force", "reason"
    GET  /api/rollouts[?deployment=&status=] list, newest first
    GET  /api/rollouts/{id}                  status, with the last decision and its findings
    GET  /api/rollouts/{id}/events[?after=]  the event log
    POST /api/rollouts/{id}/{action}         pause | resume | promote | abort, body {"reason": "..."}

``RolloutService`` owns the controller loop, the webhook delivery and the online evaluation worker
for the server's lifespan. Every store call runs in a worker thread. A missing passing gate is
412 (Precondition Failed), a rollout in the wrong state 409, a bad plan 400 naming the field.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, Callable

import orjson
from fastapi import APIRouter, Body, Query, Request
from starlette.responses import JSONResponse

from sluice.errors import ConfigError, NotFoundError, SluiceError
from sluice.notify import webhook
from sluice.rollout import actions
from sluice.rollout import store as rs
from sluice.rollout.controller import Controller, initial_state
from sluice.rollout.online_eval import OnlineEvaluation
from sluice.rollout.plan import parse_plan, plan_from_json
from sluice.rollout.settings import RolloutSettings
from sluice.server.security import ADMIN_SCOPES, READ_SCOPES, AuthFailed, authorize

log = logging.getLogger("sluice.rollout")
MANUAL = ("pause", "resume", "promote", "abort")


class RolloutService:
    """The controller, webhook delivery and online evaluation of one server process."""

    def __init__(self, store: Any, settings: RolloutSettings | None = None, *,
                 reload: Callable[[], Any] | None = None, online_eval: Any | None = None):
        self.store = store
        self.settings = settings or RolloutSettings()
        self.reload = reload
        self.controller = Controller(store, self.settings, reload=reload, notify=self.notify)
        self.online_eval = online_eval if online_eval is not None else OnlineEvaluation(
            store, self.settings.online_eval_queue, self.settings.online_eval_workers)
        self._delivery: asyncio.Task | None = None

    def notify(self, payload: dict[str, Any], url: str | None = None) -> None:
        """Queue a decision for the webhook (plan's URL, else the configured one); blocking store write."""
        url = url or self.settings.webhook.url
        if url:
            webhook.enqueue(self.store, url, payload, self.settings.webhook.secret_env)

    def side_work(self) -> int:
        """Send due webhooks and queue sampled traces for online evaluation — by the lease holder only
        (one sender and one sampler for every replica). Returns the webhooks delivered."""
        holder = rs.lease_holder(self.store, "rollouts")
        if holder is None or holder[0] != self.controller.holder:
            return 0
        if self.online_eval is not None:
            self.online_eval.poll(time.time_ns(), int(self.settings.settle_s * 1e9))
        w = self.settings.webhook
        return webhook.deliver_due(self.store, timeout_s=w.timeout_s, max_attempts=w.max_attempts,
                                   backoff_base_s=w.backoff_base_s, backoff_cap_s=w.backoff_cap_s)

    async def _side_loop(self) -> None:
        while True:
            await asyncio.sleep(min(self.settings.interval_s, 1.0))
            try:
                await asyncio.to_thread(self.side_work)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - retried on the next round
                log.warning("webhook delivery or online evaluation sampling failed", exc_info=True)

    def stats(self) -> dict[str, int]:
        oe = self.online_eval
        return {"looks": self.controller.looks, "look_errors": self.controller.errors,
                "online_eval_enqueued": oe.enqueued if oe else 0, "online_eval_dropped": oe.dropped if oe else 0,
                "online_eval_evaluated": oe.evaluated if oe else 0}

    @asynccontextmanager
    async def lifespan(self, app: Any = None):
        if self.settings.enabled:
            self.controller.start()
            self._delivery = asyncio.create_task(self._side_loop(), name="sluice-rollout-side-work")
        if self.online_eval is not None and self.settings.enabled:
            self.online_eval.start()
        try:
            yield
        finally:
            if self._delivery is not None:
                self._delivery.cancel()
                await asyncio.gather(self._delivery, return_exceptions=True)
            await self.controller.stop()
            if self.online_eval is not None:
                await asyncio.to_thread(self.online_eval.stop)

    # actions shared by the API and the CLI -------------------------------------------------
    def start(self, plan_data: Any, *, actor: str, force: bool = False, reason: str | None = None,
              plan_yaml: str | None = None) -> rs.Rollout:
        plan = parse_plan(plan_yaml, "plan_yaml") if plan_yaml is not None else plan_from_json(plan_data)
        return actions.start(self.store, plan, actor=actor, force=force, reason=reason,
                             require_gate=self.settings.require_gate, initial_state=initial_state,
                             reload=self.reload)

    def act(self, rollout_id: str, action: str, actor: str, reason: str = "") -> rs.Rollout:
        if action == "pause":
            ro = actions.pause(self.store, rollout_id, actor, reason)
        elif action == "resume":
            ro = actions.resume(self.store, rollout_id, actor, reason)
        elif action == "promote":
            ro = actions.promote(self.store, rollout_id, actor, reason, self.reload)
        else:
            ro = actions.abort(self.store, rollout_id, actor, reason, self.reload)
        self.notify({"type": "rollout.manual", "rollout": ro.id, "deployment": ro.deployment, "status": ro.status,
                     "action": action, "actor": actor, "reason": reason,
                     "candidate": {"ref": ro.candidate_ref, "digest": ro.candidate_digest},
                     "stable": {"ref": ro.stable_ref, "digest": ro.stable_digest}}, ro.plan.get("webhook"))
        return ro


def _status(e: SluiceError) -> int:
    if isinstance(e, actions.GateRequired):
        return 412
    if isinstance(e, actions.Conflict):
        return 409
    if isinstance(e, NotFoundError):
        return 404
    return 400


def make_router(service: RolloutService) -> APIRouter:
    router = APIRouter(lifespan=service.lifespan)

    async def call(request: Request, fn: Callable[[str], Any], status: int = 200,
                   scopes: frozenset[str] = ADMIN_SCOPES) -> JSONResponse:
        try:
            key = authorize(request, scopes)
        except AuthFailed as e:
            return JSONResponse({"error": e.message}, e.status)
        actor = f"key:{key.name}" if key is not None else "api"
        try:
            body = await asyncio.to_thread(fn, actor)
        except SluiceError as e:
            return JSONResponse({"error": str(e)}, _status(e))
        return JSONResponse(body, status)

    @router.post("/api/rollouts", summary="Start a rollout (needs a passing gate unless force with a reason)",
                 status_code=201)
    async def start(request: Request, body: dict[str, Any] = Body(..., examples=[{
            "plan": {"deployment": "support", "candidate": "support-bot@1.1", "steps": [{"weight": {"bp": 1000}}]},
            "force": False, "reason": None}])) -> JSONResponse:
        def run(actor: str) -> dict[str, Any]:
            unknown = sorted(set(body) - {"plan", "plan_yaml", "force", "reason"})
            if unknown:
                raise ConfigError(f"unknown field(s) {', '.join(unknown)}: send plan or plan_yaml, force, reason")
            if ("plan" in body) == ("plan_yaml" in body):
                raise ConfigError("send exactly one of plan (an object) or plan_yaml (rollout.yaml text)")
            return service.start(body.get("plan"), actor=actor, force=bool(body.get("force")),
                                 reason=body.get("reason"), plan_yaml=body.get("plan_yaml")).view()
        return await call(request, run, 201)

    @router.get("/api/rollouts", summary="Rollouts, newest first")
    async def list_(request: Request, deployment: str | None = None,
                    status: str | None = Query(None, description="comma-separated statuses")) -> JSONResponse:
        wanted = tuple(s.strip() for s in status.split(",") if s.strip()) if status else None
        return await call(request, lambda _: {"data": [r.view() for r in rs.list_rollouts(
            service.store, deployment=deployment, status=wanted)]}, scopes=READ_SCOPES)

    @router.get("/api/rollouts/{rollout_id}", summary="One rollout: step, status, last decision with its findings")
    async def get(request: Request, rollout_id: str) -> JSONResponse:
        return await call(request, lambda _: actions.get(service.store, rollout_id).view(), scopes=READ_SCOPES)

    @router.get("/api/rollouts/{rollout_id}/events", summary="The rollout's event log: who, what, why, figures")
    async def events(request: Request, rollout_id: str, after: int = 0) -> JSONResponse:
        def run(_: str) -> dict[str, Any]:
            actions.get(service.store, rollout_id)
            return {"data": rs.events(service.store, rollout_id, after=after)}
        return await call(request, run, scopes=READ_SCOPES)

    @router.post("/api/rollouts/{rollout_id}/{action}", summary="pause, resume, promote or abort by hand")
    async def act(request: Request, rollout_id: str, action: str) -> JSONResponse:
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError as e:
            return JSONResponse({"error": f"the request body is not valid JSON ({e})"}, 400)
        if action not in MANUAL:
            return JSONResponse({"error": f"unknown action '{action}': use {', '.join(MANUAL)}"}, 404)
        reason = str(body.get("reason") or "") if isinstance(body, dict) else ""
        return await call(request, lambda actor: service.act(rollout_id, action, actor, reason).view())

    return router
