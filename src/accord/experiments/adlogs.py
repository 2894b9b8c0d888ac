"""Ad logs of an experiment: OpenRTB-like records checked row by row, stored as Parquet.

A record is one bid request, bid response, auction, impression, click, conversion or
spend line, labelled with its arm and its diversion unit (`user.id`). Topics travel as
in OpenRTB 2.6: `user.data[].segment[].id` with `user.data[].ext.segtax` 600 (Topics
v1) or 601 (v2). Amounts are in euros. Files live in the lake under
`_ad_logs/business_id=…/experiment=…/day=…/part-<batch>.parquet`; the leading
underscore keeps Spark's and DuckDB's readers of the event lake from seeing them.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from ibis.backends import BaseBackend

from accord.core.clock import parse_instant
from accord.core.errors import FieldProblem
from accord.engine.lake import dataset
from accord.experiments.taxonomy import taxonomy, version_for_segtax
from accord.lake.schema import Dataset
from accord.lake.service import write_parts

RECORD_TYPES = (
    "bid_request",
    "bid_response",
    "auction",
    "impression",
    "click",
    "conversion",
    "spend",
)
# OpenRTB 2.6 `device.devicetype` values.
DEVICE_TYPES = {
    1: "mobile",
    2: "desktop",
    3: "connected_tv",
    4: "phone",
    5: "tablet",
    6: "connected_device",
    7: "set_top_box",
    8: "ooh",
}
AD_LOG_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("type", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("arm", pa.string()),
        ("unit", pa.string()),
        ("request_id", pa.string()),
        ("campaign_id", pa.string()),
        ("country", pa.string()),
        ("device", pa.string()),
        ("topics_version", pa.int32()),
        ("topic_ids", pa.list_(pa.int32())),
        ("topics_count", pa.int32()),
        ("latency_ms", pa.float64()),
        ("timed_out", pa.bool_()),
        ("filled", pa.bool_()),
        ("bid_price", pa.float64()),
        ("time_in_view_s", pa.float64()),
        ("is_video", pa.bool_()),
        ("video_completed", pa.bool_()),
        ("spend", pa.float64()),
        ("revenue", pa.float64()),
        ("conversion_value", pa.float64()),
        ("planned_spend", pa.float64()),
    ]
)
AD_LOGS = Dataset(
    folder="_ad_logs",
    partitions=pa.schema(
        [("business_id", pa.string()), ("experiment", pa.string()), ("day", pa.date32())]
    ),
    schema=AD_LOG_SCHEMA,
)
NUMERIC_COLUMNS = tuple(
    f.name for f in AD_LOG_SCHEMA if pa.types.is_floating(f.type) or pa.types.is_integer(f.type)
)

# Input field → (column, must be ≥ 0, scale). Amounts in euros, durations as named.
_NUMBERS = {
    "latency_ms": ("latency_ms", 1.0),
    "price": ("bid_price", 1.0),
    "cost": ("spend", 1.0),
    "revenue": ("revenue", 1.0),
    "time_in_view_ms": ("time_in_view_s", 0.001),
    "value": ("conversion_value", 1.0),
    "planned_spend": ("planned_spend", 1.0),
}
_FLAGS = {
    "timed_out": "timed_out",
    "filled": "filled",
    "video": "is_video",
    "video_completed": "video_completed",
}


@dataclass
class RawRecord:
    line: int
    record: Any | None
    error: str | None = None


@dataclass
class AdLogReport:
    read: int = 0
    stored: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any, path: str, problems: list[FieldProblem], *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            problems.append(FieldProblem(path, "is required"))
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        problems.append(FieldProblem(path, "must be a string"))
        return None
    text = str(value)
    if len(text) > 255:
        problems.append(FieldProblem(path, "must be at most 255 characters"))
        return None
    return text


def _topics(user: dict[str, Any], problems: list[FieldProblem]) -> tuple[int | None, list[int]]:
    data = user.get("data", [])
    if not isinstance(data, list):
        problems.append(FieldProblem("user.data", "must be a list"))
        return None, []
    versions: set[int] = set()
    ids: list[int] = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            problems.append(FieldProblem(f"user.data[{i}]", "must be an object"))
            continue
        segtax = _object(entry.get("ext")).get("segtax")
        version = version_for_segtax(segtax) if isinstance(segtax, int) else None
        if version is None:
            continue  # another segment taxonomy: not topics
        versions.add(version)
        known = taxonomy(version).topics
        segments = entry.get("segment", [])
        if not isinstance(segments, list):
            problems.append(FieldProblem(f"user.data[{i}].segment", "must be a list"))
            continue
        for j, segment in enumerate(segments):
            path = f"user.data[{i}].segment[{j}].id"
            raw = segment.get("id") if isinstance(segment, dict) else None
            try:
                topic = int(str(raw))
            except ValueError:
                problems.append(FieldProblem(path, f"must be a topic id, got {raw!r}"))
                continue
            if topic not in known:
                problems.append(
                    FieldProblem(path, f"unknown topic {topic} in Topics taxonomy v{version}")
                )
                continue
            ids.append(topic)
    if len(versions) > 1:
        problems.append(FieldProblem("user.data", "mixes Topics taxonomies v1 and v2"))
    return (versions.pop() if len(versions) == 1 else None), ids


def parse_record(record: Any, *, arms: Iterable[str]) -> dict[str, Any]:
    """One input record as one row of `AD_LOG_SCHEMA`, or `InvalidRecord` naming each field."""
    if not isinstance(record, dict):
        raise InvalidRecord([FieldProblem("record", "must be a JSON object")])
    problems: list[FieldProblem] = []
    kind = record.get("type")
    if kind not in RECORD_TYPES:
        problems.append(
            FieldProblem("type", f"unknown record type {kind!r}; expected one of {RECORD_TYPES}")
        )
    record_id = _text(record.get("id"), "id", problems, required=True)
    timestamp: datetime | None = None
    raw_time = record.get("timestamp")
    if not isinstance(raw_time, str):
        problems.append(FieldProblem("timestamp", "is required as an ISO-8601 date-time"))
    else:
        try:
            timestamp = parse_instant(raw_time)
        except ValueError:
            problems.append(FieldProblem("timestamp", f"is not an ISO-8601 date-time: {raw_time}"))
    arm = _text(record.get("arm"), "arm", problems, required=True)
    allowed = set(arms)
    if arm is not None and arm not in allowed:
        problems.append(
            FieldProblem("arm", f"unknown arm {arm!r}; the design has {sorted(allowed)}")
        )
    user = _object(record.get("user"))
    unit = _text(user.get("id"), "user.id", problems, required=True)
    topics_version, topic_ids = _topics(user, problems)
    device = _object(record.get("device"))
    geo = _object(device.get("geo"))
    device_type = device.get("devicetype")
    currency = record.get("cur", "EUR")
    if currency != "EUR":
        problems.append(FieldProblem("cur", f"amounts must be in EUR, got {currency!r}"))
    row: dict[str, Any] = {
        "record_id": record_id,
        "type": kind,
        "timestamp": timestamp,
        "arm": arm,
        "unit": unit,
        "request_id": _text(record.get("request_id"), "request_id", problems, required=False)
        or (record_id if kind == "bid_request" else None),
        "campaign_id": _text(record.get("campaign_id"), "campaign_id", problems, required=False),
        "country": _text(geo.get("country"), "device.geo.country", problems, required=False),
        "device": DEVICE_TYPES.get(device_type) if isinstance(device_type, int) else None,
        "topics_version": topics_version,
        "topic_ids": topic_ids,
        "topics_count": len(topic_ids),
    }
    for name, (column, scale) in _NUMBERS.items():
        value = record.get(name)
        if value is None:
            row[column] = None
        elif isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(FieldProblem(name, f"must be a number, got {value!r}"))
        elif not math.isfinite(value) or value < 0:
            problems.append(FieldProblem(name, f"must be a finite number ≥ 0, got {value!r}"))
        else:
            row[column] = float(value) * scale
    for name, column in _FLAGS.items():
        value = record.get(name)
        if value is not None and not isinstance(value, bool):
            problems.append(FieldProblem(name, f"must be true or false, got {value!r}"))
        row[column] = value if isinstance(value, bool) else None
    if problems:
        raise InvalidRecord(problems)
    return row


@dataclass
class InvalidRecord(Exception):
    problems: list[FieldProblem]


def _nest(flat: dict[str, str]) -> dict[str, Any]:
    """CSV columns `user.id`, `device.geo.country` become nested fields; numbers typed."""
    record: dict[str, Any] = {}
    for column, cell in flat.items():
        if not column or cell is None or cell == "":
            continue
        target = record
        *parents, leaf = column.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        try:
            target[leaf] = orjson.loads(cell) if cell[0] in "-0123456789tf[{" else cell
        except orjson.JSONDecodeError:
            target[leaf] = cell
    if isinstance(record.get("user"), dict) and "topics_v1" in record["user"]:
        record["user"] = _csv_topics(record["user"], "topics_v1", 600)
    if isinstance(record.get("user"), dict) and "topics_v2" in record["user"]:
        record["user"] = _csv_topics(record["user"], "topics_v2", 601)
    for key in ("id", "request_id", "campaign_id", "arm"):
        if key in record and not isinstance(record[key], str):
            record[key] = flat[key]
    if isinstance(record.get("user"), dict) and not isinstance(record["user"].get("id"), str):
        record["user"]["id"] = flat.get("user.id")
    return record


def _csv_topics(user: dict[str, Any], column: str, segtax: int) -> dict[str, Any]:
    """A CSV cell `239;240` in column `user.topics_v1` as an OpenRTB data segment."""
    raw = str(user.pop(column))
    ids = [part.strip() for part in raw.split(";") if part.strip()]
    data = list(user.get("data", []))
    data.append({"name": "topics", "segment": [{"id": i} for i in ids], "ext": {"segtax": segtax}})
    return {**user, "data": data}


def read_records(path: Path) -> Iterator[RawRecord]:
    """Records of a .jsonl / .csv file (optionally .gz), numbered by line from 1."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    name = path.name.removesuffix(".gz")
    if name.endswith(".csv"):
        reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline=""))
        for record in reader:
            yield RawRecord(reader.line_num, _nest(record))
        return
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield RawRecord(number, orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            yield RawRecord(number, None, f"malformed JSON: {exc}")


def validate(
    records: Iterable[RawRecord], *, arms: Iterable[str]
) -> tuple[list[dict[str, Any]], AdLogReport]:
    """Valid rows and a report naming the line and field of every rejected one."""
    arm_keys = list(arms)
    report = AdLogReport()
    rows: list[dict[str, Any]] = []
    for raw in records:
        report.read += 1
        if raw.error is not None:
            report.rejected.append({"line": raw.line, "field": "line", "reason": raw.error})
            continue
        try:
            rows.append(parse_record(raw.record, arms=arm_keys))
        except InvalidRecord as exc:
            report.rejected.extend(
                {"line": raw.line, "field": p.field, "reason": p.reason} for p in exc.problems
            )
    return rows, report


def batch_id_for(table: pa.Table) -> str:
    """The same records make the same batch id, so loading a file twice replaces its parts."""
    digest = hashlib.sha256()
    for name in ("record_id", "type"):
        column = table.column(name).combine_chunks()
        for buffer in column.buffers():
            if buffer is not None:
                digest.update(memoryview(buffer))
    return digest.hexdigest()[:24]


def write_rows(
    lake_url: str, *, business_id: str, experiment_key: str, rows: list[dict[str, Any]]
) -> list[str]:
    table = pa.Table.from_pylist(rows, schema=AD_LOG_SCHEMA)
    return write_table(
        lake_url, business_id=business_id, experiment_key=experiment_key, table=table
    )


def write_table(
    lake_url: str, *, business_id: str, experiment_key: str, table: pa.Table
) -> list[str]:
    """The records as lake files, one per day, named after the records' batch id."""
    if table.num_rows == 0:
        return []
    days = pc.cast(table.column("timestamp"), pa.date32())
    parts = [
        (
            (business_id, experiment_key, day.isoformat()),
            table.filter(pc.equal(days, pa.scalar(day, pa.date32()))),
        )
        for day in sorted(pc.unique(days).to_pylist())
    ]
    return write_parts(lake_url, AD_LOGS, batch_id=batch_id_for(table), parts=parts)


def ad_logs(backend: BaseBackend, lake_url: str, *, business_id: str, experiment_key: str) -> Any:
    """The experiment's ad logs as an Ibis table (empty, with the schema, if none)."""
    logs = dataset(backend, lake_url, AD_LOGS, business_id=business_id, within=(experiment_key,))
    return logs.select(*AD_LOG_SCHEMA.names)
