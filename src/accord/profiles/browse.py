"""Finding and browsing profiles: recent ones, by trait value, counts per day, the timeline.

The queries page through a business's profiles or one person's events in the state
store, so they work the same on SQLite and PostgreSQL; where the two differ (reading a
field of a JSON text column, the UTC day of an instant) one helper here says how.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    case,
    cast,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB

from accord.core.clock import day_labels
from accord.core.errors import FieldProblem, InvalidInput
from accord.profiles.models import (
    Identifier,
    profile_computed,
    profile_events,
    profiles,
)
from accord.profiles.service import ANONYMOUS_KINDS, chunks, identifier_rows
from accord.store.metadata import utc_day

# Trait names a search may name: what `$."…"` (SQLite) and a jsonb key take literally.
TRAIT_NAME = re.compile(r"^[\w .:-]{1,100}$")
EVENT_TYPES = ("track", "identify", "page", "screen", "group", "alias")


@dataclass(frozen=True)
class ProfileSummary:
    """One row of a list of profiles."""

    id: str
    first_seen: datetime
    last_seen: datetime
    event_count: int
    identifiers: list[Identifier]

    @property
    def known(self) -> bool:
        return any(i.kind not in ANONYMOUS_KINDS for i in self.identifiers)

    def first(self, kind: str) -> str | None:
        return next((i.value for i in self.identifiers if i.kind == kind), None)


@dataclass(frozen=True)
class Listing:
    """A page of profiles, and whether another page follows."""

    profiles: list[ProfileSummary]
    has_next: bool


def json_text(conn: Connection, column: Any, key: str) -> ColumnElement[Any]:
    """The field `key` of a JSON object stored as text, as text (`true`, `30`, `pro`)."""
    if conn.dialect.name == "postgresql":
        return func.jsonb_extract_path_text(cast(column, JSONB), key)
    path = f'$."{key}"'
    # SQLite reads JSON true and false as 1 and 0; PostgreSQL writes them out.
    return case(
        (func.json_type(column, path) == "true", literal("true")),
        (func.json_type(column, path) == "false", literal("false")),
        else_=cast(func.json_extract(column, path), String),
    )


def summaries(
    conn: Connection, *, business_id: str, profile_ids: list[str]
) -> list[ProfileSummary]:
    """The profiles named, in the order given (unknown ids are left out)."""
    rows: dict[str, Any] = {}
    for chunk in chunks(sorted(set(profile_ids))):
        for row in conn.execute(
            select(
                profiles.c.id,
                profiles.c.first_seen,
                profiles.c.last_seen,
                profile_computed.c.event_count,
            )
            .join(profile_computed, profile_computed.c.profile_id == profiles.c.id, isouter=True)
            .where(profiles.c.business_id == business_id, profiles.c.id.in_(chunk))
        ):
            rows[row.id] = row
    held: dict[str, list[Identifier]] = {}
    for pid, kind, value in identifier_rows(conn, business_id=business_id, profile_ids=list(rows)):
        held.setdefault(pid, []).append(Identifier(kind=kind, value=value))
    return [
        ProfileSummary(
            id=pid,
            first_seen=rows[pid].first_seen,
            last_seen=rows[pid].last_seen,
            event_count=rows[pid].event_count or 0,
            identifiers=sorted(held.get(pid, []), key=lambda i: (i.kind, i.value)),
        )
        for pid in profile_ids
        if pid in rows
    ]


def _listing(conn: Connection, business_id: str, query: Any, limit: int, offset: int) -> Listing:
    ids = list(
        conn.execute(
            query.order_by(profiles.c.last_seen.desc(), profiles.c.id)
            .limit(limit + 1)
            .offset(offset)
        ).scalars()
    )
    return Listing(
        profiles=summaries(conn, business_id=business_id, profile_ids=ids[:limit]),
        has_next=len(ids) > limit,
    )


def recent(conn: Connection, *, business_id: str, limit: int, offset: int = 0) -> Listing:
    """The business's profiles, most recently seen first."""
    query = select(profiles.c.id).where(profiles.c.business_id == business_id)
    return _listing(conn, business_id, query, limit, offset)


def with_trait(
    conn: Connection, *, business_id: str, trait: str, value: str, limit: int, offset: int = 0
) -> Listing:
    """Profiles whose trait reads `value` (ignoring case), most recently seen first.

    Reads every profile of the business: a look-up for people, not for segments (those
    are audiences, compiled for the engine).
    """
    name = trait.strip()
    if not TRAIT_NAME.match(name):
        raise InvalidInput(
            [FieldProblem("trait", "a trait name: letters, digits, spaces and _ . : -")]
        )
    query = select(profiles.c.id).where(
        profiles.c.business_id == business_id,
        func.lower(json_text(conn, profiles.c.traits, name)) == value.strip().lower(),
    )
    return _listing(conn, business_id, query, limit, offset)


def new_per_day(conn: Connection, *, business_id: str, days: int = 30) -> list[tuple[str, int]]:
    """Profiles first seen on each of the `days` days up to the newest one's, oldest first."""
    newest = conn.execute(
        select(func.max(profiles.c.first_seen)).where(profiles.c.business_id == business_id)
    ).scalar()
    if newest is None:
        return []
    last = newest.astimezone(UTC).date()
    first = last - timedelta(days=days - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    day = utc_day(profiles.c.first_seen).label("day")
    counts: dict[str, int] = dict(
        conn.execute(
            select(day, func.count())
            .where(profiles.c.business_id == business_id, profiles.c.first_seen >= start)
            .group_by(day)
        ).all()
    )
    return [(d, int(counts.get(d, 0))) for d in day_labels(first, last)]


@dataclass(frozen=True)
class EventFilter:
    """Which of a person's events to show: call type, event or page name, time range."""

    type: str | None = None
    name: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def event_filter(
    *, type: str = "", name: str = "", since: str = "", until: str = ""
) -> EventFilter:
    """A filter from what a person typed: days as `YYYY-MM-DD`, both ends included.
    Raises InvalidInput naming each field that cannot be read."""
    problems: list[FieldProblem] = []
    kind = type.strip() or None
    if kind is not None and kind not in EVENT_TYPES:
        problems.append(FieldProblem("type", f"one of {', '.join(EVENT_TYPES)}"))
    days: dict[str, date | None] = {}
    for key, text in (("since", since), ("until", until)):
        days[key] = None
        if text.strip():
            try:
                days[key] = date.fromisoformat(text.strip())
            except ValueError:
                problems.append(FieldProblem(key, "a day written YYYY-MM-DD"))
    first, last = days["since"], days["until"]
    if first and last and last < first:
        problems.append(FieldProblem("until", "must not be before the first day"))
    if problems:
        raise InvalidInput(problems)
    return EventFilter(
        type=kind,
        name=name.strip() or None,
        since=datetime(first.year, first.month, first.day, tzinfo=UTC) if first else None,
        until=(
            datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
            if last
            else None
        ),
    )


def _events_where(
    conn: Connection, business_id: str, profile_id: str, where: EventFilter
) -> list[ColumnElement[bool]]:
    payload = profile_events.c.payload
    clauses: list[ColumnElement[bool]] = [
        profile_events.c.business_id == business_id,
        profile_events.c.profile_id == profile_id,
    ]
    if where.type is not None:
        clauses.append(json_text(conn, payload, "type") == where.type)
    if where.name is not None:
        clauses.append(
            or_(
                json_text(conn, payload, "event") == where.name,
                json_text(conn, payload, "name") == where.name,
            )
        )
    if where.since is not None:
        clauses.append(profile_events.c.occurred_at >= where.since)
    if where.until is not None:
        clauses.append(profile_events.c.occurred_at < where.until)
    return clauses


def timeline(
    conn: Connection,
    *,
    business_id: str,
    profile_id: str,
    limit: int,
    before: datetime | None = None,
    where: EventFilter | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """A profile's events, newest first: those before an instant, those a filter keeps."""
    clauses = _events_where(conn, business_id, profile_id, where or EventFilter())
    if before is not None:
        clauses.append(
            profile_events.c.occurred_at
            < (before if before.tzinfo is not None else before.replace(tzinfo=UTC))
        )
    rows = conn.execute(
        select(profile_events.c.payload)
        .where(*clauses)
        .order_by(profile_events.c.occurred_at.desc(), profile_events.c.inbox_seq.desc())
        .limit(limit)
        .offset(offset)
    ).scalars()
    return [orjson.loads(payload) for payload in rows]


def events_per_day(
    conn: Connection, *, business_id: str, profile_id: str, where: EventFilter | None = None
) -> list[tuple[str, int]]:
    """How many of a profile's events (those a filter keeps) fell on each UTC day."""
    day = utc_day(profile_events.c.occurred_at).label("day")
    rows = conn.execute(
        select(day, func.count())
        .where(*_events_where(conn, business_id, profile_id, where or EventFilter()))
        .group_by(day)
        .order_by(day)
    ).all()
    return [(str(d), int(n)) for d, n in rows]
