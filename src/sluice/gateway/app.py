"""The gateway's ASGI endpoints: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Pure ASGI handlers (no request/response objects, no middleware) keep the per-request CPU small;
``Gateway.router`` wraps them in Starlette routes so ``sluice serve`` can include them next to the
rest of its API, and ``Gateway`` itself is a complete ASGI app for standalone use.

The request path touches no store: releases are resolved and prepared in ``make_gateway``; API
keys are checked through the server's ``KeyRing`` (cached); spans go to the shared ``SpanWriter``
queue after the response has been sent.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from fastapi import APIRouter
from starlette.routing import Route

from sluice.auth.keys import ADMIN, GATEWAY
from sluice.errors import ConfigError
from sluice.gateway import admin_api, deployment_store, metrics, protocol
from sluice.gateway.breaker import Breakers
from sluice.gateway.config import GatewaySettings
from sluice.gateway.execute import Candidate, GatewayFailure, Trail, guard, render_cached, run_with_fallbacks
from sluice.gateway.mirror import Mirror, MirrorJob
from sluice.gateway.releases import BadRequest, PreparedRelease
from sluice.gateway.resolved import ResolvedDeployment, Resolver, chain_of
from sluice.gateway.routing import CACHE, CANARY, FALLBACK, SHADOW, STABLE, Identifier, choose_arm, mirror_this
from sluice.gateway.semantic_cache import Lookup, SemanticCache, answer_of, replay_completion, replay_events
from sluice.gateway.spans import RequestRecord, SpanSink, new_span_id, new_trace_id, now_ns, parse_traceparent
from sluice.gateway.streaming import serve_stream
from sluice.gateway.local import request_meta
from sluice.gateway.metrics import GatewayMetrics
from sluice.gateway.upstream import complete, make_session

PIN_HEADER = "x-sluice-release"
log = logging.getLogger("sluice.gateway")
GATEWAY_SCOPES = frozenset({GATEWAY, ADMIN})
ADMIN_ONLY = frozenset({ADMIN})


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
        self._models_body = _models_body(deployments)
        self.store: Any = None
        self.resolver: Resolver | None = None
        self.version = 0
        self._poller: asyncio.Task | None = None
        self.requests = 0
        self.in_flight = 0
        self.shed = 0
        self._shed_body = orjson.dumps({"error": {
            "message": f"the gateway is at its limit of {settings.max_in_flight} requests in flight; retry later",
            "type": "server_error", "param": None, "code": "overloaded"}})
        self._shed_headers = [(b"content-type", b"application/json"),
                              (b"retry-after", str(max(1, round(settings.shed_retry_after_s))).encode()),
                              (b"x-should-retry", b"true")]
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
        self._models_body = _models_body(deployments)
        self.version = version

    def reload(self) -> bool:
        """Read the store's deployments and swap them in; runs in a worker thread. False: unchanged."""
        version, stored = deployment_store.load(self.store)
        if version == self.version:
            return False
        fresh = {}
        for name, (dep, v, _) in stored.items():
            current = self.deployments.get(name)
            fresh[name] = current if current is not None and current.version == v else \
                self.resolver.deployment(name, dep, v)
        self.set_deployments(fresh, version)
        return True

    async def _poll(self) -> None:
        interval = self.settings.reload_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                if await asyncio.to_thread(deployment_store.version, self.store) != self.version:
                    await asyncio.to_thread(self.reload)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep serving the deployments we have
                log.warning("gateway: reloading deployments failed", exc_info=True)

    async def startup(self) -> None:
        # Everything loaded so far (FastAPI, pydantic models, DuckDB, prepared releases: ~100k
        # objects) lives as long as the process; a full collection scanning it paused the event
        # loop for ~70 ms, the gateway's worst tail latency. Frozen objects are never scanned.
        gc.freeze()
        self.mirror.start()
        if _shared(self.store) and self.settings.reload_interval_s > 0 and self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name="sluice-gateway-reload")
        if self.cache is not None:
            await asyncio.to_thread(self.cache.start)  # loads the embedding model

    async def shutdown(self) -> None:
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
        router.routes.append(Route("/v1/chat/completions", _Endpoint(self.chat), methods=["POST"]))
        router.routes.append(Route("/v1/models", _Endpoint(self.models), methods=["GET"]))
        router.routes.append(Route("/metrics", _Endpoint(self.prometheus), methods=["GET"]))
        router.routes.append(Route("/api/deployments", _Endpoint(self._admin(admin_api.list_deployments)),
                                   methods=["GET"]))
        router.routes.append(Route("/api/deployments/{name}", _Endpoint(self._admin(admin_api.get_deployment)),
                                   methods=["GET"]))
        router.routes.append(Route("/api/deployments/{name}", _Endpoint(self._admin(admin_api.put_deployment)),
                                   methods=["PUT"]))
        router.routes.append(Route("/api/deployments/{name}", _Endpoint(self._admin(admin_api.delete_deployment)),
                                   methods=["DELETE"]))
        return router

    def _admin(self, handler):
        async def endpoint(scope, receive, send) -> None:
            try:
                self._authorize(scope, protocol.headers_of(scope), ADMIN_ONLY)
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

    async def prometheus(self, scope, receive, send) -> None:
        """``GET /metrics``: Prometheus text; an admin key once keys exist."""
        try:
            self._authorize(scope, protocol.headers_of(scope), ADMIN_ONLY)
        except GatewayFailure as f:
            await protocol.send_error(send, f, [])
            return
        s = self.stats()
        gauges = {
            "sluice_gateway_spans_dropped_total": ("counter", "Gateway spans dropped (writer queue full or closed).",
                                                   s["spans_dropped"]),
            "sluice_gateway_mirror_enqueued_total": ("counter", "Shadow copies queued.", s["mirror_enqueued"]),
            "sluice_gateway_mirror_dropped_total": ("counter", "Shadow copies dropped (queue full).",
                                                    s["mirror_dropped"]),
            "sluice_gateway_mirror_failed_total": ("counter", "Shadow copies that failed.", s["mirror_failed"]),
            "sluice_gateway_circuits_opened_total": ("counter", "Times an upstream's circuit opened.",
                                                     s["circuits_opened"]),
            "sluice_gateway_shed_total": ("counter", "Chat requests answered 503 at the in-flight limit.", s["shed"]),
        }
        await protocol.send_body(send, 200, self.metrics.render(gauges), metrics.CONTENT_TYPE, [])

    async def chat(self, scope, receive, send) -> None:
        self.requests += 1
        limit = self.settings.max_in_flight
        if limit and self.in_flight >= limit:
            await self._shed(send)
            return
        self.in_flight += 1
        try:
            await self._chat(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _shed(self, send) -> None:
        """Over the in-flight limit: 503 at once, no parsing, no span (counted in ``stats()`` and
        ``/metrics``), so the requests already admitted keep their latency."""
        self.shed += 1
        await send({"type": "http.response.start", "status": 503, "headers": self._shed_headers})
        await send({"type": "http.response.body", "body": self._shed_body})

    async def _chat(self, scope, receive, send) -> None:
        started = time.perf_counter()
        headers = protocol.headers_of(scope)
        parent = parse_traceparent(headers.get("traceparent"))
        trace_id, parent_id = parent or (new_trace_id(), "")
        rec = RequestRecord(trace_id=trace_id, span_id=new_span_id(), parent_id=parent_id, start_ns=now_ns(),
                            started=started, deployment="")
        trace_header = [(b"x-sluice-trace-id", trace_id.encode())]
        try:
            key = self._authorize(scope, headers)
            raw = await protocol.read_body(receive, headers, self.settings.max_body_bytes)
            rec.input_text = _text(raw, self.settings.capture_content_chars)
            body = protocol.parse_request(raw)
            rec.deployment = body["model"][:200]
            rec.stream = bool(body.get("stream"))
            dep = self.deployments.get(body["model"])
            if dep is None:
                raise GatewayFailure(404, f"The model '{body['model'][:200]}' does not exist: it is not a deployment "
                                     f"of this gateway (GET /v1/models lists them)", "invalid_request_error",
                                     "model_not_found")
            ident = self.identifier.identify(body, headers)
            rec.cohort, rec.user, rec.session = ident.cohort, ident.user_key, ident.session_id
            chain = self._route(dep, ident, headers.get(PIN_HEADER), key, rec)
            if dep.shadow is not None and not rec.pinned and mirror_this(dep.name, dep.config, ident):
                self.mirror.offer(MirrorJob(dep.name, dep.shadow, body, ident.cohort, ident.user_key,
                                            ident.session_id, trace_id, rec.span_id))
            routed = [(b"x-sluice-cohort", protocol.header_value(ident.cohort))] + trace_header
            lookup = None
            if self.cache is not None and dep.config.low_risk:
                lookup = await self._cache_lookup(dep.name, headers, body, rec)
                if lookup is not None and lookup.answer is not None:
                    await self._from_cache(send, body, lookup, rec, routed)
                    return
            deadline = time.monotonic() + self.settings.deadline_s
            if rec.stream:
                await serve_stream(self, scope, receive, send, body, chain, deadline, rec, routed, lookup)
            else:
                await self._complete(send, body, chain, deadline, rec, routed, lookup)
        except GatewayFailure as f:
            rec.status, rec.error_type, rec.error_message, rec.http_status = "error", f.kind, f.message, f.status
            extra = trace_header + ([(b"x-sluice-release", rec.release.encode()), (b"x-sluice-route", rec.route.encode())]
                                    if rec.release else [])
            await protocol.send_error(send, f, extra)
        except protocol.ClientGone:
            rec.status, rec.error_type, rec.http_status = "error", "client_disconnected", 499
        finally:
            self.metrics.observe(rec, time.perf_counter() - started)
            self.spans.submit(rec, protocol.app_state(scope, "writer"))

    def _authorize(self, scope, headers: dict[str, str], scopes: frozenset[str] = GATEWAY_SCOPES) -> Any:
        """The caller's key (None while the server runs without keys)."""
        ring = self.keyring or protocol.app_state(scope, "keyring")
        if ring is None or not ring.enforced():
            return None
        token = protocol.bearer(headers)
        if token is None:
            raise GatewayFailure(401, "missing API key (Authorization: Bearer <key>)", "invalid_request_error",
                                 "missing_api_key")
        key = ring.verify(token)
        if key is None:
            raise GatewayFailure(401, "invalid or revoked API key", "invalid_request_error", "invalid_api_key")
        if key.scope not in scopes:
            wanted = " or ".join(sorted(scopes))
            raise GatewayFailure(403, f"a key with scope '{key.scope}' cannot use this endpoint (needs {wanted})",
                                 "invalid_request_error", "scope_forbidden")
        return key

    def _route(self, dep: ResolvedDeployment, ident, pin: str | None, key: Any, rec: RequestRecord) -> list[Candidate]:
        if pin:
            if key is not None and key.scope != ADMIN:
                raise GatewayFailure(403, f"pinning a release with {PIN_HEADER} needs an admin key",
                                     "invalid_request_error", "pin_forbidden")
            for route, release in dep.releases():
                if _pin_matches(pin, release):
                    rec.pinned = True
                    rec.route, rec.arm, rec.release, rec.release_ref = route, route, release.digest, release.ref
                    return chain_of(release, route)
            raise GatewayFailure(400, f"{PIN_HEADER}: '{pin[:100]}' is none of deployment {dep.name}'s releases",
                                 "invalid_request_error", "unknown_release")
        arm = choose_arm(dep.name, dep.config, ident)
        release = dep.canary if arm == CANARY else dep.stable
        rec.route, rec.arm, rec.release, rec.release_ref = arm, arm, release.digest, release.ref
        return dep.canary_chain if arm == CANARY else dep.stable_chain

    async def _cache_lookup(self, deployment: str, headers: dict[str, str], body: dict[str, Any],
                            rec: RequestRecord) -> Lookup | None:
        lookup = await self.cache.lookup(deployment, rec.release, self.cache.tenant(headers, body), body)
        if lookup is not None:
            hit = lookup.answer is not None
            self.metrics.cache_lookup(deployment, hit)
            rec.extra["sluice.cache"] = "hit" if hit else "miss"
            if hit:
                rec.extra["sluice.cache_similarity"] = round(lookup.similarity or 0.0, 4)
        return lookup

    async def _from_cache(self, send, body: dict[str, Any], lookup: Lookup, rec: RequestRecord, routed: list) -> None:
        rec.route, rec.model = CACHE, lookup.answer.get("model")
        if self.settings.capture_content_chars:
            rec.output_text = _text(lookup.answer["message"].get("content") or "", self.settings.capture_content_chars)
        headers = routed + _release_headers(rec)
        if rec.stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            await protocol.send_body(send, 200, replay_events(lookup.answer, include_usage), b"text/event-stream",
                                     headers + [(b"cache-control", b"no-cache")])
        else:
            await protocol.send_json(send, 200, replay_completion(lookup.answer), headers)

    async def _complete(self, send, body: dict[str, Any], chain: list[Candidate], deadline: float,
                        rec: RequestRecord, routed: list, lookup: Lookup | None = None) -> None:
        rendered: dict[int, list] = {}
        meta = request_meta(body, rec.cohort)

        async def attempt(cand: Candidate, remaining: float):
            msgs = render_cached(rendered, cand.release, body)
            return await complete(self.client, cand.target, cand.release.body(body, msgs, cand.target, False),
                                  remaining, meta)

        trail = Trail()
        try:
            cand, result = await run_with_fallbacks(chain, attempt, self.settings, self.breakers, deadline, trail)

            async def retry():
                remaining = max(deadline - time.monotonic(), 0.001)
                async with asyncio.timeout(remaining):
                    return await attempt(cand, remaining)

            result, rec.guardrail, blocked = await guard(cand, result, lambda r: protocol.view_of(r.data), retry, trail)
        finally:
            _apply_trail(rec, trail)
        self._answered(rec, cand, result.data)
        raw = (protocol.blocked_completion(result.data, cand.release.guardrails.block_message(rec.guardrail))
               if blocked else result.raw)
        if lookup is not None and not blocked:
            choice = result.data["choices"][0]
            self.cache.store(lookup, cand.release.digest,
                             answer_of(choice.get("message") or {}, choice.get("finish_reason"), rec.model))
        await protocol.send_json(send, 200, raw, routed + _release_headers(rec))

    def _answered(self, rec: RequestRecord, cand: Candidate, data: dict[str, Any]) -> None:
        rec.route, rec.release, rec.release_ref = cand.route, cand.release.digest, cand.release.ref
        rec.fallback_used = cand.route == FALLBACK
        rec.model = data.get("model") or cand.target.model
        rec.provider = cand.target.provider
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
        rec.usage = usage
        if usage:
            rec.cost = cand.release.price(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        if self.settings.capture_content_chars and "choices" in data:
            msg = (data["choices"][0] or {}).get("message") or {}
            rec.output_text = _text(msg.get("content") or "", self.settings.capture_content_chars)

    # shadow --------------------------------------------------------------------------------
    async def _shadow(self, job: MirrorJob) -> None:
        rec = RequestRecord(trace_id=job.trace_id, span_id=new_span_id(), parent_id=job.parent_span_id,
                            start_ns=now_ns(), started=time.perf_counter(), deployment=job.deployment,
                            route=SHADOW, arm=SHADOW, release=job.release.digest, release_ref=job.release.ref,
                            cohort=job.cohort, user=job.user, session=job.session)
        trail = Trail()
        release: PreparedRelease = job.release
        try:
            msgs = release.render(job.request["messages"])
            meta = request_meta(job.request, job.cohort)

            async def attempt(cand: Candidate, remaining: float):
                return await complete(self.client, cand.target, release.body(job.request, msgs, cand.target, False),
                                      remaining, meta)

            chain = [Candidate(release, t, SHADOW) for t in release.chain]
            deadline = time.monotonic() + self.settings.deadline_s
            cand, result = await run_with_fallbacks(chain, attempt, self.shadow_settings, self.shadow_breakers,
                                                    deadline, trail)
            rec.guardrail = release.guardrails.check(protocol.view_of(result.data)).outcome()
            self._answered(rec, cand, result.data)
            rec.route = SHADOW
            rec.fallback_used = cand.target is not release.chain[0]
        except (GatewayFailure, BadRequest) as f:
            rec.status, rec.error_type, rec.error_message = "error", getattr(f, "kind", "bad_request"), f.message
        finally:
            _apply_trail(rec, trail)
            self.metrics.observe(rec, time.perf_counter() - rec.started)
            self.spans.submit(rec)

    def stats(self) -> dict[str, int]:
        return {"requests": self.requests, "spans_submitted": self.spans.submitted,
                "spans_dropped": self.spans.dropped, "mirror_enqueued": self.mirror.enqueued,
                "mirror_dropped": self.mirror.dropped, "mirror_completed": self.mirror.completed,
                "mirror_failed": self.mirror.failed, "circuits_opened": self.breakers.opened,
                "in_flight": self.in_flight, "shed": self.shed,
                "cache_stored": self.cache.stored if self.cache else 0,
                "cache_shared_in": self.cache.shared_in if self.cache else 0}


def _shared(store: Any) -> bool:
    """Whether other processes may change the deployments: not for DuckDB, whose file one
    process holds (its writes go through this gateway's admin API, which reloads at once), so
    polling it would only cost a query every ``reload_interval_s``."""
    if store is None:
        return False
    dialect = getattr(getattr(getattr(store, "db", None), "dialect", None), "name", None)
    return dialect != "duckdb"


def _models_body(deployments: dict[str, Any]) -> bytes:
    return orjson.dumps({"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "sluice"} for name in sorted(deployments)]})


def _apply_trail(rec: RequestRecord, trail: Trail) -> None:
    rec.attempts, rec.upstream_s = trail.attempts, rec.upstream_s + trail.upstream_s
    rec.errors = trail.errors


def _release_headers(rec: RequestRecord) -> list[tuple[bytes, bytes]]:
    return [(b"x-sluice-release", rec.release.encode()), (b"x-sluice-route", rec.route.encode())]


def _text(value: bytes | str, limit: int) -> str | None:
    if limit <= 0:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return text if len(text) <= limit else text[:limit] + "…"


def _pin_matches(pin: str, release: PreparedRelease) -> bool:
    pin = pin.strip()
    hexpart = release.digest.removeprefix("sha256:")
    if pin == release.digest or pin == release.ref:
        return True
    bare = pin.removeprefix("sha256:")
    return len(bare) >= 6 and hexpart.startswith(bare.lower())


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
