"""The grown condition language end to end: paths into event JSON, aggregates and
computed traits, through the worker, a refresh on DuckDB and real-time decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accord.accounts.models import Bootstrap
from accord.audiences.computed import computed_traits
from accord.audiences.conditions import Catalog, validate
from accord.audiences.definitions import is_realtime
from accord.audiences.text import parse, render
from accord.core.errors import InvalidInput
from accord.core.settings import Settings
from accord.profiles.service import ComputedFacts
from accord.store.db import Store
from tests.audiences.test_service import create, identify, ingest, members, refresh, track

SHOP = [
    identify(1, "ann", 20, email="ann@example.com"),
    identify(2, "bob", 20, email="bob@example.com"),
    identify(3, "cyd", 20, email="cyd@example.com"),
    track(4, "ann", "Order Completed", 40, revenue=300, store_id="s1", payment={"method": "card"}),
    track(5, "ann", "Order Completed", 2, revenue=250, store_id="s2", payment={"method": "cash"}),
    track(6, "bob", "Order Completed", 3, revenue=90, store_id="s1", payment={"method": "card"}),
    track(7, "bob", "Order Completed", 1, revenue=20, store_id=1, payment="card"),
    track(8, "cyd", "Product Viewed", 1, store_id="s1"),
]  # fmt: skip


@pytest.fixture
def shop(store: Store, keys: Bootstrap, settings: Settings) -> Bootstrap:
    ingest(store, keys, settings, SHOP)
    return keys


CASES = [
    ('did "Order Completed" where properties.store_id = "s1"', {"ann", "bob"}),
    ('did "Order Completed" where properties.payment.method = "card"', {"ann", "bob"}),
    ('did "Order Completed" where properties.payment.method = "cash"', {"ann"}),
    ('did "Order Completed" where properties.store_id = 1', {"bob"}),
    ('did "Order Completed" where properties.payment exists at least 2 times', {"ann", "bob"}),
    ('did "Order Completed" with sum of revenue > 500', {"ann"}),
    ('did "Order Completed" with average of revenue >= 55', {"ann", "bob"}),
    ('did "Order Completed" with max of revenue < 100 in the last 30 days', {"bob"}),
    ('did "Order Completed" where properties.store_id = "s1" with min of revenue < 100', {"bob"}),
    ("trait total_spend > 500", {"ann"}),
    ("trait order_count = 2 and trait average_order_value = 55", {"bob"}),
    ("trait days_since_last_order <= 1", {"bob"}),
    ("trait order_count = 0", {"cyd"}),
    ('trait first_order_at < "2026-01-01" or trait last_order_at exists', {"ann", "bob"}),
]


def test_paths_aggregates_and_computed_traits_on_refresh_and_in_real_time(
    store: Store, shop: Bootstrap, settings: Settings
) -> None:
    business = shop.business_id
    ids = {text: create(store, business, f"case-{i}", text) for i, (text, _) in enumerate(CASES)}
    refresh(store, settings, business)
    for text, expected in CASES:
        assert members(store, business, ids[text]) == expected, text
    # Real time: bob orders again; the in-memory decisions agree with the engine's.
    ingest(store, shop, settings, [track(20, "bob", "Order Completed", 0, revenue=500)])
    realtime = [t for t in CASES if is_realtime(parse(t[0]))]
    assert "trait total_spend > 500" in [t for t, _ in realtime]
    after_realtime = {t: members(store, business, ids[t]) for t, _ in realtime}
    refresh(store, settings, business)
    for text, _ in realtime:
        assert members(store, business, ids[text]) == after_realtime[text], text
    assert members(store, business, ids["trait total_spend > 500"]) == {"ann", "bob"}


def test_bad_paths_and_aggregates_are_refused_naming_the_field(
    store: Store, shop: Bootstrap
) -> None:
    business = shop.business_id
    for text, field, reason in [
        ('did x where store_id = "s1"', "where[0].property", "properties.store_id"),
        ('did x where properties.a..b = "s1"', "where[0].property", "is not a plain name"),
        ('did x where "properties.a b" = "s1"', "where[0].property", "is not a plain name"),
        ('did x where payload.a = "s1"', "where[0].property", "a path starts with"),
        ("did x where properties.a.b.c.d.e.f.g exists", "where[0].property", "at most 6 keys"),
        ('did x where properties.day = "2026-01-01"', "where[0].value", "not compared as dates"),
        ('did x where properties.a > "b"', "where[0].op", "cannot order a string"),
        ("did x with sum of category > 1", "property", "it is not a number"),
        ("did x with sum of properties.x > true", None, None),
    ]:
        with pytest.raises(InvalidInput) as caught:
            create(store, business, "bad", text)
        problem = caught.value.problems[0]
        if field is not None:
            assert problem.field == f"definition.condition.{field}", text
            assert reason in problem.reason, text


def test_aggregates_round_trip_through_text() -> None:
    text = (
        'did "Order Completed" where properties.store_id = "s1", currency = "EUR" '
        "with average of properties.payment.amount >= 20.5 in the last 30 days"
    )
    assert render(parse(text)) == text
    validate(parse(text), Catalog())
    with pytest.raises(InvalidInput, match="expected 'sum', 'average', 'min' or 'max'"):
        parse("did x with median of revenue > 1")
    with pytest.raises(InvalidInput, match="expected a number"):
        parse('did x with sum of revenue > "1"')


def test_computed_traits_from_the_fold() -> None:
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    facts = ComputedFacts(
        event_count=9,
        order_count=3,
        spend_cents=10_001,
        first_order_at=now - timedelta(days=100),
        last_order_at=now - timedelta(hours=47),
        cart_abandoned=True,
    )
    assert computed_traits(facts, now) == {
        "event_count": 9,
        "order_count": 3,
        "total_spend": 100.01,
        "average_order_value": 33.34,
        "first_order_at": "2026-08-12T12:00:00.000Z",
        "last_order_at": "2026-11-18T13:00:00.000Z",
        "days_since_last_order": 1,
        "cart_abandoned": True,
    }
    never = ComputedFacts(4, 0, 0, None, None, False)
    traits = computed_traits(never, now)
    assert traits["average_order_value"] is None and traits["days_since_last_order"] is None
    assert computed_traits(None, now) == {}
