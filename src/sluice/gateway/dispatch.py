"""One chat request from body to answer: authorize, parse, pick the deployment's route (or the
pinned release), offer the shadow copy, try the semantic cache, then call the upstream chain
(streaming or not) and send the answer. Errors end as OpenAI-format answers; every request that
got this far leaves one span and one metrics observation."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from sluice.auth.keys import ADMIN
from sluice.gateway import protocol
from sluice.gateway.answers import answered, apply_trail, from_cache, release_headers, text
from sluice.gateway.execute import Candidate, GatewayFailure, Trail, guard, render_cached, run_with_fallbacks
from sluice.gateway.local import request_meta
from sluice.gateway.mirror import MirrorJob
from sluice.gateway.releases import PreparedRelease
from sluice.gateway.resolved import ResolvedDeployment, chain_of
from sluice.gateway.routing import CANARY, choose_arm, mirror_this
from sluice.gateway.semantic_cache import Lookup, answer_of
from sluice.gateway.spans import (UNKNOWN_DEPLOYMENT, RequestRecord, new_span_id, new_trace_id, now_ns,
                                  parse_traceparent)
from sluice.gateway.streaming import serve_stream
from sluice.gateway.upstream import complete
from sluice.redaction import redact

PIN_HEADER = "x-sluice-release"
log = logging.getLogger("sluice.gateway")


async def chat(gw: Any, scope, receive, send) -> None:
    started = time.perf_counter()
    headers = protocol.headers_of(scope)
    parent = parse_traceparent(headers.get("traceparent"))
    trace_id, parent_id = parent or (new_trace_id(), "")
    rec = RequestRecord(trace_id=trace_id, span_id=new_span_id(), parent_id=parent_id, start_ns=now_ns(),
                        started=started, deployment="")
    trace_header = [(b"x-sluice-trace-id", trace_id.encode())]
    capture = gw.settings.capture_content_chars
    authorized = False  # a request refused at the door writes no span (anonymous clients write no rows)
    try:
        key = gw._authorize(scope, headers)
        authorized = True
        raw = await protocol.read_body(receive, headers, gw.settings.max_body_bytes)
        rec.input_text = text(raw, capture)
        body = protocol.parse_request(raw)
        rec.deployment = body["model"][:200]
        rec.stream = bool(body.get("stream"))
        dep = gw.deployments.get(body["model"])
        if dep is None:  # labelled as in Prometheus; the name asked for stays in the span
            rec.extra["sluice.requested_model"], rec.deployment = rec.deployment, UNKNOWN_DEPLOYMENT
            raise GatewayFailure(404, f"The model '{body['model'][:200]}' does not exist: it is not a deployment "
                                 f"of this gateway (GET /v1/models lists them)", "invalid_request_error",
                                 "model_not_found")
        ident = gw.identifier.identify(body, headers)
        rec.cohort, rec.user, rec.session = ident.cohort, ident.user_key, ident.session_id
        chain = route(dep, ident, headers.get(PIN_HEADER), key, rec)
        if dep.shadow is not None and not rec.pinned and mirror_this(dep.name, dep.config, ident):
            gw.mirror.offer(MirrorJob(dep.name, dep.shadow, body, ident.cohort, ident.user_key,
                                      ident.session_id, trace_id, rec.span_id))
        routed = [(b"x-sluice-cohort", protocol.header_value(ident.cohort))] + trace_header
        lookup = None
        if gw.cache is not None and dep.config.low_risk:
            lookup = await cache_lookup(gw, dep.name, headers, body, rec)
            if lookup is not None and lookup.answer is not None:
                await from_cache(send, body, lookup, rec, routed, capture)
                return
        deadline = time.monotonic() + gw.settings.deadline_s
        if rec.stream:
            await serve_stream(gw, scope, receive, send, body, chain, deadline, rec, routed, lookup)
        else:
            await complete_once(gw, send, body, chain, deadline, rec, routed, lookup)
    except GatewayFailure as f:
        rec.status, rec.error_type, rec.error_message, rec.http_status = "error", f.kind, f.detail, f.status
        extra = trace_header + ([(b"x-sluice-release", rec.release.encode()), (b"x-sluice-route", rec.route.encode())]
                                if rec.release else [])
        await protocol.send_error(send, f, extra)
    except protocol.ClientGone:
        rec.status, rec.error_type, rec.http_status = "error", "client_disconnected", 499
    except Exception as e:  # noqa: BLE001 - a bug or an answer nobody foresaw: an error on the span and in metrics
        log.exception("gateway: unexpected error on a chat request")
        rec.status, rec.error_type, rec.http_status = "error", "internal_error", 500
        rec.error_message = redact(f"internal error ({type(e).__name__}): {e}")[:500]
        try:
            await protocol.send_error(send, GatewayFailure(500, f"internal error ({type(e).__name__})", "server_error",
                                                           "internal_error"), trace_header)
        except Exception:  # noqa: BLE001 - the answer had started: the server closes the connection
            pass
    finally:
        gw.metrics.observe(rec, time.perf_counter() - started)
        if authorized:
            gw.spans.submit(rec, protocol.app_state(scope, "writer"))


def route(dep: ResolvedDeployment, ident, pin: str | None, key: Any, rec: RequestRecord) -> list[Candidate]:
    """The candidates to try: the pinned release's chain (admin keys only) or the chosen arm's."""
    if pin:
        if key is not None and key.scope != ADMIN:
            raise GatewayFailure(403, f"pinning a release with {PIN_HEADER} needs an admin key",
                                 "invalid_request_error", "pin_forbidden")
        for arm, release in dep.releases():
            if pin_matches(pin, release):
                rec.pinned = True
                rec.route, rec.arm, rec.release, rec.release_ref = arm, arm, release.digest, release.ref
                return chain_of(release, arm)
        raise GatewayFailure(400, f"{PIN_HEADER}: '{pin[:100]}' is none of deployment {dep.name}'s releases",
                             "invalid_request_error", "unknown_release")
    arm = choose_arm(dep.name, dep.config, ident)
    release = dep.canary if arm == CANARY else dep.stable
    rec.route, rec.arm, rec.release, rec.release_ref = arm, arm, release.digest, release.ref
    return dep.canary_chain if arm == CANARY else dep.stable_chain


def pin_matches(pin: str, release: PreparedRelease) -> bool:
    pin = pin.strip()
    hexpart = release.digest.removeprefix("sha256:")
    if pin == release.digest or pin == release.ref:
        return True
    bare = pin.removeprefix("sha256:")
    return len(bare) >= 6 and hexpart.startswith(bare.lower())


async def cache_lookup(gw: Any, deployment: str, headers: dict[str, str], body: dict[str, Any],
                       rec: RequestRecord) -> Lookup | None:
    lookup = await gw.cache.lookup(deployment, rec.release, gw.cache.tenant(headers, body), body)
    if lookup is not None:
        hit = lookup.answer is not None
        gw.metrics.cache_lookup(deployment, hit)
        rec.extra["sluice.cache"] = "hit" if hit else "miss"
        if hit:
            rec.extra["sluice.cache_similarity"] = round(lookup.similarity or 0.0, 4)
    return lookup


async def complete_once(gw: Any, send, body: dict[str, Any], chain: list[Candidate], deadline: float,
                        rec: RequestRecord, routed: list, lookup: Lookup | None = None) -> None:
    """A non-streaming request: the chain, the guardrails (one repair retry), the answer."""
    rendered: dict[int, list] = {}
    meta = request_meta(body, rec.cohort)

    async def attempt(cand: Candidate, remaining: float):
        msgs = render_cached(rendered, cand.release, body)
        return await complete(gw.client, cand.target, cand.release.body(body, msgs, cand.target, False),
                              remaining, meta)

    trail = Trail()
    try:
        cand, result = await run_with_fallbacks(chain, attempt, gw.settings, gw.breakers, deadline, trail)

        async def retry():
            remaining = max(deadline - time.monotonic(), 0.001)
            async with asyncio.timeout(remaining):
                return await attempt(cand, remaining)

        result, rec.guardrail, blocked = await guard(cand, result, lambda r: protocol.view_of(r.data), retry, trail)
    finally:
        apply_trail(rec, trail)
    answered(rec, cand, result.data, gw.settings.capture_content_chars)
    raw = (protocol.blocked_completion(result.data, cand.release.guardrails.block_message(rec.guardrail))
           if blocked else result.raw)
    if lookup is not None and not blocked:
        choice = result.data["choices"][0]
        gw.cache.store(lookup, cand.release.digest,
                       answer_of(choice.get("message") or {}, choice.get("finish_reason"), rec.model))
    await protocol.send_json(send, 200, raw, routed + release_headers(rec))
