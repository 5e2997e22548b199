"""Drift of a deployment's live inputs away from its release contract (the gated dataset): a pure
judgement over what ``drift_data`` gathers.

Three checks, each flagged only when it is both significant and large enough to matter:

- cohort mix: live cohort counts against the dataset's shares — total-variation distance and a
  chi-square test; a cohort the dataset never had is reported by name;
- input length: tokens of the last user message, two-sample Kolmogorov–Smirnov and the medians;
- novelty: the share of live inputs whose nearest dataset row (cosine of MiniLM embeddings) is
  below ``novelty_similarity``, against the same share within the dataset itself (each row's
  nearest *other* row), so a dataset of varied rows does not flag its own traffic.

Any flag means the dataset no longer represents the traffic: the report is ``stale`` and carries
a ``sluice dataset from-traces`` command that would sample a fresh version from this deployment.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

from sluice.monitor.stats import chi_square_fit, ks_two_sample, median, shares, total_variation


@dataclass(frozen=True)
class DriftThresholds:
    alpha: float = 0.01  # significance of each test
    min_live: int = 30  # fewer live inputs: inconclusive, nothing flagged
    cohort_tv: float = 0.15  # total variation that matters
    new_cohort_share: float = 0.05  # live share of cohorts the dataset lacks
    length_ks: float = 0.2  # KS distance that matters
    novelty_similarity: float = 0.5  # nearest-neighbour cosine below this: no near neighbour
    novelty_excess: float = 0.2  # live novel share above the dataset's own


@dataclass(frozen=True)
class DriftInputs:
    dataset_cohorts: Sequence[str]
    live_cohorts: Sequence[str]
    dataset_tokens: Sequence[int]
    live_tokens: Sequence[int]
    live_nn: Sequence[float]  # each live input's best cosine to a dataset row
    dataset_nn: Sequence[float]  # each (sampled) dataset row's best cosine to another row


def judge_drift(x: DriftInputs, t: DriftThresholds = DriftThresholds()) -> dict[str, Any]:
    n = len(x.live_cohorts)
    enough = n >= t.min_live
    checks = {"cohort_mix": _cohorts(x, t, enough), "input_tokens": _lengths(x, t, enough),
              "novelty": _novelty(x, t, enough)}
    return {"live_inputs": n, "dataset_rows": len(x.dataset_cohorts), "enough_data": enough, "checks": checks,
            "stale": any(c["flagged"] for c in checks.values())}


def _cohorts(x: DriftInputs, t: DriftThresholds, enough: bool) -> dict[str, Any]:
    ref = shares(Counter(x.dataset_cohorts))
    live_counts = Counter(x.live_cohorts)
    live = shares(live_counts)
    tv = total_variation(ref, live) if live else 0.0
    stat, dof, p = chi_square_fit(live_counts, ref)
    new = sorted(c for c in live if c not in ref)
    new_share = sum(live[c] for c in new)
    flagged = enough and ((tv >= t.cohort_tv and p < t.alpha) or new_share >= t.new_cohort_share)
    reason = ""
    if flagged:
        reason = (f"cohorts the dataset lacks: {', '.join(new)} ({new_share:.0%} of live inputs)" if new and
                  new_share >= t.new_cohort_share else f"cohort mix moved by {tv:.0%} (total variation, p={p:.2g})")
    return {"flagged": flagged, "reason": reason, "total_variation": round(tv, 4), "chi_square": round(stat, 3),
            "dof": dof, "p_value": p, "new_cohorts": new, "dataset_shares": _round(ref), "live_shares": _round(live)}


def _lengths(x: DriftInputs, t: DriftThresholds, enough: bool) -> dict[str, Any]:
    d, p = ks_two_sample([float(v) for v in x.dataset_tokens], [float(v) for v in x.live_tokens])
    flagged = enough and d >= t.length_ks and p < t.alpha
    ref_med, live_med = median(x.dataset_tokens), median(x.live_tokens)
    return {"flagged": flagged, "ks_distance": round(d, 4), "p_value": p, "dataset_median": ref_med,
            "live_median": live_med,
            "reason": f"input length changed: median {live_med:g} tokens live vs {ref_med:g} in the dataset "
                      f"(KS {d:.2f}, p={p:.2g})" if flagged else ""}


def _novelty(x: DriftInputs, t: DriftThresholds, enough: bool) -> dict[str, Any]:
    def novel_share(sims: Sequence[float]) -> float | None:
        return sum(1 for s in sims if s < t.novelty_similarity) / len(sims) if sims else None

    live, ref = novel_share(x.live_nn), novel_share(x.dataset_nn)
    flagged = bool(enough and live is not None and live - (ref or 0.0) >= t.novelty_excess)
    return {"flagged": flagged, "live_novel_share": _r(live), "dataset_novel_share": _r(ref),
            "similarity_threshold": t.novelty_similarity,
            "reason": f"{live:.0%} of live inputs have no near neighbour in the dataset (the dataset's own rows: "
                      f"{ref or 0:.0%})" if flagged else ""}


def from_traces_command(dataset: str, deployment: str, since: str, limit: int = 100) -> str:
    """The command that samples a fresh version of the dataset from this deployment's traffic."""
    return f"sluice dataset from-traces {dataset} --by cohort --deployment {deployment} --since {since} --limit {limit}"


def _round(d: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in sorted(d.items())}


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)
