"""Shared cases: per-unit data of two arms, and their sufficient statistics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accord.experiments.statistics import CupedStats, MeanStats, ProportionStats, RatioStats


@dataclass
class Arm:
    post: np.ndarray  # metric per unit
    pre: np.ndarray  # pre-period value per unit
    converted: np.ndarray  # 0/1 per unit
    clicks: np.ndarray  # ratio numerator per unit
    impressions: np.ndarray  # ratio denominator per unit (≥ 1)

    def mean_stats(self) -> MeanStats:
        return MeanStats(len(self.post), float(self.post.sum()), float((self.post**2).sum()))

    def proportion_stats(self) -> ProportionStats:
        return ProportionStats(len(self.converted), float(self.converted.sum()))

    def ratio_stats(self) -> RatioStats:
        c, i = self.clicks, self.impressions
        return RatioStats(
            MeanStats(len(c), float(c.sum()), float((c**2).sum())),
            MeanStats(len(i), float(i.sum()), float((i**2).sum())),
            float((c * i).sum()),
        )

    def cuped_stats(self) -> CupedStats:
        pre = MeanStats(len(self.pre), float(self.pre.sum()), float((self.pre**2).sum()))
        return CupedStats(self.mean_stats(), pre, float((self.post * self.pre).sum()))


def arm(seed: int, n: int, lift: float = 0.0) -> Arm:
    rng = np.random.default_rng(seed)
    pre = rng.gamma(2.0, 5.0, n)
    post = 0.6 * pre + rng.normal(3.0 * (1 + lift), 4.0, n)
    impressions = rng.poisson(6, n) + 1
    clicks = rng.binomial(impressions, 0.05 * (1 + lift)).astype(float)
    converted = (rng.random(n) < 0.1 * (1 + lift)).astype(float)
    return Arm(post, pre, converted, clicks, impressions.astype(float))


CASES = [(11, 12, 400, 380, 0.05), (21, 22, 2000, 700, 0.0), (31, 32, 150, 160, -0.1)]


def case_arms(index: int) -> tuple[Arm, Arm]:
    seed_c, seed_t, n_c, n_t, lift = CASES[index]
    return arm(seed_c, n_c), arm(seed_t, n_t, lift)
