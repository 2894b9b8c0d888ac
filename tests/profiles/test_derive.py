"""Profile state as a fold: merging in any order or grouping gives the same profile."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from accord.profiles.derive import ProfileState, combine, contribution, derive

names = st.sampled_from(["Product Viewed", "Product Added", "Order Completed", "Signed Up"])
traits = st.dictionaries(
    st.sampled_from(["plan", "city", "age"]),
    st.one_of(st.integers(-5, 5), st.sampled_from(["a", "b"]), st.none()),
    max_size=2,
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    minute = draw(st.integers(0, 5))
    when = f"2026-11-10T10:{minute:02d}:00.000Z"
    if draw(st.booleans()):
        return {"type": "identify", "timestamp": when, "traits": draw(traits)}
    products = [
        {"product_id": draw(st.sampled_from(["p1", "p2", "p3"])), "category": "shoes"}
        for _ in range(draw(st.integers(0, 2)))
    ]
    return {
        "type": "track",
        "timestamp": when,
        "event": draw(names),
        "properties": {
            "revenue": draw(st.sampled_from([0, 9.99, "12.5", 0.1, None])),
            "products": products,
        },
    }


policies = st.dictionaries(
    st.sampled_from(["plan", "city", "age"]), st.sampled_from(["latest", "first", "max", "min"])
)


@given(st.lists(events(), max_size=12), st.randoms(), policies)
def test_order_does_not_matter(evs: list[dict[str, Any]], rnd: Any, pol: Any) -> None:
    shuffled = list(evs)
    rnd.shuffle(shuffled)
    assert derive(evs, pol) == derive(shuffled, pol)


@given(st.lists(events(), max_size=12), st.integers(0, 12), policies)
def test_merging_two_parts_equals_the_whole(evs: list[dict[str, Any]], cut: int, pol: Any) -> None:
    merged = combine(derive(evs[:cut], pol), derive(evs[cut:], pol), pol)
    assert merged == derive(evs, pol)
    assert merged.event_count == len(evs)
    assert sum(merged.event_counts.values()) == len(evs)


@given(events(), events(), events())
def test_combine_is_associative(a: Any, b: Any, c: Any) -> None:
    x, y, z = contribution(a), contribution(b), contribution(c)
    assert combine(combine(x, y), z) == combine(x, combine(y, z))


def test_trait_policies_and_computed_traits() -> None:
    evs = [
        {"type": "identify", "timestamp": "2026-11-10T10:00:00Z", "traits": {"plan": "b", "n": 3}},
        {"type": "identify", "timestamp": "2026-11-10T11:00:00Z", "traits": {"plan": "a", "n": 1}},
        {
            "type": "track",
            "timestamp": "2026-11-10T12:00:00Z",
            "event": "Order Completed",
            "properties": {
                "revenue": 19.99,
                "products": [{"product_id": "p1", "category": "hats"}],
            },
        },
        {
            "type": "track",
            "timestamp": "2026-11-10T13:00:00Z",
            "event": "Product Added",
            "properties": {"product_id": "p2", "category": "shoes"},
        },
    ]
    assert derive(evs).traits == {"plan": "a", "n": 1}
    assert derive(evs, {"plan": "first", "n": "max"}).traits == {"plan": "b", "n": 3}
    computed = derive(evs).computed()
    assert computed["total_spend"] == 19.99
    assert computed["average_order_value"] == 19.99
    assert computed["cart_abandoned"] is True
    assert computed["last_purchased_categories"] == ["hats"]
    assert computed["last_carted_products"] == ["p2"]
    assert computed["event_counts"] == {"Order Completed": 1, "Product Added": 1, "identify": 2}
    assert ProfileState().cart_abandoned is False
