"""A small shop's history with a signal: each person keeps to one category."""

from __future__ import annotations

from datetime import datetime, timedelta
from random import Random
from typing import Any

CATEGORIES = ("jackets", "boots", "tents", "lamps")
PRODUCTS = {c: [f"{c[:3]}-{i}" for i in range(5)] for c in CATEGORIES}


def _event(
    n: int, person: int, at: datetime, event: str, properties: dict[str, Any]
) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": f"m-{person}-{n}",
        "userId": f"u-{person}",
        "anonymousId": f"a-{person}",
        "event": event,
        "timestamp": at.isoformat(),
        "properties": properties,
    }


def history(people: int, *, end: datetime, seed: int = 3) -> list[dict[str, Any]]:
    """Per person: views in their category, an order a month before `end`, more views,
    and a last order (the one the evaluation holds out) a week before `end`."""
    rng = Random(seed)
    events: list[dict[str, Any]] = []
    for person in range(people):
        favourite = PRODUCTS[CATEGORIES[person % len(CATEGORIES)]]
        at = end - timedelta(days=40 + rng.random() * 5)
        n = 0

        def add(event: str, properties: dict[str, Any], step: float, who: int = person) -> None:
            nonlocal at, n
            at += timedelta(minutes=step)
            events.append(_event(n, who, at, event, properties))
            n += 1

        for product in rng.sample(favourite, 3):
            add("Product Viewed", {"product_id": product}, 3)
        first = rng.sample(favourite, 2)
        add(
            "Order Completed",
            {
                "order_id": f"o-{person}-1",
                "products": [{"product_id": p, "quantity": 1} for p in first],
            },
            5,
        )
        at = end - timedelta(days=7 + rng.random())
        last = rng.choice([p for p in favourite if p not in first])
        add("Product Viewed", {"product_id": last}, 1)
        add(
            "Order Completed",
            {"order_id": f"o-{person}-2", "products": [{"product_id": last, "quantity": 1}]},
            5,
        )
    return events
