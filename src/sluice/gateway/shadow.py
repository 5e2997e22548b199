"""Running one mirrored copy against a deployment's shadow release (a ``Mirror`` worker's job).

Non-streaming, not retried, its answer discarded; traced with route ``shadow`` in the client's
trace and with breakers of its own, so a failing shadow never opens the live route's circuit.
"""

from __future__ import annotations

import time
from typing import Any

from sluice.gateway import protocol
from sluice.gateway.answers import answered, apply_trail
from sluice.gateway.execute import Candidate, GatewayFailure, Trail, run_with_fallbacks
from sluice.gateway.local import request_meta
from sluice.gateway.mirror import MirrorJob
from sluice.gateway.releases import BadRequest, PreparedRelease
from sluice.gateway.routing import SHADOW
from sluice.gateway.spans import RequestRecord, new_span_id, now_ns
from sluice.gateway.upstream import complete


async def run_shadow(gw: Any, job: MirrorJob) -> None:
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
            return await complete(gw.client, cand.target, release.body(job.request, msgs, cand.target, False),
                                  remaining, meta)

        chain = [Candidate(release, t, SHADOW) for t in release.chain]
        deadline = time.monotonic() + gw.settings.deadline_s
        cand, result = await run_with_fallbacks(chain, attempt, gw.shadow_settings, gw.shadow_breakers,
                                                deadline, trail)
        rec.guardrail = release.guardrails.check(protocol.view_of(result.data)).outcome()
        answered(rec, cand, result.data, gw.settings.capture_content_chars)
        rec.route = SHADOW
        rec.fallback_used = cand.target is not release.chain[0]
    except (GatewayFailure, BadRequest) as f:
        rec.status, rec.error_type, rec.error_message = "error", getattr(f, "kind", "bad_request"), getattr(f, "detail", f.message)
    finally:
        apply_trail(rec, trail)
        gw.metrics.observe(rec, time.perf_counter() - rec.started)
        gw.spans.submit(rec)
