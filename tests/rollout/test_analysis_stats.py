"""The statistics against known answers (reference/rollouts.md §4.2) and their basic properties."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from sluice.rollout.analysis import alpha as alpha_split
from sluice.rollout.analysis import eprocess, mixture

# the worked example: baseline 100/5000 (2 %), canary 20/500 (4 %)
PA, NA, PB, NB = 100 / 5000, 5000, 20 / 500, 500
VAR = PA * (1 - PA) / NA + PB * (1 - PB) / NB


def test_fixed_z_of_the_worked_example():
    z = mixture.fixed_z(PB - PA, VAR)
    assert z == pytest.approx(2.23, abs=0.005)
    assert 2 * sps.norm.sf(z) == pytest.approx(0.026, abs=0.001)


def test_msprt_of_the_worked_example_is_3_2():
    lam = math.exp(mixture.log_msprt(PB - PA, VAR, tau=0.02))
    assert lam == pytest.approx(3.2, abs=0.05)
    assert min(1.0, 1 / lam) == pytest.approx(0.31, abs=0.01)  # always-valid p


def test_always_valid_half_width_is_wider_than_fixed():
    h = mixture.half_width(VAR, tau=0.02, alpha=0.05)
    assert h == pytest.approx(0.0275, abs=0.0005)
    assert 1.96 * math.sqrt(VAR) == pytest.approx(0.0176, abs=0.0005)


def test_one_sided_mixture_matches_numeric_integral():
    d, v, tau = 0.013, 0.004 ** 2, 0.01
    grid = [i * tau * 8 / 4000 for i in range(1, 4001)]
    dens = [2 * sps.norm.pdf(t, 0, tau) * math.exp(t * d / v - t * t / (2 * v)) for t in grid]
    integral = sum(dens) * (grid[1] - grid[0])
    assert math.exp(mixture.log_msprt_one_sided(d, v, tau)) == pytest.approx(integral, rel=2e-3)
    # no evidence of harm when the estimate points the other way
    assert mixture.log_msprt_one_sided(-d, v, tau) < 0


@pytest.mark.parametrize("a,b,expected", [(1, 1, 2.6), (1, 10, 5.0)])
def test_two_counter_evalue_of_the_worked_example(a, b, expected):
    assert eprocess.beta_mixture_evalue(20, 100, 1 / 11, a, b) == pytest.approx(expected, abs=0.05)


def test_two_counter_evalue_matches_the_beta_integral():
    # E = ∫ Beta(q; a, b) q^Nc (1-q)^Ns dq / (w^Nc (1-w)^Ns), checked by quadrature
    w, nc, ns = 0.2, 7, 15
    qs = [(i + 0.5) / 20000 for i in range(20000)]
    num = sum(sps.beta.pdf(q, 2, 3) * q ** nc * (1 - q) ** ns for q in qs) / 20000
    assert eprocess.beta_mixture_evalue(nc, ns, w, 2, 3) == pytest.approx(num / (w ** nc * (1 - w) ** ns), rel=1e-4)


def test_grid_eprocess_on_the_worked_example_grows_with_excess_canary_events():
    grid = eprocess.grid_for([1.0])
    ll = eprocess.fold([0.0] * len(grid), grid, 20, 100, 1 / 11)
    e = math.exp(eprocess.log_evalue(ll, grid, 1.0, "above"))
    assert 2.0 < e < 20.0  # the same order as the closed forms (a prior over ratios, not over q)
    more = eprocess.fold(ll, grid, 20, 100, 1 / 11)
    assert eprocess.log_evalue(more, grid, 1.0, "above") > math.log(e)
    # the non-inferiority side sees the same data as evidence against "canary is better"
    assert eprocess.log_evalue(ll, grid, 1.0, "below") < 0


def test_grid_likelihood_is_the_binomial_likelihood():
    grid = eprocess.grid_for([1.0, 1.5])
    ll = eprocess.fold([0.0] * len(grid), grid, 9, 41, 0.25)
    i = grid.index(1.5)
    q = eprocess.share_prob(0.25, 1.5)
    assert ll[i] == pytest.approx(sps.binom.logpmf(9, 50, q) - sps.binom.logpmf(9, 50, 0.25))


def test_changing_share_is_folded_per_look():
    grid = eprocess.grid_for([1.0])
    one = eprocess.fold([0.0] * len(grid), grid, 3, 10, 0.1)
    two = eprocess.fold(one, grid, 8, 9, 0.5)
    i = grid.index(2.0) if 2.0 in grid else min(range(len(grid)), key=lambda k: abs(grid[k] - 2.0))
    r = grid[i]
    q1, q2 = eprocess.share_prob(0.1, r), eprocess.share_prob(0.5, r)
    expect = (sps.binom.logpmf(3, 13, q1) - sps.binom.logpmf(3, 13, 0.1)
              + sps.binom.logpmf(8, 17, q2) - sps.binom.logpmf(8, 17, 0.5))
    assert two[i] == pytest.approx(expect)


def test_confidence_set_covers_the_estimate():
    grid = eprocess.grid_for([1.0])
    ll = eprocess.fold([0.0] * len(grid), grid, 50, 200, 0.1)
    lo, hi = eprocess.confidence_set(ll, grid, 0.05)
    mle = (50 / 0.1) / (200 / 0.9)  # 2.25
    assert lo < mle < hi
    assert lo > 1.0  # 50 canary events of 250 at a 10 % share (25 expected) is far from equal rates
    lo99, hi99 = eprocess.confidence_set(ll, grid, 0.001)
    assert lo99 <= lo and hi99 >= hi


def test_alpha_split_never_overspends_with_late_cohorts():
    planned = alpha_split.planned_cohorts(["enterprise", "free"])
    assert planned == ["(all)", "enterprise", "free"]
    late = [f"c{i}" for i in range(40)]
    spent = alpha_split.total_spent(0.05, 4, planned, late)
    assert spent <= 0.05
    assert spent == pytest.approx(0.05, rel=1e-6)  # the geometric series tends to the whole reserve
    assert alpha_split.cell_alpha(0.05, 4, planned, [], "free") == pytest.approx(0.8 * 0.05 / 12)
    assert alpha_split.cell_alpha(0.05, 4, planned, late, "c0") == pytest.approx(0.2 * 0.05 / 2 / 4)
    with pytest.raises(ValueError):
        alpha_split.cell_alpha(0.05, 4, planned, [], "nowhere")


def test_one_sided_bounds_agree_with_the_tests():
    grid = eprocess.grid_for([1.0, 1.5])
    ll = eprocess.fold([0.0] * len(grid), grid, 60, 200, 0.1)  # ratio ≈ 2.7, harm clear at α = 0.01
    assert eprocess.log_evalue(ll, grid, 1.0, "above") >= math.log(100)
    lo = eprocess.one_sided_bound(ll, grid, 0.01, "lower")
    assert 1.0 < lo < 2.7
    below = [r for r in grid if r < lo]
    assert all(eprocess.log_evalue(ll, grid, r, "above") >= math.log(100) for r in below)
    assert eprocess.log_evalue(ll, grid, lo, "above") < math.log(100)
    # an A/A-like look: the upper bound sits between the truth and the margin once shown
    aa = eprocess.fold([0.0] * len(grid), grid, 100, 900, 0.1)
    assert eprocess.log_evalue(aa, grid, 1.5, "below") >= math.log(20)
    hi = eprocess.one_sided_bound(aa, grid, 0.05, "upper")
    assert 1.0 < hi < 1.5
