"""Statistics of email KPIs: Wilson intervals, the two-proportion z-test, benchmark bands."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

# The usual direct-email-marketing benchmark bands (share of the denominator).
BENCHMARKS: dict[str, tuple[float, float]] = {
    "delivery_rate": (0.90, 0.95),
    "open_rate": (0.08, 0.20),
    "click_through_rate": (0.005, 0.03),
}

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Rate:
    numerator: int
    denominator: int
    value: float | None
    low: float | None
    high: float | None
    benchmark: tuple[float, float] | None = None
    band: Literal["below", "within", "above"] | None = None


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval; stays inside [0, 1] and is sound for small samples."""
    if trials <= 0:
        raise ValueError("trials must be positive")
    if not 0 <= successes <= trials:
        raise ValueError("successes must be between 0 and trials")
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = (z / (1 + z2 / trials)) * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    # Rounding can put a bound a hair past p at 0 or 1 successes; the interval holds p.
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def rate(numerator: int, denominator: int, *, name: str | None = None) -> Rate:
    benchmark = BENCHMARKS.get(name) if name else None
    if denominator <= 0:
        return Rate(numerator, denominator, None, None, None, benchmark, None)
    value = numerator / denominator
    low, high = wilson_interval(numerator, denominator)
    band: Literal["below", "within", "above"] | None = None
    if benchmark is not None:
        band = "below" if value < benchmark[0] else "above" if value > benchmark[1] else "within"
    return Rate(numerator, denominator, value, low, high, benchmark, band)


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal variable."""
    return 0.5 * math.erfc(z / math.sqrt(2))


@dataclass(frozen=True)
class ZTest:
    z: float
    p_value: float


def two_proportion_z_test(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int
) -> ZTest:
    """Two-sided test that two proportions differ, with the pooled standard error."""
    if trials_a <= 0 or trials_b <= 0:
        raise ValueError("both groups need at least one trial")
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
    if se == 0:
        return ZTest(z=0.0, p_value=1.0)
    z = (successes_b / trials_b - successes_a / trials_a) / se
    return ZTest(z=z, p_value=min(1.0, 2 * normal_sf(abs(z))))


@dataclass(frozen=True)
class AbDecision:
    winner: Literal["A", "B"] | None
    reason: str
    test: ZTest | None


def choose_winner(
    *,
    successes_a: int,
    trials_a: int,
    successes_b: int,
    trials_b: int,
    min_sample: int,
    alpha: float,
) -> AbDecision:
    """B wins only when it is significantly better, A only when significantly better."""
    if trials_a < min_sample or trials_b < min_sample:
        return AbDecision(None, f"each variant needs at least {min_sample} deliveries", None)
    test = two_proportion_z_test(successes_a, trials_a, successes_b, trials_b)
    if test.p_value >= alpha:
        return AbDecision(None, f"no significant difference (p = {test.p_value:.3f})", test)
    winner: Literal["A", "B"] = "B" if test.z > 0 else "A"
    return AbDecision(winner, f"significant at alpha {alpha} (p = {test.p_value:.4f})", test)
