"""Assignment by hash: uniform against the weights, independent across seeds, sticky, exclusive."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from accord.experiments.assignment import arm_for, in_namespace_range, namespace_bucket
from accord.experiments.models import NAMESPACE_BUCKETS

UNITS = [f"user-{i}" for i in range(60_000)]


def test_arms_follow_the_weights() -> None:
    weights = [3, 1, 3]
    counts = np.bincount([arm_for("seed-a", u, weights)[0] for u in UNITS], minlength=3)
    expected = np.array(weights) / 7 * len(UNITS)
    assert stats.chisquare(counts, expected).pvalue > 0.001


def test_hash_positions_are_uniform() -> None:
    positions = [arm_for("seed-b", u, [1])[1] for u in UNITS]
    assert stats.kstest(positions, "uniform").pvalue > 0.001


def test_two_seeds_divide_units_independently() -> None:
    a = [arm_for("seed-1", u, [1, 1])[0] for u in UNITS]
    b = [arm_for("seed-2", u, [1, 1, 1])[0] for u in UNITS]
    table = np.zeros((2, 3))
    for i, j in zip(a, b, strict=True):
        table[i, j] += 1
    assert stats.chi2_contingency(table, correction=False).pvalue > 0.001


def test_assignment_is_sticky() -> None:
    first = [arm_for("seed", u, [1, 2, 3]) for u in UNITS[:1000]]
    assert first == [arm_for("seed", u, [1, 2, 3]) for u in UNITS[:1000]]


def test_namespace_ranges_are_mutually_exclusive() -> None:
    inside_a = {u for u in UNITS if in_namespace_range("checkout", u, 0, 3000)}
    inside_b = {u for u in UNITS if in_namespace_range("checkout", u, 3000, 10_000)}
    assert not inside_a & inside_b
    assert len(inside_a | inside_b) == len(UNITS)
    assert abs(len(inside_a) / len(UNITS) - 0.3) < 0.01
    # Without a namespace every unit is eligible.
    assert all(in_namespace_range(None, u, 0, 1) for u in UNITS[:100])


@given(st.text(min_size=1), st.text(min_size=1), st.lists(st.floats(0.01, 100), min_size=1))
def test_any_unit_gets_a_valid_arm(seed: str, unit: str, weights: list[float]) -> None:
    index, position = arm_for(seed, unit, weights)
    assert 0 <= index < len(weights)
    assert 0 <= position < 1
    assert 0 <= namespace_bucket(seed, unit) < NAMESPACE_BUCKETS
