"""Banner A/B tests: sticky assignment, the z-test against known values, the report."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.consent.abtest import evaluate, sample_needed, two_proportions
from accord.consent.analytics import DECISIONS_SCHEMA, opt_in_rates
from accord.consent.cmp_config import assign_variant, pick_language
from accord.consent.config import text_hash
from accord.engine.connection import connect

VARIANTS = [{"variant": "A", "weight": 1}, {"variant": "B", "weight": 1}]


def test_assignment_is_sticky_and_balanced() -> None:
    picks = [
        assign_variant(VARIANTS, seed="s1", anonymous_id=f"v{i}")["variant"] for i in range(4000)
    ]
    again = [
        assign_variant(VARIANTS, seed="s1", anonymous_id=f"v{i}")["variant"] for i in range(4000)
    ]
    assert picks == again
    share = Counter(picks)["A"] / len(picks)
    assert 0.46 < share < 0.54
    other_seed = [
        assign_variant(VARIANTS, seed="s2", anonymous_id=f"v{i}")["variant"] for i in range(4000)
    ]
    assert other_seed != picks  # a new test reshuffles visitors
    assert assign_variant(VARIANTS, seed="s1", anonymous_id=None)["variant"] == "A"


def test_weights_are_respected() -> None:
    weighted = [{"variant": "A", "weight": 9}, {"variant": "B", "weight": 1}]
    picks = Counter(
        assign_variant(weighted, seed="w", anonymous_id=str(i))["variant"] for i in range(5000)
    )
    assert 0.87 < picks["A"] / 5000 < 0.93


def test_two_proportions_matches_a_worked_example() -> None:
    # 200/1000 vs 250/1000: pooled p = 0.225, z = 0.05 / sqrt(.225*.775*.002) = 2.6774
    difference, (low, high), z, p = two_proportions(200, 1000, 250, 1000)
    assert difference == pytest.approx(0.05)
    assert z == pytest.approx(2.6774, abs=1e-4)
    assert p == pytest.approx(0.00742, abs=1e-4)
    se = math.sqrt(0.2 * 0.8 / 1000 + 0.25 * 0.75 / 1000)
    assert (low, high) == pytest.approx((0.05 - 1.959964 * se, 0.05 + 1.959964 * se), abs=1e-6)


@given(
    a=st.integers(0, 500), n_a=st.integers(1, 500), b=st.integers(0, 500), n_b=st.integers(1, 500)
)
def test_z_test_is_antisymmetric_and_p_is_a_probability(a: int, n_a: int, b: int, n_b: int) -> None:
    a, b = min(a, n_a), min(b, n_b)
    d1, _, z1, p1 = two_proportions(a, n_a, b, n_b)
    d2, _, z2, p2 = two_proportions(b, n_b, a, n_a)
    assert d1 == pytest.approx(-d2) and z1 == pytest.approx(-z2)
    assert 0 <= p1 <= 1 and p1 == pytest.approx(p2)


def test_sample_needed_for_a_five_point_lift() -> None:
    # Classic figure: about 1,100 per arm for 20 % → 25 % at alpha 0.05, power 0.8.
    needed = sample_needed(0.2, 0.05, alpha=0.05, power=0.8)
    assert needed is not None and 1050 < needed < 1150


def decisions(groups: dict[str, tuple[int, int]], *, version: int = 2) -> pa.Table:
    rows: dict[str, list[Any]] = {name: [] for name in DECISIONS_SCHEMA.names}
    start = datetime(2026, 11, 1, tzinfo=UTC)
    position = 0
    for variant, (visitors, opted_in) in groups.items():
        for i in range(visitors):
            position += 1
            values = {
                "record_id": f"r{position}",
                "position": position,
                "subject": f"{variant}-{i}",
                "property_id": "p1",
                "recorded_at": start + timedelta(minutes=position),
                "day": (start + timedelta(minutes=position)).date(),
                "purpose": "marketing",
                "granted": i < opted_in,
                "notice_version": version,
                "variant": variant,
                "country": "DE",
                "device": "desktop",
                "regime": "gdpr",
                "source": "banner",
            }
            for key, value in values.items():
                rows[key].append(value)
    # A later change of mind by one B visitor is not a first choice and does not count.
    position += 1
    rows_extra = {
        "record_id": "late",
        "position": position,
        "subject": "B-0",
        "property_id": "p1",
        "recorded_at": start + timedelta(days=3),
        "day": (start + timedelta(days=3)).date(),
        "purpose": "marketing",
        "granted": False,
        "notice_version": version,
        "variant": "B",
        "country": "DE",
        "device": "desktop",
        "regime": "gdpr",
        "source": "preference_centre",
    }
    for key, value in rows_extra.items():
        rows[key].append(value)
    return pa.table(rows, schema=DECISIONS_SCHEMA)


def test_a_clear_winner_is_named_with_its_interval() -> None:
    report = evaluate(
        connect("duckdb://"),
        decisions({"A": (1000, 200), "B": (1000, 260)}),
        property_id="p1",
        version=2,
    )
    assert report["winner"] == "B"
    b = report["variants"][1]
    assert b["visitors"] == 1000 and b["opted_in"] == 260
    assert b["significant"] and b["interval"][0] > 0


def test_no_winner_without_significance() -> None:
    report = evaluate(
        connect("duckdb://"),
        decisions({"A": (100, 20), "B": (100, 23)}),
        property_id="p1",
        version=2,
    )
    assert report["winner"] is None
    assert report["visitors_needed_per_variant"] > 100
    empty = evaluate(connect("duckdb://"), decisions({"A": (5, 1)}), property_id="p1", version=9)
    assert empty["winner"] is None and empty["variants"] == []


def test_opt_in_rates_by_variant_and_choice() -> None:
    table = decisions({"A": (10, 5), "B": (10, 8)})
    by_variant = {r["variant"]: r for r in opt_in_rates(connect("duckdb://"), table, by="variant")}
    assert by_variant["A"]["opt_in_rate"] == 0.5
    assert (by_variant["B"]["decisions"], by_variant["B"]["granted"]) == (11, 8)
    by_choice = {r["choice"]: r for r in opt_in_rates(connect("duckdb://"), table, by="choice")}
    assert by_choice["change"]["decisions"] == 1 and by_choice["first"]["decisions"] == 20


@pytest.mark.spark
def test_opt_in_rates_agree_on_spark() -> None:
    table = decisions({"A": (10, 5), "B": (10, 8)})
    duck = opt_in_rates(connect("duckdb://"), table, by="choice")
    spark = opt_in_rates(connect("pyspark://local[1]"), table, by="choice")
    assert spark == duck


@pytest.mark.parametrize(
    ("requested", "accept", "language"),
    [
        ("fr", "de", "fr"),
        (None, "de-AT,de;q=0.9,en;q=0.5", "de"),
        (None, "es;q=0.2,fr;q=0.8", "fr"),
        (None, "pt-BR", "en"),
        (None, None, "en"),
        ("FR-ca", None, "fr"),
        (None, "*;q=1, de;q=0", "en"),
    ],
)
def test_pick_language(requested: str | None, accept: str | None, language: str) -> None:
    assert (
        pick_language(["de", "en", "fr"], requested=requested, accept_language=accept, default="en")
        == language
    )


def test_text_hash_is_canonical() -> None:
    texts = {"title": "Hé", "description": "x"}
    purposes = [{"key": "marketing", "name": "M", "description": "d"}]
    assert text_hash(texts, purposes) == text_hash(dict(reversed(list(texts.items()))), purposes)
    assert text_hash(texts, purposes) != text_hash({**texts, "title": "He"}, purposes)
