"""A profile's state as a fold over its events: one event's contribution, and `combine`.

`combine` is associative and commutative, with ties broken by a total order, so a
profile built event by event, two profiles merged, and a profile derived again from
its events after a split all reach the same state: nothing is lost or counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Literal

import orjson

from accord.core.clock import iso, parse_instant

TraitPolicy = Literal["latest", "first", "max", "min"]
RECENT_PRODUCTS = 10
VIEWED = "Product Viewed"
CARTED = "Product Added"
PURCHASED = "Order Completed"

# (iso timestamp, product id, category or "")
ProductSeen = tuple[str, str, str]


@dataclass
class ProfileState:
    """Everything a profile holds that is derived from its events."""

    traits: dict[str, Any] = field(default_factory=dict)
    trait_times: dict[str, str] = field(default_factory=dict)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    event_count: int = 0
    # Per track event name, and per call type for the other calls ("page", "identify").
    event_counts: dict[str, int] = field(default_factory=dict)
    order_count: int = 0
    spend_cents: int = 0
    last_order_at: datetime | None = None
    # Kept in `details` (profiles derived before it existed have none until derived again).
    first_order_at: datetime | None = None
    last_cart_at: datetime | None = None
    last_viewed: list[ProductSeen] = field(default_factory=list)
    last_carted: list[ProductSeen] = field(default_factory=list)
    last_purchased: list[ProductSeen] = field(default_factory=list)

    @property
    def cart_abandoned(self) -> bool:
        """A product was added to the cart after the last completed order (or with none)."""
        if self.last_cart_at is None:
            return False
        return self.last_order_at is None or self.last_order_at < self.last_cart_at

    def details(self) -> dict[str, Any]:
        return {
            "event_counts": dict(sorted(self.event_counts.items())),
            "last_viewed": [list(p) for p in self.last_viewed],
            "last_carted": [list(p) for p in self.last_carted],
            "last_purchased": [list(p) for p in self.last_purchased],
            "first_order_at": iso(self.first_order_at) if self.first_order_at else None,
        }

    def computed(self) -> dict[str, Any]:
        """The computed traits as the API shows them."""
        return {
            "first_seen": iso(self.first_seen) if self.first_seen else None,
            "last_seen": iso(self.last_seen) if self.last_seen else None,
            "event_count": self.event_count,
            "event_counts": dict(sorted(self.event_counts.items())),
            "order_count": self.order_count,
            "total_spend": self.spend_cents / 100,
            "average_order_value": (
                round(self.spend_cents / self.order_count / 100, 2) if self.order_count else None
            ),
            "first_order_at": iso(self.first_order_at) if self.first_order_at else None,
            "last_order_at": iso(self.last_order_at) if self.last_order_at else None,
            "last_cart_at": iso(self.last_cart_at) if self.last_cart_at else None,
            "cart_abandoned": self.cart_abandoned,
            "last_viewed_products": [p[1] for p in self.last_viewed],
            "last_viewed_categories": _categories(self.last_viewed),
            "last_carted_products": [p[1] for p in self.last_carted],
            "last_carted_categories": _categories(self.last_carted),
            "last_purchased_products": [p[1] for p in self.last_purchased],
            "last_purchased_categories": _categories(self.last_purchased),
        }


def _categories(seen: list[ProductSeen]) -> list[str]:
    out: list[str] = []
    for _, _, category in seen:
        if category and category not in out:
            out.append(category)
    return out


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _cents(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return 0
    if not amount.is_finite():
        return 0
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _products(properties: dict[str, Any], stamp: str) -> list[ProductSeen]:
    lines = properties.get("products")
    items = [_mapping(p) for p in lines] if isinstance(lines, list) else [properties]
    out = []
    for item in items:
        product = item.get("product_id", item.get("sku"))
        if isinstance(product, str | int) and not isinstance(product, bool) and str(product):
            category = item.get("category")
            out.append((stamp, str(product), category if isinstance(category, str) else ""))
    return _recent(out)


def _recent(seen: list[ProductSeen]) -> list[ProductSeen]:
    """Newest first, each product once (at its newest time), at most RECENT_PRODUCTS."""
    newest: dict[str, ProductSeen] = {}
    for entry in seen:
        kept = newest.get(entry[1])
        if kept is None or entry > kept:
            newest[entry[1]] = entry
    return sorted(newest.values(), reverse=True)[:RECENT_PRODUCTS]


def contribution(event: dict[str, Any]) -> ProfileState:
    """What one event adds to the profile it belongs to."""
    when = parse_instant(event["timestamp"])
    stamp = iso(when)
    kind = str(event["type"])
    name = event.get("event") if kind == "track" else None
    label = str(name) if isinstance(name, str) and name else kind
    state = ProfileState(first_seen=when, last_seen=when, event_count=1, event_counts={label: 1})
    if kind == "identify":
        for key, value in _mapping(event.get("traits")).items():
            state.traits[key] = value
            state.trait_times[key] = stamp
    properties = _mapping(event.get("properties"))
    if name == VIEWED:
        state.last_viewed = _products(properties, stamp)
    elif name == CARTED:
        state.last_carted = _products(properties, stamp)
        state.last_cart_at = when
    elif name == PURCHASED:
        state.last_purchased = _products(properties, stamp)
        state.last_order_at = when
        state.first_order_at = when
        state.order_count = 1
        state.spend_cents = _cents(properties.get("revenue", properties.get("total")))
    return state


def _order_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (2, orjson.dumps(value).decode())
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    return (2, orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode())


def _trait_key(policy: TraitPolicy, value: Any, stamp: str) -> tuple[Any, ...]:
    """A total order on (value, time): the greatest key wins."""
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    if policy == "latest":
        return (stamp, text)
    if policy == "first":
        return (_Reversed(stamp), _Reversed(text))
    if policy == "max":
        return (_order_key(value), stamp, text)
    return (_Reversed(_order_key(value)), stamp, text)


@dataclass(frozen=True)
class _Reversed:
    key: Any

    def __lt__(self, other: _Reversed) -> bool:
        return bool(other.key < self.key)

    def __gt__(self, other: _Reversed) -> bool:
        return bool(other.key > self.key)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


def combine(
    a: ProfileState, b: ProfileState, policies: dict[str, TraitPolicy] | None = None
) -> ProfileState:
    """The state of a profile holding the events of both `a` and `b`."""
    policies = policies or {}
    traits, times = dict(a.traits), dict(a.trait_times)
    for key, value in b.traits.items():
        stamp = b.trait_times[key]
        if key not in traits:
            traits[key], times[key] = value, stamp
            continue
        policy = policies.get(key, "latest")
        if _trait_key(policy, value, stamp) > _trait_key(policy, traits[key], times[key]):
            traits[key], times[key] = value, stamp
    counts = dict(a.event_counts)
    for key, count in b.event_counts.items():
        counts[key] = counts.get(key, 0) + count
    return ProfileState(
        traits=traits,
        trait_times=times,
        first_seen=_earliest(a.first_seen, b.first_seen),
        last_seen=_latest(a.last_seen, b.last_seen),
        event_count=a.event_count + b.event_count,
        event_counts=counts,
        order_count=a.order_count + b.order_count,
        spend_cents=a.spend_cents + b.spend_cents,
        last_order_at=_latest(a.last_order_at, b.last_order_at),
        first_order_at=_earliest(a.first_order_at, b.first_order_at),
        last_cart_at=_latest(a.last_cart_at, b.last_cart_at),
        last_viewed=_recent([*a.last_viewed, *b.last_viewed]),
        last_carted=_recent([*a.last_carted, *b.last_carted]),
        last_purchased=_recent([*a.last_purchased, *b.last_purchased]),
    )


def derive(
    events: list[dict[str, Any]], policies: dict[str, TraitPolicy] | None = None
) -> ProfileState:
    state = ProfileState()
    for event in events:
        state = combine(state, contribution(event), policies)
    return state


def from_details(details: dict[str, Any]) -> dict[str, Any]:
    """The list fields of `ProfileState.details()` back as tuples."""
    first_order = details.get("first_order_at")
    return {
        "event_counts": dict(details.get("event_counts", {})),
        "first_order_at": parse_instant(first_order) if isinstance(first_order, str) else None,
        **{
            key: [tuple(p) for p in details.get(key, [])]
            for key in ("last_viewed", "last_carted", "last_purchased")
        },
    }
