"""The rollout controller: the loop in ``sluice serve`` that looks at every running rollout each
interval and acts on what the analysis concludes.

One look at a rollout: collect the window since the last look (``collect``), check config parity
(``parity``), fold the batches into the stored sequential test (``analysis.update``), judge every
metric × cohort (``analysis.judge``), ask ``decide`` what to do with the step's progress, apply it
(``actions``: weights, mirror, ``never_cohorts``, promote, roll back — through the deployment
store, so every replica follows), and append the decision with its figures to the event log and
the webhook outbox. The state is written back after every look, so a restarted server resumes
mid-step with the same test.

With several replicas on one PostgreSQL exactly one acts: the holder of the ``rollouts`` lease
(``store.acquire_lease``), renewed every look and taken over by another replica once it expires.
``tick`` is synchronous and takes ``now``: the server runs it in a worker thread, tests call it
directly with the clock they want.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from typing import Any, Callable

from sluice.rollout import actions, collect, parity
from sluice.rollout import store as rs
from sluice.rollout.measures import OVERALL, Decision, Finding, StepProgress
from sluice.rollout.plan import Plan
from sluice.rollout.settings import RolloutSettings

log = logging.getLogger("sluice.rollout")
LEASE = "rollouts"


def analysis_api():
    """The pure analysis (``sluice.rollout.analysis``, ``sluice.rollout.decide``), imported late so the
    controller's module loads without it."""
    from sluice.rollout import analysis
    from sluice.rollout.decide import decide

    return analysis, decide


def initial_state(plan: Plan) -> dict[str, Any]:
    """The sequential test's starting state: α split over the plan's metrics × (all traffic and its cohorts)."""
    analysis, _ = analysis_api()
    return analysis.initial_state(plan.all_rules(), plan.alpha, cohorts=[OVERALL, *plan.cohorts])


def finding_view(f: Finding) -> dict[str, Any]:
    return {"metric": f.metric, "cohort": f.cohort, "outcome": f.outcome, "critical": f.critical,
            "canary": f.canary_estimate, "stable": f.stable_estimate, "bound": f.bound, "margin": f.margin,
            "canary_samples": f.canary_samples, "stable_samples": f.stable_samples, "rule": f.rule,
            "evidence": f.evidence}


def decision_view(d: Decision, step: int) -> dict[str, Any]:
    return {"action": d.action, "reason": d.reason, "step": step, "cohorts_to_drop": list(d.cohorts_to_drop),
            "findings": [finding_view(f) for f in d.findings]}


class Controller:
    def __init__(self, store: Any, settings: RolloutSettings | None = None, *, reload: Callable[[], Any] | None = None,
                 holder: str | None = None, notify: Callable[[dict[str, Any], str | None], None] | None = None):
        self.store = store
        self.settings = settings or RolloutSettings()
        self.reload = reload
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.notify = notify  # (payload, plan webhook url) -> None: queue it for delivery
        self.looks = 0
        self.errors = 0
        self._task: asyncio.Task | None = None

    # the loop in ``sluice serve`` -------------------------------------------------------------
    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.tick)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one bad look must not stop the controller
                self.errors += 1
                log.exception("rollout controller: a look failed")
            await asyncio.sleep(self.settings.interval_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="sluice-rollout-controller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            await asyncio.to_thread(rs.release_lease, self.store, LEASE, self.holder)

    # one look --------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> list[tuple[str, Decision]]:
        """Look at every running rollout once, if this replica holds the lease; the decisions taken."""
        now = time.time() if now is None else now
        if not rs.acquire_lease(self.store, LEASE, self.holder, self.settings.lease_ttl_s, now=now):
            return []
        out = []
        for k, ro in enumerate(rs.list_rollouts(self.store, status=("running",), limit=1000)):
            if k and not rs.acquire_lease(self.store, LEASE, self.holder, self.settings.lease_ttl_s, now=now):
                break  # renewed before each rollout: a replica that lost the lease stops acting at once
            try:
                d = self.look(ro, now)
            except Exception:  # noqa: BLE001 - the other rollouts still get their look
                self.errors += 1
                log.exception("rollout %s: look failed", ro.id)
                continue
            if d is not None:
                out.append((ro.id, d))
        self.looks += 1
        return out

    def look(self, ro: rs.Rollout, now: float) -> Decision | None:
        analysis, decide = analysis_api()
        plan = Plan.model_validate(ro.plan)
        i = ro.step_index
        step = plan.steps[i]
        since = int(ro.state.get("window_ns", int(ro.step_started_at * 1e9)))
        until = int((now - self.settings.settle_s) * 1e9)
        dropped = list(ro.state.get("dropped", []))
        rules = plan.all_rules()
        if until > since:
            arms = collect.Arms(ro.deployment, collect.Arms.names(ro.candidate_digest, ro.candidate_ref),
                                collect.Arms.names(ro.stable_digest, ro.stable_ref),
                                mirror=plan.weight_at(i) == 0 and plan.mirror_at(i) > 0)
            cohorts = [c for c in plan.cohorts if c not in dropped]
            look = collect.collect(self.store, arms, rules, cohorts, since, until, ro.state.get("frozen", {}))
            ro.state["frozen"] = look.frozen
            ro.state["canary"] = int(ro.state.get("canary", 0)) + look.canary_requests
            ro.state["stable"] = int(ro.state.get("stable", 0)) + look.stable_requests
            ro.state["window_ns"] = until
            batches = [b for b in look.batches if b.cohort not in dropped]
            if batches:
                ro.analysis = analysis.update(ro.analysis, batches)
            differs = self._parity(ro, arms, since, until)
            if differs:
                d = Decision("hold", "config parity: the canary's spans show " + "; ".join(
                    f"{m['field']} {m['seen']!r} where the gated release has {m['gated']!r}" for m in differs))
                return self._apply(ro, plan, d, now, figures={"parity": differs})
        step_names = {r.metric for r in plan.step_metrics(i)}
        findings = [f for f in analysis.judge(rules, ro.analysis, min_samples_by_cohort=plan.cohort_min_samples)
                    if f.metric in step_names and f.cohort not in dropped]
        lo, hi = plan.durations_of(i)
        progress = StepProgress(
            index=i, kind=step.kind, elapsed_s=max(now - ro.step_started_at, 0.0), min_duration_s=lo,
            max_duration_s=hi, min_requests=plan.min_requests_of(i) if step.kind != "pause" else 0,
            canary_requests=int(ro.state.get("canary", 0)), stable_requests=int(ro.state.get("stable", 0)),
            last_step=i == len(plan.steps) - 1, allow_narrow=plan.allow_narrow,
            manual_pause=step.pause is not None and step.pause.until == "manual"
            and ro.state.get("manual_passed") != i)
        return self._apply(ro, plan, decide(progress, findings), now)

    def _parity(self, ro: rs.Rollout, arms: collect.Arms, since: int, until: int) -> list[dict[str, Any]]:
        rec = self.store.get_release(ro.candidate_digest)
        if rec is None:
            return []
        return parity.check(self.store, ro.deployment, arms.candidate, rec.manifest, rec.files, since, until)

    # acting ----------------------------------------------------------------------------------
    def _apply(self, ro: rs.Rollout, plan: Plan, d: Decision, now: float,
               figures: dict[str, Any] | None = None) -> Decision:
        view = decision_view(d, ro.step_index)
        view["requests"] = {"canary": ro.state.get("canary", 0), "stable": ro.state.get("stable", 0)}
        if figures:
            view.update(figures)
        previous = (ro.last_decision or {}).get("action")
        ro.last_decision = view
        if d.action == "continue":
            rs.save(self.store, ro)
            if previous not in (None, "continue", "advance"):
                rs.append_event(self.store, ro.id, "controller", "decision", d.reason, view)
            return d
        if d.action == "advance":
            ro.step_index += 1
            ro.step_started_at = now
            ro.state.update({"canary": 0, "stable": 0, "frozen": {}})
            actions.set_traffic(self.store, ro.deployment, actions.traffic_for(
                plan, ro.step_index, ro.candidate_ref, ro.state.get("dropped", [])), self.reload,
                f"rollout:{ro.id}:controller")
            rs.save(self.store, ro)
            view["weight_bp"], view["mirror_percent"] = plan.weight_at(ro.step_index), plan.mirror_at(ro.step_index)
            rs.append_event(self.store, ro.id, "controller", "advance",
                            f"step {ro.step_index - 1} → {ro.step_index}: {d.reason}", view)
        elif d.action == "narrow":
            dropped = sorted(set(ro.state.get("dropped", [])) | set(d.cohorts_to_drop))
            ro.state["dropped"] = dropped
            analysis, _ = analysis_api()
            ro.analysis = analysis.drop_cohorts(ro.analysis, d.cohorts_to_drop)
            actions.set_traffic(self.store, ro.deployment, actions.traffic_for(
                plan, ro.step_index, ro.candidate_ref, dropped), self.reload,
                f"rollout:{ro.id}:controller")
            rs.save(self.store, ro)
            rs.append_event(self.store, ro.id, "controller", "narrow",
                            f"cohort(s) {', '.join(d.cohorts_to_drop)} dropped from the canary: {d.reason}", view)
        elif d.action == "promote":
            if ro.state.get("dropped"):  # the canary stays on for the cohorts that passed; a person decides
                ro.status = "narrowed"
                rs.save(self.store, ro)
                rs.append_event(self.store, ro.id, "controller", "narrowed", "the last step passed for every cohort "
                                f"but {', '.join(ro.state['dropped'])}: canary kept for the rest; promote or abort "
                                "by hand", view)
            else:
                actions.set_traffic(self.store, ro.deployment, actions.promote_traffic(ro.candidate_ref), self.reload,
                                    f"rollout:{ro.id}:controller")
                view["rollback_target"] = ro.stable_ref
                actions.finish(self.store, ro, "promoted", "controller", "promote",
                               f"{ro.candidate_ref} promoted: {d.reason}", view, now)
        elif d.action == "rollback":
            actions.set_traffic(self.store, ro.deployment, actions.rollback_traffic, self.reload,
                                f"rollout:{ro.id}:controller")
            actions.finish(self.store, ro, "rolled_back", "controller", "rollback",
                           f"rolled back to {ro.stable_ref}: {d.reason}", view, now)
        elif d.action == "hold":
            actions.finish(self.store, ro, "held", "controller", "hold", d.reason, view, now)
        if self.notify is not None:
            self.notify(self.payload(ro, view), plan.webhook)
        return d

    @staticmethod
    def payload(ro: rs.Rollout, view: dict[str, Any]) -> dict[str, Any]:
        """What a webhook receives for one decision."""
        return {"type": "rollout.decision", "rollout": ro.id, "deployment": ro.deployment, "status": ro.status,
                "candidate": {"ref": ro.candidate_ref, "digest": ro.candidate_digest},
                "stable": {"ref": ro.stable_ref, "digest": ro.stable_digest}, "decision": view}
