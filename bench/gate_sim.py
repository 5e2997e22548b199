"""Gate simulation: how often does the gate pass, fail or stay inconclusive, by scenario?

Every simulated gate goes through ``sluice.gate.run_gate`` (what ``sluice gate`` calls once both
runs are complete) with synthetic row records: per row and evaluator, each side passes with a
probability the scenario sets. Scenarios:

- A/A: both sides the same (p = 0.85), rows independent or sharing difficulty (a row's pass
  probability drawn from Beta with mean 0.85, the same for both sides);
- a regression in one cohort on one evaluator (0.9 -> 0.8 / 0.7 / 0.6), for cohort sizes 20 / 40 / 80;
- a drop on every row (0.85 -> 0.80 / 0.75) on one evaluator.

"Detected" means the verdict is fail and a failed check names the regressed evaluator and cohort
(or, for a drop everywhere, the evaluator). Policies: the default policy (empty gate.yaml) and
the policy ``sluice init`` writes. Results: bench/results/gate_sim.{json,md}.

    .venv/bin/python bench/gate_sim.py [--gates 300] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import yaml

from sluice.dataset.row import Row
from sluice.demo.project import GATE_YAML
from sluice.evals.result import EvalResult
from sluice.gate import run_gate
from sluice.gate.compare import EvaluatorSpec, RunInfo
from sluice.gate.measures import ALL
from sluice.gate.policy import GatePolicy, default_policy, parse_policy
from sluice.runner.record import RowRecord, Usage

RESULTS = Path(__file__).parent / "results"
COHORTS = ["enterprise", "billing", "free-tier", "account", "shipping"]
DEFAULT_EVALS = ["correctness", "groundedness", "tone", "refusal"]
INIT_EVALS = [e["name"] for e in yaml.safe_load(GATE_YAML)["evaluators"]]
KAPPA = 2.0  # rows sharing difficulty: a row's pass probability ~ Beta(p * KAPPA, (1 - p) * KAPPA)
RESAMPLES = 200  # no simulated check reads a score bootstrap; the p95 latency ratio of the init policy does


@dataclass
class Scenario:
    name: str
    sizes: list[int]  # rows per cohort, in COHORTS order
    p: float = 0.85
    shared_difficulty: bool = False
    regress: tuple[str, str, float, float] | None = None  # evaluator, cohort ("(all)" = every row), base, cand
    evaluators: list[str] = field(default_factory=lambda: list(DEFAULT_EVALS))


def scenarios(evals: list[str], full: bool) -> list[Scenario]:
    e = "groundedness"  # in both evaluator sets
    s60, s40 = [60] * 5, [60, 40, 60, 60, 60]
    out = [Scenario("A/A, 300 rows (5 x 60), independent rows", s60, evaluators=evals),
           Scenario("A/A, 300 rows (5 x 60), rows share difficulty", s60, shared_difficulty=True, evaluators=evals),
           Scenario("A/A, 240 rows (5 x 48), independent rows", [48] * 5, evaluators=evals)]
    if full:
        out += [Scenario("A/A, 300 rows, 3 evaluators", s60, evaluators=evals[:3]),
                Scenario("A/A, 300 rows, 5 evaluators", s60, evaluators=evals + ["extra"])]
    out += [Scenario(f"billing (40 rows) {e} 0.9 -> 0.6, independent rows", s40, regress=(e, "billing", 0.9, 0.6),
                     evaluators=evals),
            Scenario(f"billing (40 rows) {e} 0.9 -> 0.6, rows share difficulty", s40, shared_difficulty=True,
                     regress=(e, "billing", 0.9, 0.6), evaluators=evals)]
    if full:
        out += [Scenario(f"billing (40 rows) {e} 0.9 -> 0.6, 3 evaluators", s40, regress=(e, "billing", 0.9, 0.6),
                         evaluators=evals[:3])]
        for cand in (0.8, 0.7):
            out.append(Scenario(f"billing (40 rows) {e} 0.9 -> {cand}", s40, regress=(e, "billing", 0.9, cand),
                                evaluators=evals))
        for n in (20, 60, 80):
            out.append(Scenario(f"billing ({n} rows) {e} 0.9 -> 0.6", [60, n, 60, 60, 60],
                                regress=(e, "billing", 0.9, 0.6), evaluators=evals))
        for cand in (0.80, 0.75):
            out.append(Scenario(f"every row (300) {e} 0.85 -> {cand}", s60, regress=(e, ALL, 0.85, cand),
                                evaluators=evals))
    return out


def rows_for(sizes: list[int]) -> list[Row]:
    return [Row(id=f"{c}-{i}", input={"question": f"q{i}"}, cohort=c)
            for c, n in zip(COHORTS, sizes) for i in range(n)]


def side_probs(sc: Scenario, rows: list[Row], rng: np.random.Generator) -> tuple[dict, dict]:
    """Per evaluator, the per-row pass probability of baseline and candidate."""
    n = len(rows)
    cohort = np.array([r.cohort for r in rows])
    base, cand = {}, {}
    for ev in sc.evaluators:
        b = rng.beta(sc.p * KAPPA, (1 - sc.p) * KAPPA, n) if sc.shared_difficulty else np.full(n, sc.p)
        c = b.copy()
        if sc.regress and sc.regress[0] == ev:
            mask = np.ones(n, bool) if sc.regress[1] == ALL else cohort == sc.regress[1]
            pb, pc = sc.regress[2], sc.regress[3]
            # sharing difficulty: a row's pass probability is drawn for the baseline and scaled for the candidate
            b[mask] = rng.beta(pb * KAPPA, (1 - pb) * KAPPA, int(mask.sum())) if sc.shared_difficulty else pb
            c[mask] = b[mask] * (pc / pb)
        base[ev], cand[ev] = b, c
    return base, cand


_RESULTS: dict[tuple[str, bool], EvalResult] = {}


def _result(ev: str, passed: bool) -> EvalResult:
    """Evaluator results are immutable and take two values per evaluator: build each once."""
    key = (ev, passed)
    if key not in _RESULTS:
        _RESULTS[key] = EvalResult(score=float(passed), passed=passed, evaluator=ev, version="1")
    return _RESULTS[key]


def records(rows: list[Row], probs: dict[str, np.ndarray], rng: np.random.Generator, latency: np.ndarray,
            cost: float) -> dict[str, RowRecord]:
    """Row records as ``compare`` reads them. Plain objects with RowRecord's and RowOutput's
    fields, not pydantic models: building 600 models per gate took a third of the simulation."""
    passed = {ev: (rng.random(len(rows)) < p).tolist() for ev, p in probs.items()}
    usage = Usage(prompt_tokens=100, completion_tokens=20, total_tokens=120)
    out = {}
    for i, row in enumerate(rows):
        output = SimpleNamespace(row_id=row.id, output="x", usage=usage, cost=cost, latency_ms=float(latency[i]),
                                 error=None, error_kind=None)
        out[row.id] = SimpleNamespace(output=output, evals={ev: _result(ev, p[i]) for ev, p in passed.items()},
                                      cohort=row.cohort)
    return out  # type: ignore[return-value]


def info(side: str, evals: list[str]) -> RunInfo:
    return RunInfo(ref=f"sim@{side}", digest=f"sha256:{side}", dataset_name="sim", dataset_version="sha256:sim",
                   evaluators=[EvaluatorSpec(name=e, version="1") for e in evals])


def one_gate(policy: GatePolicy, sc: Scenario, rows: list[Row], rng: np.random.Generator) -> tuple[str, bool]:
    base_p, cand_p = side_probs(sc, rows, rng)
    lat = rng.lognormal(6.0, 0.4, len(rows))  # the same latency law on both sides, paired by row
    lat_c = lat * rng.lognormal(0, 0.1, len(rows))
    result = run_gate(policy, rows, records(rows, cand_p, rng, lat_c, 0.001), records(rows, base_p, rng, lat, 0.001),
                      info("c", sc.evaluators), info("b", sc.evaluators))
    detected = False
    if sc.regress and result.verdict == "fail":
        ev, cohort = sc.regress[0], sc.regress[1]
        detected = any(c.status == "fail" and c.evaluator == ev and (cohort == ALL or c.cohort == cohort)
                       for c in result.checks)
    return result.verdict, detected


def run(policy_name: str, policy: GatePolicy, evals: list[str], gates: int, seed: int, full: bool) -> list[dict]:
    out = []
    policy = policy.model_copy(update={"bootstrap_resamples": RESAMPLES})
    for k, sc in enumerate(scenarios(evals, full)):
        rng = np.random.default_rng([seed, k, len(evals)])
        rows = rows_for(sc.sizes)
        counts = {"pass": 0, "fail": 0, "inconclusive": 0}
        detected = 0
        start = time.perf_counter()
        for _ in range(gates):
            verdict, hit = one_gate(policy, sc, rows, rng)
            counts[verdict] += 1
            detected += hit
        rates = {k: v / gates for k, v in counts.items()}
        row = {"policy": policy_name, "scenario": sc.name, "rows": len(rows), "evaluators": len(sc.evaluators),
               "gates": gates, **rates, "detected": detected / gates if sc.regress else None,
               "seconds": round(time.perf_counter() - start, 1)}
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def margin_95(rate: float, n: int) -> float:
    return 1.96 * math.sqrt(max(rate * (1 - rate), 1 / n) / n)


def to_markdown(results: list[dict], meta: dict) -> str:
    lines = ["# Gate simulation", "",
             f"`{meta['command']}` — {meta['gates']} simulated gates per scenario through `run_gate`, "
             f"seed {meta['seed']}, {meta['seconds']:.0f} s on {meta['machine']} (load average "
             f"{meta['loadavg']}). A rate from {meta['gates']} gates is within about ±"
             f"{margin_95(0.5, meta['gates']) * 100:.0f} points (95%) at 50%, "
             f"±{margin_95(0.9, meta['gates']) * 100:.0f}"
             " at 90%.", "",
             "| policy | scenario | rows | evaluators | pass | fail | inconclusive | detected |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        det = "–" if r["detected"] is None else f"{r['detected']:.1%}"
        lines.append(f"| {r['policy']} | {r['scenario']} | {r['rows']} | {r['evaluators']} | {r['pass']:.1%} | "
                     f"{r['fail']:.1%} | {r['inconclusive']:.1%} | {det} |")
    lines += ["", "Detected: the verdict is fail and a failed check names the regressed evaluator (and cohort).",
              "Targets (issue 8, default policy): A/A pass ≥ 90 %, fail ≤ 5 %; the 40-row 0.9 → 0.6 regression "
              "detected ≥ 85 %.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gates", type=int, default=300, help="simulated gates per scenario")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--policy", choices=["default", "init", "both"], default="both")
    ap.add_argument("--results-name", default="gate_sim", help="results file stem; empty to write nothing")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    results: list[dict] = []
    if args.policy in ("default", "both"):
        results += run("default", default_policy(), DEFAULT_EVALS, args.gates, args.seed, full=True)
    if args.policy in ("init", "both"):
        results += run("sluice init", parse_policy(GATE_YAML), INIT_EVALS, args.gates, args.seed, full=False)
    meta = {"command": "make bench-gate-sim (" + " ".join(["bench/gate_sim.py", *sys.argv[1:]]) + ")",
            "gates": args.gates, "seed": args.seed, "seconds": time.perf_counter() - start,
            "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
            "loadavg": " ".join(f"{x:.1f}" for x in os.getloadavg())}
    if args.results_name:
        RESULTS.mkdir(exist_ok=True)
        payload = json.dumps({"meta": meta, "results": results}, indent=2) + "\n"
        (RESULTS / f"{args.results_name}.json").write_text(payload)
        (RESULTS / f"{args.results_name}.md").write_text(to_markdown(results, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
