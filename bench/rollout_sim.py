"""Rollout analysis simulation: injected regressions and A/A canaries through the controller's own
``analysis.update`` / ``analysis.judge`` / ``decide``, compared on the same streams with a fixed-horizon
test and a Kayenta-style Mann–Whitney judge.

Traffic: 10 req/s in three cohorts (enterprise 25 %, team 35 %, free 40 %), one look per simulated
minute. Plan: weight 10 % (15 min to 2 h), then weight 50 % (15 min to 2 h, last step: promote),
≥ 500 requests per arm per step, narrowing allowed, α = 0.05. Streams: bench/rollout_streams.py.

    flock /tmp/sluice-cpu.lock .venv/bin/python bench/rollout_sim.py [--runs 50] [--aa-runs 200] [--seed 1]

Results: bench/results/rollout_sim.json and rollout_sim.md (summarised in docs/rollouts.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from statistics import NormalDist

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import rollout_baselines as base  # noqa: E402
import rollout_streams as rs  # noqa: E402

from sluice.rollout import analysis  # noqa: E402
from sluice.rollout.decide import decide  # noqa: E402
from sluice.rollout.measures import OVERALL, MetricRule, StepProgress  # noqa: E402

ALPHA = 0.05
RULES = [MetricRule("error_rate", "rate", margin=0.5, critical=True, min_samples=300),
         MetricRule("latency_p99", "rate", margin=1.0, critical=True, min_samples=300),
         MetricRule("eval_fail_rate:groundedness", "rate", margin=0.05, relative=False, min_samples=100),
         MetricRule("cost_per_request", "mean", margin=0.1, min_samples=300),
         MetricRule("feedback_rate:thumbs_down", "rate", margin=0.5, min_samples=300)]
STEPS = [{"weight": 0.10, "min_s": 900, "max_s": 7200, "min_requests": 500},
         {"weight": 0.50, "min_s": 900, "max_s": 7200, "min_requests": 500}]
HORIZON_LOOKS = 4 * 60
KAYENTA_INTERVAL_LOOKS = 30

CASES = [
    rs.Case("error rate 2 % → 4 % in one cohort", "error_rate", {"error": 0.04}, "enterprise"),
    rs.Case("p99 latency +40 %", "latency_p99", {"latency_factor": 1.4}),
    rs.Case("groundedness fail +10 points in one cohort", "eval_fail_rate:groundedness", {"ground_fail": 0.20}, "team"),
    rs.Case("cost +30 %", "cost_per_request", {"cost_mean": 0.0026}),
    rs.Case("thumbs-down doubled", "feedback_rate:thumbs_down", {"thumbs_down": 0.03}),
]
AA = rs.Case("A/A", "")


def cell_alpha() -> float:
    state = analysis.initial_state(RULES, ALPHA, cohorts=rs.NAMES)
    return state["cells"]["error_rate"][OVERALL]["alpha"]


def run_controller(rng: np.random.Generator, case: rs.Case, pre: np.ndarray) -> dict:
    """One rollout driven by the server's own functions; ``pre`` holds the 10 % step's looks."""
    state = analysis.initial_state(RULES, ALPHA, cohorts=rs.NAMES)
    step, step_start, nc_step, ns_step, total = 0, 0, 0, 0, 0
    for t in range(HORIZON_LOOKS):
        share = STEPS[step]["weight"]
        rec = pre[t] if step == 0 and t < len(pre) else rs.look(rng, case, share)
        total += int(rec[..., rs.F_N].sum())
        nc_step += int(rec[:, 0, rs.F_N].sum())
        ns_step += int(rec[:, 1, rs.F_N].sum())
        state = analysis.update(state, rs.batches(rec, share))
        findings = analysis.judge(RULES, state)
        s = STEPS[step]
        progress = StepProgress(index=step, kind="weight", elapsed_s=(t + 1 - step_start) * rs.LOOK_S,
                                min_duration_s=s["min_s"], max_duration_s=s["max_s"],
                                min_requests=s["min_requests"], canary_requests=nc_step, stable_requests=ns_step,
                                last_step=step == len(STEPS) - 1, allow_narrow=True)
        d = decide(progress, findings)
        if d.action == "continue":
            continue
        if d.action == "advance":
            step, step_start, nc_step, ns_step = step + 1, t + 1, 0, 0
            continue
        fails = [(f.metric, f.cohort) for f in findings if f.outcome == "fail"]
        return {"action": d.action, "look": t + 1, "seconds": (t + 1) * rs.LOOK_S, "requests": total,
                "step": step, "fails": fails, "cohorts_dropped": list(d.cohorts_to_drop), "reason": d.reason}
    return {"action": "none", "look": HORIZON_LOOKS, "seconds": HORIZON_LOOKS * rs.LOOK_S, "requests": total,
            "step": step, "fails": [], "cohorts_dropped": [], "reason": "horizon reached"}


def fixed_horizon(pre: np.ndarray, case: rs.Case, n_star: int, z_crit: float) -> bool | None:
    """The one look of the fixed-horizon test at ``n_star`` requests (None if the stream is shorter)."""
    cum = np.cumsum(pre[..., rs.F_N].sum(axis=(1, 2)))
    idx = int(np.searchsorted(cum, n_star))
    if idx >= len(pre):
        return None
    i = rs.NAMES.index(case.cohort) if case.cohort else None
    upto = pre[: idx + 1].sum(axis=0)
    rec = upto[i] if i is not None else upto.sum(axis=0)
    return base.z_harm(rec, case.metric) > z_crit


def kayenta(pre: np.ndarray, cells: list[tuple[str, str]]) -> int | None:
    """First look (interval end) at which any of ``cells`` is High, growing window from the start."""
    for end in range(KAYENTA_INTERVAL_LOOKS, HORIZON_LOOKS + 1, KAYENTA_INTERVAL_LOOKS):
        for metric, cohort in cells:
            if cohort == OVERALL:
                arms = pre[:end].sum(axis=1)
            else:
                arms = pre[:end, rs.NAMES.index(cohort)]
            canary = [rs.value(a, metric) for a in arms[:, 0]]
            stable = [rs.value(a, metric) for a in arms[:, 1]]
            if base.kayenta_high(canary, stable):
                return end
    return None


def pre_stream(rng: np.random.Generator, case: rs.Case, looks: int) -> np.ndarray:
    return np.stack([rs.look(rng, case, STEPS[0]["weight"]) for _ in range(looks)])


def pct(xs: list[float], q: float) -> float | None:
    return float(np.percentile(xs, q)) if xs else None


def run_case(case: rs.Case, runs: int, rng: np.random.Generator, a_cell: float) -> dict:
    z_crit = NormalDist().inv_cdf(1 - a_cell)
    n_star = base.fixed_horizon_requests(case, a_cell, STEPS[0]["weight"])
    looks_needed = max(HORIZON_LOOKS, int(n_star / (rs.RATE_PER_S * rs.LOOK_S) * 1.2) + 1)
    out = {"case": case.name, "metric": case.metric, "cohort": case.cohort or OVERALL, "runs": runs,
           "fixed_horizon_requests": n_star, "controller": [], "fixed_detected": [], "kayenta_look": []}
    target = (case.metric, case.cohort or OVERALL)
    for _ in range(runs):
        pre = pre_stream(rng, case, looks_needed)
        out["controller"].append(run_controller(rng, case, pre))
        out["fixed_detected"].append(fixed_horizon(pre, case, n_star, z_crit))
        out["kayenta_look"].append(kayenta(pre, [target]))
    return out


def run_aa(runs: int, rng: np.random.Generator, a_cell: float) -> dict:
    cells = [(m, c) for m in rs.METRICS for c in [OVERALL] + rs.NAMES]
    z_crit = NormalDist().inv_cdf(1 - a_cell)
    n_star = base.fixed_horizon_requests(CASES[0], a_cell, STEPS[0]["weight"])
    out = {"runs": runs, "controller": [], "fixed_false": [], "kayenta_look": []}
    for _ in range(runs):
        pre = pre_stream(rng, AA, HORIZON_LOOKS)
        out["controller"].append(run_controller(rng, AA, pre))
        cum = np.cumsum(pre[..., rs.F_N].sum(axis=(1, 2)))
        idx = min(int(np.searchsorted(cum, n_star)), len(pre) - 1)
        upto = pre[: idx + 1].sum(axis=0)
        out["fixed_false"].append(any(
            base.z_harm(upto.sum(axis=0) if c == OVERALL else upto[rs.NAMES.index(c)], m) > z_crit for m, c in cells))
        out["kayenta_look"].append(kayenta(pre, cells))
    return out


def summarise(cases: list[dict], aa: dict, a_cell: float, elapsed: float, args) -> dict:
    rows = []
    for c in cases:
        ctl = c["controller"]
        target = (c["metric"], c["cohort"])
        caught = [r for r in ctl if r["action"] in ("rollback", "narrow", "hold") and list(target) in [list(f) for f in r["fails"]]]
        decisions: dict[str, int] = {}
        for r in ctl:
            decisions[r["action"]] = decisions.get(r["action"], 0) + 1
        named: dict[str, int] = {}
        for r in caught:
            for m, co in r["fails"]:
                if m == c["metric"]:
                    named[co] = named.get(co, 0) + 1
        reqs = sorted(r["requests"] for r in caught)
        secs = sorted(r["seconds"] for r in caught)
        # quantiles over every run, a miss counting as never: the size by which q of the runs had caught it
        misses = [float("inf")] * (len(ctl) - len(caught))
        all_reqs, all_secs = sorted(reqs + misses), sorted(secs + misses)

        def by_share(xs: list[float], q: float) -> float | None:
            x = xs[int(np.ceil(q * len(xs))) - 1] if xs else float("inf")
            return None if x == float("inf") else x
        fixed = [x for x in c["fixed_detected"] if x is not None]
        kay = [x for x in c["kayenta_look"] if x is not None]
        rows.append({
            "case": c["case"], "metric": c["metric"], "cohort": c["cohort"], "runs": c["runs"],
            "detected": len(caught), "decisions": decisions, "cohorts_named": named,
            "median_requests": by_share(all_reqs, 0.5), "p80_requests": by_share(all_reqs, 0.8),
            "steps_at_detection": sorted({r["step"] for r in caught}),
            "median_seconds": by_share(all_secs, 0.5), "fixed_horizon_requests": c["fixed_horizon_requests"],
            "fixed_horizon_power": (sum(fixed) / len(fixed)) if fixed else None,
            "kayenta_detected": len(kay), "kayenta_median_seconds": pct([k * rs.LOOK_S for k in kay], 50),
            "kayenta_median_requests": pct([k * rs.LOOK_S * rs.RATE_PER_S for k in kay], 50),
        })
    ctl = aa["controller"]
    false = [r for r in ctl if r["fails"]]
    promoted = [r for r in ctl if r["action"] == "promote"]
    held = [r for r in ctl if r["action"] == "hold" and not r["fails"]]
    return {
        "alpha": ALPHA, "cell_alpha": a_cell, "rules": [r.__dict__ for r in RULES], "steps": STEPS,
        "traffic": {"req_per_s": rs.RATE_PER_S, "cohorts": rs.COHORTS, "look_s": rs.LOOK_S, "base": rs.BASE},
        "cases": rows,
        "aa": {"runs": aa["runs"], "false_alarms": len(false),
               "false_alarm_decisions": sorted({r["action"] for r in false}),
               "false_alarm_cells": [f for r in false for f in r["fails"]],
               "promoted": len(promoted), "held_inconclusive": len(held),
               "promote_median_seconds": pct([r["seconds"] for r in promoted], 50),
               "promote_p90_seconds": pct([r["seconds"] for r in promoted], 90),
               "fixed_horizon_false_alarms": sum(aa["fixed_false"]),
               "kayenta_false_alarms": sum(1 for k in aa["kayenta_look"] if k is not None)},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "loadavg": os.getloadavg()},
        "seed": args.seed, "elapsed_s": round(elapsed, 1),
    }


def _k(x: float | None) -> str:
    return "—" if x is None else f"{x / 1000:,.1f}k"


def _min(x: float | None) -> str:
    return "—" if x is None else f"{x / 60:.0f} min"


def markdown(s: dict) -> str:
    a = s["aa"]
    lines = [
        "# Rollout analysis simulation", "",
        f"α = {s['alpha']} over {len(s['rules'])} metrics × 4 cohorts (per-cell harm α {s['cell_alpha']:.4g}); "
        f"{s['traffic']['req_per_s']:.0f} req/s, one look per minute, plan 10 % → 50 % (15 min–2 h each). "
        f"Seed {s['seed']}, {s['elapsed_s']} s on {s['machine']['cpus']} CPUs (load {s['machine']['loadavg'][0]:.1f}).", "",
        "| case | detected | decision(s) | cohort named | median requests | p80 requests | median time | "
        "fixed horizon: requests (power) | Kayenta: detected, median time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s["cases"]:
        power = "—" if r["fixed_horizon_power"] is None else f"{r['fixed_horizon_power']:.0%}"
        lines.append(
            f"| {r['case']} | {r['detected']}/{r['runs']} | "
            + ", ".join(f"{k} {v}" for k, v in sorted(r["decisions"].items()))
            + f" | {', '.join(f'{k} ({v})' for k, v in r['cohorts_named'].items()) or '—'} | {_k(r['median_requests'])} | "
            f"{_k(r['p80_requests'])} | {_min(r['median_seconds'])} | {_k(r['fixed_horizon_requests'])} ({power}) | "
            f"{r['kayenta_detected']}/{r['runs']}, {_min(r['kayenta_median_seconds'])} |")
    lines += [
        "", f"**A/A ({a['runs']} runs):** false alarms (any rollback, narrow or hold on a failure) "
        f"{a['false_alarms']}/{a['runs']} = {a['false_alarms'] / a['runs']:.1%} (must be ≤ α = {s['alpha']:.0%}); "
        f"promoted {a['promoted']}/{a['runs']} (median {_min(a['promote_median_seconds'])}, "
        f"p90 {_min(a['promote_p90_seconds'])}); held inconclusive {a['held_inconclusive']}. "
        f"Fixed-horizon test at the error case's size: {a['fixed_horizon_false_alarms']}/{a['runs']} false alarms; "
        f"Kayenta-style judge (8 half-hour intervals, 20 metric × cohort cells): {a['kayenta_false_alarms']}/{a['runs']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50, help="runs per regression case")
    ap.add_argument("--aa-runs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "rollout_sim"))
    args = ap.parse_args(argv)
    started = time.monotonic()
    rng = np.random.default_rng(args.seed)
    a_cell = cell_alpha()
    cases = []
    for case in CASES:
        cases.append(run_case(case, args.runs, rng, a_cell))
        print(f"{case.name}: done ({time.monotonic() - started:.0f} s)", flush=True)
    aa = run_aa(args.aa_runs, rng, a_cell)
    summary = summarise(cases, aa, a_cell, time.monotonic() - started, args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(summary))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
