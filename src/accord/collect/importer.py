"""Reads files of Segment-shaped events (JSON Lines or CSV) into raw event dicts."""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

# CSV columns named like `properties.revenue` or `context.page.url` become nested fields.
NESTED_SECTIONS = ("properties", "traits", "context", "integrations")
JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class RawRow:
    line: int
    event: Any | None
    error: str | None = None


def _open(path: Path) -> IO[bytes]:
    raw = path.open("rb")
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return gzip.open(raw, "rb")  # type: ignore[return-value]
    raw.seek(0)
    return raw


def coerce_cell(text: str) -> Any:
    """CSV cells are text; numbers, booleans and JSON objects are given their type back.

    Only numbers written as JSON writes them count: `+4477…`, `02139`, `nan` stay text.
    """
    if text == "":
        return None
    if text[0] in "{[" or text in ("true", "false", "null") or JSON_NUMBER.fullmatch(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
    return text


def csv_event(record: dict[str, str]) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for column, cell in record.items():
        if column is None or cell is None or cell == "":
            continue
        head, _, rest = column.partition(".")
        if head in NESTED_SECTIONS and rest:
            target = event.setdefault(head, {})
            *parents, leaf = rest.split(".")
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = coerce_cell(cell)
        elif head in ("userId", "anonymousId", "messageId", "groupId", "previousId"):
            event[column] = cell
        else:
            event[column] = coerce_cell(cell) if head in NESTED_SECTIONS else cell
    return event


def read_events(path: Path, fmt: str | None = None) -> Iterator[RawRow]:
    """Rows of a .jsonl / .ndjson / .csv file (optionally gzipped), numbered from 1."""
    name = path.name.removesuffix(".gz")
    fmt = fmt or ("csv" if name.endswith(".csv") else "jsonl")
    with _open(path) as handle:
        if fmt == "csv":
            text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
            reader = csv.DictReader(text)
            # The reader's own count: blank lines and quoted line breaks are lines too.
            for record in reader:
                yield RawRow(line=reader.line_num, event=csv_event(record))
            return
        for number, line in enumerate(handle, start=1):
            if number == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark
            if not line.strip():
                continue
            try:
                yield RawRow(line=number, event=orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                yield RawRow(line=number, event=None, error=f"malformed JSON: {exc}")
