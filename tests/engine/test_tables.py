"""Tables the backend holds: Arrow put on it, expressions materialised, and dropped."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pytest

from accord.engine.tables import drop, materialise, register

ROWS = pa.table(
    {
        "id": pa.array([1, 2, 3], pa.int64()),
        "name": pa.array(["a", None, "NaN"], pa.string()),
        "score": pa.array([1.5, None, 2.5], pa.float64()),
        "day": pa.array([date(2026, 11, 1), None, date(2026, 11, 3)], pa.date32()),
        "at": pa.array(
            [datetime(2026, 11, 1, 23, 59, tzinfo=UTC), None, None], pa.timestamp("us", tz="UTC")
        ),
        "flag": pa.array([True, False, None], pa.bool_()),
    }
)


def rows(backend: Any, table: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = backend.to_pyarrow(table.order_by("id")).to_pylist()
    # Spark hands timestamps back naive (in UTC), DuckDB aware.
    for row in result:
        if isinstance(row.get("at"), datetime) and row["at"].tzinfo is None:
            row["at"] = row["at"].replace(tzinfo=UTC)
    return result


def test_register_keeps_every_value_and_missing_value(backend: Any) -> None:
    table = register(backend, ROWS)
    assert rows(backend, table) == ROWS.to_pylist()


def test_register_under_a_name_replaces_the_table_of_that_name(backend: Any) -> None:
    register(backend, ROWS, name="accord_test_named")
    again = register(backend, ROWS.slice(0, 1), name="accord_test_named")
    assert [r["id"] for r in rows(backend, again)] == [1]
    assert [r["id"] for r in rows(backend, backend.table("accord_test_named"))] == [1]


def test_materialise_keeps_the_rows_of_the_expression(backend: Any) -> None:
    table = register(backend, ROWS)
    kept = materialise(backend, table.filter(table.id > 1).mutate(double=table.id * 2))
    assert [(r["id"], r["double"]) for r in rows(backend, kept)] == [(2, 4), (3, 6)]


def test_a_materialised_step_can_feed_the_next_one(backend: Any) -> None:
    step = register(backend, pa.table({"id": [1, 2, 3]}), name="accord_test_step_0")
    for round_ in range(1, 4):
        step = materialise(backend, step.mutate(id=step.id + 1), name=f"accord_test_step_{round_}")
        drop(backend, f"accord_test_step_{round_ - 1}")
    assert sorted(backend.to_pyarrow(step.id).to_pylist()) == [4, 5, 6]


def test_drop_forgets_the_table_and_forgives_a_missing_one(backend: Any) -> None:
    register(backend, ROWS, name="accord_test_dropped")
    drop(backend, "accord_test_dropped")
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own error
        backend.to_pyarrow(backend.table("accord_test_dropped"))
    drop(backend, "accord_test_dropped")
