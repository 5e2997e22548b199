"""The gateway's ASGI app: assembles the request path from its parts.

Pure ASGI handlers (no request/response objects, no middleware) keep the per-request CPU small;
``Gateway.router`` wraps them in Starlette routes so ``sluice serve`` can include them next to the
rest of its API, and ``Gateway`` itself is a complete ASGI app for standalone use.

The request path touches no store: releases are resolved and prepared in ``make_gateway``; API
keys are checked through the server's ``KeyRing`` (``access``); spans go to the shared
``SpanWriter`` queue after the response has been sent. The parts: ``access`` (keys),
``shedding`` (admission), ``dispatch`` (route -> upstream -> answer), ``answers`` (shaping),
``shadow`` (mirrored copies), ``follow`` (deployment reloads).
"""

from __future__ import annotations

import asyncio
import gc
import time
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from fastapi import APIRouter
from starlette.routing import Route

from sluice.gateway import access, admin_api, deployment_store, dispatch, follow, metrics, protocol
from sluice.gateway import openai_surface as surface
from sluice.gateway.access import ADMIN_ONLY, GATEWAY_SCOPES, READ_OR_ADMIN
from sluice.gateway.answers import models_body
from sluice.gateway.breaker import Breakers
from sluice.gateway.config import GatewaySettings
from sluice.gateway.dispatch import PIN_HEADER  # noqa: F401 - re-exported
from sluice.gateway.execute import GatewayFailure
from sluice.gateway.metrics import GatewayMetrics
from sluice.gateway.mirror import Mirror, MirrorJob
from sluice.gateway.resolved import ResolvedDeployment, Resolver
from sluice.gateway.routing import Identifier
from sluice.gateway.semantic_cache import SemanticCache
from sluice.gateway.shadow import run_shadow
from sluice.gateway.shedding import Shedder
from sluice.gateway.spans import SpanSink
from sluice.gateway.upstream import make_session
from sluice.server.http_limits import ADMISSION_DECIDED


class _Endpoint:
    """A non-function callable, so Starlette's ``Route`` treats it as a raw ASGI app."""

    def __init__(self, handler):
        self.handler = handler

    async def __call__(self, scope, receive, send) -> None:
        await self.handler(scope, receive, send)


class Gateway:
    def __init__(self, settings: GatewaySettings, deployments: dict[str, ResolvedDeployment], *,
                 span_writer: Any | None = None, keyring: Any | None = None,
                 client: aiohttp.ClientSession | None = None):
        self.settings = settings
        self.deployments = deployments
        self.keyring = keyring
        self.spans = SpanSink(span_writer)
        self.identifier = Identifier(settings)
        self.breakers = Breakers(settings.breaker_failures, settings.breaker_cooldown_s)
        self.shadow_breakers = Breakers(settings.breaker_failures, settings.breaker_cooldown_s)
        self.shadow_settings = settings.model_copy(update={"retries": 0})
        self.mirror = Mirror(self._shadow, settings.mirror_queue, settings.mirror_workers)
        self._client = client
        self._owns_client = client is None
        self._models_body = models_body(deployments)
        self.store: Any = None
        self.resolver: Resolver | None = None
        self.version = 0
        self._poller: asyncio.Task | None = None
        self.requests = 0
        self.shedder = Shedder(settings)
        self.metrics = GatewayMetrics(lambda name: name in self.deployments)
        self.cache = SemanticCache(settings.semantic_cache) if settings.semantic_cache.enabled else None

    # lifecycle -----------------------------------------------------------------------------
    @property
    def client(self) -> aiohttp.ClientSession:
        """The pooled upstream session, made on first use (inside the serving loop)."""
        if self._client is None:
            self._client = make_session(max_connections=1000)
        return self._client

    def attach_store(self, store: Any, resolver: Resolver, version: int) -> None:
        """Follow the store's deployments: poll its version and reload on change."""
        self.store, self.resolver, self.version = store, resolver, version

    def set_deployments(self, deployments: dict[str, ResolvedDeployment], version: int) -> None:
        """Swap the routing table (one assignment: requests in flight keep the one they read)."""
        self.deployments = deployments
        self._models_body = models_body(deployments)
        self.version = version

    def reload(self) -> bool:
        """Read the store's deployments and swap them in; runs in a worker thread. False: unchanged."""
        return follow.reload(self)

    async def startup(self) -> None:
        # Everything loaded so far (FastAPI, pydantic models, DuckDB, prepared releases: ~100k
        # objects) lives as long as the process; a full collection scanning it paused the event
        # loop for ~70 ms, the gateway's worst tail latency. Frozen objects are never scanned.
        gc.freeze()
        self.mirror.start()
        self.shedder.start()
        if follow.shared(self.store) and self.settings.reload_interval_s > 0 and self._poller is None:
            self._poller = asyncio.create_task(follow.poll(self), name="sluice-gateway-reload")
        if self.cache is not None:
            await asyncio.to_thread(self.cache.start)  # loads the embedding model

    async def shutdown(self) -> None:
        await self.shedder.stop()
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        await self.mirror.drain()
        await self.mirror.stop()
        self.spans.flush()  # the spans still waiting for their slice, before the writer drains
        if self.cache is not None:
            await asyncio.to_thread(self.cache.close)
        if self._owns_client and self._client is not None:
            await self._client.close()
            self._client = None

    @asynccontextmanager
    async def lifespan(self, app: Any = None):
        """Run inside the mounting app's lifespan; adopts its span writer and key ring."""
        state = getattr(app, "state", None)
        if self.spans.writer is None:
            self.spans.writer = getattr(state, "writer", None)
        lower = getattr(self.spans.writer, "lower_priority", None)
        if lower is not None and self.settings.span_writer_nice:
            lower(self.settings.span_writer_nice)  # request latency first; spans are fire-and-forget
        if self.keyring is None:
            self.keyring = getattr(state, "keyring", None)
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    @property
    def router(self) -> APIRouter:
        """Routes to include in the server app (``create_app(..., routers=[gateway.router])``)."""
        router = APIRouter(lifespan=self.lifespan)
        # answered ahead of all of FastAPI's layers by ``create_app`` (``SluiceApp.fast_paths``)
        router.fast_paths = {("POST", "/v1/chat/completions"): self.chat, ("GET", "/v1/models"): self.models}
        # refused by the HTTP protocol itself past CPU saturation (``sluice.server.http_limits``)
        router.early_refusals = {(b"POST", b"/v1/chat/completions"): self._early_refusal}
        router.routes.append(Route("/v1/chat/completions", _Endpoint(self.chat), methods=["POST"]))
        router.routes.append(Route("/v1/models", _Endpoint(self.models), methods=["GET"]))
        router.routes.append(Route("/v1/models/{model:path}", _Endpoint(self.model), methods=["GET"]))
        router.routes.append(Route("/metrics", _Endpoint(self.prometheus), methods=["GET"]))
        viewer = READ_OR_ADMIN  # the GETs show what the dashboard shows
        router.routes.append(Route("/api/deployments", _Endpoint(self._admin(admin_api.list_deployments, viewer)),
                                   methods=["GET"]))
        router.routes.append(Route("/api/deployments/{name}", _Endpoint(self._admin(admin_api.get_deployment, viewer)),
                                   methods=["GET"]))
        router.routes.append(Route("/api/deployments/{name}", _Endpoint(self._admin(admin_api.put_deployment)),
                                   methods=["PUT"]))
        router.routes.append(Route("/api/deployments/{name}", _Endpoint(self._admin(admin_api.delete_deployment)),
                                   methods=["DELETE"]))
        # last: any other /v1 route gets an OpenAI-shaped 404 (the server's /v1/traces matches first)
        router.routes.append(Route("/v1/{rest:path}", _Endpoint(self.unsupported)))
        return router

    def _admin(self, handler, scopes: frozenset[str] = ADMIN_ONLY):
        async def endpoint(scope, receive, send) -> None:
            try:
                scope["sluice.key"] = self._authorize(scope, protocol.headers_of(scope), scopes)  # audit actor
                await handler(self, scope, receive, send)
            except GatewayFailure as f:
                await protocol.send_error(send, f, [])
        return endpoint

    async def __call__(self, scope, receive, send) -> None:
        """Standalone ASGI app (lifespan + the two routes)."""
        if scope["type"] == "lifespan":
            await protocol.run_lifespan(receive, send, self.startup, self.shutdown)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/v1/chat/completions" and method == "POST":
            await self.chat(scope, receive, send)
        elif path == "/v1/models" and method == "GET":
            await self.models(scope, receive, send)
        elif path == "/metrics" and method == "GET":
            await self.prometheus(scope, receive, send)
        elif path.startswith(surface.MODELS_PREFIX) and method == "GET":
            await self.model(scope, receive, send)
        elif path.startswith("/v1/"):
            await self.unsupported(scope, receive, send)
        else:
            await protocol.send_error(send, GatewayFailure(404, f"no route {method} {path}", "invalid_request_error",
                                                           "not_found"), [])

    # handlers ------------------------------------------------------------------------------
    async def models(self, scope, receive, send) -> None:
        try:
            self._authorize(scope, protocol.headers_of(scope))
        except GatewayFailure as f:
            await protocol.send_error(send, f, [])
            return
        await protocol.send_json(send, 200, self._models_body, [])

    async def model(self, scope, receive, send) -> None:
        """``GET /v1/models/{model}``: the deployment as an OpenAI ``model`` object, or a 404."""
        model_id = scope["path"][len(surface.MODELS_PREFIX):]
        try:
            self._authorize(scope, protocol.headers_of(scope))
            body = surface.model_body(self.deployments, model_id)
            if body is None:
                raise surface.unknown_model(self.deployments, model_id)
        except GatewayFailure as f:
            await protocol.send_error(send, f, [])
            return
        await protocol.send_json(send, 200, body, [])

    async def unsupported(self, scope, receive, send) -> None:
        await protocol.send_error(send, surface.unsupported(scope["method"], scope["path"]), [])

    async def prometheus(self, scope, receive, send) -> None:
        """``GET /metrics``: Prometheus text; an admin key once keys exist."""
        try:
            self._authorize(scope, protocol.headers_of(scope), ADMIN_ONLY)
        except GatewayFailure as f:
            await protocol.send_error(send, f, [])
            return
        s = self.stats(scope)
        gauges = {
            "sluice_gateway_spans_dropped_total": ("counter", "Gateway spans dropped (writer queue full or closed).",
                                                   s["spans_dropped"]),
            "sluice_gateway_mirror_enqueued_total": ("counter", "Shadow copies queued.", s["mirror_enqueued"]),
            "sluice_gateway_mirror_dropped_total": ("counter", "Shadow copies dropped (queue full).",
                                                    s["mirror_dropped"]),
            "sluice_gateway_mirror_failed_total": ("counter", "Shadow copies that failed.", s["mirror_failed"]),
            "sluice_gateway_circuits_opened_total": ("counter", "Times an upstream's circuit opened.",
                                                     s["circuits_opened"]),
            "sluice_gateway_shed_total": ("counter", "Chat requests answered 503 (in-flight limit, CPU saturation "
                                                     "or event-loop lag).",
                                          s["shed"]),
            "sluice_gateway_shed_lag_total": ("counter", "Of those, shed for CPU saturation or event-loop lag.",
                                              s["shed_lag"]),
            "sluice_gateway_shed_early_total": ("counter", "Of those, refused by the HTTP protocol before any "
                                                           "request handling.", s["shed_early"]),
            "sluice_gateway_event_loop_lag_seconds": ("gauge", "The last measured event-loop lag.", s["loop_lag_s"]),
            "sluice_gateway_event_loop_lag_max_seconds": ("gauge", "The largest event-loop lag measured since the "
                                                                   "start.", s["loop_lag_max_s"]),
            "sluice_gateway_event_loop_busy_ratio": ("gauge", "CPU share of the event loop's thread (smoothed).",
                                                     s["loop_busy"]),
            "sluice_gateway_admitted_share_ratio": ("gauge", "Share of chat requests admitted past saturation "
                                                             "(1: none shed).", s["admitted_share"]),
            "sluice_auth_rejected_total": ("counter", "Requests refused for a missing, unknown or out-of-scope key "
                                                      "(every endpoint of this process).", s["auth_rejected"]),
        }
        text = self.metrics.render(gauges)
        ingest = protocol.app_state(scope, "ingest_counters")  # the server's OTLP ingest, when mounted in it
        if ingest is not None:
            text += ingest.render(protocol.app_state(scope, "writer"))
        await protocol.send_body(send, 200, text, metrics.CONTENT_TYPE, [])

    @property
    def in_flight(self) -> int:
        return self.shedder.in_flight

    @property
    def shed(self) -> int:
        return self.shedder.shed

    def _early_refusal(self, keep_alive: bool) -> bytes | None:
        refusal = self.shedder.early_refusal(keep_alive)
        if refusal is not None:
            self.requests += 1
        return refusal

    async def chat(self, scope, receive, send) -> None:
        self.requests += 1
        admitted_at = scope.get(ADMISSION_DECIDED)
        if admitted_at is not None:
            self.shedder.waited(time.perf_counter() - admitted_at)
        if not self.shedder.admit(decided=admitted_at is not None):
            await self.shedder.reject(send)
            return
        try:
            await dispatch.chat(self, scope, receive, send)
        finally:
            self.shedder.release()

    def _authorize(self, scope, headers: dict[str, str], scopes: frozenset[str] = GATEWAY_SCOPES) -> Any:
        """The caller's key (None while the server runs without keys)."""
        return access.authorize(self.keyring, scope, headers, scopes)

    async def _shadow(self, job: MirrorJob) -> None:
        await run_shadow(self, job)

    def stats(self, scope: Any = None) -> dict[str, int]:
        ring = self.keyring or (protocol.app_state(scope, "keyring") if scope is not None else None)
        return {"requests": self.requests, "spans_submitted": self.spans.submitted,
                "auth_rejected": getattr(ring, "rejected", 0),
                "spans_dropped": self.spans.dropped, "mirror_enqueued": self.mirror.enqueued,
                "mirror_dropped": self.mirror.dropped, "mirror_completed": self.mirror.completed,
                "mirror_failed": self.mirror.failed, "circuits_opened": self.breakers.opened,
                "in_flight": self.in_flight, "shed": self.shed, "shed_lag": self.shedder.shed_lag,
                "loop_lag_s": round(self.shedder.lag_s, 6),
                "loop_lag_max_s": round(self.shedder.max_lag_s, 6), "loop_busy": round(self.shedder.busy, 3),
                "admitted_share": round(self.shedder.share, 3), "shed_early": self.shedder.shed_early,
                "cache_stored": self.cache.stored if self.cache else 0,
                "cache_shared_in": self.cache.shared_in if self.cache else 0}


def make_gateway(settings: GatewaySettings, store: Any, span_writer: Any | None = None, *,
                 keyring: Any | None = None, client: aiohttp.ClientSession | None = None) -> Gateway:
    """Seed the store's deployments from ``settings``, resolve them all, and build the gateway.

    ``span_writer`` / ``keyring`` default to the mounting app's ``app.state.writer`` /
    ``app.state.keyring`` (what ``sluice.server.app.create_app`` sets). Raises ``ConfigError``
    naming ``gateway.deployments.<name>.<field>`` for a release that cannot be served.
    """
    resolver = Resolver(store)
    for name, dep in settings.deployments.items():  # a bad config entry fails here, before it is seeded
        resolver.deployment(name, dep)
    deployment_store.seed(store, settings.deployments)
    version, stored = deployment_store.load(store)
    deployments = {name: resolver.deployment(name, dep, v) for name, (dep, v, _) in stored.items()}
    gateway = Gateway(settings, deployments, span_writer=span_writer, keyring=keyring, client=client)
    gateway.attach_store(store, resolver, version)
    return gateway
