"""Scalar functions that each backend spells its own way."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import ibis
from ibis.backends import BaseBackend


@ibis.udf.scalar.builtin(name="epoch_us")  # type: ignore[untyped-decorator]
def _duckdb_epoch_us(timestamp: datetime) -> int:  # type: ignore[empty-body]
    """DuckDB's microseconds since the epoch of an instant (no time-zone arithmetic)."""


@ibis.udf.scalar.builtin(name="unix_micros")  # type: ignore[untyped-decorator]
def _spark_unix_micros(timestamp: datetime) -> int:  # type: ignore[empty-body]
    """Spark's microseconds since the epoch of an instant."""


def epoch_microseconds(backend: BaseBackend, timestamp: Any) -> Any:
    """Microseconds since 1970-01-01 UTC of a timestamp column, as integer arithmetic.

    Each backend's own function reads the stored instant; the portable `epoch_seconds`
    casts to a naive timestamp first, through the time-zone machinery per row (several
    times dearer on DuckDB).
    """
    if backend.name == "duckdb":
        return _duckdb_epoch_us(timestamp)
    if backend.name == "pyspark":
        return _spark_unix_micros(timestamp)
    return timestamp.epoch_seconds() * 1_000_000
