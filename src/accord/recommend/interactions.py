"""What people did with products, from the lake's e-commerce events, on the engine.

Views and cart adds carry their product in the lake's `product_id` column; an order's
products are the `products[]` of its properties (Segment e-commerce spec), exploded here.
Every row is resolved to its profile as the worker links events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ibis
import orjson
import pyarrow as pa
from ibis.backends import BaseBackend

from accord.audiences.compile import EngineTables, with_profile
from accord.engine.functions import epoch_microseconds
from accord.engine.tables import materialise, register

VIEWED = "Product Viewed"
ADDED = "Product Added"
ORDER = "Order Completed"
# How much one event says about interest in a product.
WEIGHTS = {VIEWED: 1.0, ADDED: 3.0, ORDER: 5.0}
_DAY_US = 86_400 * 1_000_000

LINES_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("product_id", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("weight", pa.float64()),
        ("bought", pa.int64()),
    ]
)


def _order_products(properties: str | None, fallback: str | None) -> list[str]:
    try:
        data = orjson.loads(properties) if properties else {}
    except orjson.JSONDecodeError:
        data = {}
    lines = data.get("products") if isinstance(data, dict) else None
    found = []
    if isinstance(lines, list):
        for line in lines:
            if isinstance(line, dict):
                product = line.get("product_id", line.get("sku"))
                if isinstance(product, str | int) and not isinstance(product, bool):
                    found.append(str(product))
    if not found and fallback:
        found.append(fallback)
    return list(dict.fromkeys(found))


def order_lines(orders: pa.Table) -> pa.Table:
    """One row per (order, product) from orders' user_id, anonymous_id, timestamp,
    properties (JSON text) and product_id (the first product, used when no list)."""
    columns = orders.to_pydict()
    out: dict[str, list[Any]] = {name: [] for name in LINES_SCHEMA.names}
    for user, anonymous, at, properties, first in zip(
        columns["user_id"],
        columns["anonymous_id"],
        columns["timestamp"],
        columns["properties"],
        columns["product_id"],
        strict=True,
    ):
        for product in _order_products(properties, first):
            out["user_id"].append(user)
            out["anonymous_id"].append(anonymous)
            out["product_id"].append(product)
            out["timestamp"].append(at)
            out["weight"].append(WEIGHTS[ORDER])
            out["bought"].append(1)
    return pa.Table.from_pydict(out, schema=LINES_SCHEMA)


def interactions(backend: BaseBackend, events: Any, identifiers: Any) -> Any:
    """profile_id, product_id, weight, timestamp, bought (0/1): one row per product event,
    materialised on the engine. `events` are one business's lake events."""
    browsing = events.filter(events.event.isin([VIEWED, ADDED]) & events.product_id.notnull())
    browsing = browsing.select(
        "user_id",
        "anonymous_id",
        "product_id",
        "timestamp",
        weight=ibis.cases((browsing.event == ADDED, WEIGHTS[ADDED]), else_=WEIGHTS[VIEWED]).cast(
            "float64"
        ),
        bought=ibis.literal(0, type="int64"),
    )
    orders = events.filter(events.event == ORDER).select(
        "user_id", "anonymous_id", "timestamp", "properties", "product_id"
    )
    lines = register(backend, order_lines(backend.to_pyarrow(orders)))
    both = browsing.union(lines.select(*browsing.columns))
    tables = EngineTables(
        profiles=None, events=None, identifiers=identifiers, consents=None, memberships=None
    )
    return materialise(backend, with_profile(tables, both))


@dataclass(frozen=True)
class Split:
    """Leave-last-purchase-out: each buyer's last order held out, with everything of theirs
    in the `gap_hours` before it (the visit that led to it would give it away) and after."""

    train: Any  # interactions
    held_out: Any  # profile_id, product_id


def split_last_purchase(backend: BaseBackend, rows: Any, *, gap_hours: int = 24) -> Split:
    orders = rows.filter(rows.bought == 1)
    last = orders.group_by("profile_id").aggregate(last_order=orders.timestamp.max())
    joined = rows.left_join(last, rows.profile_id == last.profile_id)
    train = joined.filter(
        joined.last_order.isnull()
        | (joined.timestamp < joined.last_order - ibis.interval(hours=gap_hours))
    ).select(*rows.columns)
    test = orders.join(
        last, (orders.profile_id == last.profile_id) & (orders.timestamp == last.last_order)
    )
    held_out = test.select(test.profile_id, test.product_id).distinct()
    return Split(train=materialise(backend, train), held_out=materialise(backend, held_out))


def strengths(backend: BaseBackend, rows: Any, *, now: datetime, half_life_days: float) -> Any:
    """profile_id, product_id, strength (weights halved every `half_life_days` of age),
    bought (0/1), last_seen: one row per person and product, materialised."""
    now_us = int(now.timestamp() * 1_000_000)
    age_days = (ibis.literal(now_us) - epoch_microseconds(backend, rows.timestamp)).cast(
        "float64"
    ) / _DAY_US
    decay = (age_days.clip(lower=0.0) * (-0.6931471805599453 / half_life_days)).exp()
    per = rows.group_by(["profile_id", "product_id"]).aggregate(
        strength=(rows.weight * decay).sum(),
        bought=rows.bought.max(),
        last_seen=rows.timestamp.max(),
    )
    return materialise(backend, per)
