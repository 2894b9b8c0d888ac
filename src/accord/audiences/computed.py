"""Computed traits: what a profile's whole history says about its orders, as traits.

They are computed once, by the fold that builds profiles from events
(`profiles/derive.py`, kept in `profile_computed` by the worker as events arrive, exact
through merges and splits and over history older than the inbox keeps). Both evaluators
read these values: the refresh puts them in the profile snapshot it sends to the
engine, and real-time decisions in the profile's facts, so they cannot disagree; the
one that depends on the clock (`days_since_last_order`) is computed from the same
instant `now` in both. A computed trait hides a stored trait of the same name.

RFM scores (`rfm_recency_score`, `rfm_frequency_score`, `rfm_monetary_score`,
`rfm_segment`) are stored traits, set by `accord profiles rfm` and kept current by the
worker (`profiles/rfm.py`); they are in `BUILTIN_TRAITS`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from accord.audiences.conditions import TraitType
from accord.core.clock import iso
from accord.profiles.service import ComputedFacts

COMPUTED_TRAITS: dict[str, TraitType] = {
    "event_count": "number",
    "order_count": "number",
    "total_spend": "number",
    "average_order_value": "number",
    "first_order_at": "datetime",
    "last_order_at": "datetime",
    "days_since_last_order": "number",
    "cart_abandoned": "boolean",
}

SECONDS_PER_DAY = 86_400


def computed_traits(facts: ComputedFacts | None, now: datetime) -> dict[str, Any]:
    """The computed traits of one profile at `now` (none for a profile without facts).
    Orders are `Order Completed` events; spend is their `revenue` (or `total`)."""
    if facts is None:
        return {}
    orders = facts.order_count
    out: dict[str, Any] = {
        "event_count": facts.event_count,
        "order_count": orders,
        "total_spend": facts.spend_cents / 100,
        "average_order_value": round(facts.spend_cents / orders / 100, 2) if orders else None,
        "first_order_at": iso(facts.first_order_at) if facts.first_order_at else None,
        "last_order_at": iso(facts.last_order_at) if facts.last_order_at else None,
        "days_since_last_order": None,
        "cart_abandoned": facts.cart_abandoned,
    }
    if facts.last_order_at is not None:
        # Whole days, floored: an order 36 hours ago was 1 day ago.
        elapsed = (now - facts.last_order_at).total_seconds()
        out["days_since_last_order"] = int(elapsed // SECONDS_PER_DAY)
    return out


def reads_computed(trait_names: Iterable[str]) -> bool:
    return any(name in COMPUTED_TRAITS for name in trait_names)


def with_computed(
    traits: dict[str, Any], facts: ComputedFacts | None, now: datetime
) -> dict[str, Any]:
    """Stored traits with the computed ones over them."""
    computed = computed_traits(facts, now)
    return {**traits, **computed} if computed else traits
