"""Compaction: one visible file per partition, every event exactly once, whatever happens."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyarrow import fs

from accord.engine.connection import close, connect
from accord.engine.lake import events
from accord.lake.compaction import CompactionReport, compact
from accord.lake.schema import EVENT_SCHEMA, lake_row
from accord.lake.service import (
    REPLACES_KEY,
    partition_dir,
    partition_lock,
    remove_events,
    visible_files,
    write_batch,
)
from tests.lake.test_lake import envelope

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]
BUSINESSES = ["biz_a", "biz_b"]

Row = tuple[str, str, int]  # business_id, day, inbox_seq


def rows_of(specs: list[Row]) -> list[tuple[str, dict[str, Any]]]:
    """(business, day, seq) triples as `write_batch` rows; message ids are `m<seq>`."""
    return [
        (business, lake_row(seq, "src_1", envelope(seq, timestamp=f"{day}T{seq % 24:02d}:00:00Z")))
        for business, day, seq in specs
    ]


def write(lake: Path, batch_id: str, specs: list[Row]) -> None:
    write_batch(str(lake), batch_id=batch_id, rows=rows_of(specs))


def layout(batches: int, per_partition: int = 2, start: int = 0) -> dict[str, list[Row]]:
    """Batches that each put a few events in every partition, like the worker's."""
    out: dict[str, list[Row]] = {}
    seq = start
    for index in range(batches):
        specs = []
        for business in BUSINESSES:
            for day in DAYS:
                for _ in range(per_partition):
                    seq += 1
                    specs.append((business, day, seq))
        out[f"bat_{start}_{index}"] = specs
    return out


def visible_rows(lake: Path, business_id: str | None = None) -> list[Row]:
    """What a reader sees, one entry per row it reads (duplicates kept)."""
    files = visible_files(str(lake), business_id=business_id)
    if not files:
        return []
    relation = duckdb.read_parquet(files, hive_partitioning=True)
    rows = relation.select("business_id, CAST(day AS VARCHAR), inbox_seq").fetchall()
    return sorted((str(b), str(d), int(s)) for b, d, s in rows)


def all_files(lake: Path) -> list[Path]:
    return sorted(p for p in lake.rglob("*") if p.is_file())


def message_ids_on_disk(lake: Path) -> Counter[str]:
    """Message ids in every Parquet file, visible or not."""
    found: Counter[str] = Counter()
    for path in all_files(lake):
        if path.name.endswith(".parquet") or path.name.endswith(".tmp"):
            found.update(pq.read_table(path, columns=["message_id"])["message_id"].to_pylist())
    return found


def per_partition(files: list[str]) -> Counter[str]:
    return Counter(f.rsplit("/", 1)[0] for f in files)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


def fill(lake: Path, batches: int = 4) -> list[Row]:
    expected: list[Row] = []
    for batch_id, specs in layout(batches).items():
        write(lake, batch_id, specs)
        expected += specs
    return sorted(expected)


# The rule ------------------------------------------------------------------------


def test_compaction_keeps_every_row_and_leaves_one_visible_file_per_partition(
    lake: Path,
) -> None:
    expected = fill(lake)
    before = duckdb.read_parquet(visible_files(str(lake)), hive_partitioning=True)
    before_rows = before.order("inbox_seq").arrow().read_all().to_pylist()
    assert len(visible_files(str(lake))) == 4 * len(BUSINESSES) * len(DAYS)

    report = compact(str(lake), now=NOW)

    assert report == CompactionReport(
        partitions_compacted=6, files_merged=24, files_written=6, rows=48
    )
    files = visible_files(str(lake))
    assert set(per_partition(files).values()) == {1}
    assert all(f.rsplit("/", 1)[1].startswith("compact-") for f in files)
    assert visible_rows(lake) == expected
    # Whole rows, every column, not only the keys.
    after = duckdb.read_parquet(files, hive_partitioning=True)
    assert after.order("inbox_seq").arrow().read_all().to_pylist() == before_rows


def test_the_compacted_file_is_zstd_event_schema_sorted_and_names_what_it_replaces(
    lake: Path,
) -> None:
    fill(lake, batches=3)
    directory = Path(partition_dir(str(lake), "biz_a", DAYS[0]))
    parts = sorted(p.name for p in directory.iterdir())
    compact(str(lake), now=NOW)
    [compacted] = [p for p in directory.iterdir() if p.name.startswith("compact-")]
    parquet = pq.ParquetFile(compacted)
    assert parquet.schema_arrow.remove_metadata() == EVENT_SCHEMA
    assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
    assert orjson.loads(parquet.metadata.metadata[REPLACES_KEY]) == dict.fromkeys(
        parts, NOW.isoformat()
    )
    table = parquet.read()
    keys = list(zip(table["timestamp"].to_pylist(), table["inbox_seq"].to_pylist(), strict=True))
    assert keys == sorted(keys)


def test_a_file_written_before_a_column_existed_compacts_with_nulls_there(lake: Path) -> None:
    write(lake, "bat_1", [("biz_a", DAYS[0], 1)])
    directory = Path(partition_dir(str(lake), "biz_a", DAYS[0]))
    old = pq.read_table(directory / "part-bat_1.parquet").drop_columns(["utm_content"])
    pq.write_table(old.set_column(0, "inbox_seq", [[2]]), directory / "part-bat_0.parquet")
    compact(str(lake), now=NOW)
    [compacted] = visible_files(str(lake))
    table = pq.read_table(compacted)
    assert table.schema.remove_metadata() == EVENT_SCHEMA
    assert table["inbox_seq"].to_pylist() == [1, 2]
    assert table["utm_content"].to_pylist() == [None, None]


def test_a_second_run_changes_nothing(lake: Path) -> None:
    expected = fill(lake)
    compact(str(lake), now=NOW)
    files = all_files(lake)
    assert compact(str(lake), now=NOW + timedelta(minutes=1)) == CompactionReport()
    assert all_files(lake) == files
    assert visible_rows(lake) == expected


def test_partitions_with_fewer_files_than_min_files_are_left_alone(lake: Path) -> None:
    write(lake, "bat_1", [("biz_a", DAYS[0], 1), ("biz_a", DAYS[1], 2)])
    write(lake, "bat_2", [("biz_a", DAYS[0], 3)])
    report = compact(str(lake), min_files=2, now=NOW)
    assert (report.partitions_compacted, report.files_merged) == (1, 2)
    kinds = sorted((Path(f).parent.name, Path(f).name[:5]) for f in visible_files(str(lake)))
    assert kinds == [(f"day={DAYS[0]}", "compa"), (f"day={DAYS[1]}", "part-")]
    with pytest.raises(ValueError, match="min_files"):
        compact(str(lake), min_files=0)


def test_one_business_only(lake: Path) -> None:
    expected = fill(lake, batches=2)
    report = compact(str(lake), business_id="biz_b", now=NOW)
    assert report.partitions_compacted == len(DAYS)
    counts = per_partition(visible_files(str(lake)))
    assert {k: v for k, v in counts.items() if "biz_b" in k} == {
        partition_dir(str(lake), "biz_b", day): 1 for day in DAYS
    }
    assert all(v == 2 for k, v in counts.items() if "biz_a" in k)
    assert visible_rows(lake) == expected
    assert visible_rows(lake, "biz_b") == [r for r in expected if r[0] == "biz_b"]


def test_new_files_after_a_compaction_are_merged_with_it_transitively(lake: Path) -> None:
    first = fill(lake, batches=2)
    compact(str(lake), now=NOW)
    directory = Path(partition_dir(str(lake), "biz_a", DAYS[0]))
    [old] = [p.name for p in directory.iterdir() if p.name.startswith("compact-")]
    old_replaces = orjson.loads(pq.ParquetFile(directory / old).metadata.metadata[REPLACES_KEY])
    later = layout(1, start=1000)
    for batch_id, specs in later.items():
        write(lake, batch_id, specs)

    report = compact(str(lake), now=NOW + HOUR)

    assert (report.partitions_compacted, report.files_merged) == (6, 12)
    [new] = [Path(f).name for f in visible_files(str(lake)) if f.startswith(str(directory) + "/")]
    replaces = orjson.loads(pq.ParquetFile(directory / new).metadata.metadata[REPLACES_KEY])
    added = [old, *(f"part-{b}.parquet" for b in later)]
    # What the old file hid keeps the time it was hidden first.
    assert replaces == old_replaces | dict.fromkeys(added, (NOW + HOUR).isoformat())
    assert visible_rows(lake) == sorted(first + [r for s in later.values() for r in s])


# Grace ---------------------------------------------------------------------------


def test_superseded_files_are_deleted_after_the_grace_and_not_before(lake: Path) -> None:
    expected = fill(lake, batches=3)
    compact(str(lake), now=NOW)
    grace = timedelta(minutes=10)
    assert len(all_files(lake)) == 6 * 3 + 6

    early = compact(str(lake), grace=grace, now=NOW + grace - timedelta(seconds=1))
    assert early.superseded_files_deleted == 0
    assert len(all_files(lake)) == 6 * 3 + 6

    late = compact(str(lake), grace=grace, now=NOW + grace)
    assert late == CompactionReport(superseded_files_deleted=18)
    assert [p.name[:8] for p in all_files(lake)] == ["compact-"] * 6
    assert visible_rows(lake) == expected


def test_each_superseded_file_goes_once_its_own_grace_is_over(lake: Path) -> None:
    fill(lake, batches=2)
    compact(str(lake), now=NOW)
    write(lake, "bat_late", [("biz_a", DAYS[0], 500)])
    compact(str(lake), business_id="biz_a", grace=2 * HOUR, now=NOW + HOUR)
    directory = Path(partition_dir(str(lake), "biz_a", DAYS[0]))
    # Two parts, the first compacted file, the late part and the compacted file over all.
    assert len(list(directory.iterdir())) == 5

    # The parts were hidden an hour and a half ago: they go, in every folder of the
    # business; the first compacted file and the late part were hidden half an hour ago.
    report = compact(str(lake), business_id="biz_a", grace=HOUR, now=NOW + HOUR + HOUR / 2)
    assert report.superseded_files_deleted == 2 * len(DAYS)
    assert sorted(p.name[:9] for p in directory.iterdir()) == [
        "compact-2",
        "compact-2",
        "part-bat_",
    ]

    report = compact(str(lake), business_id="biz_a", grace=HOUR, now=NOW + 2 * HOUR)
    assert report.superseded_files_deleted == 2
    [left] = list(directory.iterdir())
    assert left.name.startswith("compact-")
    rows = visible_rows(lake, "biz_a")
    assert len(rows) == 2 * 2 * len(DAYS) + 1
    assert ("biz_a", DAYS[0], 500) in rows


# Batches redone after a crash ----------------------------------------------------


def test_a_batch_redone_after_its_file_was_compacted_stays_invisible(lake: Path) -> None:
    batches = layout(3)
    for batch_id, specs in batches.items():
        write(lake, batch_id, specs)
    expected = visible_rows(lake)
    compact(str(lake), now=NOW)
    redone = "bat_0_1"

    # The worker died after writing, and redoes the batch: same name, same rows.
    write_batch(str(lake), batch_id=redone, rows=rows_of(batches[redone]), clean_leftovers=True)

    assert visible_rows(lake) == expected
    assert not any(f"part-{redone}" in f for f in visible_files(str(lake)))
    # Also once the superseded files are gone: the name stays listed.
    compact(str(lake), grace=timedelta(0), now=NOW + HOUR)
    assert not any(p.name.startswith("part-") for p in all_files(lake))
    write_batch(str(lake), batch_id=redone, rows=rows_of(batches[redone]), clean_leftovers=True)
    assert visible_rows(lake) == expected
    # Never visible, the redone files go with the next compaction past the grace.
    assert compact(str(lake), now=NOW + 2 * HOUR).superseded_files_deleted == 6
    assert not any(p.name.startswith("part-") for p in all_files(lake))
    assert visible_rows(lake) == expected


# Erasure -------------------------------------------------------------------------


def test_erasure_after_compaction_removes_the_events_from_every_file(lake: Path) -> None:
    expected = fill(lake, batches=3)
    compact(str(lake), now=NOW)
    directory = Path(partition_dir(str(lake), "biz_a", DAYS[1]))
    [compacted] = [p for p in directory.iterdir() if p.name.startswith("compact-")]
    replaces = pq.ParquetFile(compacted).metadata.metadata[REPLACES_KEY]
    gone = {seq for business, day, seq in expected if business == "biz_a" and day == DAYS[1]}
    erased = set(sorted(gone)[::2])
    # A compaction killed before its rename left its temporary copy of the events.
    (directory / ".compact-dead.parquet.tmp").write_bytes(compacted.read_bytes())

    changed = remove_events(
        str(lake), business_id="biz_a", days={DAYS[1]}, message_ids={f"msg-{s}" for s in erased}
    )

    assert Path(changed[0]).parent == directory
    on_disk = message_ids_on_disk(lake)
    assert not {f"msg-{s}" for s in erased} & set(on_disk)
    assert visible_rows(lake) == [r for r in expected if r[2] not in erased]
    # The rewritten compacted file still hides the files it superseded.
    assert pq.ParquetFile(compacted).metadata.metadata[REPLACES_KEY] == replaces


def test_erasing_everything_keeps_an_empty_compacted_file_that_still_hides(lake: Path) -> None:
    fill(lake, batches=2)
    compact(str(lake), now=NOW)
    redo = rows_of(layout(2)["bat_0_0"])
    ids = {
        f"msg-{s}"
        for specs in layout(2).values()
        for b, d, s in specs
        if b == "biz_a" and d == DAYS[0]
    }
    remove_events(str(lake), business_id="biz_a", days={DAYS[0]}, message_ids=ids)
    directory = Path(partition_dir(str(lake), "biz_a", DAYS[0]))
    [left] = list(directory.iterdir())
    assert left.name.startswith("compact-")
    assert pq.read_table(left).num_rows == 0
    # A redo of the batch from before the erasure (the worker had not yet seen the
    # tombstones) is still hidden, and the worker's own second look removes it.
    write_batch(str(lake), batch_id="bat_0_0", rows=redo)
    assert visible_rows(lake, "biz_a")[0][1] == DAYS[1]
    remove_events(str(lake), business_id="biz_a", days={DAYS[0]}, message_ids=ids)
    assert not ids & set(message_ids_on_disk(lake))


def test_compaction_waits_for_an_erasure_holding_the_partition(lake: Path) -> None:
    fill(lake, batches=2)
    directory = partition_dir(str(lake), "biz_a", DAYS[0])
    done = threading.Event()

    def compacting() -> None:
        compact(str(lake), business_id="biz_a", now=NOW)
        done.set()

    with partition_lock(fs.LocalFileSystem(), directory):
        worker = threading.Thread(target=compacting)
        worker.start()
        assert not done.wait(0.5)
        # The other partitions of the business went ahead; this one did not.
        assert per_partition(visible_files(str(lake), "biz_a"))[directory] == 2
    worker.join(10)
    assert done.is_set()
    assert per_partition(visible_files(str(lake), "biz_a"))[directory] == 1


# Readers -------------------------------------------------------------------------


def test_readers_ignore_other_folders_and_temporary_files(lake: Path) -> None:
    ad_logs = lake / "_ad_logs" / "business_id=biz_a" / "experiment=x" / "day=2026-11-01"
    ad_logs.mkdir(parents=True)
    (ad_logs / "part-1.parquet").write_bytes(b"not events")
    assert not bool(visible_files(str(lake)))
    assert visible_files(str(lake)) == []
    write(lake, "bat_1", [("biz_a", DAYS[0], 1)])
    (Path(partition_dir(str(lake), "biz_a", DAYS[0])) / ".compact-x.parquet.tmp").write_bytes(b"")
    assert bool(visible_files(str(lake)))
    assert [Path(f).name for f in visible_files(str(lake))] == ["part-bat_1.parquet"]


def test_visible_files_of_a_file_uri_lake_are_uris(lake: Path) -> None:
    write(lake, "bat_1", [("biz_a", DAYS[0], 1)])
    write(lake, "bat_2", [("biz_a", DAYS[0], 2)])
    compact(lake.as_uri(), now=NOW)
    [uri] = visible_files(lake.as_uri())
    assert uri.startswith(lake.as_uri() + "/business_id=biz_a/day=2026-11-01/compact-")


def test_engine_events_read_only_visible_files_with_the_same_columns(lake: Path) -> None:
    expected = fill(lake, batches=2)
    backend = connect("duckdb://")
    before = events(backend, str(lake))
    compact(str(lake), now=NOW)
    after = events(backend, str(lake))
    assert after.schema() == before.schema()
    assert after.schema()["day"].is_date() and after.schema()["business_id"].is_string()
    rows = backend.to_pyarrow(after.select("business_id", "day", "inbox_seq")).to_pylist()
    assert sorted((r["business_id"], r["day"].isoformat(), r["inbox_seq"]) for r in rows) == (
        expected
    )
    only_b = events(backend, str(lake), business_id="biz_b")
    assert backend.to_pyarrow(only_b.count()).as_py() == len(expected) // 2


def test_concurrent_readers_see_every_event_exactly_once(lake: Path) -> None:
    """A thread compacts over and over (a new compacted file each time, superseded
    files deleted after a short grace) while another reads through the engine."""
    expected = fill(lake, batches=3)
    stop = threading.Event()
    rounds: list[CompactionReport] = []
    failures: list[BaseException] = []

    def compacting() -> None:
        try:
            while not stop.is_set():
                rounds.append(compact(str(lake), min_files=1, grace=timedelta(seconds=2)))
        except BaseException as exc:  # the main thread reports it
            failures.append(exc)

    thread = threading.Thread(target=compacting)
    thread.start()
    backend = connect("duckdb://")
    reads = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            table = events(backend, str(lake))
            counted = backend.to_pyarrow(
                table.aggregate(rows=table.count(), ids=table.message_id.nunique())
            ).to_pylist()[0]
            reads.append((counted["rows"], counted["ids"]))
            deleted = sum(r.superseded_files_deleted for r in rounds)
            if len(reads) >= 20 and len(rounds) >= 20 and deleted and failures == []:
                break
    finally:
        stop.set()
        thread.join(30)
    assert failures == []
    assert set(reads) == {(len(expected), len(expected))}
    assert len(rounds) >= 20 and sum(r.superseded_files_deleted for r in rounds) > 0


# Property: any interleaving of writes, redone batches, compactions and erasures ----

operation = st.one_of(
    st.tuples(
        st.just("write"),
        st.lists(
            st.tuples(st.sampled_from(BUSINESSES), st.sampled_from(DAYS)), min_size=1, max_size=6
        ),
    ),
    st.tuples(st.just("redo"), st.integers(0, 20)),
    st.tuples(st.just("compact"), st.tuples(st.integers(1, 3), st.booleans())),
    st.tuples(st.just("erase"), st.lists(st.integers(0, 60), min_size=1, max_size=4)),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=st.lists(operation, min_size=1, max_size=12))
def test_any_history_shows_every_event_exactly_once(operations: list[tuple[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        lake = Path(folder) / "lake"
        batches: dict[str, list[Row]] = {}
        erased: set[int] = set()
        seq = 0
        clock = NOW
        for kind, argument in operations:
            if kind == "write":
                specs = []
                for business, day in argument:
                    seq += 1
                    specs.append((business, day, seq))
                batch_id = f"bat_{len(batches)}"
                batches[batch_id] = specs
                write(lake, batch_id, specs)
            elif kind == "redo" and batches:
                batch_id = sorted(batches)[argument % len(batches)]
                # A redone batch leaves out the events erased since (tombstones).
                kept = [r for r in batches[batch_id] if r[2] not in erased]
                write(lake, batch_id, kept)
            elif kind == "compact":
                min_files, expire = argument
                clock += HOUR
                grace = timedelta(0) if expire else 2 * HOUR
                compact(str(lake), min_files=min_files, grace=grace, now=clock)
            elif kind == "erase":
                targets = {s for s in argument if 0 < s <= seq}
                by_business: dict[str, set[str]] = {}
                for specs in batches.values():
                    for business, day, s in specs:
                        if s in targets:
                            by_business.setdefault(business, set()).add(day)
                for business, days in by_business.items():
                    remove_events(
                        str(lake),
                        business_id=business,
                        days=days,
                        message_ids={f"msg-{s}" for s in targets},
                    )
                erased |= targets
            expected = sorted(r for s in batches.values() for r in s if r[2] not in erased)
            assert visible_rows(lake) == expected
            assert not {f"msg-{s}" for s in erased} & set(message_ids_on_disk(lake))
        compact(str(lake), now=clock + HOUR)
        assert set(per_partition(visible_files(str(lake))).values()) <= {1}
        assert visible_rows(lake) == sorted(
            r for s in batches.values() for r in s if r[2] not in erased
        )


# SIGKILL -------------------------------------------------------------------------

# The child compacts the lake. With ACCORD_TEST_PAUSE=<point>:<n> it stops for good
# at the n-th time it reaches the point, says so, and waits to be killed: the points
# are reached by wrapping what compaction calls, so the library has no test hooks.
CHILD = """
import os, sys, time
from datetime import timedelta
from pyarrow import fs
import accord.lake.compaction as compaction
import accord.lake.service as service

point, _, nth = os.environ.get("ACCORD_TEST_PAUSE", "::").partition(":")
seen = 0

def reached(name):
    global seen
    if name == point:
        seen += 1
        if seen == int(nth):
            print("paused", flush=True)
            time.sleep(600)

real_replace = os.replace

def replace(source, target):
    reached("before-rename")
    real_replace(source, target)
    reached("after-rename")

service.os.replace = replace

class Pausing(fs.LocalFileSystem):
    def delete_file(self, path):
        if "/." not in path:
            reached("deleting")
        super().delete_file(path)

compaction.filesystem_of = lambda url: (Pausing(), url)
print("ready", flush=True)
compaction.compact(sys.argv[1], grace=timedelta(0))
print("finished", flush=True)
"""


def start_child(lake: Path, pause: str | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    if pause:
        env["ACCORD_TEST_PAUSE"] = pause
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(lake)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)


def assert_exactly_once(lake: Path, expected: list[Row]) -> None:
    assert visible_rows(lake) == expected


@pytest.fixture
def kill_lake(tmp_path: Path) -> Iterator[tuple[Path, list[Row]]]:
    lake = tmp_path / "lake"
    yield lake, fill(lake, batches=6)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("pause", "left_behind"),
    [
        ("before-rename:1", ".compact-"),  # the merged file written aside, not renamed
        ("before-rename:4", ".compact-"),
        ("after-rename:3", None),  # three partitions switched, three not
        ("deleting:5", None),  # a later run deleting superseded files
    ],
)
def test_sigkill_at_each_step_loses_and_doubles_nothing(
    kill_lake: tuple[Path, list[Row]], pause: str, left_behind: str | None
) -> None:
    lake, expected = kill_lake
    if pause.startswith("deleting"):
        compact(str(lake), now=NOW)
    child = start_child(lake, pause)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "paused"
    kill(child)
    assert_exactly_once(lake, expected)
    if left_behind:
        assert any(p.name.startswith(left_behind) for p in all_files(lake))

    compact(str(lake), grace=timedelta(0))
    assert_exactly_once(lake, expected)
    assert set(per_partition(visible_files(str(lake))).values()) == {1}
    compact(str(lake), grace=timedelta(0))
    assert [p.name[:8] for p in all_files(lake)] == ["compact-"] * 6


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_doubles_nothing(
    kill_lake: tuple[Path, list[Row]],
) -> None:
    lake, expected = kill_lake
    chance = random.Random(15)
    interrupted = 0
    # Kills that come after the child finished interrupt nothing; how many do depends on
    # the machine's speed, so attempts go on (each adding data) until 6 have landed.
    for attempt in range(30):
        if interrupted >= 6:
            break
        more = layout(2, start=1000 * (attempt + 1))
        for batch_id, specs in more.items():
            write(lake, batch_id, specs)
        expected = sorted(expected + [r for s in more.values() for r in s])
        child = start_child(lake)
        time.sleep(chance.uniform(0, 0.15))
        kill(child)
        interrupted += child.returncode == -signal.SIGKILL
        assert_exactly_once(lake, expected)
    # Most kills must land while the child works, or this tests nothing.
    assert interrupted >= 6
    report = compact(str(lake), grace=timedelta(0))
    assert report.files_written > 0 or report.superseded_files_deleted > 0
    assert_exactly_once(lake, expected)
    assert set(per_partition(visible_files(str(lake))).values()) == {1}
    assert not [p for p in all_files(lake) if p.name.endswith(".tmp")]


# Spark ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spark_backend() -> Iterator[Any]:
    backend = connect("pyspark://local[2]")
    yield backend
    close(backend)


@pytest.mark.slow
@pytest.mark.spark
def test_spark_reads_the_same_rows_before_and_after_compaction(
    spark_backend: Any, lake: Path
) -> None:
    expected = fill(lake, batches=3)

    def read() -> list[tuple[str, str, int, str]]:
        table = events(spark_backend, str(lake))
        rows = spark_backend.to_pyarrow(
            table.select("business_id", "day", "inbox_seq", "message_id")
        ).to_pylist()
        return sorted(
            (r["business_id"], r["day"].isoformat(), r["inbox_seq"], r["message_id"]) for r in rows
        )

    before = read()
    compact(str(lake), now=NOW)
    after = read()
    assert before == after
    assert [(b, d, s) for b, d, s, _ in after] == expected
    assert [m for *_, m in after] == [f"msg-{s}" for _, _, s in expected]
