"""Lake datasets on the engine: visible files only, partition columns from the folders."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from accord.engine.lake import dataset, events
from accord.lake.compaction import compact
from accord.lake.schema import EVENT_SCHEMA, Dataset
from accord.lake.service import write_parts

READINGS = Dataset(
    folder="_readings",
    partitions=pa.schema(
        [("business_id", pa.string()), ("sensor", pa.string()), ("day", pa.date32())]
    ),
    schema=pa.schema([("at", pa.timestamp("us", tz="UTC")), ("value", pa.float64())]),
)


def readings(*values: float) -> pa.Table:
    at = [datetime(2026, 11, 1, 12, i, tzinfo=UTC) for i in range(len(values))]
    return pa.table({"value": list(values), "at": at})  # columns in another order


def test_a_dataset_reads_its_rows_with_typed_partition_columns(
    backend: Any, tmp_path: Path
) -> None:
    lake = str(tmp_path / "lake")
    write_parts(
        lake,
        READINGS,
        batch_id="b1",
        parts=[
            (("biz_a", "s1", "2026-11-01"), readings(1.0, 2.0)),
            (("biz_a", "s2", "2026-11-01"), readings(3.0)),
            (("biz_b", "s1", "2026-11-02"), readings(4.0)),
        ],
    )
    table = dataset(backend, lake, READINGS, business_id="biz_a", within=("s1",))
    rows = backend.to_pyarrow(table.select("value", "business_id", "sensor", "day")).to_pylist()
    assert sorted(rows, key=lambda r: r["value"]) == [
        {"value": 1.0, "business_id": "biz_a", "sensor": "s1", "day": date(2026, 11, 1)},
        {"value": 2.0, "business_id": "biz_a", "sensor": "s1", "day": date(2026, 11, 1)},
    ]
    whole = dataset(backend, lake, READINGS)
    assert backend.to_pyarrow(whole.value.sum()).as_py() == 10.0


def test_an_empty_dataset_has_its_columns(backend: Any, tmp_path: Path) -> None:
    table = dataset(backend, str(tmp_path / "lake"), READINGS, business_id="biz_a")
    assert table.schema().names == ("at", "value", "business_id", "sensor", "day")
    assert backend.to_pyarrow(table.count()).as_py() == 0


def test_the_events_leave_other_datasets_out(backend: Any, tmp_path: Path) -> None:
    lake = str(tmp_path / "lake")
    write_parts(
        lake, READINGS, batch_id="b1", parts=[(("biz_a", "s1", "2026-11-01"), readings(1.0))]
    )
    empty = events(backend, lake)
    assert empty.schema().names == (*EVENT_SCHEMA.names, "business_id", "day")
    assert backend.to_pyarrow(empty.count()).as_py() == 0
    # Compacting the events leaves the other dataset's files alone.
    assert compact(lake, min_files=1).files_merged == 0
    assert backend.to_pyarrow(dataset(backend, lake, READINGS).count()).as_py() == 1
