import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy.stats import binom, binomtest

from sluice.gate import stats


@pytest.mark.parametrize("b,c", [(0, 0), (6, 16), (10, 10), (1, 30), (250, 210), (3, 0)])
def test_mcnemar_matches_exact_binomial(b, c):
    expected = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
    assert stats.mcnemar_exact_p(b, c) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_textbook_cavo():
    # Cavo et al. 2012 (Fagerland, Lydersen & Laake, paired 2x2): discordant 6 and 16, exact p = 0.052
    assert stats.mcnemar_exact_p(6, 16) == pytest.approx(0.0525, abs=5e-4)


def test_mcnemar_hand_computed_small():
    # b=1, c=5: 2 * (C(6,0) + C(6,1)) / 2^6 = 14/64
    assert stats.mcnemar_exact_p(1, 5) == pytest.approx(14 / 64)


@pytest.mark.parametrize("k,n", [(0, 10), (65, 161), (161, 161), (3, 40)])
def test_wilson_matches_scipy(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = stats.wilson_interval(k, n, 0.95)
    assert lo == pytest.approx(ci.low, abs=1e-9)
    assert hi == pytest.approx(ci.high, abs=1e-9)


def test_newcombe_paired_interval_matches_published_example():
    # Cavo et al. table [[59, 6], [16, 80]]: estimate -0.0621, 95% CI -0.1186 to -0.0046
    lo, hi = stats.paired_pass_diff_interval(59, 6, 16, 80, 0.95)
    assert lo == pytest.approx(-0.1186, abs=5e-5)
    assert hi == pytest.approx(-0.0046, abs=5e-5)


def test_newcombe_identical_runs_straddle_zero_and_narrow_with_n():
    small = stats.paired_pass_diff_interval(18, 0, 0, 2)
    large = stats.paired_pass_diff_interval(1800, 0, 0, 200)
    assert small[0] < 0 < small[1]
    assert large[0] < 0 < large[1]
    assert large[1] - large[0] < (small[1] - small[0]) / 5


def test_newcombe_coverage_on_synthetic_pairs():
    rng = np.random.default_rng(7)
    n, reps, covered = 150, 400, 0
    p_both, p_c_only, p_b_only = 0.6, 0.05, 0.12  # true difference -0.07
    probs = [p_both, p_c_only, p_b_only, 1 - p_both - p_c_only - p_b_only]
    for table in rng.multinomial(n, probs, size=reps):
        lo, hi = stats.paired_pass_diff_interval(*map(int, table))
        covered += lo <= -0.07 <= hi
    assert 0.92 <= covered / reps <= 0.99


def test_a_sample_without_spread_gets_an_interval_not_a_point():
    # 50 values of 0.25 in [-1, 1]: q = 1 - 0.025^(1/50) = 0.0711 of rows could sit at either bound
    lo, hi = stats.mean_interval(np.full(50, 0.25), 500, [1])
    q = 1 - 0.025 ** (1 / 50)
    assert (lo, hi) == (pytest.approx(0.25 - q * 1.25), pytest.approx(0.25 + q * 0.75))
    # 20 perfect scores in [0, 1]: the Clopper-Pearson bound for 20 of 20
    lo, hi = stats.bca_interval(np.ones(100), np.ones(20), 0.95, bounds=(0.0, 1.0))
    assert lo == pytest.approx(binomtest(20, 20).proportion_ci(0.95, method="exact").low) and hi == 1.0
    assert stats.bca_interval(np.ones(10), np.ones(1), 0.95)[0] < 0.03  # one row says almost nothing


def test_bootstrap_is_seeded():
    x = np.random.default_rng(3).normal(size=80)
    assert stats.mean_interval(x, 1000, [9, 9]) == stats.mean_interval(x, 1000, [9, 9])
    assert stats.mean_interval(x, 1000, [9, 9]) != stats.mean_interval(x, 1000, [9, 10])


def test_bca_close_to_t_interval_for_normal_data():
    x = np.random.default_rng(11).normal(0.1, 1.0, size=400)
    lo, hi = stats.mean_interval(x, 4000, [0])
    half = 1.96 * x.std(ddof=1) / math.sqrt(x.size)
    assert lo == pytest.approx(x.mean() - half, abs=0.02)
    assert hi == pytest.approx(x.mean() + half, abs=0.02)


def test_paired_bootstrap_coverage_on_skewed_scores():
    rng = np.random.default_rng(21)
    reps, n, covered = 300, 120, 0
    true_delta = 0.8 - 0.7  # beta means: candidate 8/(8+2), baseline 7/(7+3)
    for r in range(reps):
        base = rng.beta(7, 3, n)
        cand = np.clip(rng.beta(8, 2, n) * 0.5 + base * 0.5 + (0.8 - (0.8 * 0.5 + 0.7 * 0.5)), 0, 1)
        lo, hi = stats.mean_interval(cand - base, 1000, [r])
        covered += lo <= true_delta <= hi
    assert 0.91 <= covered / reps <= 0.985


def test_bootstrap_means_weights_exclude_rows():
    counts = np.array([[1.0, 1.0, 1.0], [0.0, 3.0, 0.0], [3.0, 0.0, 0.0]])
    values = np.array([[1.0], [2.0], [100.0]])
    weights = np.array([[1.0], [1.0], [0.0]])
    out = stats.bootstrap_means(counts, values, weights)[:, 0]
    assert out[0] == pytest.approx(1.5)
    assert out[1] == pytest.approx(2.0)
    assert out[2] == pytest.approx(1.0)


def test_resample_count_slices_cover_every_resample_and_sum_to_n():
    slices = list(stats.resample_count_slices(37, 50, np.random.default_rng(0), step=20))
    assert [s.shape for s in slices] == [(20, 37), (20, 37), (10, 37)]
    assert all((s.sum(axis=1) == 37).all() for s in slices)


def test_resampled_means_equal_the_means_of_the_same_resamples():
    values = np.random.default_rng(1).random((40, 3))
    weights = np.ones_like(values)
    counts = np.concatenate(list(stats.resample_count_slices(40, 600, np.random.default_rng(7))))
    expected = stats.bootstrap_means(counts, values, weights)
    out = stats.resampled_means(values, weights, 600, np.random.default_rng(7))
    assert out.shape == (600, 3)
    assert np.allclose(out, expected, rtol=0, atol=1e-12)


def test_order_statistic_quantile_bounds_match_the_binomial_ranks():
    x = np.arange(1, 401, dtype=float)  # x_(k) = k
    lo, hi = stats.quantile_bounds(x, 0.99, 0.95)
    # upper rank u: smallest with P(B <= u - 1) >= 0.975; lower rank l: largest with P(B <= l - 1) <= 0.025
    cdf = binom.cdf(np.arange(401), 400, 0.99)
    assert hi == np.flatnonzero(cdf >= 0.975)[0] + 1
    assert lo == np.flatnonzero(cdf <= 0.025)[-1] + 1
    assert stats.quantile_bounds(x[:367], 0.99, 0.95) is None  # 0.99^367 > 0.025: no upper bound exists
    assert stats.quantile_min_rows(0.99, 0.95) == 368 and stats.quantile_min_rows(0.95, 0.95) == 72


def test_p99_upper_bound_covers_at_least_as_often_as_it_says():
    """The percentile bootstrap's p99 upper bound fell below the true p99 17.5% of the time at
    n = 300 (2.5% nominal); the order-statistic bound keeps to 2.5%."""
    rng = np.random.default_rng(5)
    true_p99 = math.exp(5 + 0.6 * 2.3263478740408408)
    misses = sum(stats.quantile_bounds(rng.lognormal(5, 0.6, 400), 0.99, 0.95)[1] < true_p99 for _ in range(1000))
    assert misses / 1000 <= 0.035


def test_quantiles_and_ratio_interval():
    base = np.arange(1, 1001, dtype=float)
    cand = base * 2
    assert stats.quantiles(base, (0.5, 0.95)) == [pytest.approx(500.5), pytest.approx(950.05)]
    (cand_ci, ratio_ci) = stats.quantile_intervals(cand, base, (0.95,), 500, [0])[0.95]
    assert ratio_ci == (pytest.approx(2.0), pytest.approx(2.0))  # pairs scale together in every resample
    assert cand_ci[0] < 1900.1 < cand_ci[1]


def test_bca_uses_the_textbook_bias_correction_and_acceleration():
    """Efron & Tibshirani (1993), eq. 14.10, on a bootstrap distribution built so that its
    q-quantile is q: the interval's ends are then the adjusted levels themselves."""
    boot = np.linspace(0.0, 1.0, 200_001)
    sample = np.array([0.0, 0.0, 0.1, 0.1, 0.2, 0.3, 0.9])  # right-skewed: acceleration > 0
    theta = sample.mean()  # 0.2286: 22.86% of boot lies below it, so z0 = inv_cdf(0.2286) < 0
    nd = NormalDist()
    z0 = nd.inv_cdf(float(np.mean(boot < theta)))
    jack = (sample.sum() - sample) / (sample.size - 1)
    d = jack.mean() - jack
    a = (d**3).sum() / (6 * ((d**2).sum()) ** 1.5)
    assert z0 < -0.5 and a > 0.05

    def level(z_alpha):
        return nd.cdf(z0 + (z0 + z_alpha) / (1 - a * (z0 + z_alpha)))

    lo, hi = stats.bca_interval(boot, sample, 0.95)
    assert lo == pytest.approx(level(-1.959964), abs=1e-4)
    assert hi == pytest.approx(level(1.959964), abs=1e-4)


def test_one_sided_harm_tests_match_scipy():
    from sluice.gate.multiplicity import binomial_below, mcnemar_harm

    for b, c in [(14, 2), (0, 0), (3, 9), (700, 640)]:
        expected = 1.0 if b + c == 0 else binomtest(c, b + c, 0.5, alternative="less").pvalue
        assert mcnemar_harm(b, c).p == pytest.approx(expected, rel=1e-9)
    assert binomial_below(40, 60, 0.75).p == pytest.approx(binomtest(40, 60, 0.75, alternative="less").pvalue)


def test_discrete_holm_is_holm_for_continuous_tests_and_cheaper_for_discrete_ones():
    from sluice.gate.multiplicity import Test, discrete_holm, mcnemar_harm

    assert discrete_holm([Test(p) for p in (0.01, 0.02, 0.03, 0.5)]) == pytest.approx([0.04, 0.06, 0.06, 0.5])
    # 19 A/A-like tests on 15 discordant pairs can attain 4.9e-4 but nothing in (4.9e-4, 3.7e-3)
    adjusted = discrete_holm([mcnemar_harm(14, 2)] + [mcnemar_harm(8, 7)] * 19)
    p = binomtest(2, 16, 0.5, alternative="less").pvalue
    assert adjusted[0] == pytest.approx(p + 19 * binomtest(1, 15, 0.5, alternative="less").pvalue)
    assert adjusted[0] < 0.3 * 20 * p  # plain Holm (Bonferroni at the first step): 0.042
