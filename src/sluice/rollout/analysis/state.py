"""The analysis state: every metric × cohort's sequential tests, folded look by look, as plain JSON.

One *cell* per rule × cohort holds cumulative counts per arm and the running tests:

- ``ratio`` tests (rates, whenever the null is a rate ratio: a relative margin, or a harm test with no
  harm margin): the two-counter e-process of ``eprocess`` — the log likelihood of each rate ratio on a
  grid; harm is tested against ``1 + harm_margin``, non-inferiority against ``1 + margin``.
- ``normal`` tests (means, and rates with an absolute margin): per-look concurrent contrasts folded
  into normal-mixture martingales (``mixture``): one for harm, one for non-inferiority, and a plain
  difference kept for the explanation's bound. A look that leaves either arm empty waits in
  ``pending`` and is folded with the next one, so no data is dropped.

The running maximum of each test's log e-value is kept: an e-process that once crossed 1/α has
rejected (Ville's inequality bounds the chance of *ever* crossing), so a finding does not flicker.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict

import orjson

from sluice.rollout.analysis import alpha as alpha_split
from sluice.rollout.analysis import eprocess, mixture
from sluice.rollout.measures import ArmSample, Batch, MetricRule

VERSION = 1
TUNE_CANARY_SAMPLES = 1000  # normal-mixture τ is tuned for the canary arm reaching this many samples
MIN_TUNE_SAMPLES = 20  # per arm, before τ is frozen and the first look is folded


def _modes(rule: MetricRule) -> tuple[str, str]:
    """(harm test, non-inferiority test): ``ratio`` (two-counter e-process) when the null is a rate
    ratio — a relative margin, or no harm margin at all (canary ≤ stable is ratio ≤ 1) — else ``normal``."""
    if rule.kind != "rate":
        return "normal", "normal"
    return ("ratio" if rule.relative or rule.harm_margin == 0 else "normal",
            "ratio" if rule.relative else "normal")


def _empty_arm() -> dict:
    return {"n": 0, "events": 0, "total": 0.0, "total_sq": 0.0}


def _add(arm: dict, s: ArmSample) -> dict:
    return {"n": arm["n"] + s.n, "events": arm["events"] + s.events,
            "total": arm["total"] + s.total, "total_sq": arm["total_sq"] + s.total_sq}


def _new_cell(rule: MetricRule, cohort: str, level: float) -> dict:
    fail_mode, pass_mode = _modes(rule)
    cell = {"metric": rule.metric, "cohort": cohort, "fail_mode": fail_mode, "pass_mode": pass_mode,
            "alpha": level, "canary": _empty_arm(), "stable": _empty_arm(), "looks": 0,
            "max_log_fail": 0.0, "max_log_pass": 0.0}
    if "ratio" in (fail_mode, pass_mode):
        fail_null = 1.0 + (rule.harm_margin if rule.relative else 0.0)
        pass_null = 1.0 + rule.margin if rule.relative else None
        grid = eprocess.grid_for([1.0, fail_null] + ([pass_null] if pass_null else []))
        cell.update(fail_null=fail_null, pass_null=pass_null, grid=grid, loglik=[0.0] * len(grid))
    if "normal" in (fail_mode, pass_mode):
        cell.update(fail={"S": 0.0, "I": 0.0}, passing={"S": 0.0, "I": 0.0}, diff={"S": 0.0, "I": 0.0},
                    tau=None, pending={"canary": _empty_arm(), "stable": _empty_arm()})
    return cell


def initial_state(rules: Sequence[MetricRule], alpha: float, *, cohorts: Sequence[str] | None = None,
                  pass_alpha: float | None = None, late_share: float = alpha_split.DEFAULT_LATE_SHARE) -> dict:
    """A fresh state for ``rules``: one cell per rule × (``(all)`` and every planned cohort).

    ``alpha`` is the false-alarm budget of all harm tests together; ``pass_alpha`` (default ``alpha``)
    the level of each non-inferiority test; ``late_share`` of ``alpha`` is kept for unplanned cohorts."""
    if not rules:
        raise ValueError("no metrics to judge")
    names = [r.metric for r in rules]
    if len(set(names)) != len(names):
        raise ValueError("a metric is listed twice")
    for r in rules:
        if r.margin < 0 or r.harm_margin < 0 or r.harm_margin > r.margin:
            raise ValueError(f"{r.metric}: need 0 ≤ harm_margin ≤ margin (got {r.harm_margin}, {r.margin})")
        if r.min_samples < 1:
            raise ValueError(f"{r.metric}: min_samples must be at least 1")
    pa = alpha if pass_alpha is None else pass_alpha
    if not 0 < pa < 1:
        raise ValueError(f"pass_alpha must be in (0, 1), got {pa}")
    if not 0 <= late_share < 1:
        raise ValueError(f"late_share must be in [0, 1), got {late_share}")
    planned = alpha_split.planned_cohorts(cohorts)
    state = {"version": VERSION, "alpha": alpha, "pass_alpha": pa, "late_share": late_share,
             "rules": [asdict(r) for r in rules], "planned": planned, "late": [], "dropped": [],
             "cells": {}}
    for r in rules:
        state["cells"][r.metric] = {
            c: _new_cell(r, c, alpha_split.cell_alpha(alpha, len(rules), planned, [], c, late_share))
            for c in planned}
    return state


def rules_of(state: dict) -> list[MetricRule]:
    return [MetricRule(**r) for r in state["rules"]]


def _check(b: Batch) -> None:
    for name, s in (("canary", b.canary), ("stable", b.stable)):
        if s.n < 0 or s.events < 0 or s.events > s.n:
            raise ValueError(f"{b.metric}/{b.cohort}: {name} arm has {s.events} events in {s.n} trials")
        if not (math.isfinite(s.total) and math.isfinite(s.total_sq)):
            raise ValueError(f"{b.metric}/{b.cohort}: {name} arm total is not finite")


def _variance(arm: dict, kind: str) -> float:
    n = arm["n"]
    if kind == "rate":
        p = (arm["events"] + 0.5) / (n + 1.0)  # never exactly 0 or 1, so a look always has variance
        return p * (1.0 - p)
    mean = arm["total"] / n
    var = max(arm["total_sq"] / n - mean * mean, 0.0) * n / max(n - 1, 1)
    return max(var, 1e-12 * (1.0 + mean * mean))


def _mean(arm: dict, kind: str) -> float:
    return (arm["events"] if kind == "rate" else arm["total"]) / arm["n"]


def _tau(rule: MetricRule, c: dict, s: dict, vc: float, vs: float, alpha: float, pass_alpha: float) -> dict:
    """The mixing scale, frozen once: the margin in the metric's units (the effect both tests are about:
    non-inferiority must clear it, and harm of that size should be caught early). Without a margin, the
    boundary is made tightest when the canary reaches TUNE_CANARY_SAMPLES at the allocation seen so far."""
    scale = rule.margin * abs(_mean(s, rule.kind)) if rule.relative else rule.margin
    if scale > 0:
        return {"fail": scale, "pass": scale}
    v_opt = vc / TUNE_CANARY_SAMPLES + vs / (TUNE_CANARY_SAMPLES * s["n"] / c["n"])
    return {"fail": mixture.tuned_tau(1.0 / v_opt, alpha), "pass": mixture.tuned_tau(1.0 / v_opt, pass_alpha)}


def _fold_normal(cell: dict, rule: MetricRule, alpha: float, pass_alpha: float) -> None:
    pend = cell["pending"]
    c, s = cell["canary"], cell["stable"]
    if pend["canary"]["n"] == 0 or pend["stable"]["n"] == 0:
        return
    if c["n"] < MIN_TUNE_SAMPLES or s["n"] < MIN_TUNE_SAMPLES:
        return
    vc, vs = _variance(c, rule.kind), _variance(s, rule.kind)
    nc, ns = pend["canary"]["n"], pend["stable"]["n"]
    mc, ms = _mean(pend["canary"], rule.kind), _mean(pend["stable"], rule.kind)
    if cell["tau"] is None:
        cell["tau"] = _tau(rule, c, s, vc, vs, alpha, pass_alpha)
    if rule.relative:
        cf, hf, cp, hp = 1.0 + rule.harm_margin, 0.0, 1.0 + rule.margin, 0.0
    else:
        cf, hf, cp, hp = 1.0, rule.harm_margin, 1.0, rule.margin
    cell["fail"] = mixture.fold(cell["fail"], mc - cf * ms - hf, vc / nc + cf * cf * vs / ns)
    cell["passing"] = mixture.fold(cell["passing"], cp * ms + hp - mc, vc / nc + cp * cp * vs / ns)
    cell["diff"] = mixture.fold(cell["diff"], mc - ms, vc / nc + vs / ns)
    cell["pending"] = {"canary": _empty_arm(), "stable": _empty_arm()}


def log_evalues(cell: dict) -> tuple[float, float]:
    """(log e-value of harm, log e-value of non-inferiority) of a cell now."""
    out = []
    for test, key, side in (("fail", "fail", "above"), ("pass", "passing", "below")):
        if cell[f"{test}_mode"] == "ratio":
            out.append(eprocess.log_evalue(cell["loglik"], cell["grid"], cell[f"{test}_null"], side))
            continue
        est = mixture.estimate(cell[key])
        if est is None or cell["tau"] is None:
            out.append(0.0)
            continue
        d, v = est
        out.append(mixture.log_msprt_one_sided(d, v, cell["tau"][test]))
    return out[0], out[1]


def _cell_for(state: dict, rule: MetricRule, cohort: str) -> dict:
    cells = state["cells"][rule.metric]
    if cohort not in cells:
        if cohort not in state["planned"] and cohort not in state["late"]:
            state["late"].append(cohort)
        level = alpha_split.cell_alpha(state["alpha"], len(state["rules"]), state["planned"], state["late"],
                                       cohort, state["late_share"])
        cells[cohort] = _new_cell(rule, cohort, level)
    return cells[cohort]


def update(state: dict, batches: Iterable[Batch]) -> dict:
    """Fold one look's batches into a copy of ``state`` (the input is left as it was)."""
    if state.get("version") != VERSION:
        raise ValueError(f"analysis state version {state.get('version')!r} is not {VERSION}")
    new = _copy(state)
    rules = {r.metric: r for r in rules_of(new)}
    for b in batches:
        rule = rules.get(b.metric)
        if rule is None:
            raise ValueError(f"batch for metric {b.metric!r}, which the rollout does not judge")
        _check(b)
        cell = _cell_for(new, rule, b.cohort)
        cell["canary"], cell["stable"] = _add(cell["canary"], b.canary), _add(cell["stable"], b.stable)
        cell["looks"] += 1
        if "loglik" in cell and b.canary.n > 0 and b.stable.n > 0:
            share = b.canary.n / (b.canary.n + b.stable.n)
            cell["loglik"] = eprocess.fold(cell["loglik"], cell["grid"], b.canary.events, b.stable.events, share)
        if "pending" in cell:
            pend = cell["pending"]
            pend["canary"], pend["stable"] = _add(pend["canary"], b.canary), _add(pend["stable"], b.stable)
            _fold_normal(cell, rule, cell["alpha"], new["pass_alpha"])
        lf, lp = log_evalues(cell)
        cell["max_log_fail"] = max(cell["max_log_fail"], lf)
        cell["max_log_pass"] = max(cell["max_log_pass"], lp)
    return new


def drop_cohorts(state: dict, cohorts: Iterable[str]) -> dict:
    """A copy of ``state`` in which ``cohorts`` (narrowed away) are no longer judged; their α stays spent."""
    new = _copy(state)
    for c in cohorts:
        if c not in new["dropped"]:
            new["dropped"].append(c)
    return new


def _copy(state: dict) -> dict:
    """A deep copy; the state is JSON by contract, so a JSON round trip is both the copy and the check."""
    try:
        return orjson.loads(orjson.dumps(state))
    except TypeError as e:
        raise ValueError(f"analysis state is not JSON: {e}") from None
