"""Frequentist statistics of experiments, as pure functions over per-arm sufficient statistics.

Every estimate is computed from sums over analysis units (n, Σx, Σx², Σxy, ...), which
the engine produces in one aggregation; nothing here reads rows. Conventions follow
GrowthBook's `gbstats` so results can be checked against it:

- sample variances use n − 1; a proportion's variance is p(1 − p);
- a ratio of sums Σx / Σy over units has the delta-method variance
  (s²ₓ/ȳ² − 2·x̄·sₓᵧ/ȳ³ + x̄²·s²ᵧ/ȳ⁴) / n, which is also the cluster-robust (CR1)
  variance of an impression-level mean whose clusters are the diversion units;
- the relative lift (T − C) / C has the delta-method variance
  s²_T/(C²·n_T) + s²_C·T²/(C⁴·n_C), with Welch–Satterthwaite degrees of freedom;
- CUPED subtracts θ·(pre-period mean) with θ = cov(post, pre) / var(pre) pooled over
  the arms compared, so the adjustment is the same in every arm. Its relative lift
  L = ((Ȳ_T − θX̄_T) − (Ȳ_C − θX̄_C)) / Ȳ_C takes the delta method term by term: with
  R = 1 + L, the control's share is (R²·s²_Y − 2·R·θ·s_XY + θ²·s²_X) / (Ȳ_C²·n_C) —
  only the outcome-variance term scales with the ratio of means, the cross term with
  its square root and the pre-period term not at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special

Correction = Literal["holm", "benjamini-hochberg"]


# scipy.special's distribution functions (the ones scipy.stats calls) rather than
# scipy.stats itself, whose import takes seconds and would slow every server start.
def t_quantile(q: float, dof: float) -> float:
    return float(special.ndtri(q) if math.isinf(dof) else special.stdtrit(dof, q))


def t_survival(x: float, dof: float) -> float:
    return float(special.ndtr(-x) if math.isinf(dof) else special.stdtr(dof, -x))


def normal_quantile(q: float) -> float:
    return float(special.ndtri(q))


def chi2_survival(x: float, dof: int) -> float:
    return float(special.chdtrc(dof, x))


@dataclass(frozen=True)
class MeanStats:
    """Σx and Σx² of one value per unit (a count, an amount, a 0/1 flag)."""

    n: int
    total: float
    total_squares: float

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        if self.n <= 1:
            return 0.0
        return max((self.total_squares - self.total**2 / self.n) / (self.n - 1), 0.0)


@dataclass(frozen=True)
class ProportionStats:
    """How many of n units did something; variance p(1 − p)."""

    n: int
    total: float

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        return self.mean * (1.0 - self.mean)

    @property
    def total_squares(self) -> float:
        return self.total


Moments = MeanStats | ProportionStats


def _covariance(n: int, a_total: float, b_total: float, cross: float) -> float:
    return (cross - a_total * b_total / n) / (n - 1) if n > 1 else 0.0


@dataclass(frozen=True)
class RatioStats:
    """Σ numerator / Σ denominator over units, e.g. clicks per impression per user."""

    numerator: Moments
    denominator: Moments
    cross: float  # Σ numeratorᵢ · denominatorᵢ

    @property
    def n(self) -> int:
        return self.numerator.n

    @property
    def mean(self) -> float:
        d = self.denominator.total
        return self.numerator.total / d if d else 0.0

    @property
    def covariance(self) -> float:
        return _covariance(self.n, self.numerator.total, self.denominator.total, self.cross)

    @property
    def variance(self) -> float:
        """Per-unit delta-method variance: var(mean) = variance / n."""
        dm = self.denominator.mean
        if dm == 0 or self.n <= 1:
            return 0.0
        nm = self.numerator.mean
        return max(
            self.numerator.variance / dm**2
            - 2 * self.covariance * nm / dm**3
            + nm**2 * self.denominator.variance / dm**4,
            0.0,
        )


@dataclass(frozen=True)
class CupedStats:
    """A metric with its pre-period value per unit; `theta` is set by `with_theta`."""

    post: Moments
    pre: Moments
    cross: float  # Σ postᵢ · preᵢ
    theta: float = 0.0

    @property
    def n(self) -> int:
        return self.post.n

    @property
    def mean(self) -> float:
        return self.post.mean - self.theta * self.pre.mean

    @property
    def unadjusted_mean(self) -> float:
        return self.post.mean

    @property
    def covariance(self) -> float:
        return _covariance(self.n, self.post.total, self.pre.total, self.cross)

    @property
    def variance(self) -> float:
        if self.n <= 1:
            return 0.0
        return max(
            self.post.variance
            + self.theta**2 * self.pre.variance
            - 2 * self.theta * self.covariance,
            0.0,
        )


ArmStats = MeanStats | ProportionStats | RatioStats | CupedStats


def unadjusted_mean(arm: ArmStats) -> float:
    return arm.unadjusted_mean if isinstance(arm, CupedStats) else arm.mean


def cuped_theta(arms: Sequence[CupedStats]) -> float:
    """θ = cov(post, pre) / var(pre) over the units of all `arms` together."""
    n = sum(a.n for a in arms)
    post_total = sum(a.post.total for a in arms)
    pre_total = sum(a.pre.total for a in arms)
    pre = MeanStats(n, pre_total, sum(a.pre.total_squares for a in arms))
    post = MeanStats(n, post_total, sum(a.post.total_squares for a in arms))
    if pre.variance == 0 or post.variance == 0:
        return 0.0
    return _covariance(n, post_total, pre_total, sum(a.cross for a in arms)) / pre.variance


def with_theta(arms: Sequence[CupedStats]) -> list[CupedStats]:
    theta = cuped_theta(arms)
    return [CupedStats(a.post, a.pre, a.cross, theta) for a in arms]


@dataclass(frozen=True)
class Interval:
    estimate: float
    lower: float
    upper: float
    standard_error: float


@dataclass(frozen=True)
class Comparison:
    """One contrast (treatment vs control) of one metric."""

    control_mean: float
    treatment_mean: float
    absolute: Interval
    relative: Interval | None  # None when the control mean is 0
    dof: float
    p_value: float  # of the relative lift (the figure reports show); absolute if no lift
    p_value_absolute: float  # Welch t-test on the difference of means


def welch_dof(var_a: float, n_a: int, var_b: float, n_b: int) -> float:
    """Welch–Satterthwaite degrees of freedom of a difference of two means."""
    a, b = var_a / n_a, var_b / n_b
    denominator = a**2 / (n_a - 1) + b**2 / (n_b - 1)
    return (a + b) ** 2 / denominator if denominator > 0 else math.inf


def _interval(estimate: float, variance: float, dof: float, alpha: float) -> Interval:
    se = math.sqrt(max(variance, 0.0))
    width = t_quantile(1 - alpha / 2, dof) * se
    return Interval(estimate, estimate - width, estimate + width, se)


def _two_sided_p(estimate: float, variance: float, dof: float) -> float:
    if variance <= 0:
        return 1.0 if estimate == 0 else 0.0
    return 2 * t_survival(abs(estimate) / math.sqrt(variance), dof)


def _cuped_scaled_variance(control: CupedStats, ratio: float) -> float:
    """The CUPED control's per-unit variance in the relative lift's delta method, times
    its mean squared. The lift's derivative is −ratio/C̄ in the control's outcome mean and
    θ/C̄ in its pre-period mean, so only the outcome term scales with ratio² (the cross
    term with ratio, the pre-period term not at all)."""
    theta = control.theta
    return max(
        ratio**2 * control.post.variance
        - 2 * ratio * theta * control.covariance
        + theta**2 * control.pre.variance,
        0.0,
    )


def compare(control: ArmStats, treatment: ArmStats, *, alpha: float = 0.05) -> Comparison:
    """Welch t-test of treatment vs control: absolute difference and relative lift.

    CUPED statistics must share θ (see `with_theta`). The relative lift divides by the
    control's unadjusted mean, as gbstats does.
    """
    if control.n < 2 or treatment.n < 2:
        raise ValueError("each arm needs at least two units")
    vc, vt = control.variance, treatment.variance
    nc, nt = control.n, treatment.n
    dof = welch_dof(vc, nc, vt, nt)
    difference = treatment.mean - control.mean
    abs_variance = vc / nc + vt / nt
    absolute = _interval(difference, abs_variance, dof, alpha)
    p_absolute = _two_sided_p(difference, abs_variance, dof)
    base = unadjusted_mean(control)
    if base == 0:
        return Comparison(control.mean, treatment.mean, absolute, None, dof, p_absolute, p_absolute)
    lift = difference / base
    if isinstance(control, CupedStats):
        control_share = _cuped_scaled_variance(control, 1 + lift) / (base**2 * nc)
    else:
        control_share = vc * unadjusted_mean(treatment) ** 2 / (base**4 * nc)
    rel_variance = vt / (base**2 * nt) + control_share
    relative = _interval(lift, rel_variance, dof, alpha)
    return Comparison(
        control.mean,
        treatment.mean,
        absolute,
        relative,
        dof,
        _two_sided_p(lift, rel_variance, dof),
        p_absolute,
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (family-wise error rate)."""
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return [float(p) for p in adjusted]


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (false discovery rate)."""
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")[::-1]
    adjusted = np.empty(m)
    running = 1.0
    for position, index in enumerate(order):
        rank = m - position
        running = min(running, p_values[index] * m / rank)
        adjusted[index] = running
    return [float(p) for p in adjusted]


def adjust(p_values: Sequence[float], method: Correction) -> list[float]:
    return holm(p_values) if method == "holm" else benjamini_hochberg(p_values)


@dataclass(frozen=True)
class SampleRatio:
    chi_square: float
    p_value: float
    expected: list[float]


def sample_ratio_mismatch(counts: Sequence[int], weights: Sequence[float]) -> SampleRatio:
    """Chi-square goodness of fit of units per arm against the design's weights."""
    total = sum(counts)
    weight_total = sum(weights)
    expected = [w / weight_total * total for w in weights]
    if total == 0:
        return SampleRatio(0.0, 1.0, expected)
    chi = sum((o - e) ** 2 / e for o, e in zip(counts, expected, strict=True) if e > 0)
    return SampleRatio(chi, chi2_survival(chi, len(counts) - 1), expected)


@dataclass(frozen=True)
class Recovery:
    """(T − C2) / (C1 − C2): the share of the gap from C2 to C1 that T recovers."""

    estimate: float
    lower: float | None  # Fieller bounds; None when the interval is unbounded
    upper: float | None
    delta_lower: float
    delta_upper: float
    denominator_significant: bool


def recovery_ratio(
    treatment: ArmStats, control_1: ArmStats, control_2: ArmStats, *, alpha: float = 0.05
) -> Recovery:
    """The recovery ratio with Fieller's interval, and the delta-method one beside it.

    With a = T − C2 and b = C1 − C2 over independent arms, Var a = v_T + v_C2,
    Var b = v_C1 + v_C2 and Cov(a, b) = v_C2 (v = variance of an arm's mean). Fieller's
    set {R : (a − R·b)² ≤ z²·Var(a − R·b)} is exact for normal a, b and stays valid when
    b is near zero, where the delta method is not; it is bounded only when b is
    significantly different from zero.
    """
    vt = treatment.variance / treatment.n
    v1 = control_1.variance / control_1.n
    v2 = control_2.variance / control_2.n
    a = treatment.mean - control_2.mean
    b = control_1.mean - control_2.mean
    var_a, var_b, cov = vt + v2, v1 + v2, v2
    z = normal_quantile(1 - alpha / 2)
    if b == 0:
        return Recovery(math.nan, None, None, math.nan, math.nan, False)
    ratio = a / b
    delta_se = math.sqrt(max(var_a - 2 * ratio * cov + ratio**2 * var_b, 0.0)) / abs(b)
    q_a = b**2 - z**2 * var_b
    q_b = a * b - z**2 * cov
    q_c = a**2 - z**2 * var_a
    discriminant = q_b**2 - q_a * q_c
    significant = q_a > 0
    lower: float | None = None
    upper: float | None = None
    if significant and discriminant >= 0:
        root = math.sqrt(discriminant)
        lower, upper = (q_b - root) / q_a, (q_b + root) / q_a
    return Recovery(ratio, lower, upper, ratio - z * delta_se, ratio + z * delta_se, significant)


@dataclass(frozen=True)
class Power:
    minimum_detectable_effect: float  # absolute, in the metric's unit
    relative_mde: float | None
    units_per_arm: tuple[int, int]


def minimum_detectable_effect(
    *,
    baseline_mean: float,
    baseline_variance: float,
    total_units: int,
    treatment_weight: float,
    control_weight: float,
    alpha: float = 0.05,
    power: float = 0.8,
    comparisons: int = 1,
) -> Power:
    """Smallest true difference a two-sided z-test detects with `power`, arms unequal.

    Weights are the two arms' shares of `total_units` (e.g. 3/7 and 1/7 for T vs C1 of
    a 3:1:3 design). With several contrasts in the family, α is split Bonferroni-wise,
    a conservative stand-in for Holm.
    """
    n_t = total_units * treatment_weight
    n_c = total_units * control_weight
    z = normal_quantile(1 - alpha / (2 * comparisons)) + normal_quantile(power)
    mde = z * math.sqrt(baseline_variance * (1 / n_t + 1 / n_c))
    relative = mde / abs(baseline_mean) if baseline_mean else None
    return Power(mde, relative, (int(n_t), int(n_c)))


def required_units(
    *,
    effect: float,
    baseline_variance: float,
    treatment_weight: float,
    control_weight: float,
    alpha: float = 0.05,
    power: float = 0.8,
    comparisons: int = 1,
) -> int:
    """Total units the whole experiment needs for the two arms to detect `effect`."""
    z = normal_quantile(1 - alpha / (2 * comparisons)) + normal_quantile(power)
    per = z**2 * baseline_variance * (1 / treatment_weight + 1 / control_weight) / effect**2
    return math.ceil(per)


def standardised_mean_difference(a: MeanStats, b: MeanStats) -> float:
    """(mean_a − mean_b) / √((s²_a + s²_b) / 2); |SMD| > 0.1 is the usual imbalance flag."""
    pooled = math.sqrt((a.variance + b.variance) / 2)
    return (a.mean - b.mean) / pooled if pooled > 0 else 0.0


def contingency_p_value(table: Sequence[Sequence[int]]) -> float:
    """Chi-square test of independence of arm and a category (country, device)."""
    matrix = np.asarray(table, dtype=float)
    matrix = matrix[:, matrix.sum(axis=0) > 0]
    matrix = matrix[matrix.sum(axis=1) > 0]
    if matrix.shape[0] < 2 or matrix.shape[1] < 2:
        return 1.0
    expected = np.outer(matrix.sum(axis=1), matrix.sum(axis=0)) / matrix.sum()
    chi = float(((matrix - expected) ** 2 / expected).sum())
    dof = (matrix.shape[0] - 1) * (matrix.shape[1] - 1)
    return chi2_survival(chi, dof)


def poisson_point_variances(counts: Sequence[float], exposures: Sequence[float]) -> list[float]:
    """Sampling variance of each rate count_d / exposure_d of a series under a Poisson null.

    Point d's variance is (λ_d + 1) / exposure_d², with λ_d = the series' pooled rate
    (Σ counts / Σ exposures) × exposure_d. Why not the observed count: on a sparse series
    most days count 0 events, an observed variance of 0, and the first day with one
    conversion would be infinitely far from the median. Why the pooled rate and not the
    median one: the median of a sparse series is 0 too. Why one event more: at small λ the
    Poisson tail is far heavier than the normal one a z-score assumes (with variance λ,
    P(|z| > 5) reaches 7·10⁻⁴ a day at λ ≈ 1.4); with λ + 1 it stays below 4·10⁻⁵ a day
    for every λ, and the extra event is negligible once days count dozens. A real anomaly
    inflates the pooled rate, and so this floor, by its own share of the total only: a day
    with 50 times the usual count still stands out.
    """
    c = np.asarray(counts, dtype=float)
    e = np.asarray(exposures, dtype=float)
    if c.shape != e.shape:
        raise ValueError("counts and exposures differ in length")
    if c.size == 0:
        return []
    if np.any(e <= 0) or np.any(c < 0):
        raise ValueError("exposures must be positive and counts non-negative")
    rate = float(c.sum() / e.sum())
    return [float(v) for v in (rate * e + 1.0) / e**2]


def robust_z_scores(
    series: Sequence[float], *, noise: float | Sequence[float] = 0.0
) -> list[float]:
    """(x − median) / scale with scale = max(1.4826 · MAD, `noise`).

    `noise` is the sampling standard deviation expected of a point, one for all or one per
    point: a sparse series (a few conversions a day) has a tiny MAD by chance, and chance
    is not an anomaly. Per point because a ratio's day with few trials (clicks) is noisier
    than its typical day.
    """
    values = np.asarray(series, dtype=float)
    if values.size == 0:
        return []
    floor = np.broadcast_to(np.asarray(noise, dtype=float), values.shape)
    median = np.median(values)
    scale = np.maximum(1.4826 * float(np.median(np.abs(values - median))), floor)
    return [
        float((v - median) / s)
        if s > 0
        else (0.0 if v == median else math.copysign(math.inf, v - median))
        for v, s in zip(values, scale, strict=True)
    ]
