"""Entries and conversions per journey of a business since a time (the overview's widget)."""

from __future__ import annotations

from datetime import timedelta

from accord.journeys.analytics import conversions
from accord.journeys.runner import Runner
from accord.store.db import Store
from tests.journeys.helpers import ABANDONED_CART, World, track
from tests.journeys.test_runner import BIZ, T0, _events, _journey


def test_conversions_count_entries_since_the_time_per_journey(store: Store) -> None:
    runner = Runner(World().environment())
    _journey(store, ABANDONED_CART, key="cart")
    _journey(store, ABANDONED_CART | {"entry": {"type": "event", "event": "Signed Up"}}, "welcome")
    early = T0 - timedelta(days=40)
    _events(runner, store, "p0", track("Cart Updated", cart_id="c0"), at=early)
    _events(runner, store, "p0", track("Order Completed"), at=early + timedelta(minutes=5))
    _events(runner, store, "p1", track("Cart Updated", cart_id="c1"), at=T0)
    _events(runner, store, "p1", track("Order Completed"), at=T0 + timedelta(minutes=5))
    _events(runner, store, "p2", track("Cart Updated", cart_id="c2"), at=T0)
    with store.read() as conn:
        found = conversions(conn, business_id=BIZ, since=T0 - timedelta(days=30))
        everything = conversions(conn, business_id=BIZ, since=early)
        other = conversions(conn, business_id="biz_other", since=early)
    assert [(j.key, j.entered, j.converted, j.rate) for j in found] == [
        ("cart", 2, 1, 0.5),
        ("welcome", 0, 0, 0.0),
    ]
    assert [(j.key, j.entered, j.converted) for j in everything] == [
        ("cart", 3, 2),
        ("welcome", 0, 0),
    ]
    assert other == []
