"""Collection: decode a request, check every event, pass the consent gate, append durably."""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, and_, bindparam, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from accord.accounts.models import SourceRef
from accord.collect.consent_gate import ConsentGate, apply_decision
from accord.collect.importer import RawRow
from accord.collect.inbox import InboxWriter, insert_rows
from accord.collect.models import inbox
from accord.collect.validation import EventProblems, Limits, normalise_event
from accord.core.clock import parse_instant, utcnow
from accord.core.errors import (
    FieldProblem,
    InvalidInput,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from accord.core.settings import Settings
from accord.store.db import Store

JSON_MEDIA_TYPES = ("application/json", "text/plain")


@dataclass
class Accepted:
    received: int
    stored: int
    dropped_by_consent: int
    message_ids: list[str] = field(default_factory=list)
    # Kept only as an anonymous count (identifiers and free text removed) by the gate.
    anonymised_by_consent: int = 0


def limits_from(settings: Settings) -> Limits:
    return Limits(
        max_event_bytes=settings.max_event_bytes,
        max_future=timedelta(seconds=settings.max_future_seconds),
        max_age=timedelta(days=settings.max_event_age_days),
    )


def decode_body(
    body: bytes, *, content_type: str | None, content_encoding: str | None, max_bytes: int
) -> Any:
    """Bytes of a request to JSON, refusing wrong media types and oversized payloads."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type not in JSON_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {media_type or 'nothing'}"
        )
    if len(body) > max_bytes:
        raise PayloadTooLarge("body", f"request is {len(body)} bytes; the limit is {max_bytes}")
    encoding = (content_encoding or "").strip().lower()
    if encoding == "gzip":
        body = _gunzip(body, max_bytes)
    elif encoding not in ("", "identity"):
        raise UnsupportedMediaType(f"Content-Encoding {encoding} is not supported; use gzip")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput([FieldProblem("body", f"malformed JSON: {exc}")]) from exc


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    # Inflate in bounded steps so a small bomb cannot allocate gigabytes.
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise InvalidInput([FieldProblem("body", f"invalid gzip data: {exc}")]) from exc
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise PayloadTooLarge("body", f"decompressed request exceeds {max_bytes} bytes")
    return out


def write_key_from(authorization: str | None, body: Any) -> str | None:
    """The write key: HTTP Basic user (Segment's way), else `writeKey` in the body."""
    if authorization and authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.split(":", 1)[0] or None
    if isinstance(body, dict) and isinstance(body.get("writeKey"), str):
        return str(body["writeKey"])
    return None


def _sent_at(body: dict[str, Any]) -> datetime | None:
    value = body.get("sentAt")
    if not isinstance(value, str):
        if value is not None:
            raise InvalidInput([FieldProblem("sentAt", "must be an ISO-8601 date-time string")])
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise InvalidInput([FieldProblem("sentAt", "is not a valid ISO-8601 date-time")]) from exc


def normalise_request(
    body: Any, *, kind: str, received_at: datetime, limits: Limits, max_batch_events: int
) -> list[dict[str, Any]]:
    """Every event of a single call (`kind` = its type) or of a batch (`kind` = "batch")."""
    if not isinstance(body, dict):
        raise InvalidInput([FieldProblem("body", "must be a JSON object")])
    if kind != "batch":
        try:
            return [
                normalise_event(
                    body,
                    path="",
                    implied_type=kind,
                    received_at=received_at,
                    batch_sent_at=None,
                    limits=limits,
                )
            ]
        except EventProblems as exc:
            raise InvalidInput(exc.problems) from exc
    items = body.get("batch")
    if not isinstance(items, list):
        raise InvalidInput([FieldProblem("batch", "is required and must be a list of events")])
    if not items:
        raise InvalidInput([FieldProblem("batch", "must hold at least one event")])
    if len(items) > max_batch_events:
        raise PayloadTooLarge(
            "batch", f"holds {len(items)} events; the limit is {max_batch_events}"
        )
    sent_at = _sent_at(body)
    events: list[dict[str, Any]] = []
    problems: list[FieldProblem] = []
    for index, item in enumerate(items):
        try:
            events.append(
                normalise_event(
                    item,
                    path=f"batch[{index}]",
                    implied_type=None,
                    received_at=received_at,
                    batch_sent_at=sent_at,
                    limits=limits,
                )
            )
        except EventProblems as exc:
            problems.extend(exc.problems)
    if problems:
        # All or nothing: a batch is stored whole or not at all, so a client can
        # fix and resend it without creating partial duplicates.
        raise InvalidInput(problems)
    return events


def append(
    target: Store | InboxWriter,
    *,
    source: SourceRef,
    events: list[dict[str, Any]],
    gate: ConsentGate,
    received_at: datetime,
) -> Accepted:
    """Store events in the inbox in one transaction; a messageId already stored is skipped.

    `target` is the store itself, or the server's `InboxWriter` that shares commits
    between concurrent requests.
    """
    rows = []
    dropped = anonymised = 0
    decide_many = getattr(gate, "decide_many", None)
    if decide_many is not None:
        decisions = decide_many(events, business_id=source.business_id)
    else:
        decisions = [gate.decide(event, business_id=source.business_id) for event in events]
    for event, decision in zip(events, decisions, strict=True):
        if not decision.keep:
            dropped += 1
            continue
        anonymised += decision.anonymise
        event = apply_decision(event, decision)
        rows.append(
            {
                "business_id": source.business_id,
                "source_id": source.source_id,
                "message_id": event["messageId"],
                "type": event["type"],
                "received_at": received_at,
                "payload": orjson.dumps(event).decode(),
            }
        )
    if isinstance(target, InboxWriter):
        stored = target.insert(rows)
    else:
        stored = len(insert_rows(target, rows))
    return Accepted(
        received=len(events),
        stored=stored,
        dropped_by_consent=dropped,
        message_ids=[e["messageId"] for e in events],
        anonymised_by_consent=anonymised,
    )


def append_in(
    conn: Connection, *, source: SourceRef, events: list[dict[str, Any]], received_at: datetime
) -> int:
    """Store events Accord itself produced (a journey setting a trait) in the caller's
    transaction, so they commit with the change that made them; processed like any event.

    They pass no consent gate: they describe people already stored, under the consent
    their own events were collected with. A messageId already stored is skipped.
    """
    rows = [
        {
            "business_id": source.business_id,
            "source_id": source.source_id,
            "message_id": event["messageId"],
            "type": event["type"],
            "received_at": received_at,
            "payload": orjson.dumps(event).decode(),
        }
        for event in events
    ]
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(inbox).on_conflict_do_nothing().returning(inbox.c.seq)
    return len(conn.execute(statement, rows).all())


@dataclass
class ImportReport:
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    # Valid events the consent gate did not store, or stored without identifiers.
    dropped_by_consent: int = 0
    anonymised_by_consent: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def _imported_event(row: RawRow) -> Any:
    """The row's event as collection should see it.

    A row without messageId gets one from its line and content, so importing the same
    file again finds it stored, while equal rows on two lines stay two events.
    """
    event = row.event
    if isinstance(event, dict) and "sentAt" in event:
        # Clock-skew correction needs the time the device's send was received, which the
        # import is not: the timestamp of an imported event is taken as it is.
        event = {key: value for key, value in event.items() if key != "sentAt"}
    if not isinstance(event, dict) or event.get("messageId") is not None:
        return event
    try:
        content = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return event  # normalise_event reports why it cannot be stored
    digest = hashlib.sha256(b"%d:%s" % (row.line, content)).hexdigest()[:32]
    return {**event, "messageId": f"import-{digest}"}


def import_rows(
    store: Store,
    *,
    source: SourceRef,
    rows: Iterable[RawRow],
    gate: ConsentGate,
    limits: Limits,
    chunk_size: int = 1000,
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Validate each row on its own (a bad row is reported, not fatal) and store in chunks."""
    report = ImportReport()
    chunk: list[dict[str, Any]] = []
    reported = 0

    def flush() -> None:
        nonlocal reported
        if chunk:
            accepted = append(store, source=source, events=chunk, gate=gate, received_at=utcnow())
            report.stored += accepted.stored
            report.dropped_by_consent += accepted.dropped_by_consent
            report.anonymised_by_consent += accepted.anonymised_by_consent
            report.duplicates += accepted.received - accepted.dropped_by_consent - accepted.stored
            chunk.clear()
        # Progress counts rows read, rejected ones included, so a bar ends full.
        if on_progress is not None:
            on_progress(report.read - reported)
        reported = report.read

    for row in rows:
        report.read += 1
        if row.error is not None:
            report.rejected.append({"line": row.line, "field": "line", "reason": row.error})
            continue
        try:
            chunk.append(
                normalise_event(
                    _imported_event(row),
                    path="",
                    implied_type=None,
                    received_at=utcnow(),
                    batch_sent_at=None,
                    limits=limits,
                )
            )
        except EventProblems as exc:
            report.rejected.extend(
                {"line": row.line, "field": p.field or "event", "reason": p.reason}
                for p in exc.problems
            )
        if len(chunk) >= chunk_size:
            flush()
    flush()
    return report


def forget_events(conn: Connection, *, business_id: str, seqs: list[int], profile_id: str) -> int:
    """Delete a person's events from the inbox (for erasure); returns how many rows went."""
    deleted = 0
    for start in range(0, max(len(seqs), 1), 500):
        chunk = seqs[start : start + 500]
        result = conn.execute(
            delete(inbox).where(
                inbox.c.business_id == business_id,
                or_(inbox.c.seq.in_(chunk), inbox.c.profile_id == profile_id),
            )
        )
        deleted += max(result.rowcount, 0)
    return deleted


def link_profiles(conn: Connection, *, links: Mapping[int, str]) -> None:
    """Record the profile each processed event joined (inbox seq to profile id): a
    profile's recent events and real-time audiences read its events by this link."""
    if links:
        conn.execute(
            update(inbox)
            .where(inbox.c.seq == bindparam("row"))
            .values(profile_id=bindparam("profile")),
            [{"row": seq, "profile": pid} for seq, pid in links.items()],
        )


def drop_events(conn: Connection, *, seqs: Collection[int]) -> int:
    """Delete these events from the inbox (an erased person's late or replayed events)."""
    deleted = 0
    ordered = sorted(seqs)
    for start in range(0, len(ordered), 500):
        result = conn.execute(delete(inbox).where(inbox.c.seq.in_(ordered[start : start + 500])))
        deleted += max(result.rowcount, 0)
    return deleted


def payloads_of_profiles(
    conn: Connection, *, profile_ids: list[str], types: tuple[str, ...] | None = None
) -> dict[str, list[str]]:
    """Every processed event of these profiles still held in the inbox (optionally only of
    some types), oldest first."""
    out: dict[str, list[str]] = {}
    for start in range(0, len(profile_ids), 500):
        chunk = profile_ids[start : start + 500]
        query = select(inbox.c.profile_id, inbox.c.payload).where(inbox.c.profile_id.in_(chunk))
        if types is not None:
            query = query.where(inbox.c.type.in_(types))
        rows = conn.execute(query.order_by(inbox.c.seq))
        for row in rows:
            out.setdefault(row.profile_id, []).append(row.payload)
    return out


def purge_processed(store: Store, *, older_than: timedelta) -> int:
    """Forget processed inbox rows past the retention window (the lake keeps them)."""
    with store.write() as conn:
        result = conn.execute(
            delete(inbox).where(
                and_(
                    inbox.c.processed_at.is_not(None), inbox.c.processed_at < utcnow() - older_than
                )
            )
        )
    return max(result.rowcount, 0)
