"""Scalar functions each backend spells its own way give the same values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from accord.engine.functions import epoch_microseconds
from accord.engine.tables import register

STAMPS = [
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2026, 10, 1, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2026, 10, 2, tzinfo=UTC),
]


def test_epoch_microseconds_count_from_1970_utc(backend: Any) -> None:
    table = register(
        backend,
        pa.table(
            {"i": range(len(STAMPS)), "timestamp": pa.array(STAMPS, pa.timestamp("us", tz="UTC"))}
        ),
    )
    micros = table.select("i", micros=epoch_microseconds(backend, table.timestamp))
    got = [r["micros"] for r in backend.to_pyarrow(micros.order_by("i")).to_pylist()]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert got == [(s - epoch) // (datetime.resolution) for s in STAMPS]
