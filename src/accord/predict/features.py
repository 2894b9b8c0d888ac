"""Features from events, as of a cutoff, computed on the engine.

Every feature is an audience event condition (counts of an event in a window ending at
the cutoff), so features are computed by the same compiled step as audiences and never
look past the cutoff. Purchase histories for lifetime value and category affinity are
grouped per profile with the same identifier resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import ibis
import numpy as np
from numpy.typing import NDArray

from accord.audiences.compile import EngineTables, event_counts, with_profile
from accord.audiences.conditions import Before, Between, EventCondition

ORDER = "Order Completed"
ACTIVITY = (
    ORDER,
    "Product Viewed",
    "Product Added",
    "Cart Viewed",
    "Checkout Started",
    "Products Searched",
    "Signed Up",
    "Email Opened",
    "Email Link Clicked",
)
WINDOWS: tuple[int | None, ...] = (7, 30, 90, None)


def _slug(event: str) -> str:
    return event.lower().replace(" ", "_")


@dataclass(frozen=True)
class Features:
    profile_ids: list[str]
    names: list[str]
    values: NDArray[np.float64]
    # orders before the cutoff: the frequency-only baseline
    orders: NDArray[np.float64]
    labels: NDArray[np.int64] | None = None


def feature_conditions(cutoff: datetime) -> list[tuple[str, EventCondition]]:
    out = []
    for event in ACTIVITY:
        for days in WINDOWS:
            window: Any = (
                Between(start=cutoff - timedelta(days=days), end=cutoff)
                if days
                else Before(at=cutoff)
            )
            name = f"{_slug(event)}_{days}d" if days else f"{_slug(event)}_all"
            out.append((name, EventCondition(event=event, window=window)))
    return out


def features(
    tables: EngineTables, backend: Any, *, cutoff: datetime, label_days: int | None = None
) -> Features:
    """One row per profile active before the cutoff; with `label_days`, whether it
    ordered in the `label_days` after the cutoff."""
    named = feature_conditions(cutoff)
    conditions = [c for _, c in named]
    if label_days is not None:
        window = Between(start=cutoff, end=cutoff + timedelta(days=label_days))
        conditions.append(EventCondition(event=ORDER, window=window))
    counts = backend.to_pyarrow(event_counts(tables, conditions, cutoff)).to_pydict()
    ids: list[str] = counts["profile_id"]
    matrix = np.column_stack(
        [np.asarray(counts[f"event_{i}"], dtype=np.float64) for i in range(len(named))]
    )
    # People exist at the cutoff if they did anything before it.
    alls = [i for i, (name, _) in enumerate(named) if name.endswith("_all")]
    active = matrix[:, alls].sum(axis=1) > 0
    order_all = [name for name, _ in named].index(f"{_slug(ORDER)}_all")
    labels = None
    if label_days is not None:
        labels = (np.asarray(counts[f"event_{len(named)}"]) > 0).astype(np.int64)[active]
    return Features(
        profile_ids=[p for p, keep in zip(ids, active, strict=True) if keep],
        names=[name for name, _ in named],
        values=matrix[active],
        orders=matrix[active, order_all],
        labels=labels,
    )


@dataclass(frozen=True)
class Purchases:
    """Per buyer, in days: repeat purchase days, recency, age, mean repeat spend."""

    profile_ids: list[str]
    frequency: NDArray[np.float64]
    recency: NDArray[np.float64]
    age: NDArray[np.float64]
    monetary: NDArray[np.float64]


def purchases(tables: EngineTables, backend: Any, *, cutoff: datetime) -> Purchases:
    """Purchase days per buyer before the cutoff (one purchase a day, as BG/NBD counts)."""
    events = tables.events
    orders = events.filter(
        (events.event == ORDER) & (events.timestamp < ibis.literal(cutoff, type="timestamp('UTC')"))
    )
    per_pair = orders.group_by(
        ["user_id", "anonymous_id", orders.timestamp.date().name("day")]
    ).aggregate(revenue=orders.revenue.fill_null(0).sum())
    resolved = with_profile(tables, per_pair)
    per_day = resolved.group_by(["profile_id", "day"]).aggregate(revenue=resolved.revenue.sum())
    rows = backend.to_pyarrow(per_day).to_pydict()
    days: dict[str, list[tuple[Any, float]]] = {}
    for profile_id, day, revenue in zip(
        rows["profile_id"], rows["day"], rows["revenue"], strict=True
    ):
        days.setdefault(profile_id, []).append((day, float(revenue or 0.0)))
    ids = sorted(days)
    end = cutoff.date()
    frequency, recency, age, monetary = [], [], [], []
    for profile_id in ids:
        history = sorted(days[profile_id])
        first, last = history[0][0], history[-1][0]
        frequency.append(len(history) - 1)
        recency.append((last - first).days)
        age.append((end - first).days)
        repeat = [revenue for _, revenue in history[1:]]
        monetary.append(sum(repeat) / len(repeat) if repeat else 0.0)
    return Purchases(
        profile_ids=ids,
        frequency=np.asarray(frequency, dtype=np.float64),
        recency=np.asarray(recency, dtype=np.float64),
        age=np.asarray(age, dtype=np.float64),
        monetary=np.asarray(monetary, dtype=np.float64),
    )


def category_affinity(
    tables: EngineTables, backend: Any, *, cutoff: datetime, days: int = 90
) -> dict[str, tuple[str, float]]:
    """Each profile's favourite category and its share of the profile's product events
    (views 1, cart adds 3, orders 5) in the last `days`."""
    events = tables.events
    start = ibis.literal(cutoff - timedelta(days=days), type="timestamp('UTC')")
    end = ibis.literal(cutoff, type="timestamp('UTC')")
    relevant = events.filter(
        events.event.isin(["Product Viewed", "Product Added", ORDER])
        & events.category.notnull()
        & (events.timestamp >= start)
        & (events.timestamp < end)
    )
    weight = ibis.cases(
        (relevant.event == ORDER, 5), (relevant.event == "Product Added", 3), else_=1
    )
    per_pair = relevant.group_by(["user_id", "anonymous_id", "category"]).aggregate(
        score=weight.sum()
    )
    resolved = with_profile(tables, per_pair)
    scores = resolved.group_by(["profile_id", "category"]).aggregate(score=resolved.score.sum())
    rows = backend.to_pyarrow(scores).to_pydict()
    totals: dict[str, float] = {}
    best: dict[str, tuple[str, float]] = {}
    for profile_id, category, score in zip(
        rows["profile_id"], rows["category"], rows["score"], strict=True
    ):
        totals[profile_id] = totals.get(profile_id, 0.0) + score
        current = best.get(profile_id)
        if current is None or (score, category) > (current[1], current[0]):
            best[profile_id] = (category, float(score))
    return {p: (c, s / totals[p]) for p, (c, s) in best.items()}
