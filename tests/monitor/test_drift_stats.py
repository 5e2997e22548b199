"""The drift tests' distributions against SciPy, and the pure judgement rule by rule."""

from __future__ import annotations

import random

import pytest
from scipy import stats

from sluice.monitor.drift import DriftInputs, judge_drift
from sluice.monitor.stats import chi2_sf, chi_square_fit, ks_two_sample, total_variation


@pytest.mark.parametrize("x,dof", [(0.01, 1), (3.84, 1), (10.0, 3), (50.0, 5), (2.0, 10), (30.0, 20), (120.0, 7)])
def test_chi2_sf_matches_scipy(x, dof):
    assert chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_ks_matches_scipy(shift):
    rng = random.Random(7)
    a = [rng.gauss(0, 1) for _ in range(300)]
    b = [rng.gauss(shift, 1) for _ in range(90)]
    d, p = ks_two_sample(a, b)
    ref = stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(ref.statistic, abs=1e-12) and p == pytest.approx(ref.pvalue, abs=0.02)


def test_chi_square_and_tv():
    stat, dof, p = chi_square_fit({"a": 50, "b": 50}, {"a": 0.5, "b": 0.5})
    assert (stat, dof, p) == (0.0, 1, 1.0)
    stat, dof, p = chi_square_fit({"a": 90, "b": 10}, {"a": 0.5, "b": 0.5})
    assert stat == pytest.approx(64.0) and p < 1e-10
    assert total_variation({"a": 0.5, "b": 0.5}, {"a": 0.9, "b": 0.1}) == pytest.approx(0.4)


def _inputs(**change):
    base = dict(dataset_cohorts=["a", "b"] * 50, live_cohorts=["a", "b"] * 30, dataset_tokens=[10, 12, 14, 16] * 25,
                live_tokens=[10, 12, 14, 16] * 15, live_nn=[0.8] * 60, dataset_nn=[0.8] * 100)
    return DriftInputs(**(base | change))


def test_each_check_flags_only_its_own_shift():
    assert not judge_drift(_inputs())["stale"]
    mix = judge_drift(_inputs(live_cohorts=["a"] * 54 + ["b"] * 6))
    assert [k for k, c in mix["checks"].items() if c["flagged"]] == ["cohort_mix"]
    new = judge_drift(_inputs(live_cohorts=["a", "b"] * 28 + ["c"] * 4))["checks"]["cohort_mix"]
    assert new["flagged"] and new["new_cohorts"] == ["c"] and "lacks: c" in new["reason"]
    longer = judge_drift(_inputs(live_tokens=[40, 50, 60] * 20))
    assert [k for k, c in longer["checks"].items() if c["flagged"]] == ["input_tokens"]
    novel = judge_drift(_inputs(live_nn=[0.2] * 30 + [0.8] * 30))
    assert [k for k, c in novel["checks"].items() if c["flagged"]] == ["novelty"]
    assert novel["checks"]["novelty"]["live_novel_share"] == 0.5
    # a varied dataset (half its rows have no near neighbour either) does not flag the same share live
    assert not judge_drift(_inputs(live_nn=[0.2] * 30 + [0.8] * 30, dataset_nn=[0.2] * 50 + [0.8] * 50))["stale"]


def test_too_few_live_inputs_flag_nothing():
    few = judge_drift(_inputs(live_cohorts=["c"] * 10, live_tokens=[99] * 10, live_nn=[0.0] * 10))
    assert not few["enough_data"] and not few["stale"]
