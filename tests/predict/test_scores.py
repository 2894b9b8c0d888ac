"""How the predictions page shows a model's scores: a histogram of likelihoods, deciles
of values."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from accord.predict.service import decile_means, likelihood_histogram


def test_likelihoods_fall_in_tenths_and_one_counts_in_the_last() -> None:
    assert likelihood_histogram([0.0, 0.05, 0.1, 0.55, 0.99, 1.0]) == [2, 1, 0, 0, 0, 1, 0, 0, 0, 2]
    assert likelihood_histogram([]) == [0] * 10


def test_deciles_are_means_of_tenths_lowest_first() -> None:
    assert decile_means(list(range(100, 0, -1))) == [5.5 + 10 * i for i in range(10)]
    assert decile_means([3.0, 1.0]) == [1.0, 3.0]  # fewer people than tenths
    assert decile_means([]) == []


@given(st.lists(st.floats(0, 1), max_size=200))
def test_every_score_is_counted_once(scores: list[float]) -> None:
    assert sum(likelihood_histogram(scores)) == len(scores)


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=200))
def test_decile_means_rise_and_stay_within_the_values(values: list[float]) -> None:
    means = decile_means(values)
    assert means == sorted(means)
    assert min(values) - 0.01 <= means[0] and means[-1] <= max(values) + 0.01
