"""bench/dataset.py, the benchmarks' shared data set: exact size, deterministic whatever
the number of processes, laid out as the compacted lake, profiles linked like the worker."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from accord.lake.schema import EVENT_SCHEMA, EVENTS
from accord.lake.service import visible_files

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def dataset() -> Any:
    # Spawned shard processes import the module by name, from the same path.
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("dataset")
    finally:
        sys.path.remove(str(BENCH))


def _rows(lake: Path) -> list[dict[str, Any]]:
    files = visible_files(str(lake), "biz_bench")
    schema = EVENTS.table_schema()
    table = ds.dataset(
        files,
        schema=schema,
        partitioning=ds.partitioning(EVENTS.partitions, flavor="hive"),
        partition_base_dir=str(lake),
    ).to_table()
    return list(table.sort_by("inbox_seq").to_pylist())


@pytest.mark.slow
def test_the_data_set_is_exact_deterministic_and_laid_out_by_day(
    dataset: Any, tmp_path: Path
) -> None:
    kwargs = {"events": 3_000, "days": 7, "shard_visitors": 40}
    two = dataset.ensure(folder=tmp_path / "two", processes=2, log=False, **kwargs)
    one = dataset.ensure(folder=tmp_path / "one", processes=1, log=False, **kwargs)
    assert two.info["events"] == one.info["events"] == 3_000
    assert two.info["shards"] > 2  # several shards, the last one cut
    rows = _rows(two.lake)
    assert rows == _rows(one.lake)
    assert pq.read_table(two.profiles).equals(pq.read_table(one.profiles))
    assert pq.read_table(two.identifiers).equals(pq.read_table(one.identifiers))

    table = rows
    assert [r["inbox_seq"] for r in table] == list(range(1, 3_001))
    assert len({r["message_id"] for r in table}) == 3_000
    files = visible_files(str(two.lake), "biz_bench")
    assert len(files) == len({r["day"] for r in table}) <= 8  # one file a day
    for path in files:
        assert pq.read_schema(path).remove_metadata().equals(EVENT_SCHEMA)
        days = {r["day"] for r in table if f"day={r['day']}" in path}
        assert len(days) == 1
    assert all(r["timestamp"].date() == r["day"] for r in table)

    # Every event's user, else browser, names a profile; every profile has an event.
    identifiers = pq.read_table(two.identifiers).to_pylist()
    owner = {(i["kind"], i["value"]): i["profile_id"] for i in identifiers}
    linked = {
        owner.get(("user_id", r["user_id"])) or owner[("anonymous_id", r["anonymous_id"])]
        for r in table
    }
    profiles = pq.read_table(two.profiles)
    assert linked == set(profiles.column("profile_id").to_pylist())
    assert profiles.num_rows == two.info["profiles"]

    # Built once: the second call reads the cache.
    again = dataset.ensure(folder=tmp_path / "two", processes=2, log=False, **kwargs)
    assert again.info == two.info
