"""Intervals cover a known injected effect about 95 % of the time; A/A tests reject about 5 %."""

from __future__ import annotations

import numpy as np

from accord.experiments.statistics import (
    CupedStats,
    MeanStats,
    RatioStats,
    adjust,
    compare,
    with_theta,
)

REPETITIONS = 1000
# Binomial spread of a 95 % rate over 1000 repetitions is ±0.7 points; allow 3 of them.
BAND = 0.021


def _moments(x: np.ndarray) -> MeanStats:
    return MeanStats(len(x), float(x.sum()), float((x**2).sum()))


def _ratio(clicks: np.ndarray, impressions: np.ndarray) -> RatioStats:
    return RatioStats(_moments(clicks), _moments(impressions), float((clicks * impressions).sum()))


def _arm(rng: np.random.Generator, n: int, ctr: float) -> tuple[RatioStats, CupedStats]:
    # Heavy users see more impressions: clustered, over-dispersed data.
    impressions = rng.negative_binomial(2, 0.25, n) + 1
    user_ctr = rng.beta(ctr * 20, (1 - ctr) * 20, n)
    clicks = rng.binomial(impressions, user_ctr).astype(float)
    pre = rng.gamma(2.0, 3.0, n)
    spend = 0.8 * pre + rng.exponential(2.0, n) * (1 + 5 * ctr)
    cuped = CupedStats(_moments(spend), _moments(pre), float((spend * pre).sum()))
    return _ratio(clicks, impressions.astype(float)), cuped


def test_relative_lift_intervals_cover_the_injected_effect() -> None:
    rng = np.random.default_rng(20261123)
    base_ctr, lift = 0.05, 0.10
    # Mean spend = 0.8·6 + 2·(1 + 5·ctr); its relative lift follows.
    base_spend = 0.8 * 6 + 2 * (1 + 5 * base_ctr)
    true_spend_lift = (2 * 5 * base_ctr * lift) / base_spend
    covered_ratio = covered_cuped = 0
    for _ in range(REPETITIONS):
        control_ratio, control_cuped = _arm(rng, 1500, base_ctr)
        treated_ratio, treated_cuped = _arm(rng, 3000, base_ctr * (1 + lift))
        relative = compare(control_ratio, treated_ratio).relative
        assert relative is not None
        covered_ratio += relative.lower <= lift <= relative.upper
        c, t = with_theta([control_cuped, treated_cuped])
        adjusted = compare(c, t).relative
        assert adjusted is not None
        covered_cuped += adjusted.lower <= true_spend_lift <= adjusted.upper
    assert abs(covered_ratio / REPETITIONS - 0.95) < BAND
    assert abs(covered_cuped / REPETITIONS - 0.95) < BAND


def test_a_a_false_positive_rate_is_nominal_and_holm_controls_the_family() -> None:
    rng = np.random.default_rng(7)
    single = family = 0
    for _ in range(REPETITIONS):
        arms = [_arm(rng, 1000, 0.05) for _ in range(3)]
        ratios = [a[0] for a in arms]
        p = [
            compare(ratios[1], ratios[0]).p_value,
            compare(ratios[2], ratios[0]).p_value,
            compare(ratios[1], ratios[2]).p_value,
        ]
        single += p[0] < 0.05
        family += min(adjust(p, "holm")) < 0.05
    assert abs(single / REPETITIONS - 0.05) < BAND
    # Holm keeps the chance of any false positive among the three contrasts ≤ 5 %.
    assert family / REPETITIONS < 0.05 + BAND
