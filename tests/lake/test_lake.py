"""The lake: typed columns from Segment events, one file per business, day and batch."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyarrow import fs

from accord.collect.validation import Limits, normalise_event
from accord.lake import service
from accord.lake.schema import EVENT_SCHEMA, EVENTS, lake_row
from accord.lake.service import partition_dir, visible_files, write_batch

LIMITS = Limits(
    max_event_bytes=32 * 1024, max_future=timedelta(days=1), max_age=timedelta(days=3650)
)


def envelope(n: int = 1, **fields: Any) -> dict[str, Any]:
    """An event as the inbox stores it (after `normalise_event`)."""
    event: dict[str, Any] = {
        "type": "track",
        "event": "Order Completed",
        "messageId": f"msg-{n}",
        "userId": "user-1",
        "originalTimestamp": "2026-11-03T10:00:00.000Z",
        "sentAt": None,
        "receivedAt": "2026-11-03T10:00:01.000Z",
        "timestamp": "2026-11-03T10:00:00.000Z",
    }
    event.update(fields)
    return event


def lake_files(lake: Path) -> list[str]:
    return sorted(str(p.relative_to(lake)) for p in lake.rglob("*") if p.is_file())


def read_lake(lake: Path) -> list[dict[str, Any]]:
    relation = duckdb.read_parquet(visible_files(str(lake)), hive_partitioning=True)
    rows: list[dict[str, Any]] = relation.order("inbox_seq").arrow().read_all().to_pylist()
    return rows


# lake_row ------------------------------------------------------------------------


def test_lake_row_has_exactly_the_schema_columns_and_fits_the_schema() -> None:
    row = lake_row(7, "src_1", envelope())
    assert list(row) == EVENT_SCHEMA.names
    assert not set(EVENTS.partitions.names) & set(row)
    table = pa.Table.from_pylist([row], schema=EVENT_SCHEMA)
    assert table.num_rows == 1


def test_lake_row_envelope_columns() -> None:
    row = lake_row(
        42,
        "src_9",
        envelope(
            type="alias",
            messageId="m-42",
            userId="u-1",
            anonymousId="a-1",
            previousId="old-1",
            groupId="g-1",
            event=None,
            name="Home",
            sentAt="2026-11-03T10:00:02.000Z",
            timestamp="2026-11-03T23:59:59.999+00:00",
        ),
    )
    assert row["inbox_seq"] == 42
    assert row["source_id"] == "src_9"
    assert row["message_id"] == "m-42"
    assert row["type"] == "alias"
    assert row["event"] is None
    assert row["name"] == "Home"
    assert (row["user_id"], row["anonymous_id"]) == ("u-1", "a-1")
    assert (row["previous_id"], row["group_id"]) == ("old-1", "g-1")
    assert row["timestamp"] == datetime(2026, 11, 3, 23, 59, 59, 999000, tzinfo=UTC)
    assert row["original_timestamp"] == datetime(2026, 11, 3, 10, tzinfo=UTC)
    assert row["sent_at"] == datetime(2026, 11, 3, 10, 0, 2, tzinfo=UTC)
    assert row["received_at"] == datetime(2026, 11, 3, 10, 0, 1, tzinfo=UTC)


def test_lake_row_timestamps_with_offsets_are_utc() -> None:
    row = lake_row(1, "s", envelope(timestamp="2026-11-04T00:30:00+01:00"))
    assert row["timestamp"] == datetime(2026, 11, 3, 23, 30, tzinfo=UTC)
    assert row["timestamp"].utcoffset() == timedelta(0)


def test_page_columns_come_from_context_page() -> None:
    row = lake_row(
        1,
        "s",
        envelope(
            type="page",
            event=None,
            context={
                "page": {
                    "url": "https://shop.example/shoes?x=1",
                    "path": "/shoes",
                    "referrer": "https://search.example/",
                }
            },
        ),
    )
    assert row["page_url"] == "https://shop.example/shoes?x=1"
    assert row["page_path"] == "/shoes"
    assert row["page_referrer"] == "https://search.example/"


def test_page_columns_prefer_properties_over_context_page() -> None:
    row = lake_row(
        1,
        "s",
        envelope(
            type="page",
            properties={"url": "https://a.example/p", "path": "/p"},
            context={"page": {"url": "https://b.example/q", "path": "/q", "referrer": "r"}},
        ),
    )
    assert row["page_url"] == "https://a.example/p"
    assert row["page_path"] == "/p"
    # Not in properties: the context's value is used.
    assert row["page_referrer"] == "r"


def test_page_columns_are_none_when_context_page_is_not_an_object() -> None:
    row = lake_row(1, "s", envelope(context={"page": "https://x.example"}))
    assert (row["page_url"], row["page_path"], row["page_referrer"]) == (None, None, None)


@pytest.mark.parametrize(
    ("properties", "revenue"),
    [
        ({"revenue": 19.99}, 19.99),
        ({"revenue": 20}, 20.0),
        ({"total": 35.5}, 35.5),
        ({"revenue": "12.50"}, 12.5),
        ({"total": "-3"}, -3.0),
        ({"revenue": 5, "total": 99}, 5.0),
        ({"revenue": "twelve"}, None),
        ({"revenue": True}, None),
        ({"revenue": {"amount": 3}}, None),
        ({"revenue": [1]}, None),
        ({"revenue": None, "total": 4}, None),
        ({"revenue": "NaN"}, None),
        ({"total": "Infinity"}, None),
        ({"revenue": "-inf"}, None),
        ({}, None),
    ],
)
def test_revenue_from_revenue_or_total(properties: dict[str, Any], revenue: float | None) -> None:
    assert lake_row(1, "s", envelope(properties=properties))["revenue"] == revenue


def test_commerce_columns_from_properties() -> None:
    row = lake_row(
        1,
        "s",
        envelope(
            properties={
                "order_id": 1001,
                "currency": "EUR",
                "product_id": "p-1",
                "category": "Shoes",
                "products": [{"product_id": "p-2", "category": "Hats"}],
            }
        ),
    )
    assert row["order_id"] == "1001"
    assert row["currency"] == "EUR"
    assert (row["product_id"], row["category"]) == ("p-1", "Shoes")


def test_product_columns_from_the_first_of_products() -> None:
    row = lake_row(
        1,
        "s",
        envelope(
            properties={
                "products": [
                    {"product_id": "p-2", "category": "Hats"},
                    {"product_id": "p-3", "category": "Socks"},
                ]
            }
        ),
    )
    assert (row["product_id"], row["category"]) == ("p-2", "Hats")


@pytest.mark.parametrize("products", [[], ["p-1"], [None], "p-1", {"product_id": "p-1"}, 3])
def test_odd_products_give_no_product_columns(products: Any) -> None:
    row = lake_row(1, "s", envelope(properties={"products": products}))
    assert (row["product_id"], row["category"]) == (None, None)


def test_utm_columns_from_context_campaign() -> None:
    row = lake_row(
        1,
        "s",
        envelope(
            context={
                "channel": "web",
                "campaign": {
                    "source": "newsletter",
                    "medium": "email",
                    "name": "spring-sale",
                    "term": "boots",
                    "content": "hero",
                },
            }
        ),
    )
    assert row["channel"] == "web"
    assert (
        row["utm_source"],
        row["utm_medium"],
        row["utm_campaign"],
        row["utm_term"],
        row["utm_content"],
    ) == ("newsletter", "email", "spring-sale", "boots", "hero")


def test_campaign_that_is_not_an_object_gives_no_utm_columns() -> None:
    row = lake_row(1, "s", envelope(context={"campaign": "spring"}))
    assert row["utm_campaign"] is None


def test_objects_are_kept_as_json_text() -> None:
    properties = {"a": 1, "nested": {"b": [1, 2, {"c": None}]}, "ü": "ß"}
    traits = {"email": "ann@example.com", "vip": True}
    context = {"ip": "192.0.2.1", "library": {"name": "analytics.js"}}
    row = lake_row(1, "s", envelope(properties=properties, traits=traits, context=context))
    assert orjson.loads(row["properties"]) == properties
    assert orjson.loads(row["traits"]) == traits
    assert orjson.loads(row["context"]) == context


def test_missing_or_empty_objects_are_null() -> None:
    row = lake_row(1, "s", envelope(properties={}))
    assert (row["properties"], row["traits"], row["context"]) == (None, None, None)


def test_typed_columns_hold_text_not_objects() -> None:
    row = lake_row(1, "s", envelope(properties={"currency": {"code": "EUR"}, "order_id": 7.5}))
    assert row["currency"] is None
    assert row["order_id"] == "7.5"


def test_lake_row_of_a_normalised_segment_call() -> None:
    raw = {
        "type": "page",
        "name": "Boots",
        "anonymousId": "anon-1",
        "properties": {"title": "Boots", "url": "https://shop.example/boots"},
        "context": {"campaign": {"source": "ads"}, "page": {"path": "/boots"}},
        "timestamp": "2026-11-03T10:00:00Z",
        "sentAt": "2026-11-03T10:00:05Z",
    }
    received = datetime(2026, 11, 3, 10, 0, 6, tzinfo=UTC)
    event = normalise_event(
        raw, path="", implied_type=None, received_at=received, batch_sent_at=None, limits=LIMITS
    )
    row = lake_row(3, "src", event)
    # Clock-skew correction: the device clock was 1 s behind the server.
    assert row["timestamp"] == datetime(2026, 11, 3, 10, 0, 1, tzinfo=UTC)
    assert row["original_timestamp"] == datetime(2026, 11, 3, 10, tzinfo=UTC)
    assert row["message_id"] == event["messageId"]
    assert (row["page_url"], row["page_path"], row["utm_source"]) == (
        "https://shop.example/boots",
        "/boots",
        "ads",
    )
    assert row["anonymous_id"] == "anon-1"
    assert row["user_id"] is None


# lake_row never raises -----------------------------------------------------------

KNOWN_KEYS = st.sampled_from(
    [
        "url",
        "path",
        "referrer",
        "revenue",
        "total",
        "currency",
        "order_id",
        "product_id",
        "category",
        "products",
        "page",
        "campaign",
        "channel",
        "source",
        "medium",
        "name",
        "term",
        "content",
    ]
)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    # What orjson parses into: 64-bit integers, finite doubles, any text.
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["12.5", "NaN", "1e400", "-0", " 7 "])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(KNOWN_KEYS | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=25,
)
JSON_OBJECTS = st.dictionaries(KNOWN_KEYS | st.text(max_size=6), JSON_VALUES, max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event_type=st.sampled_from(["track", "identify", "page", "screen", "group", "alias"]),
    properties=JSON_OBJECTS,
    context=JSON_OBJECTS,
    traits=JSON_OBJECTS,
    event_name=JSON_SCALARS,
    page_name=JSON_SCALARS,
)
def test_lake_row_never_raises_on_json_values(
    event_type: str,
    properties: dict[str, Any],
    context: dict[str, Any],
    traits: dict[str, Any],
    event_name: Any,
    page_name: Any,
) -> None:
    event = envelope(
        type=event_type,
        event=event_name,
        name=page_name,
        properties=properties,
        context=context,
        traits=traits,
    )
    row = lake_row(1, "src", event)
    assert list(row) == EVENT_SCHEMA.names
    # The row always fits the lake's schema, so a batch of it can always be written.
    pa.Table.from_pylist([row], schema=EVENT_SCHEMA)
    revenue = row["revenue"]
    assert revenue is None or math.isfinite(revenue)
    for column in ("properties", "traits", "context"):
        original = event[column]
        assert row[column] is None if not original else orjson.loads(row[column]) == original


# write_batch ---------------------------------------------------------------------


def batch_rows(specs: list[tuple[str, int, str]]) -> list[tuple[str, dict[str, Any]]]:
    """(business_id, seq, timestamp) triples as rows for `write_batch`."""
    return [
        (business, lake_row(seq, "src_1", envelope(seq, timestamp=ts)))
        for business, seq, ts in specs
    ]


SPECS = [
    ("biz_a", 1, "2026-11-01T23:59:59.999Z"),
    ("biz_a", 2, "2026-11-02T00:00:00.000Z"),
    ("biz_a", 3, "2026-11-02T00:30:00+01:00"),  # 2026-11-01 23:30 UTC
    ("biz_b", 4, "2026-11-01T12:00:00Z"),
    ("biz_a", 5, "2026-11-02T18:00:00Z"),
]


def test_write_batch_writes_one_file_per_business_and_day(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    written = write_batch(str(lake), batch_id="bat_1", rows=batch_rows(SPECS))
    expected = [
        "business_id=biz_a/day=2026-11-01/part-bat_1.parquet",
        "business_id=biz_a/day=2026-11-02/part-bat_1.parquet",
        "business_id=biz_b/day=2026-11-01/part-bat_1.parquet",
    ]
    assert lake_files(lake) == expected
    assert sorted(written) == [str(lake / name) for name in expected]
    assert written[0].startswith(partition_dir(str(lake), "biz_a", "2026-11-01"))
    by_file = {
        name: sorted(pq.read_table(lake / name).column("inbox_seq").to_pylist())
        for name in expected
    }
    assert by_file == {expected[0]: [1, 3], expected[1]: [2, 5], expected[2]: [4]}


def test_files_hold_the_event_schema_without_partition_columns(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_batch(str(lake), batch_id="bat_1", rows=batch_rows(SPECS[:1]))
    schema = pq.read_schema(lake / lake_files(lake)[0])
    assert schema.names == EVENT_SCHEMA.names
    assert schema.field("timestamp").type == pa.timestamp("us", tz="UTC")


def test_files_are_readable_by_duckdb_with_hive_partitioning(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_batch(str(lake), batch_id="bat_1", rows=batch_rows(SPECS))
    rows = read_lake(lake)
    assert [(r["business_id"], r["day"].isoformat(), r["inbox_seq"]) for r in rows] == [
        ("biz_a", "2026-11-01", 1),
        ("biz_a", "2026-11-02", 2),
        ("biz_a", "2026-11-01", 3),
        ("biz_b", "2026-11-01", 4),
        ("biz_a", "2026-11-02", 5),
    ]
    assert rows[0]["timestamp"] == datetime(2026, 11, 1, 23, 59, 59, 999000, tzinfo=UTC)
    relation = duckdb.read_parquet(visible_files(str(lake)), hive_partitioning=True)
    types = dict(zip(relation.columns, map(str, relation.types), strict=True))
    assert types["business_id"] == "VARCHAR"
    assert types["day"] == "DATE"


def test_rewriting_a_batch_replaces_its_rows(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    rows = batch_rows(SPECS)
    write_batch(str(lake), batch_id="bat_1", rows=rows)
    files = lake_files(lake)
    # A retried batch holds the same rows; it must not appear twice.
    write_batch(str(lake), batch_id="bat_1", rows=rows)
    write_batch(str(lake), batch_id="bat_1", rows=rows)
    assert lake_files(lake) == files
    assert [r["inbox_seq"] for r in read_lake(lake)] == [1, 2, 3, 4, 5]


def test_other_batches_add_files_beside_the_first(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_batch(str(lake), batch_id="bat_1", rows=batch_rows(SPECS[:2]))
    write_batch(str(lake), batch_id="bat_2", rows=batch_rows([("biz_a", 9, SPECS[0][2])]))
    assert lake_files(lake) == [
        "business_id=biz_a/day=2026-11-01/part-bat_1.parquet",
        "business_id=biz_a/day=2026-11-01/part-bat_2.parquet",
        "business_id=biz_a/day=2026-11-02/part-bat_1.parquet",
    ]
    assert [r["inbox_seq"] for r in read_lake(lake)] == [1, 2, 9]


def test_no_temporary_files_remain(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for batch in ("bat_1", "bat_2", "bat_1"):
        write_batch(str(lake), batch_id=batch, rows=batch_rows(SPECS))
    names = [p.name for p in lake.rglob("*") if p.is_file()]
    assert names
    assert all(n.startswith("part-") and n.endswith(".parquet") for n in names), names


def test_empty_batch_writes_nothing(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    assert write_batch(str(lake), batch_id="bat_1", rows=[]) == []
    assert not bool(visible_files(str(lake)))


def test_has_files(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    assert not bool(visible_files(str(lake)))
    lake.mkdir()
    assert not bool(visible_files(str(lake)))
    write_batch(str(lake), batch_id="bat_1", rows=batch_rows(SPECS[:1]))
    assert bool(visible_files(str(lake)))


def test_file_uri_lakes_work_like_folders(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_batch(lake.as_uri(), batch_id="bat_1", rows=batch_rows(SPECS))
    assert bool(visible_files(lake.as_uri()))
    assert len(read_lake(lake)) == len(SPECS)


def test_object_stores_get_each_file_in_one_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not a LocalFileSystem, so written to as an object store (where a rename is a
    # copy and a delete), while the files land in tmp_path.
    store = fs.SubTreeFileSystem(str(tmp_path), fs.LocalFileSystem())
    monkeypatch.setattr(service, "filesystem_of", lambda url: (store, "lake"))
    uploads: list[str] = []
    real_write = pq.write_table

    def write(table: pa.Table, where: str, **options: Any) -> None:
        uploads.append(where)
        real_write(table, where, **options)

    monkeypatch.setattr(service.pq, "write_table", write)
    files = write_batch("s3://bucket/lake", batch_id="bat_1", rows=batch_rows(SPECS))
    assert uploads == files
    assert {f.rsplit("/", 1)[1] for f in files} == {"part-bat_1.parquet"}
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
