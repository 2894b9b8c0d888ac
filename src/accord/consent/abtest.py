"""Banner A/B tests: opt-in rate of each variant against the control, with a z-test.

Only each visitor's first decision on the tested notice version counts (later changes
are not caused by the banner variant). Variants are compared with the control (the
first variant by name) by a two-proportion z-test; a variant wins only when its
difference is significant after a Bonferroni correction for the number of
comparisons, with its 95 % (corrected) confidence interval. There is no "best after N
hours": without significance the answer is "no winner yet", with the sample still
needed for the observed effect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import pyarrow as pa
from ibis.backends import BaseBackend

from accord.consent.analytics import with_choice
from accord.engine.tables import register

_NORMAL = NormalDist()


@dataclass(frozen=True)
class Comparison:
    variant: str
    visitors: int
    opted_in: int
    rate: float
    difference: float | None  # rate minus the control's rate
    interval: tuple[float, float] | None  # of the difference, corrected
    z: float | None
    p_value: float | None
    significant: bool


def two_proportions(
    successes_a: int, n_a: int, successes_b: int, n_b: int, *, alpha: float = 0.05
) -> tuple[float, tuple[float, float], float, float]:
    """Difference b - a, its (1 - alpha) Wald interval, pooled z and two-sided p-value."""
    if n_a == 0 or n_b == 0:
        raise ValueError("both groups need at least one visitor")
    p_a, p_b = successes_a / n_a, successes_b / n_b
    difference = p_b - p_a
    pooled = (successes_a + successes_b) / (n_a + n_b)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = difference / pooled_se if pooled_se > 0 else 0.0
    p_value = 2 * (1 - _NORMAL.cdf(abs(z)))
    se = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    margin = _NORMAL.inv_cdf(1 - alpha / 2) * se
    return difference, (difference - margin, difference + margin), z, p_value


def sample_needed(p_control: float, difference: float, *, alpha: float, power: float) -> int | None:
    """Visitors per variant to detect `difference` with `power` at level `alpha`."""
    if difference == 0 or not 0 < p_control < 1:
        return None
    p_other = min(max(p_control + difference, 1e-9), 1 - 1e-9)
    z_alpha = _NORMAL.inv_cdf(1 - alpha / 2)
    z_power = _NORMAL.inv_cdf(power)
    variance = p_control * (1 - p_control) + p_other * (1 - p_other)
    return math.ceil((z_alpha + z_power) ** 2 * variance / difference**2)


def first_choices_expr(
    decisions_table: Any, *, property_id: str, version: int, purpose: str
) -> Any:
    """Visitors' first decision on `purpose` under the tested notice version, per variant."""
    table = with_choice(
        decisions_table.filter(
            (decisions_table.property_id == property_id)
            & (decisions_table.notice_version == version)
            & decisions_table.variant.notnull()
        )
    )
    first = table.filter((table.choice == "first") & (table.purpose == purpose))
    return (
        first.group_by("variant")
        .aggregate(visitors=first.count(), opted_in=first.granted.cast("int64").sum())
        .order_by("variant")
    )


def evaluate(
    backend: BaseBackend,
    decisions: pa.Table,
    *,
    property_id: str,
    version: int,
    purpose: str = "marketing",
    alpha: float = 0.05,
    power: float = 0.8,
) -> dict[str, Any]:
    """The test's report: each variant's rate, the comparison with the control, the winner."""
    expr = first_choices_expr(
        register(backend, decisions, name="consent_abtest"),
        property_id=property_id,
        version=version,
        purpose=purpose,
    )
    groups = [g for g in expr.to_pyarrow().to_pylist() if g["visitors"]]
    if not groups:
        return {
            "purpose": purpose,
            "version": version,
            "variants": [],
            "winner": None,
            "method": _METHOD,
            "note": "no decisions yet",
        }
    control = groups[0]
    comparisons = max(len(groups) - 1, 1)
    corrected = alpha / comparisons
    results = [
        Comparison(
            variant=control["variant"],
            visitors=control["visitors"],
            opted_in=control["opted_in"],
            rate=control["opted_in"] / control["visitors"],
            difference=None,
            interval=None,
            z=None,
            p_value=None,
            significant=False,
        )
    ]
    for group in groups[1:]:
        difference, interval, z, p_value = two_proportions(
            control["opted_in"],
            control["visitors"],
            group["opted_in"],
            group["visitors"],
            alpha=corrected,
        )
        results.append(
            Comparison(
                variant=group["variant"],
                visitors=group["visitors"],
                opted_in=group["opted_in"],
                rate=group["opted_in"] / group["visitors"],
                difference=difference,
                interval=interval,
                z=z,
                p_value=p_value,
                significant=p_value < corrected,
            )
        )
    better = [r for r in results[1:] if r.significant and (r.difference or 0) > 0]
    worse_all = all(r.significant and (r.difference or 0) < 0 for r in results[1:])
    if better:
        winner: str | None = max(better, key=lambda r: r.rate).variant
    elif len(results) > 1 and worse_all:
        winner = control["variant"]
    else:
        winner = None
    needed = None
    if winner is None and len(results) > 1:
        best = max(results[1:], key=lambda r: abs(r.difference or 0))
        needed = sample_needed(results[0].rate, best.difference or 0, alpha=corrected, power=power)
    return {
        "purpose": purpose,
        "version": version,
        "control": control["variant"],
        "variants": [r.__dict__ for r in results],
        "winner": winner,
        "alpha": alpha,
        "visitors_needed_per_variant": needed,
        "method": _METHOD,
    }


_METHOD = (
    "first decision per visitor; two-proportion z-test (pooled) against the control, "
    "Bonferroni-corrected; Wald interval of the difference"
)
