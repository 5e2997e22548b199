"""Starting a rollout and the actions a person takes on one: pause, resume, promote, abort.

Also the two things the controller and the people share: the gate check (no live canary traffic
without a stored passing gate of the candidate against the deployment's current stable release,
unless forced with a reason, which is recorded) and ``set_traffic`` (the one place a rollout changes
a deployment: through the gateway's deployment store, so every replica applies it).

Blocking store calls throughout: the server calls these from a worker thread.
"""

from __future__ import annotations

import logging

import time
from typing import Any, Callable

from sluice.errors import ConfigError, ExitCode, NotFoundError, SluiceError
from sluice.gateway import deployment_store
from sluice.gateway.config import CanaryArm, Deployment, ShadowArm
from sluice.release.registry import resolve_release
from sluice.rollout import store as rs
from sluice.rollout.plan import Plan

log = logging.getLogger("sluice.rollout")


class GateRequired(SluiceError):
    """Live canary traffic without a stored passing gate (and no ``--force --reason``)."""

    exit_code = ExitCode.FAIL


class Conflict(SluiceError):
    """The action does not fit the rollout's state (a second rollout, resuming a finished one)."""

    exit_code = ExitCode.USAGE


def ref_of(rec: Any) -> str:
    return f"{rec.name}@{rec.version}"


def passing_gate(store: Any, candidate_digest: str, stable_digest: str, dataset: str | None = None) -> Any | None:
    """The newest gate record of candidate vs stable (on ``dataset`` when given), if its verdict is pass.

    The newest record decides: a later failing gate of the same pair withdraws an earlier pass.
    """
    params: list[Any] = [candidate_digest, stable_digest]
    extra = ""
    if dataset:
        extra = " AND dataset_name = ?"
        params.append(dataset.split("@", 1)[0])
    row = store.db.query_one("SELECT id, verdict FROM gates WHERE candidate_digest = ? AND baseline_digest = ?"
                             f"{extra} ORDER BY created_at DESC LIMIT 1", params)
    if row is None or row[1] != "pass":
        return None
    return store.get_gate(row[0])


def check_gate(store: Any, candidate: Any, stable: Any, dataset: str | None, *, force: bool,
               reason: str | None) -> Any | None:
    """The passing gate record; None when forced. Raises ``GateRequired`` naming what is missing."""
    gate = passing_gate(store, candidate.digest, stable.digest, dataset)
    if gate is not None:
        return gate
    if force:
        if not (reason and reason.strip()):
            raise ConfigError("--force needs --reason \"...\" (it is recorded in the rollout's event log)")
        return None
    on = f" on dataset {dataset}" if dataset else ""
    raise GateRequired(f"no passing gate of {ref_of(candidate)} against the stable release {ref_of(stable)}{on}: "
                       f"run 'sluice gate --candidate {ref_of(candidate)} --baseline {ref_of(stable)} --dataset …' "
                       "first, or pass --force --reason \"…\"")


def current(store: Any, deployment: str) -> Deployment:
    _, stored = deployment_store.load(store)
    if deployment not in stored:
        raise NotFoundError(f"no deployment named '{deployment}' (sluice.yaml gateway.deployments, or "
                            "PUT /api/deployments/{name})")
    return stored[deployment][0]


def set_traffic(store: Any, deployment: str, change: Callable[[Deployment], Deployment],
                reload: Callable[[], Any] | None = None, actor: str = "rollout") -> Deployment:
    """Apply ``change`` to the stored deployment and write it (every replica follows the store; the
    audit log records ``actor``)."""
    dep = change(current(store, deployment))
    deployment_store.put(store, deployment, dep, actor)
    if reload is not None:
        reload()
    return dep


def traffic_for(plan: Plan, index: int, candidate_ref: str, dropped: list[str]) -> Callable[[Deployment], Deployment]:
    """The deployment change that step ``index`` of ``plan`` needs."""
    bp, pct = plan.weight_at(index), plan.mirror_at(index)

    def change(dep: Deployment) -> Deployment:
        only = dep.canary.only_cohorts if dep.canary and dep.canary.release == candidate_ref else []
        never = sorted(set(dropped) | set(dep.canary.never_cohorts if dep.canary and
                                          dep.canary.release == candidate_ref else []))
        canary = CanaryArm(release=candidate_ref, weight_bp=bp, only_cohorts=[c for c in only if c not in never],
                           never_cohorts=never)
        shadow = ShadowArm(release=candidate_ref, percent=pct) if pct > 0 else None
        return dep.model_copy(update={"canary": canary, "shadow": shadow})
    return change


def rollback_traffic(dep: Deployment) -> Deployment:
    """The canary's weight to 0 and no shadow: every request to the stable release, the whole bundle."""
    canary = dep.canary.model_copy(update={"weight_bp": 0}) if dep.canary else None
    return dep.model_copy(update={"canary": canary, "shadow": None})


def promote_traffic(candidate_ref: str) -> Callable[[Deployment], Deployment]:
    def change(dep: Deployment) -> Deployment:
        return dep.model_copy(update={"stable": candidate_ref, "canary": None, "shadow": None})
    return change


def start(store: Any, plan: Plan, *, actor: str, force: bool = False, reason: str | None = None,
          require_gate: bool = True, initial_state: Callable[[Plan], dict] | None = None,
          reload: Callable[[], Any] | None = None, now: float | None = None) -> rs.Rollout:
    """Check the gate, record the rollout and its start event, and apply step 0's traffic."""
    now = time.time() if now is None else now
    dep = current(store, plan.deployment)
    candidate = resolve_release(store, plan.candidate)
    stable = resolve_release(store, dep.stable)
    if candidate.digest == stable.digest:
        raise Conflict(f"{ref_of(candidate)} is already the stable release of {plan.deployment}")
    existing = rs.open_for(store, plan.deployment)
    if existing is not None:
        raise Conflict(f"deployment {plan.deployment} already has rollout {existing.id} ({existing.status}); "
                       "promote or abort it first")
    gate = check_gate(store, candidate, stable, plan.dataset, force=force or not require_gate,
                      reason=reason if force else (reason or "gate not required by configuration"))
    ro = rs.Rollout(id=rs.new_id(), deployment=plan.deployment, status="running", candidate_ref=ref_of(candidate),
                    candidate_digest=candidate.digest, stable_ref=ref_of(stable), stable_digest=stable.digest,
                    plan=plan.model_dump(mode="json"), step_index=0, step_started_at=now,
                    state={"window_ns": int(now * 1e9), "dropped": [], "canary": 0, "stable": 0, "frozen": {}},
                    analysis=initial_state(plan) if initial_state else {}, gate_id=gate.id if gate else None,
                    forced_reason=None if gate else (reason or "gate not required by configuration"),
                    created_by=actor, created_at=now)
    rs.insert(store, ro)
    rs.append_event(store, ro.id, actor, "start", f"rollout of {ro.candidate_ref} to {plan.deployment} started "
                    f"(stable {ro.stable_ref})", {"gate_id": ro.gate_id, "steps": len(plan.steps),
                                                  "weight_bp": plan.weight_at(0), "mirror_percent": plan.mirror_at(0)})
    if gate is None:
        rs.append_event(store, ro.id, actor, "forced_start", f"started without a passing gate: {ro.forced_reason}",
                        {"candidate": ro.candidate_digest, "stable": ro.stable_digest})
    set_traffic(store, plan.deployment, traffic_for(plan, 0, ro.candidate_ref, []), reload, f"rollout:{ro.id}:{actor}")
    return ro


def get(store: Any, rollout_id: str) -> rs.Rollout:
    ro = rs.get(store, rollout_id)
    if ro is None:
        raise NotFoundError(f"no rollout '{rollout_id}'")
    return ro


def finish(store: Any, ro: rs.Rollout, status: str, actor: str, kind: str, message: str,
           figures: dict[str, Any] | None = None, now: float | None = None) -> rs.Rollout:
    ro.status = status
    if status in rs.FINAL:
        ro.finished_at = time.time() if now is None else now
    rs.save(store, ro)
    rs.append_event(store, ro.id, actor, kind, message, figures)
    if status == "promoted":  # the watch that follows a promotion (docs/monitoring.md)
        try:
            from sluice.monitor.stored import save_promotion_monitors

            save_promotion_monitors(store, ro.id, ro.deployment, ro.plan, actor)
        except Exception:  # noqa: BLE001 - a promotion is never undone for want of its monitors
            log.exception("rollout %s: monitors after promotion not saved", ro.id)
    return ro


def pause(store: Any, rollout_id: str, actor: str, reason: str = "") -> rs.Rollout:
    ro = get(store, rollout_id)
    if ro.status != "running":
        raise Conflict(f"rollout {ro.id} is {ro.status}, not running")
    return finish(store, ro, "paused", actor, "pause", reason or "paused by hand")


def resume(store: Any, rollout_id: str, actor: str, reason: str = "", now: float | None = None) -> rs.Rollout:
    """Back to running from paused, held or narrowed; a manual pause step is passed."""
    ro = get(store, rollout_id)
    if ro.status not in ("paused", "held", "narrowed"):
        raise Conflict(f"rollout {ro.id} is {ro.status}: only a paused, held or narrowed rollout resumes")
    step = ro.plan["steps"][ro.step_index]
    if (step.get("pause") or {}).get("until") == "manual":
        ro.state["manual_passed"] = ro.step_index
    ro.state["resumed_at"] = time.time() if now is None else now
    return finish(store, ro, "running", actor, "resume", reason or "resumed by hand")


def promote(store: Any, rollout_id: str, actor: str, reason: str = "", reload: Callable[[], Any] | None = None,
            now: float | None = None) -> rs.Rollout:
    """By hand (or by the controller at the last step): the candidate becomes stable everywhere; the old
    stable stays recorded on the rollout as the rollback target."""
    ro = get(store, rollout_id)
    if ro.status in rs.FINAL:
        raise Conflict(f"rollout {ro.id} is already {ro.status}")
    set_traffic(store, ro.deployment, promote_traffic(ro.candidate_ref), reload, f"rollout:{ro.id}:{actor}")
    return finish(store, ro, "promoted", actor, "promote", reason or f"{ro.candidate_ref} promoted by hand",
                  {"stable": ro.candidate_ref, "rollback_target": ro.stable_ref}, now)


def abort(store: Any, rollout_id: str, actor: str, reason: str = "", reload: Callable[[], Any] | None = None,
          now: float | None = None) -> rs.Rollout:
    """The canary's weight to 0 on every replica at once; the stable release serves everything."""
    ro = get(store, rollout_id)
    if ro.status in rs.FINAL:
        raise Conflict(f"rollout {ro.id} is already {ro.status}")
    set_traffic(store, ro.deployment, rollback_traffic, reload, f"rollout:{ro.id}:{actor}")
    return finish(store, ro, "aborted", actor, "abort", reason or "aborted by hand", {"weight_bp": 0}, now)


def check_put(store: Any, name: str, dep: Deployment, *, force: bool, reason: str | None, actor: str) -> None:
    """Gate enforcement for ``PUT /api/deployments/{name}``: giving a release canary weight (more than it
    has now, or a different release) needs a passing gate against the stable release; a forced write
    is recorded in the event log under ``deployment:<name>``."""
    if dep.canary is None or dep.canary.weight_bp <= 0:
        return
    _, stored = deployment_store.load(store)
    old = stored.get(name, (None,))[0]
    candidate = resolve_release(store, dep.canary.release)
    stable = resolve_release(store, dep.stable)
    if old is not None and old.canary is not None and old.stable == dep.stable and old.canary.weight_bp > 0:
        same = resolve_release(store, old.canary.release).digest == candidate.digest
        if same and dep.canary.weight_bp <= old.canary.weight_bp:
            return  # no new exposure
    ro = rs.open_for(store, name)
    if ro is not None and ro.candidate_digest == candidate.digest and ro.stable_digest == stable.digest:
        return  # the rollout's start was checked
    if check_gate(store, candidate, stable, None, force=force, reason=reason) is None:
        rs.append_event(store, f"deployment:{name}", actor, "forced_weight",
                        f"{ref_of(candidate)} given {dep.canary.weight_bp} bp without a passing gate: {reason}",
                        {"candidate": candidate.digest, "stable": stable.digest, "weight_bp": dep.canary.weight_bp})
