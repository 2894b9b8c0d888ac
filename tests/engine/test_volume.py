"""The volume report: exact counts per business, day, source and type on DuckDB and Spark."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.analytics.service import volume
from accord.analytics.volume import events_per_type_per_day
from accord.core.errors import InvalidInput
from accord.engine.connection import close, connect, spark_session
from accord.engine.lake import events
from accord.lake.schema import lake_row
from accord.lake.service import write_batch

SPARK_URL = "pyspark://local[2]"
COLUMNS = ["business_id", "day", "source_id", "type", "events"]

# (business, source, type, timestamp as a client sends it)
EVENTS: list[tuple[str, str, str, str]] = [
    # Either side of midnight UTC.
    ("biz_shop", "src_web", "track", "2026-11-01T23:59:59.999Z"),
    ("biz_shop", "src_web", "track", "2026-11-02T00:00:00.000Z"),
    ("biz_shop", "src_web", "track", "2026-11-02T00:00:00.001Z"),
    # Local times whose UTC day differs from the local day.
    ("biz_shop", "src_web", "track", "2026-11-02T00:30:00+01:00"),  # 2026-11-01 23:30 UTC
    ("biz_shop", "src_web", "page", "2026-11-01T19:30:00-05:00"),  # 2026-11-02 00:30 UTC
    ("biz_shop", "src_web", "page", "2026-11-01T08:00:00Z"),
    ("biz_shop", "src_web", "page", "2026-11-01T09:00:00Z"),
    ("biz_shop", "src_web", "identify", "2026-11-01T10:00:00Z"),
    ("biz_shop", "src_app", "screen", "2026-11-01T10:00:00Z"),
    ("biz_shop", "src_app", "screen", "2026-11-03T23:59:59Z"),
    ("biz_shop", "src_app", "track", "2026-11-03T12:00:00Z"),
    ("biz_shop", "src_pos", "track", "2026-11-03T12:00:00Z"),
    ("biz_cafe", "src_till", "track", "2026-11-01T12:00:00Z"),
    ("biz_cafe", "src_till", "track", "2026-11-01T12:00:01Z"),
    ("biz_cafe", "src_till", "alias", "2026-11-02T12:00:00Z"),
    ("biz_cafe", "src_till", "group", "2026-11-02T12:00:00Z"),
    ("biz_cafe", "src_web2", "page", "2026-10-31T23:59:59Z"),
]

EXPECTED: list[dict[str, Any]] = [
    {"business_id": b, "day": d, "source_id": s, "type": t, "events": n}
    for b, d, s, t, n in [
        ("biz_cafe", "2026-10-31", "src_web2", "page", 1),
        ("biz_cafe", "2026-11-01", "src_till", "track", 2),
        ("biz_cafe", "2026-11-02", "src_till", "alias", 1),
        ("biz_cafe", "2026-11-02", "src_till", "group", 1),
        ("biz_shop", "2026-11-01", "src_app", "screen", 1),
        ("biz_shop", "2026-11-01", "src_web", "identify", 1),
        ("biz_shop", "2026-11-01", "src_web", "page", 2),
        ("biz_shop", "2026-11-01", "src_web", "track", 2),
        ("biz_shop", "2026-11-02", "src_web", "page", 1),
        ("biz_shop", "2026-11-02", "src_web", "track", 2),
        ("biz_shop", "2026-11-03", "src_app", "screen", 1),
        ("biz_shop", "2026-11-03", "src_app", "track", 1),
        ("biz_shop", "2026-11-03", "src_pos", "track", 1),
    ]
]


def segment_event(n: int, event_type: str, timestamp: str) -> dict[str, Any]:
    """A Segment call of the given type as the inbox stores it."""
    event: dict[str, Any] = {
        "type": event_type,
        "messageId": f"msg-{n}",
        "anonymousId": f"anon-{n % 3}",
        "timestamp": timestamp,
        "originalTimestamp": timestamp,
        "receivedAt": "2026-11-04T00:00:00.000Z",
        "context": {"library": {"name": "analytics.js"}, "page": {"path": f"/p/{n}"}},
    }
    if event_type == "track":
        event["event"] = "Product Viewed"
        event["properties"] = {"product_id": f"p-{n}", "revenue": n}
    elif event_type in ("page", "screen"):
        event["name"] = "Home"
    elif event_type == "identify":
        event["userId"] = f"user-{n}"
        event["traits"] = {"email": f"u{n}@example.com"}
    elif event_type == "group":
        event["groupId"] = "g-1"
    elif event_type == "alias":
        event["userId"] = f"user-{n}"
        event["previousId"] = f"anon-{n}"
    return event


def write_lake(lake: Path, specs: list[tuple[str, str, str, str]], batches: int = 1) -> None:
    """Write the events as `batches` batches, so a partition can hold several files."""
    rows = [
        (business, lake_row(n, source, segment_event(n, event_type, timestamp)))
        for n, (business, source, event_type, timestamp) in enumerate(specs, start=1)
    ]
    for index in range(batches):
        part = rows[index::batches]
        if part:
            write_batch(str(lake), batch_id=f"bat_{index}", rows=part)


def plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with ISO-text days and int counts, sorted: comparable across backends."""
    out = []
    for row in rows:
        day = row["day"]
        if isinstance(day, datetime):
            day = day.date()
        if isinstance(day, date):
            day = day.isoformat()
        out.append({**row, "day": day, "events": int(row["events"])})
    return sorted(out, key=lambda r: tuple(str(r[c]) for c in COLUMNS))


def run(backend: Any, lake: Path, business_id: str | None = None) -> list[dict[str, Any]]:
    expr = events_per_type_per_day(events(backend, str(lake)), business_id=business_id)
    rows: list[dict[str, Any]] = backend.to_pyarrow(expr).to_pylist()
    return rows


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("volume") / "lake"
    write_lake(path, EVENTS, batches=3)
    return path


@pytest.fixture
def duck() -> Any:
    return connect("duckdb://")


@pytest.fixture(scope="session")
def spark_backend() -> Iterator[Any]:
    """One local Spark for the whole run: starting it takes seconds."""
    backend = connect(SPARK_URL)
    yield backend
    close(backend)


# DuckDB --------------------------------------------------------------------------


def test_counts_on_duckdb(duck: Any, lake: Path) -> None:
    rows = run(duck, lake)
    assert plain(rows) == EXPECTED
    assert sum(r["events"] for r in rows) == len(EVENTS)


def test_rows_come_ordered_and_typed(duck: Any, lake: Path) -> None:
    rows = run(duck, lake)
    assert [list(r) for r in rows] == [COLUMNS] * len(rows)
    keys = [(r["business_id"], r["day"], r["source_id"], r["type"]) for r in rows]
    assert keys == sorted(keys)
    assert all(isinstance(r["day"], date) for r in rows)
    assert all(isinstance(r["events"], int) for r in rows)


@pytest.mark.parametrize("business_id", ["biz_shop", "biz_cafe", "biz_none"])
def test_one_business_on_duckdb(duck: Any, lake: Path, business_id: str) -> None:
    expected = [r for r in EXPECTED if r["business_id"] == business_id]
    assert plain(run(duck, lake, business_id)) == expected


def test_service_returns_json_ready_rows(lake: Path) -> None:
    rows = volume(engine_url="duckdb://", lake_url=str(lake), business_id="biz_cafe")
    assert rows == [r for r in EXPECTED if r["business_id"] == "biz_cafe"]


@pytest.mark.parametrize(
    ("since", "until", "source_id"),
    [
        (date(2026, 11, 2), None, None),
        (None, date(2026, 11, 1), None),
        (date(2026, 11, 2), date(2026, 11, 2), None),
        (None, None, "src_app"),
        (date(2026, 11, 3), date(2026, 11, 3), "src_pos"),
        (date(2026, 11, 4), None, None),
    ],
)
def test_service_filters_by_days_and_source(
    lake: Path, since: date | None, until: date | None, source_id: str | None
) -> None:
    expected = [
        r
        for r in EXPECTED
        if r["business_id"] == "biz_shop"
        and (since is None or r["day"] >= since.isoformat())
        and (until is None or r["day"] <= until.isoformat())
        and (source_id is None or r["source_id"] == source_id)
    ]
    rows = volume(
        engine_url="duckdb://",
        lake_url=str(lake),
        business_id="biz_shop",
        since=since,
        until=until,
        source_id=source_id,
    )
    assert rows == expected


def test_a_range_ending_before_it_starts_is_refused(lake: Path) -> None:
    with pytest.raises(InvalidInput, match="until: must be on or after since"):
        volume(
            engine_url="duckdb://",
            lake_url=str(lake),
            business_id=None,
            since=date(2026, 11, 2),
            until=date(2026, 11, 1),
        )


def test_duckdb_file_engine_url(tmp_path: Path, lake: Path) -> None:
    url = f"duckdb:///{tmp_path / 'engine.duckdb'}"
    assert volume(engine_url=url, lake_url=str(lake), business_id=None) == EXPECTED


def test_unknown_engine_url_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported engine URL"):
        connect("postgres://localhost/x")


@pytest.mark.parametrize("state", ["missing", "empty folder", "only a temporary file"])
def test_empty_lake_on_duckdb(duck: Any, tmp_path: Path, state: str) -> None:
    lake = tmp_path / "lake"
    if state != "missing":
        lake.mkdir()
    if state == "only a temporary file":
        partition = lake / "business_id=biz_a" / "day=2026-11-01"
        partition.mkdir(parents=True)
        (partition / ".part-bat_1.parquet.tmp").write_bytes(b"half a file")
    expr = events_per_type_per_day(events(duck, str(lake)))
    assert expr.schema().names == tuple(COLUMNS)
    assert duck.to_pyarrow(expr).to_pylist() == []
    assert run(duck, lake, "biz_a") == []
    assert volume(engine_url="duckdb://", lake_url=str(lake), business_id=None) == []


# Spark ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.spark
def test_spark_returns_the_same_rows_as_duckdb(spark_backend: Any, duck: Any, lake: Path) -> None:
    spark_rows = plain(run(spark_backend, lake))
    assert spark_rows == plain(run(duck, lake))
    assert spark_rows == EXPECTED
    for business_id in ("biz_shop", "biz_cafe"):
        assert plain(run(spark_backend, lake, business_id)) == plain(run(duck, lake, business_id))


@pytest.mark.slow
@pytest.mark.spark
def test_spark_through_the_service(spark_backend: Any, lake: Path) -> None:
    rows = volume(engine_url=SPARK_URL, lake_url=str(lake), business_id=None)
    assert rows == EXPECTED


@pytest.mark.slow
@pytest.mark.spark
def test_spark_empty_lake_leaves_nothing_behind(spark_backend: Any, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for _ in range(2):
        assert run(spark_backend, lake) == []
    # The empty table is a temporary view: no managed table whose folder would
    # make the next Spark process fail.
    warehouse = spark_session(spark_backend).conf.get("spark.sql.warehouse.dir")
    assert not (Path(warehouse.removeprefix("file:")) / "accord_events_empty").exists()


# Property: the expression counts what plain Python counts ------------------------

BUSINESSES = ["biz_a", "biz_b", "biz_c"]
SOURCES = ["src_1", "src_2"]
TYPES = ["track", "identify", "page", "screen", "group", "alias"]
OFFSETS = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]

random_events = st.lists(
    st.tuples(
        st.sampled_from(BUSINESSES),
        st.sampled_from(SOURCES),
        st.sampled_from(TYPES),
        st.datetimes(
            min_value=datetime(2026, 10, 30, 20),
            max_value=datetime(2026, 11, 2, 4),
            timezones=st.sampled_from(OFFSETS),
        ),
    ),
    max_size=60,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=random_events,
    batches=st.integers(min_value=1, max_value=3),
    business_id=st.sampled_from([None, *BUSINESSES]),
)
def test_counts_equal_a_python_counter(
    specs: list[tuple[str, str, str, datetime]], batches: int, business_id: str | None
) -> None:
    expected = Counter(
        (business, instant.astimezone(UTC).date().isoformat(), source, event_type)
        for business, source, event_type, instant in specs
        if business_id in (None, business)
    )
    with tempfile.TemporaryDirectory() as folder:
        lake = Path(folder) / "lake"
        write_lake(
            lake,
            [(b, s, t, instant.isoformat()) for b, s, t, instant in specs],
            batches=batches,
        )
        rows = run(connect("duckdb://"), lake, business_id)
    got = Counter(
        {(r["business_id"], r["day"], r["source_id"], r["type"]): r["events"] for r in plain(rows)}
    )
    assert got == expected
    assert all(r["events"] > 0 for r in rows)
