"""Pair the candidate's rows with the baseline's and measure every evaluator in every cohort.

Refuses (DataError) to compare runs that are not comparable — another dataset version, another
evaluator version or arguments — because such a difference would be measured as a regression or
an improvement of the release. Rows are matched by id; a row missing from a run is a failed row
on that side, never silently dropped.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from sluice.dataset.row import Row
from sluice.errors import DataError, Location
from sluice.gate import stats
from sluice.gate.measures import (ALL, CostMeasure, ErrorMeasure, EvalMeasure, Interval, LatencyMeasure,
                                  Measurements, SideInfo)
from sluice.gate.policy import GatePolicy
from sluice.gate.rows import SideArrays, regressed_rows, side_arrays
from sluice.release.model import Release
from sluice.runner.record import RowRecord

SAMPLING_FIELDS = ("temperature", "top_p", "max_tokens", "stop", "seed")


class EvaluatorSpec(BaseModel):
    name: str
    version: str = ""
    args: dict[str, Any] = Field(default_factory=dict)


class RunInfo(BaseModel):
    """What the runner knows about one side: release, run and the evaluators it applied."""

    ref: str
    digest: str
    dataset_name: str
    dataset_version: str
    run_id: str | None = None
    evaluators: list[EvaluatorSpec] = Field(default_factory=list)


def compare(policy: GatePolicy, rows: list[Row], candidate: Mapping[str, RowRecord],
            baseline: Mapping[str, RowRecord], candidate_info: RunInfo, baseline_info: RunInfo,
            candidate_release: Release | None = None, baseline_release: Release | None = None) -> Measurements:
    _check_same_dataset(candidate_info, baseline_info)
    _check_rows_known(rows, candidate, "candidate", candidate_info)
    _check_rows_known(rows, baseline, "baseline", baseline_info)
    warnings: list[str] = []
    evaluators = _comparable_evaluators(policy, candidate_info, baseline_info, candidate, baseline, warnings)
    if candidate_release is not None and baseline_release is not None:
        warnings.extend(sampling_differences(candidate_release, baseline_release))

    cohorts = Counter(r.cohort for r in rows)
    cohort_of = np.array([r.cohort for r in rows], dtype=object)
    groups = {ALL: np.ones(len(rows), dtype=bool)} | {c: cohort_of == c for c in sorted(cohorts)}
    cand = side_arrays(rows, candidate, evaluators, policy.target_errors, candidate_release)
    base = side_arrays(rows, baseline, evaluators, policy.target_errors, baseline_release)

    by_group = {group: _group_measures(policy, group, mask, evaluators, cand, base) for group, mask in groups.items()}
    measures = [by_group[group][name] for name in evaluators for group in groups]
    latency = [_latency_measure(policy, group, mask, cand, base, bootstrap=group == ALL)
               for group, mask in groups.items()]
    cost = [_cost_measure(group, mask, cand, base) for group, mask in groups.items()]
    diffs, n_regressed = regressed_rows(rows, candidate, baseline, evaluators, cand, base,
                                        policy.report.max_regressed_rows)
    return Measurements(
        candidate=SideInfo(ref=candidate_info.ref, digest=candidate_info.digest, run_id=candidate_info.run_id),
        baseline=SideInfo(ref=baseline_info.ref, digest=baseline_info.digest, run_id=baseline_info.run_id),
        dataset_name=candidate_info.dataset_name, dataset_version=candidate_info.dataset_version,
        evaluators=evaluators, confidence=policy.confidence, cohorts=dict(sorted(cohorts.items())),
        eval=measures, latency=latency, cost=cost, errors=_error_measure(len(rows), cand, base),
        regressed_rows=diffs, regressed_row_count=n_regressed,
        warnings=warnings)


# -- refusals ---------------------------------------------------------------------------------

def _check_same_dataset(c: RunInfo, b: RunInfo) -> None:
    if (c.dataset_name, c.dataset_version) != (b.dataset_name, b.dataset_version):
        raise DataError(f"candidate ran on dataset {c.dataset_name}@{c.dataset_version[:19]} but baseline on "
                        f"{b.dataset_name}@{b.dataset_version[:19]}; gate both on the same dataset version",
                        Location(field="dataset"))


def _check_rows_known(rows: list[Row], records: Mapping[str, RowRecord], side: str, info: RunInfo) -> None:
    known = {r.id for r in rows}
    for row_id in records:
        if row_id not in known:
            raise DataError(f"the {side} run has a row that dataset {info.dataset_name} does not",
                            Location(row=row_id))


def _versions_in_records(records: Mapping[str, RowRecord]) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    for rec in records.values():
        for name, res in rec.evals.items():
            seen.setdefault(name, set()).add(res.version)
    return seen


def _comparable_evaluators(policy: GatePolicy, c: RunInfo, b: RunInfo, candidate: Mapping[str, RowRecord],
                           baseline: Mapping[str, RowRecord], warnings: list[str]) -> dict[str, str]:
    """name -> version of the evaluators to compare; raises when the two sides measured differently."""
    specs_c = {s.name: s for s in c.evaluators}
    specs_b = {s.name: s for s in b.evaluators}
    found_c = _versions_in_records(candidate)
    found_b = _versions_in_records(baseline)
    names_c = set(specs_c) | set(found_c)
    names_b = set(specs_b) | set(found_b)
    wanted = [r.name for r in policy.evaluators] or sorted(names_c & names_b)
    for name in sorted((names_c ^ names_b) - set(wanted)):
        side = "candidate" if name in names_c else "baseline"
        warnings.append(f"evaluator '{name}' ran only on the {side}; not compared")
    out: dict[str, str] = {}
    for name in wanted:
        for side, names in (("candidate", names_c), ("baseline", names_b)):
            if name not in names:
                raise DataError(f"evaluator '{name}' named by the policy has no results in the {side} run",
                                Location(field=f"evaluators.{name}"))
        versions = {"candidate": found_c.get(name, set()), "baseline": found_b.get(name, set())}
        for side, spec in (("candidate", specs_c.get(name)), ("baseline", specs_b.get(name))):
            if spec is not None and spec.version:
                versions[side] = versions[side] | {spec.version}
        for side, vs in versions.items():
            if len(vs) > 1:
                raise DataError(f"evaluator '{name}' has mixed versions {sorted(vs)} in the {side} run",
                                Location(field=f"evaluators.{name}"))
        vc, vb = next(iter(versions["candidate"]), ""), next(iter(versions["baseline"]), "")
        if vc != vb:
            raise DataError(f"evaluator '{name}' is version {vc or '?'} in the candidate run but {vb or '?'} in the "
                            "baseline run; re-run one side so both use the same version",
                            Location(field=f"evaluators.{name}"))
        sc, sb = specs_c.get(name), specs_b.get(name)
        if sc is not None and sb is not None and sc.args != sb.args:
            raise DataError(f"evaluator '{name}' ran with different arguments: candidate {sc.args}, baseline {sb.args}",
                            Location(field=f"evaluators.{name}.args"))
        rule = policy.rule_for(name)
        if rule and rule.version and vc and rule.version != vc:
            raise DataError(f"the policy pins evaluator '{name}' to version {rule.version}, the runs used {vc}",
                            Location(file=policy.source, field=f"evaluators.{name}.version"))
        out[name] = vc
    return out


def sampling_differences(candidate: Release, baseline: Release) -> list[str]:
    """Warnings for sampling settings that differ between the two releases, component by component."""
    out: list[str] = []
    for name in sorted(set(candidate.components) | set(baseline.components)):
        c, b = candidate.components.get(name), baseline.components.get(name)
        if c is None or b is None:
            out.append(f"component '{name}' exists only in the {'candidate' if c else 'baseline'}")
            continue
        if c.model != b.model:
            out.append(f"{name}.model differs: candidate {c.model}, baseline {b.model}")
        for field in SAMPLING_FIELDS:
            vc, vb = getattr(c.params, field), getattr(b.params, field)
            if vc != vb:
                out.append(f"{name}.params.{field} differs: candidate {vc}, baseline {vb}")
    return out


# -- measurements -----------------------------------------------------------------------------

def _seed(policy: GatePolicy, *parts: str) -> list[int]:
    """A seed that depends on the policy seed and the names only, not on iteration order."""
    return [policy.seed] + [zlib.crc32(p.encode()) for p in parts]


def _interval(pair: tuple[float, float]) -> Interval:
    return Interval(low=pair[0], high=pair[1])


def _group_measures(policy: GatePolicy, cohort: str, mask: np.ndarray, evaluators: Mapping[str, str],
                    cand: SideArrays, base: SideArrays) -> dict[str, EvalMeasure]:
    """Every evaluator in one cohort. One resample-count matrix serves all of them, so the
    bootstrap of every candidate mean and every paired difference is one matrix product."""
    rows = np.flatnonzero(mask)
    names = list(evaluators)
    measures = {name: _counts_measure(policy, name, cohort, mask, cand, base) for name in names}
    if rows.size == 0 or not names:
        return measures
    values = np.empty((rows.size, 2 * len(names)))
    weights = np.empty_like(values)
    for j, name in enumerate(names):
        cv, bv = cand.valid[name][rows], base.valid[name][rows]
        values[:, 2 * j] = cand.score[name][rows]
        weights[:, 2 * j] = cv
        values[:, 2 * j + 1] = cand.score[name][rows] - base.score[name][rows]
        weights[:, 2 * j + 1] = cv & bv
    boot = stats.resampled_means(values, weights, policy.bootstrap_resamples,
                                 np.random.default_rng(_seed(policy, "scores", cohort)))
    for j, name in enumerate(names):
        m = measures[name]
        cand_w, pair_w = weights[:, 2 * j] > 0, weights[:, 2 * j + 1] > 0
        if cand_w.any():
            sample = values[cand_w, 2 * j]
            m.mean_score_candidate = float(sample.mean())
            m.mean_score_candidate_ci = _interval(stats.bca_interval(boot[:, 2 * j], sample, policy.confidence,
                                                                     bounds=(0.0, 1.0)))
        if pair_w.any():
            sample = values[pair_w, 2 * j + 1]
            m.score_delta = float(sample.mean())
            m.score_delta_ci = _interval(stats.bca_interval(boot[:, 2 * j + 1], sample, policy.confidence,
                                                            bounds=(-1.0, 1.0)))
    return measures


def _counts_measure(policy: GatePolicy, name: str, cohort: str, mask: np.ndarray, cand: SideArrays,
                    base: SideArrays) -> EvalMeasure:
    """The pass/fail side of one evaluator in one cohort: counts, Wilson, Newcombe, McNemar."""
    conf = policy.confidence
    cv, bv = cand.valid[name] & mask, base.valid[name] & mask
    paired = cv & bv
    cp, bp = cand.passed[name], base.passed[name]
    m = EvalMeasure(
        evaluator=name, cohort=cohort, n_rows=int(mask.sum()), n_paired=int(paired.sum()), n_candidate=int(cv.sum()),
        n_baseline=int(bv.sum()), eval_errors_candidate=int((cand.eval_error[name] & mask).sum()),
        eval_errors_baseline=int((base.eval_error[name] & mask).sum()),
        target_errors_candidate=int((cand.target_error & mask).sum()),
        target_errors_baseline=int((base.target_error & mask).sum()),
        both_pass=int((paired & cp & bp).sum()), candidate_only=int((paired & cp & ~bp).sum()),
        baseline_only=int((paired & ~cp & bp).sum()), both_fail=int((paired & ~cp & ~bp).sum()))
    if m.n_candidate:
        k = int((cv & cp).sum())
        m.pass_rate_candidate = k / m.n_candidate
        m.pass_rate_candidate_ci = _interval(stats.wilson_interval(k, m.n_candidate, conf))
    if m.n_baseline:
        k = int((bv & bp).sum())
        m.pass_rate_baseline = k / m.n_baseline
        m.pass_rate_baseline_ci = _interval(stats.wilson_interval(k, m.n_baseline, conf))
        m.mean_score_baseline = float(base.score[name][bv].mean())
    if m.n_paired:
        m.pass_delta = (m.candidate_only - m.baseline_only) / m.n_paired
        m.pass_delta_ci = _interval(stats.paired_pass_diff_interval(
            m.both_pass, m.candidate_only, m.baseline_only, m.both_fail, conf))
        m.mcnemar_p = stats.mcnemar_exact_p(m.candidate_only, m.baseline_only)
    return m


def _latency_measure(policy: GatePolicy, cohort: str, mask: np.ndarray, cand: SideArrays,
                     base: SideArrays, bootstrap: bool) -> LatencyMeasure:
    """Quantiles per side; intervals (used by the latency rules) only when asked.

    The candidate's quantiles and their intervals use the same rows (every row it answered);
    ratios use the rows both sides answered. p95 and p99 bounds of the candidate are order
    statistics; the p95 ratio is a paired percentile bootstrap; the p99 ratio combines the two
    sides' order-statistic bounds, each at half the error rate, because the bootstrap of a 99th
    percentile covers far less often than it claims.
    """
    c_ok, b_ok = mask & ~cand.target_error, mask & ~base.target_error
    both = c_ok & b_ok
    keys = ("p50", "p95", "p99")
    m = LatencyMeasure(cohort=cohort, n_candidate=int(c_ok.sum()), n_baseline=int(b_ok.sum()), n_paired=int(both.sum()),
                       candidate_ms=dict(zip(keys, stats.quantiles(cand.latency[c_ok]))),
                       baseline_ms=dict(zip(keys, stats.quantiles(base.latency[b_ok]))))
    if not bootstrap:
        return m
    conf = policy.confidence
    for key, p in (("p95", 0.95), ("p99", 0.99)):
        bounds = stats.quantile_bounds(cand.latency[c_ok], p, conf)
        if bounds is not None:
            m.candidate_ci[key] = _interval((max(bounds[0], 0.0), bounds[1]))
    if m.n_paired < 2:
        return m
    qc, qb = stats.quantiles(cand.latency[both], (0.95, 0.99)), stats.quantiles(base.latency[both], (0.95, 0.99))
    for key, c_q, b_q in (("p95", qc[0], qb[0]), ("p99", qc[1], qb[1])):
        if b_q > 0:
            m.ratio[key] = c_q / b_q
    if "p95" in m.ratio:
        cis = stats.quantile_intervals(cand.latency[both], base.latency[both], (0.95,),
                                       policy.bootstrap_resamples, _seed(policy, "latency", cohort), conf)
        m.ratio_ci["p95"] = _interval(cis[0.95][1])
    half = 1 - (1 - conf) / 2  # each side at half the error rate: both cover together >= conf
    c99 = stats.quantile_bounds(cand.latency[both], 0.99, half)
    b99 = stats.quantile_bounds(base.latency[both], 0.99, half)
    if "p99" in m.ratio and c99 is not None and b99 is not None and b99[0] > 0:
        m.ratio_ci["p99"] = _interval((max(c99[0], 0.0) / b99[1], c99[1] / b99[0]))
    return m


def _cost_measure(cohort: str, mask: np.ndarray, cand: SideArrays, base: SideArrays) -> CostMeasure:
    def per_row(values: np.ndarray, present: np.ndarray) -> float:
        sel = values[mask & present]
        return float(sel.mean()) if sel.size else 0.0

    def cost(side: SideArrays) -> float | None:
        sel = side.cost[mask & side.present]
        return float(sel.mean()) if sel.size and not np.isnan(sel).any() else None

    cc, cb = cost(cand), cost(base)
    return CostMeasure(
        cohort=cohort, n_rows=int(mask.sum()),
        prompt_tokens_candidate=per_row(cand.prompt_tokens, cand.present),
        prompt_tokens_baseline=per_row(base.prompt_tokens, base.present),
        completion_tokens_candidate=per_row(cand.completion_tokens, cand.present),
        completion_tokens_baseline=per_row(base.completion_tokens, base.present),
        cost_candidate=cc, cost_baseline=cb,
        cost_ratio=cc / cb if cc is not None and cb else None)


def _error_measure(n_rows: int, cand: SideArrays, base: SideArrays) -> ErrorMeasure:
    return ErrorMeasure(n_rows=n_rows, candidate_errors=int(cand.target_error.sum()),
                        baseline_errors=int(base.target_error.sum()),
                        candidate_missing=int((~cand.present).sum()), baseline_missing=int((~base.present).sum()),
                        candidate_kinds=dict(Counter(cand.error_kinds)), baseline_kinds=dict(Counter(base.error_kinds)),
                        candidate_examples=dict(cand.error_examples), baseline_examples=dict(base.error_examples))
