"""RFM scores: quintiles of recency, frequency and monetary value over a business's customers.

The batch run (`accord profiles rfm`) computes the quintile boundaries on the engine,
stores them per business (`rfm_boundaries`), and scores every customer on the engine
with them. `score` applies the same boundaries to one profile in plain Python, so a
profile scored in real time gets the scores the batch would give it at that instant.

A customer is a profile with at least one `Order Completed`; other profiles get no
scores. Inputs: recency = whole seconds from the last order to the scoring instant
(fewer is better), frequency = orders, monetary = total spend in cents. Each dimension
has four boundaries (the 20th, 40th, 60th and 80th percentiles, interpolated); a
value's score is 1 plus the number of boundaries it is above (5 minus that number for
recency). Tied values get the same score, so a base where most customers ordered once
puts them all in frequency score 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate
from typing import Any

import ibis
import orjson
import pyarrow as pa
from sqlalchemy import Connection, delete, insert, select

from accord.core.clock import utcnow
from accord.engine.tables import register
from accord.profiles.models import profile_computed, rfm_boundaries

QUANTILES = (0.2, 0.4, 0.6, 0.8)
DIMENSIONS = ("recency", "frequency", "monetary")
TRAITS = ("rfm_recency_score", "rfm_frequency_score", "rfm_monetary_score", "rfm_segment")

BASE_SCHEMA = pa.schema(
    [
        ("profile_id", pa.string()),
        ("last_order_epoch", pa.int64()),
        ("frequency", pa.int64()),
        ("monetary", pa.int64()),
    ]
)


@dataclass(frozen=True)
class Boundaries:
    """Four ascending cut points per dimension, and the instant they were computed for."""

    as_of: datetime
    customers: int
    recency: tuple[float, ...]
    frequency: tuple[float, ...]
    monetary: tuple[float, ...]


@dataclass(frozen=True)
class Inputs:
    last_order_epoch: int
    frequency: int
    monetary: int


def _above(value: float, cuts: tuple[float, ...]) -> int:
    return sum(1 for cut in cuts if value > cut)


def score(bounds: Boundaries, inputs: Inputs, *, as_of: datetime) -> dict[str, Any]:
    """The RFM traits of one customer at `as_of` (the engine computes the same)."""
    recency = float(_epoch(as_of) - inputs.last_order_epoch)
    r = 5 - _above(recency, bounds.recency)
    f = 1 + _above(float(inputs.frequency), bounds.frequency)
    m = 1 + _above(float(inputs.monetary), bounds.monetary)
    return {
        "rfm_recency_score": r,
        "rfm_frequency_score": f,
        "rfm_monetary_score": m,
        "rfm_segment": f"{r}{f}{m}",
    }


def _epoch(when: datetime) -> int:
    # Whole seconds, floored, so Python and the engine subtract the same integers.
    return int(when.timestamp() // 1)


def inputs_of(
    *, order_count: int, spend_cents: int, last_order_at: datetime | None
) -> Inputs | None:
    """A customer's raw RFM values, or None for a profile that never ordered."""
    if order_count < 1 or last_order_at is None:
        return None
    return Inputs(_epoch(last_order_at), order_count, spend_cents)


def base_table(conn: Connection, *, business_id: str) -> pa.Table:
    """Every customer of the business with their raw values, as Arrow."""
    rows = conn.execute(
        select(
            profile_computed.c.profile_id,
            profile_computed.c.order_count,
            profile_computed.c.spend_cents,
            profile_computed.c.last_order_at,
        ).where(
            profile_computed.c.business_id == business_id,
            profile_computed.c.order_count > 0,
            profile_computed.c.last_order_at.is_not(None),
        )
    )
    columns: dict[str, list[Any]] = {name: [] for name in BASE_SCHEMA.names}
    for row in rows:
        columns["profile_id"].append(row.profile_id)
        columns["last_order_epoch"].append(_epoch(row.last_order_at))
        columns["frequency"].append(row.order_count)
        columns["monetary"].append(row.spend_cents)
    return pa.Table.from_pydict(columns, schema=BASE_SCHEMA)


def _values(base: Any, as_of: datetime) -> Any:
    """The base with the three dimensions as floats, recency counted to `as_of`."""
    return base.select(
        "profile_id",
        recency=(ibis.literal(_epoch(as_of)) - base.last_order_epoch).cast("float64"),
        frequency=base.frequency.cast("float64"),
        monetary=base.monetary.cast("float64"),
    )


def boundaries_on_engine(backend: Any, base: pa.Table, *, as_of: datetime) -> Boundaries | None:
    """The quintile boundaries of the base, computed on the engine (None without customers)."""
    if base.num_rows == 0:
        return None
    values = _values(register(backend, base), as_of)
    aggregates = {
        f"{name}_{i}": values[name].quantile(q)
        for name in DIMENSIONS
        for i, q in enumerate(QUANTILES)
    }
    row = backend.to_pyarrow(values.aggregate(**aggregates)).to_pylist()[0]
    # Interpolating between equal values can come out a hair apart (51.00000000000001
    # before 51.0); a running maximum keeps each dimension's cuts in order.
    cuts = {
        name: tuple(accumulate((float(row[f"{name}_{i}"]) for i in range(len(QUANTILES))), max))
        for name in DIMENSIONS
    }
    return Boundaries(as_of, base.num_rows, cuts["recency"], cuts["frequency"], cuts["monetary"])


def _count_above(column: Any, cuts: tuple[float, ...]) -> Any:
    total: Any = ibis.literal(0)
    for cut in cuts:
        total = total + (column > ibis.literal(cut)).cast("int64")
    return total


def scores_on_engine(backend: Any, base: pa.Table, bounds: Boundaries) -> dict[str, dict[str, Any]]:
    """Profile id → RFM traits for every customer of the base, computed on the engine."""
    if base.num_rows == 0:
        return {}
    values = _values(register(backend, base), bounds.as_of)
    scored = values.select(
        "profile_id",
        r=5 - _count_above(values.recency, bounds.recency),
        f=1 + _count_above(values.frequency, bounds.frequency),
        m=1 + _count_above(values.monetary, bounds.monetary),
    )
    out: dict[str, dict[str, Any]] = {}
    for row in backend.to_pyarrow(scored).to_pylist():
        r, f, m = int(row["r"]), int(row["f"]), int(row["m"])
        out[row["profile_id"]] = {
            "rfm_recency_score": r,
            "rfm_frequency_score": f,
            "rfm_monetary_score": m,
            "rfm_segment": f"{r}{f}{m}",
        }
    return out


def save_boundaries(conn: Connection, *, business_id: str, bounds: Boundaries) -> None:
    conn.execute(delete(rfm_boundaries).where(rfm_boundaries.c.business_id == business_id))
    conn.execute(
        insert(rfm_boundaries).values(
            business_id=business_id,
            as_of=bounds.as_of,
            customers=bounds.customers,
            recency=orjson.dumps(list(bounds.recency)).decode(),
            frequency=orjson.dumps(list(bounds.frequency)).decode(),
            monetary=orjson.dumps(list(bounds.monetary)).decode(),
            computed_at=utcnow(),
        )
    )


def load_boundaries(conn: Connection, *, business_id: str) -> Boundaries | None:
    row = conn.execute(
        select(rfm_boundaries).where(rfm_boundaries.c.business_id == business_id)
    ).one_or_none()
    if row is None:
        return None
    return Boundaries(
        as_of=row.as_of,
        customers=row.customers,
        recency=tuple(orjson.loads(row.recency)),
        frequency=tuple(orjson.loads(row.frequency)),
        monetary=tuple(orjson.loads(row.monetary)),
    )
