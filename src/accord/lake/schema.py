"""The lake's datasets, and the events' columns: the Segment envelope and common fields
typed, the rest as JSON text."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from accord.core.clock import parse_instant

TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Dataset:
    """Parquet files of one kind in the lake: their folder, partition folders and columns.

    Partition columns live in folder names (`business_id=…/day=…`), not inside files.
    Every dataset is partitioned by business first: a business's files are one listing.
    """

    folder: str  # under the lake's root; "" for the events, which sit at the root
    partitions: pa.Schema
    schema: pa.Schema

    def __post_init__(self) -> None:
        if self.partitions.names[:1] != ["business_id"]:
            raise ValueError("a lake dataset is partitioned by business_id first")

    def root(self, base: str) -> str:
        base = base.rstrip("/")
        return f"{base}/{self.folder}" if self.folder else base

    def directory(self, base: str, values: Sequence[str]) -> str:
        """The folder of one partition (values of the first partitions give a parent)."""
        if len(values) > len(self.partitions):
            raise ValueError(f"{self.folder or 'events'} has {len(self.partitions)} partitions")
        keys = self.partitions.names[: len(values)]
        folders = [f"{key}={value}" for key, value in zip(keys, values, strict=True)]
        return "/".join([self.root(base), *folders])

    def table_schema(self) -> pa.Schema:
        """The columns readers see: the files' columns, then the partition columns."""
        return pa.unify_schemas([self.schema, self.partitions])


EVENT_SCHEMA = pa.schema(
    [
        ("inbox_seq", pa.int64()),
        ("message_id", pa.string()),
        ("source_id", pa.string()),
        ("type", pa.string()),
        ("event", pa.string()),
        ("name", pa.string()),
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("group_id", pa.string()),
        ("previous_id", pa.string()),
        ("timestamp", TIMESTAMP),
        ("original_timestamp", TIMESTAMP),
        ("sent_at", TIMESTAMP),
        ("received_at", TIMESTAMP),
        ("page_url", pa.string()),
        ("page_path", pa.string()),
        ("page_referrer", pa.string()),
        ("revenue", pa.float64()),
        ("currency", pa.string()),
        ("order_id", pa.string()),
        ("product_id", pa.string()),
        ("category", pa.string()),
        ("channel", pa.string()),
        ("utm_source", pa.string()),
        ("utm_medium", pa.string()),
        ("utm_campaign", pa.string()),
        ("utm_term", pa.string()),
        ("utm_content", pa.string()),
        ("properties", pa.string()),
        ("traits", pa.string()),
        ("context", pa.string()),
    ]
)

EVENTS = Dataset(
    folder="",
    partitions=pa.schema([("business_id", pa.string()), ("day", pa.date32())]),
    schema=EVENT_SCHEMA,
)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        # "NaN" and "Infinity" parse, but would poison every sum of revenue.
        return number if math.isfinite(number) else None
    return None


def _instant(value: Any) -> datetime | None:
    return parse_instant(value) if isinstance(value, str) else None


def _json(value: Any) -> str | None:
    return orjson.dumps(value).decode() if value else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def lake_row(seq: int, source_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """One inbox event as one lake row (without the partition columns)."""
    properties = _mapping(event.get("properties"))
    context = _mapping(event.get("context"))
    campaign = _mapping(context.get("campaign"))
    page = _mapping(context.get("page"))
    products = properties.get("products")
    product = _mapping(products[0]) if isinstance(products, list) and products else {}

    def pick(key: str) -> Any:
        return properties.get(key, page.get(key))

    return {
        "inbox_seq": seq,
        "message_id": event["messageId"],
        "source_id": source_id,
        "type": event["type"],
        "event": _text(event.get("event")),
        "name": _text(event.get("name")),
        "user_id": _text(event.get("userId")),
        "anonymous_id": _text(event.get("anonymousId")),
        "group_id": _text(event.get("groupId")),
        "previous_id": _text(event.get("previousId")),
        "timestamp": _instant(event.get("timestamp")),
        "original_timestamp": _instant(event.get("originalTimestamp")),
        "sent_at": _instant(event.get("sentAt")),
        "received_at": _instant(event.get("receivedAt")),
        "page_url": _text(pick("url")),
        "page_path": _text(pick("path")),
        "page_referrer": _text(pick("referrer")),
        "revenue": _number(properties.get("revenue", properties.get("total"))),
        "currency": _text(properties.get("currency")),
        "order_id": _text(properties.get("order_id")),
        "product_id": _text(properties.get("product_id", product.get("product_id"))),
        # A page or screen call's own category, when properties do not name one.
        "category": _text(
            properties.get("category", product.get("category", event.get("category")))
        ),
        "channel": _text(context.get("channel")),
        "utm_source": _text(campaign.get("source")),
        "utm_medium": _text(campaign.get("medium")),
        "utm_campaign": _text(campaign.get("name")),
        "utm_term": _text(campaign.get("term")),
        "utm_content": _text(campaign.get("content")),
        "properties": _json(event.get("properties")),
        "traits": _json(event.get("traits")),
        "context": _json(event.get("context")),
    }
