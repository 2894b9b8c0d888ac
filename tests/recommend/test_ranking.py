"""The pure parts: ranking, the quality measures and the catalogue's parsers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.core.errors import InvalidInput
from accord.recommend.catalogue import parse_csv, parse_product
from accord.recommend.ranking import hit_and_ndcg, rank
from accord.recommend.serving import check_limit, parse_context

NEIGHBOURS = {"a": [("b", 0.9), ("c", 0.2)], "b": [("a", 0.9), ("d", 0.5)]}
POPULAR = [("p1", 10.0), ("c", 5.0), ("p2", 1.0)]


def test_context_first_then_history_then_popular() -> None:
    ranked = rank(
        history={"a": 2.0},
        neighbours=NEIGHBOURS,
        popular=POPULAR,
        exclude={"a"},
        context="b",
        limit=5,
    )
    # b's neighbours (a is bought, d left), then a's (b is the context), then popular.
    assert [(r.product_id, r.source) for r in ranked] == [
        ("d", "context"),
        ("c", "personal"),
        ("p1", "popular"),
        ("p2", "popular"),
    ]


def test_a_viewed_product_counts_as_its_own_neighbour() -> None:
    ranked = rank(history={"x": 1.0}, neighbours={}, popular=[], limit=3)
    assert [r.product_id for r in ranked] == ["x"]


@given(
    st.lists(st.sampled_from("abcdefghij"), unique=True, max_size=10),
    st.sets(st.sampled_from("abcdefghij"), min_size=1),
    st.integers(1, 12),
)
def test_hit_rate_and_ndcg_are_bounded_and_agree(
    ranked: list[str], relevant: set[str], k: int
) -> None:
    hit, ndcg = hit_and_ndcg(ranked, relevant, k)
    assert 0.0 <= ndcg <= 1.0 + 1e-12
    assert (hit == 1.0) == (ndcg > 0)
    ideal = sorted(relevant)[:k]
    # Relevant products first is the best ranking there is.
    assert hit_and_ndcg(ideal, relevant, k)[1] == pytest.approx(1.0)


@given(
    st.dictionaries(st.sampled_from("abcdef"), st.floats(0.01, 10), max_size=6),
    st.sets(st.sampled_from("abcdef")),
    st.integers(1, 10),
)
def test_rank_never_repeats_nor_shows_an_excluded_product(
    history: dict[str, float], exclude: set[str], limit: int
) -> None:
    ranked = rank(
        history=history, neighbours=NEIGHBOURS, popular=POPULAR, exclude=exclude, limit=limit
    )
    ids = [r.product_id for r in ranked]
    assert len(ids) == len(set(ids)) <= limit
    assert not set(ids) & exclude


def test_limits_and_context() -> None:
    assert check_limit(1) == 1 and check_limit(100) == 100
    for bad in (0, 101, -5):
        with pytest.raises(InvalidInput, match="limit"):
            check_limit(bad)
    assert parse_context("product:SKU-1") == "SKU-1" and parse_context(None) is None
    for bad in ("SKU-1", "product:", "category:x", "product:" + "x" * 256):
        with pytest.raises(InvalidInput, match="context"):
            parse_context(bad)


def test_product_fields_are_checked_by_name() -> None:
    product = parse_product(
        {"product_id": " p1 ", "name": "Tent", "price": "19.5", "currency": "eur", "in_stock": "no"}
    )
    assert (product.product_id, product.price, product.currency, product.in_stock) == (
        "p1",
        19.5,
        "EUR",
        False,
    )
    with pytest.raises(InvalidInput) as failed:
        parse_product(
            {
                "name": "",
                "url": "javascript:alert(1)",
                "price": "-1",
                "colour": "red",
                "in_stock": "maybe",
            }
        )
    fields = {p.field for p in failed.value.problems}
    assert fields == {"product_id", "name", "url", "price", "colour", "in_stock"}


def test_csv_import_names_row_and_column() -> None:
    good = parse_csv("product_id,name,price\np1,Tent,10\np2,Lamp,\n")
    assert [p.product_id for p in good] == ["p1", "p2"] and good[1].price is None
    with pytest.raises(InvalidInput) as failed:
        parse_csv("product_id,name,price\np1,Tent,ten\n,Lamp,1\n")
    assert [p.field for p in failed.value.problems] == ["row 1.price", "row 2.product_id"]
    with pytest.raises(InvalidInput, match="missing column name"):
        parse_csv("product_id\np1\n")


@given(st.text(max_size=300))
def test_csv_parser_answers_products_or_invalid_input(text: str) -> None:
    try:
        found = parse_csv("product_id,name\n" + text)
    except InvalidInput as exc:
        assert exc.problems
    else:
        assert all(p.product_id and p.name for p in found)
