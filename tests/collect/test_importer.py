"""Importing files: reading JSON Lines and CSV, and storing good rows once beside bad ones."""

from __future__ import annotations

import csv
import gzip
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from accord.accounts.models import Bootstrap, SourceRef
from accord.collect.consent_gate import GateDecision, KeepEverything
from accord.collect.importer import RawRow, csv_event, read_events
from accord.collect.models import inbox
from accord.collect.service import ImportReport, import_rows, limits_from
from accord.core.clock import iso, utcnow
from accord.core.settings import Settings
from accord.store.db import Store


def write(path: Path, text: str, *, gzipped: bool = False, bom: bool = False) -> Path:
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode()
    path.write_bytes(gzip.compress(data) if gzipped else data)
    return path


def rows_of(path: Path, fmt: str | None = None) -> list[RawRow]:
    return list(read_events(path, fmt))


# JSON Lines ----------------------------------------------------------------------


def test_jsonl_rows_are_numbered_from_one_and_blank_lines_skipped(tmp_path: Path) -> None:
    path = write(
        tmp_path / "events.jsonl",
        '{"type": "track", "n": 1}\n\n   \n{"type": "page", "n": 2}\r\n\n{"n": 3}',
    )
    rows = rows_of(path)
    assert [(r.line, r.event, r.error) for r in rows] == [
        (1, {"type": "track", "n": 1}, None),
        (4, {"type": "page", "n": 2}, None),
        (6, {"n": 3}, None),
    ]


def test_malformed_jsonl_lines_are_reported_with_their_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "events.ndjson",
        '{"n": 1}\n{"n": 2,\n\n{"n": 4}\nnot json\n{"n": 6}\n',
    )
    rows = rows_of(path)
    assert [r.line for r in rows] == [1, 2, 4, 5, 6]
    bad = [r for r in rows if r.error is not None]
    assert [r.line for r in bad] == [2, 5]
    assert all(r.event is None and r.error.startswith("malformed JSON") for r in bad)
    assert [r.event for r in rows if r.error is None] == [{"n": 1}, {"n": 4}, {"n": 6}]


def test_jsonl_values_that_are_not_objects_are_read_as_they_are(tmp_path: Path) -> None:
    # Reading does not judge events; `import_rows` rejects what is not an object.
    rows = rows_of(write(tmp_path / "e.jsonl", '[1, 2]\n"text"\n'))
    assert [(r.line, r.event) for r in rows] == [(1, [1, 2]), (2, "text")]


def test_jsonl_with_a_byte_order_mark(tmp_path: Path) -> None:
    rows = rows_of(write(tmp_path / "e.jsonl", '{"n": 1}\n{"n": 2}\n', bom=True))
    assert [(r.line, r.event, r.error) for r in rows] == [(1, {"n": 1}, None), (2, {"n": 2}, None)]


def test_gzipped_jsonl(tmp_path: Path) -> None:
    path = write(tmp_path / "events.jsonl.gz", '{"n": 1}\n\n{"n": 3}\n', gzipped=True)
    assert [(r.line, r.event) for r in rows_of(path)] == [(1, {"n": 1}), (3, {"n": 3})]


def test_gzip_is_recognised_by_content_not_name(tmp_path: Path) -> None:
    path = write(tmp_path / "events.jsonl", '{"n": 1}\n', gzipped=True)
    assert [r.event for r in rows_of(path)] == [{"n": 1}]


def test_unknown_extensions_are_read_as_jsonl(tmp_path: Path) -> None:
    assert [r.event for r in rows_of(write(tmp_path / "events.txt", '{"n": 1}\n'))] == [{"n": 1}]


# CSV -----------------------------------------------------------------------------

CSV_TEXT = (
    "type,event,userId,messageId,timestamp,properties.revenue,properties.count,"
    "properties.vip,properties.items,properties.title,context.page.url,context.campaign.source,"
    "traits.phone,traits.zip,traits.first_name\n"
    'track,Order Completed,42,m-1,2026-11-01T10:00:00Z,19.99,3,true,"[1, 2]",Boots,'
    "https://shop.example/boots,newsletter,+447700900123,02139,Nan\n"
)


def test_csv_dotted_columns_become_nested_objects(tmp_path: Path) -> None:
    [row] = rows_of(write(tmp_path / "events.csv", CSV_TEXT))
    assert row.line == 2
    assert row.error is None
    assert row.event == {
        "type": "track",
        "event": "Order Completed",
        "userId": "42",
        "messageId": "m-1",
        "timestamp": "2026-11-01T10:00:00Z",
        "properties": {
            "revenue": 19.99,
            "count": 3,
            "vip": True,
            "items": [1, 2],
            "title": "Boots",
        },
        "context": {
            "page": {"url": "https://shop.example/boots"},
            "campaign": {"source": "newsletter"},
        },
        # Text that only looks like a number stays text: phone numbers, zip codes, names.
        "traits": {"phone": "+447700900123", "zip": "02139", "first_name": "Nan"},
    }


def test_csv_with_byte_order_mark_and_gzip(tmp_path: Path) -> None:
    plain = rows_of(write(tmp_path / "a.csv", CSV_TEXT))
    with_bom = rows_of(write(tmp_path / "b.csv", CSV_TEXT, bom=True))
    gzipped = rows_of(write(tmp_path / "c.csv.gz", CSV_TEXT, gzipped=True, bom=True))
    assert with_bom == plain
    assert gzipped == plain
    assert "type" in with_bom[0].event


def test_csv_format_can_be_forced(tmp_path: Path) -> None:
    [row] = rows_of(write(tmp_path / "export.txt", "type,userId\nidentify,u1\n"), "csv")
    assert row.event == {"type": "identify", "userId": "u1"}


def test_csv_line_numbers_count_the_header_as_line_one(tmp_path: Path) -> None:
    text = (
        "type,userId,event,properties.note\r\n"  # 1
        "track,u1,A,x\r\n"  # 2
        'track,u2,B,"two\r\nlines"\r\n'  # 3-4
        "\r\n"  # 5: blank
        "track,u3,C,y\r\n"  # 6
    )
    rows = rows_of(write(tmp_path / "events.csv", text))
    assert [(r.line, r.event["userId"]) for r in rows] == [(2, "u1"), (4, "u2"), (6, "u3")]
    assert rows[1].event["properties"] == {"note": "two\r\nlines"}


def test_csv_empty_cells_are_left_out(tmp_path: Path) -> None:
    text = "type,userId,anonymousId,properties.a,properties.b\ntrack,,anon-1,,1\n"
    [row] = rows_of(write(tmp_path / "events.csv", text))
    assert row.event == {"type": "track", "anonymousId": "anon-1", "properties": {"b": 1}}


def test_csv_ragged_rows_do_not_fail(tmp_path: Path) -> None:
    text = "type,userId\ntrack,u1,extra,cells\nidentify\n"
    rows = rows_of(write(tmp_path / "events.csv", text))
    assert [r.event for r in rows] == [{"type": "track", "userId": "u1"}, {"type": "identify"}]


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("12", 12),
        ("-12", -12),
        ("0", 0),
        ("12.5", 12.5),
        ("-0.25", -0.25),
        ("1e3", 1000.0),
        ("2.5E-2", 0.025),
        ("true", True),
        ("false", False),
        ("null", None),
        ('{"a": {"b": 1}}', {"a": {"b": 1}}),
        ("[1, 2]", [1, 2]),
        ("{not json", "{not json"),
        ("[1,", "[1,"),
        ("True", "True"),
        ("007", "007"),
        ("+44 7700 900123", "+44 7700 900123"),
        ("+5", "+5"),
        (".5", ".5"),
        ("1_000", "1_000"),
        ("nan", "nan"),
        ("Infinity", "Infinity"),
        ("1e400", "1e400"),
        (" 12", " 12"),
        ("١٢", "١٢"),
        ("12 apples", "12 apples"),
    ],
)
def test_csv_cells_are_typed(cell: str, value: Any) -> None:
    event = csv_event({"properties.x": cell})
    assert event["properties"]["x"] == value
    assert type(event["properties"]["x"]) is type(value)


def test_csv_ids_and_top_level_fields_stay_text() -> None:
    event = csv_event(
        {"userId": "007", "anonymousId": "12", "messageId": "1e3", "event": "true", "name": "1"}
    )
    assert event == {
        "userId": "007",
        "anonymousId": "12",
        "messageId": "1e3",
        "event": "true",
        "name": "1",
    }


def test_csv_whole_object_columns_are_parsed() -> None:
    event = csv_event({"properties": '{"a": 1}', "context": '{"ip": "192.0.2.1"}'})
    assert event == {"properties": {"a": 1}, "context": {"ip": "192.0.2.1"}}


FLAT_KEYS = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)
TEXTS = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20).filter(
    # Cells that look like JSON are JSON: those are tested above.
    lambda s: s not in ("true", "false", "null") and s[0] not in "{[-0123456789"
) | st.sampled_from(["007", "+447700900123", "nan", "-", " 1", "1 ", "1,5", "Ünïcode", "a\nb"])
FLAT_VALUES = (
    st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
    | TEXTS
)


def as_cell(value: Any) -> Any:
    """What an exporter writes: JSON's spelling of booleans, Python's of numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


@settings(max_examples=200, deadline=None)
@given(properties=st.dictionaries(FLAT_KEYS, FLAT_VALUES, max_size=8))
def test_csv_round_trip_of_flat_properties(properties: dict[str, Any]) -> None:
    header = ["type", "userId", *(f"properties.{k}" for k in properties)]
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=header)
    writer.writeheader()
    record = {"type": "track", "userId": "u1"}
    record.update({f"properties.{k}": as_cell(v) for k, v in properties.items()})
    writer.writerow(record)
    [read] = list(csv.DictReader(io.StringIO(buffer.getvalue(), newline="")))
    event = csv_event(read)
    assert event.pop("type") == "track"
    assert event.pop("userId") == "u1"
    assert event.get("properties", {}) == properties
    for key, value in properties.items():
        assert type(event["properties"][key]) is type(value)


# import_rows on SQLite and PostgreSQL --------------------------------------------

NOW = utcnow()


def good(n: int, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "track",
        "event": "Product Viewed",
        "userId": f"user-{n % 3}",
        "messageId": f"imp-{n}",
        "timestamp": iso(NOW - timedelta(days=n % 5, minutes=n)),
        "properties": {"n": n},
    }
    event.update(fields)
    return event


def inbox_ids(store: Store) -> list[str]:
    with store.read() as conn:
        return sorted(conn.execute(select(inbox.c.message_id)).scalars())


def run_import(
    store: Store, keys: Bootstrap, settings: Settings, rows: list[RawRow], **kw: Any
) -> ImportReport:
    return import_rows(
        store,
        source=SourceRef(business_id=keys.business_id, source_id=keys.source_id),
        rows=rows,
        gate=kw.pop("gate", KeepEverything()),
        limits=limits_from(settings),
        **kw,
    )


def numbered(events: list[Any]) -> list[RawRow]:
    return [RawRow(line=i, event=e) for i, e in enumerate(events, start=1)]


def test_good_rows_are_stored_once(store: Store, keys: Bootstrap, settings: Settings) -> None:
    rows = numbered([good(n) for n in range(25)])
    progress: list[int] = []
    report = run_import(store, keys, settings, rows, chunk_size=10, on_progress=progress.append)
    assert (report.read, report.stored, report.duplicates, report.rejected) == (25, 25, 0, [])
    assert progress == [10, 10, 5]
    assert inbox_ids(store) == sorted(f"imp-{n}" for n in range(25))
    with store.read() as conn:
        stored = conn.execute(select(inbox).where(inbox.c.message_id == "imp-7")).one()
    assert stored.business_id == keys.business_id
    assert stored.source_id == keys.source_id
    assert stored.type == "track"
    assert orjson.loads(stored.payload)["properties"] == {"n": 7}


def test_reimport_reports_duplicates_not_new_rows(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    rows = numbered([good(n) for n in range(12)])
    run_import(store, keys, settings, rows, chunk_size=5)
    again = run_import(store, keys, settings, rows, chunk_size=5)
    assert (again.read, again.stored, again.duplicates, again.rejected) == (12, 0, 12, [])
    assert len(inbox_ids(store)) == 12


def test_repeated_message_ids_in_one_file_count_as_duplicates(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    rows = numbered([good(1), good(2), good(1), good(3), good(2)])
    report = run_import(store, keys, settings, rows, chunk_size=2)
    assert (report.stored, report.duplicates) == (3, 2)
    report = run_import(store, keys, settings, rows, chunk_size=100)
    assert (report.stored, report.duplicates) == (0, 5)
    assert inbox_ids(store) == ["imp-1", "imp-2", "imp-3"]


def test_reimport_of_rows_without_message_id_stores_nothing_twice(
    store: Store, keys: Bootstrap, settings: Settings, tmp_path: Path
) -> None:
    events = [{k: v for k, v in good(n).items() if k != "messageId"} for n in range(6)]
    # The same row twice on different lines is two events.
    events.append(events[0])
    path = write(
        tmp_path / "events.jsonl", "".join(orjson.dumps(e).decode() + "\n" for e in events)
    )
    first = run_import(store, keys, settings, rows_of(path))
    assert (first.stored, first.duplicates) == (7, 0)
    second = run_import(store, keys, settings, rows_of(path))
    assert (second.stored, second.duplicates) == (0, 7)
    assert len(inbox_ids(store)) == 7


def test_bad_rows_are_reported_and_do_not_block_good_rows(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    rows = [
        RawRow(line=1, event=good(1)),
        RawRow(line=2, event=None, error="malformed JSON: unexpected end of data"),
        RawRow(line=3, event=good(3, event=None)),
        RawRow(line=4, event=good(4)),
        RawRow(line=5, event=good(5, userId=None, type="walk")),
        RawRow(line=6, event=["not", "an", "object"]),
        RawRow(line=7, event=good(7, timestamp="yesterday")),
        RawRow(line=8, event=good(8, timestamp=iso(NOW + timedelta(days=3)))),
        RawRow(line=9, event=good(9, properties=[1])),
        RawRow(line=10, event=good(10)),
    ]
    report = run_import(store, keys, settings, rows, chunk_size=2)
    assert (report.read, report.stored, report.duplicates) == (10, 3, 0)
    assert inbox_ids(store) == ["imp-1", "imp-10", "imp-4"]
    by_line: dict[int, list[tuple[str, str]]] = {}
    for problem in report.rejected:
        assert set(problem) == {"line", "field", "reason"}
        by_line.setdefault(problem["line"], []).append((problem["field"], problem["reason"]))
    assert sorted(by_line) == [2, 3, 5, 6, 7, 8, 9]
    assert by_line[2] == [("line", "malformed JSON: unexpected end of data")]
    assert by_line[3] == [("event", "is required for track and must be a string")]
    # Every problem of a row is reported at once.
    assert {field for field, _ in by_line[5]} == {"type", "userId"}
    assert by_line[6] == [("body", "must be a JSON object")]
    assert by_line[7] == [("timestamp", "is not a valid ISO-8601 date-time")]
    assert by_line[8][0][0] == "timestamp"
    assert "in the future" in by_line[8][0][1]
    assert by_line[9] == [("properties", "must be a JSON object")]


def test_import_of_a_csv_file_end_to_end(
    store: Store, keys: Bootstrap, settings: Settings, tmp_path: Path
) -> None:
    ts = iso(NOW - timedelta(hours=1))
    text = (
        "type,event,userId,messageId,timestamp,properties.revenue,traits.email\n"
        f"track,Order Completed,u1,c-1,{ts},19.99,\n"
        f"identify,,u1,c-2,{ts},,ann@example.com\n"
        f"track,,u2,c-3,{ts},5,\n"
        f"track,Order Completed,,c-4,{ts},5,\n"
    )
    report = run_import(store, keys, settings, rows_of(write(tmp_path / "e.csv", text)))
    assert report.stored == 2
    assert [(p["line"], p["field"]) for p in report.rejected] == [(4, "event"), (5, "userId")]
    assert inbox_ids(store) == ["c-1", "c-2"]
    with store.read() as conn:
        payloads = [orjson.loads(p) for p in conn.execute(select(inbox.c.payload)).scalars()]
    by_id = {p["messageId"]: p for p in payloads}
    assert by_id["c-1"]["properties"] == {"revenue": 19.99}
    assert by_id["c-2"]["traits"] == {"email": "ann@example.com"}


def test_events_the_consent_gate_drops_are_neither_stored_nor_duplicates(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    class DropOdd:
        def decide(self, event: dict[str, Any], *, business_id: str) -> GateDecision:
            return GateDecision(keep=event["properties"]["n"] % 2 == 0)

    report = run_import(
        store, keys, settings, numbered([good(n) for n in range(6)]), gate=DropOdd()
    )
    assert (report.read, report.stored, report.duplicates) == (6, 3, 0)
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(inbox)).scalar_one() == 3


def test_imported_events_keep_their_timestamp(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    """A file is not a live call: correcting for clock skew against the time of the import
    would move a month-old event to today."""
    received = NOW - timedelta(days=40)
    exported = good(  # as a Segment export writes an event
        1,
        originalTimestamp=iso(received - timedelta(seconds=65)),
        timestamp=iso(received - timedelta(seconds=5)),
        sentAt=iso(received - timedelta(seconds=60)),
        receivedAt=iso(received),
    )
    sent_only = good(2, timestamp=iso(received), sentAt=iso(received + timedelta(hours=3)))
    report = run_import(store, keys, settings, numbered([exported, sent_only]))
    assert report.stored == 2
    with store.read() as conn:
        payloads = {
            p["messageId"]: p
            for p in map(orjson.loads, conn.execute(select(inbox.c.payload)).scalars())
        }
    assert payloads["imp-1"]["timestamp"] == exported["timestamp"]
    assert payloads["imp-2"]["timestamp"] == sent_only["timestamp"]
