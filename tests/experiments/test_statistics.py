"""The statistics core against scipy and statsmodels on shared cases (to 1e-6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower

from accord.experiments.statistics import (
    CupedStats,
    MeanStats,
    adjust,
    compare,
    contingency_p_value,
    cuped_theta,
    minimum_detectable_effect,
    poisson_point_variances,
    recovery_ratio,
    required_units,
    robust_z_scores,
    sample_ratio_mismatch,
    standardised_mean_difference,
    with_theta,
)
from tests.experiments.cases import CASES, arm, case_arms

TOL = 1e-6


@pytest.mark.parametrize("index", range(len(CASES)))
def test_mean_welch_matches_scipy(index: int) -> None:
    control, treatment = case_arms(index)
    result = compare(control.mean_stats(), treatment.mean_stats())
    welch = stats.ttest_ind(treatment.post, control.post, equal_var=False)
    assert result.p_value_absolute == pytest.approx(welch.pvalue, abs=TOL)
    assert result.absolute.estimate == pytest.approx(treatment.post.mean() - control.post.mean())
    low, high = welch.confidence_interval(0.95)
    assert result.absolute.lower == pytest.approx(low, abs=TOL)
    assert result.absolute.upper == pytest.approx(high, abs=TOL)
    assert result.dof == pytest.approx(welch.df, rel=TOL)


@pytest.mark.parametrize("index", range(len(CASES)))
def test_proportion_matches_statsmodels_z_test(index: int) -> None:
    control, treatment = case_arms(index)
    c, t = control.proportion_stats(), treatment.proportion_stats()
    result = compare(c, t)
    # Unpooled two-proportion z statistic: the same standard error as our p(1-p)/n.
    z, _ = sm.stats.proportions_ztest([t.total, c.total], [t.n, c.n], value=0, prop_var=False)
    ours = result.absolute.estimate / result.absolute.standard_error
    pooled = (t.total + c.total) / (t.n + c.n)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / t.n + 1 / c.n))
    assert z == pytest.approx(result.absolute.estimate / pooled_se, abs=TOL)
    unpooled = sm.stats.test_proportions_2indep(
        t.total, t.n, c.total, c.n, method="wald", compare="diff", correction=False
    )
    assert ours == pytest.approx(unpooled.statistic, abs=TOL)


@pytest.mark.parametrize("index", range(len(CASES)))
def test_ratio_variance_is_statsmodels_cluster_robust(index: int) -> None:
    """Σclicks/Σimpressions per arm equals an impression-level OLS mean with CR1 errors."""
    control, _ = case_arms(index)
    ratio = control.ratio_stats()
    impressions = control.impressions.astype(int)
    users = np.repeat(np.arange(len(impressions)), impressions)
    pairs = zip(control.clicks.astype(int), impressions, strict=True)
    clicked = np.concatenate([np.r_[np.ones(c), np.zeros(i - c)] for c, i in pairs])
    fit = sm.OLS(clicked, np.ones((len(clicked), 1))).fit(
        cov_type="cluster", cov_kwds={"groups": users}
    )
    assert ratio.mean == pytest.approx(fit.params[0], abs=TOL)
    assert math.sqrt(ratio.variance / ratio.n) == pytest.approx(fit.bse[0], abs=TOL)


@pytest.mark.parametrize("index", range(len(CASES)))
def test_cuped_matches_ols_with_pre_period_covariate(index: int) -> None:
    """With θ pooled, the adjusted difference is the OLS coefficient of the arm dummy
    when the pre-period value enters with a common slope (to first order)."""
    control, treatment = case_arms(index)
    c, t = with_theta([control.cuped_stats(), treatment.cuped_stats()])
    pre = np.r_[control.pre, treatment.pre]
    post = np.r_[control.post, treatment.post]
    theta = np.cov(post, pre, ddof=1)[0, 1] / np.var(pre, ddof=1)
    assert c.theta == pytest.approx(theta, rel=TOL)
    adjusted_c = control.post - theta * (control.pre - pre.mean())
    adjusted_t = treatment.post - theta * (treatment.pre - pre.mean())
    result = compare(c, t)
    welch = stats.ttest_ind(adjusted_t, adjusted_c, equal_var=False)
    assert result.absolute.estimate == pytest.approx(adjusted_t.mean() - adjusted_c.mean())
    assert result.p_value_absolute == pytest.approx(welch.pvalue, abs=TOL)
    raw = compare(control.mean_stats(), treatment.mean_stats())
    assert result.absolute.standard_error < raw.absolute.standard_error


def test_cuped_theta_of_one_arm_is_the_regression_slope() -> None:
    one = arm(5, 300).cuped_stats()
    a = arm(5, 300)
    assert cuped_theta([one]) == pytest.approx(np.polyfit(a.pre, a.post, 1)[0], rel=TOL)


@pytest.mark.parametrize("method", ["holm", "benjamini-hochberg"])
def test_corrections_match_statsmodels(method: str) -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = list(rng.random(int(rng.integers(1, 12))) ** 2)
        expected = multipletests(p, method="holm" if method == "holm" else "fdr_bh")[1]
        assert adjust(p, method) == pytest.approx(list(expected), abs=TOL)  # type: ignore[arg-type]


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_corrections_are_monotone_and_bounded(p: list[float]) -> None:
    for method in ("holm", "benjamini-hochberg"):
        adjusted = adjust(p, method)  # type: ignore[arg-type]
        assert all(a >= raw - 1e-12 and a <= 1 for a, raw in zip(adjusted, p, strict=True))
        order = np.argsort(p, kind="stable")
        assert all(np.diff([adjusted[i] for i in order]) >= -1e-12)


def test_srm_matches_scipy_chisquare() -> None:
    counts = [3050, 980, 2970]
    weights = [3, 1, 3]
    result = sample_ratio_mismatch(counts, weights)
    expected = [w / 7 * sum(counts) for w in weights]
    reference = stats.chisquare(counts, expected)
    assert result.chi_square == pytest.approx(reference.statistic, abs=TOL)
    assert result.p_value == pytest.approx(reference.pvalue, abs=TOL)


def test_power_matches_statsmodels_normal_power() -> None:
    power = minimum_detectable_effect(
        baseline_mean=10.0,
        baseline_variance=16.0,
        total_units=7000,
        treatment_weight=3 / 7,
        control_weight=1 / 7,
    )
    effect_size = power.minimum_detectable_effect / 4.0
    achieved = NormalIndPower().power(
        effect_size, nobs1=3000, alpha=0.05, ratio=1000 / 3000, alternative="two-sided"
    )
    assert achieved == pytest.approx(0.8, abs=1e-4)  # statsmodels adds the far tail
    total = required_units(
        effect=power.minimum_detectable_effect,
        baseline_variance=16.0,
        treatment_weight=3 / 7,
        control_weight=1 / 7,
    )
    assert total == pytest.approx(7000, abs=1)
    assert power.relative_mde == pytest.approx(power.minimum_detectable_effect / 10)


def test_unequal_arms_need_more_units_than_equal_ones() -> None:
    common = {"effect": 0.5, "baseline_variance": 16.0}
    assert required_units(treatment_weight=3 / 7, control_weight=1 / 7, **common) > required_units(
        treatment_weight=2 / 7, control_weight=2 / 7, **common
    )


def test_recovery_ratio_fieller_and_delta() -> None:
    c1 = MeanStats(3000, 3000 * 10.0, 3000 * (100 + 16))
    c2 = MeanStats(3000, 3000 * 6.0, 3000 * (36 + 16))
    t = MeanStats(3000, 3000 * 9.0, 3000 * (81 + 16))
    result = recovery_ratio(t, c1, c2)
    assert result.estimate == pytest.approx(0.75)
    assert result.denominator_significant
    assert result.lower is not None and result.upper is not None
    assert result.lower < 0.75 < result.upper
    assert result.delta_lower < 0.75 < result.delta_upper
    # Fieller's set: the boundaries are where the pivot equals z².
    z = stats.norm.ppf(0.975)
    v = [s.variance / s.n for s in (t, c1, c2)]
    for r in (result.lower, result.upper):
        pivot = (3.0 - r * 4.0) ** 2 / (v[0] + v[2] + r**2 * (v[1] + v[2]) - 2 * r * v[2])
        assert pivot == pytest.approx(z**2, rel=1e-9)


def test_recovery_ratio_unbounded_when_controls_are_indistinguishable() -> None:
    c1 = MeanStats(50, 50 * 10.0, 50 * (100 + 400))
    c2 = MeanStats(50, 50 * 9.9, 50 * (9.9**2 + 400))
    t = MeanStats(50, 50 * 10.0, 50 * (100 + 400))
    result = recovery_ratio(t, c1, c2)
    assert not result.denominator_significant
    assert result.lower is None and result.upper is None


def test_balance_helpers() -> None:
    a = MeanStats(100, 100 * 5.0, 100 * (25 + 4))
    b = MeanStats(100, 100 * 4.0, 100 * (16 + 4))
    assert standardised_mean_difference(a, b) == pytest.approx(1 / math.sqrt(4 * 100 / 99))
    table = [[30, 70], [50, 50]]
    assert contingency_p_value(table) == pytest.approx(
        stats.chi2_contingency(table, correction=False).pvalue, abs=TOL
    )
    assert contingency_p_value([[10, 0], [20, 0]]) == 1.0
    z = robust_z_scores([1, 1, 2, 1, 1, 50])
    assert z[-1] > 10 and abs(z[0]) < 1
    # Sparse counts: a MAD of 0 by chance; the sampling noise sets the scale instead.
    assert max(robust_z_scores([2, 2, 2, 5, 2, 2, 0], noise=1.5)) == pytest.approx(2.0)
    assert robust_z_scores([3, 3, 3, 4]) == [0.0, 0.0, 0.0, math.inf]


def test_poisson_point_variances_keep_sparse_counts_unflagged() -> None:
    units = [1000.0] * 14
    sparse = [0, 0, 1, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0]
    rates = [c / u for c, u in zip(sparse, units, strict=True)]
    variances = poisson_point_variances(sparse, units)
    # pooled 4 events over 14 days: (4/14 + 1) events² per day, over the exposure²
    assert variances[0] == pytest.approx((4 / 14 + 1) / 1000**2)
    noise = math.sqrt(float(np.median(variances)))
    assert max(abs(z) for z in robust_z_scores(rates, noise=noise)) < 5
    # Without the floor the MAD of 0 makes every converting day infinite.
    assert math.inf in robust_z_scores(rates)
    # A burst of 50 conversions on one day still stands out.
    burst = [*sparse[:-1], 50]
    noise = math.sqrt(float(np.median(poisson_point_variances(burst, units))))
    z = robust_z_scores([c / u for c, u in zip(burst, units, strict=True)], noise=noise)
    assert z[-1] > 5 and max(abs(v) for v in z[:-1]) < 5


def test_poisson_point_variances_leave_busy_series_to_the_mad() -> None:
    # A constant busy series with one real jump: the floor stays below the jump.
    counts = [400.0] * 13 + [460.0]
    exposures = [1000.0] * 14
    noise = math.sqrt(float(np.median(poisson_point_variances(counts, exposures))))
    z = robust_z_scores([c / e for c, e in zip(counts, exposures, strict=True)], noise=noise)
    assert z[-1] > 2.9 and z[-1] < 3.0  # 60 events over √(~404 + 1): a 3σ day, not > 5
    jump = [*counts[:-1], 520.0]
    noise = math.sqrt(float(np.median(poisson_point_variances(jump, exposures))))
    z = robust_z_scores([c / e for c, e in zip(jump, exposures, strict=True)], noise=noise)
    assert z[-1] > 5
    # A day of zero in a busy series.
    drop = [*counts[:-1], 0.0]
    noise = math.sqrt(float(np.median(poisson_point_variances(drop, exposures))))
    z = robust_z_scores([c / e for c, e in zip(drop, exposures, strict=True)], noise=noise)
    assert z[-1] < -5


def test_robust_z_scores_take_a_noise_per_point() -> None:
    # A ratio's day with few trials is noisier: its own floor, not the typical day's.
    conversions = [0, 0, 1, 0, 0, 0, 0, 2, 0, 0]
    clicks = [12, 10, 11, 14, 9, 12, 13, 3, 12, 11]
    rates = [c / n for c, n in zip(conversions, clicks, strict=True)]
    variances = poisson_point_variances(conversions, clicks)
    per_day = robust_z_scores(rates, noise=[math.sqrt(v) for v in variances])
    assert max(per_day) < 5
    typical = robust_z_scores(rates, noise=math.sqrt(float(np.median(variances))))
    assert typical[7] > per_day[7] * 2
    assert robust_z_scores([1, 1, 1, 9], noise=[1, 1, 1, 0]) == [0.0, 0.0, 0.0, math.inf]
    with pytest.raises(ValueError):
        robust_z_scores([1, 2, 3], noise=[1, 2])


def test_poisson_point_variances_reject_bad_input() -> None:
    assert poisson_point_variances([], []) == []
    with pytest.raises(ValueError):
        poisson_point_variances([1, 2], [1])
    with pytest.raises(ValueError):
        poisson_point_variances([1], [0])
    with pytest.raises(ValueError):
        poisson_point_variances([-1], [1])


def _cuped_arm(post: np.ndarray, pre: np.ndarray) -> CupedStats:
    return CupedStats(
        post=MeanStats(len(post), float(post.sum()), float((post**2).sum())),
        pre=MeanStats(len(pre), float(pre.sum()), float((pre**2).sum())),
        cross=float((post * pre).sum()),
    )


def test_item_13_cuped_relative_lift_variance_is_the_delta_method_term_by_term() -> None:
    """Worked example: the lift L(ȳ_T, x̄_T, ȳ_C, x̄_C) = ((ȳ_T − θx̄_T) − (ȳ_C − θx̄_C)) / ȳ_C
    differentiated numerically, its gradient applied to each arm's sample covariance of
    (post, pre) over n; θ held fixed as the pooled estimate."""
    rng = np.random.default_rng(13)
    pre_c, pre_t = rng.normal(10, 2, 400), rng.normal(10, 2, 300)
    post_c = pre_c + rng.normal(0, 1, 400)
    post_t = 1.8 * pre_t + rng.normal(0, 1.5, 300)  # a large lift (about +80%)
    c, t = with_theta([_cuped_arm(post_c, pre_c), _cuped_arm(post_t, pre_t)])
    theta = c.theta

    def lift(m: np.ndarray) -> float:
        yt, xt, yc, xc = m
        return float(((yt - theta * xt) - (yc - theta * xc)) / yc)

    means = np.array([post_t.mean(), pre_t.mean(), post_c.mean(), pre_c.mean()])
    gradient = np.zeros(4)
    for i in range(4):
        step = np.zeros(4)
        step[i] = 1e-5
        gradient[i] = (lift(means + step) - lift(means - step)) / 2e-5
    cov_t = np.cov(post_t, pre_t, ddof=1) / len(post_t)
    cov_c = np.cov(post_c, pre_c, ddof=1) / len(post_c)
    variance = gradient[:2] @ cov_t @ gradient[:2] + gradient[2:] @ cov_c @ gradient[2:]
    result = compare(c, t)
    assert result.relative is not None
    assert result.relative.estimate == pytest.approx(lift(means), rel=1e-12)
    assert result.relative.standard_error == pytest.approx(math.sqrt(variance), rel=1e-6)


def test_item_13_cuped_relative_intervals_cover_large_lifts_in_simulation() -> None:
    """2,000 simulated experiments with a +100% lift and ρ(pre, post) ≈ 0.9: the 95%
    interval of the relative lift covers the true lift about 95% of the time, and the
    standard error matches the spread of the estimates (the approximation that scaled
    every control term by (T/C)² covered about 86%)."""
    rng = np.random.default_rng(2026)
    runs, n = 2000, 400
    pre = rng.normal(10, 2, (runs, 2, n))
    post = pre + rng.normal(0, 1, (runs, 2, n))
    post[:, 1] += 10  # treatment: control mean 10, treatment mean 20
    true_lift = 1.0
    estimates, errors, covered = [], [], 0
    for run in range(runs):
        c, t = with_theta(
            [_cuped_arm(post[run, 0], pre[run, 0]), _cuped_arm(post[run, 1], pre[run, 1])]
        )
        relative = compare(c, t).relative
        assert relative is not None
        estimates.append(relative.estimate)
        errors.append(relative.standard_error)
        covered += relative.lower <= true_lift <= relative.upper
    assert 0.93 <= covered / runs <= 0.97
    assert float(np.mean(errors)) == pytest.approx(float(np.std(estimates, ddof=1)), rel=0.06)
