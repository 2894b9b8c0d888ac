"""Who is in each audience now, and the entries and exits that got them there."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, delete, func, insert, select

from accord.audiences.definitions import find_stored
from accord.audiences.models import (
    Change,
    Overlap,
    SizePoint,
    audience_changes,
    audience_members,
    audience_sizes,
    audiences,
)


def current_members(conn: Connection, business_id: str) -> dict[str, set[str]]:
    """audience id -> its current members."""
    out: dict[str, set[str]] = {}
    rows = conn.execute(
        select(audience_members.c.audience_id, audience_members.c.profile_id).where(
            audience_members.c.business_id == business_id
        )
    )
    for row in rows:
        out.setdefault(row.audience_id, set()).add(row.profile_id)
    return out


@dataclass(frozen=True)
class Membership:
    audience_id: str
    slug: str
    name: str
    entered_at: datetime


def audiences_of(conn: Connection, *, business_id: str, profile_id: str) -> list[Membership]:
    """The audiences a profile is a member of now, by name."""
    rows = conn.execute(
        select(audiences.c.id, audiences.c.slug, audiences.c.name, audience_members.c.entered_at)
        .join(audience_members, audience_members.c.audience_id == audiences.c.id)
        .where(
            audience_members.c.business_id == business_id,
            audience_members.c.profile_id == profile_id,
        )
        .order_by(audiences.c.slug)
    )
    return [Membership(r.id, r.slug, r.name, r.entered_at) for r in rows]


def record_changes(
    conn: Connection,
    *,
    business_id: str,
    audience_id: str,
    entered: Iterable[str],
    exited: Iterable[str],
    origin: str,
    now: datetime,
) -> list[Change]:
    """Move who entered in and who exited out of the audience, and append those changes
    to its history; the changes as recorded."""
    entered, exited = sorted(entered), sorted(exited)
    for start in range(0, len(exited), 500):
        conn.execute(
            delete(audience_members).where(
                audience_members.c.audience_id == audience_id,
                audience_members.c.profile_id.in_(exited[start : start + 500]),
            )
        )
    if entered:
        conn.execute(
            insert(audience_members),
            [
                {
                    "audience_id": audience_id,
                    "profile_id": p,
                    "business_id": business_id,
                    "entered_at": now,
                }
                for p in entered
            ],
        )
    changes = [(p, "entered") for p in entered] + [(p, "exited") for p in exited]
    if not changes:
        return []
    rows = [
        {
            "business_id": business_id,
            "audience_id": audience_id,
            "profile_id": p,
            "change": change,
            "origin": origin,
            "at": now,
        }
        for p, change in changes
    ]
    conn.execute(insert(audience_changes), rows)
    return [
        Change.model_validate(
            {
                "seq": 0,
                "audience_id": audience_id,
                "profile_id": p,
                "change": c,
                "origin": origin,
                "at": now,
            }
        )
        for p, c in changes
    ]


def sizes(conn: Connection, *, business_id: str, audience: str) -> list[SizePoint]:
    found = find_stored(conn, business_id, audience)
    rows = conn.execute(
        select(audience_sizes.c.at, audience_sizes.c.size)
        .where(audience_sizes.c.audience_id == found.id)
        .order_by(audience_sizes.c.at)
    )
    return [SizePoint(at=r.at, size=r.size) for r in rows]


def overlap(conn: Connection, *, business_id: str, first: str, second: str) -> Overlap:
    a, b = find_stored(conn, business_id, first), find_stored(conn, business_id, second)

    def count(audience_id: str) -> int:
        return int(
            conn.execute(
                select(func.count()).where(audience_members.c.audience_id == audience_id)
            ).scalar_one()
        )

    other = audience_members.alias("other")
    both = int(
        conn.execute(
            select(func.count())
            .select_from(audience_members)
            .join(
                other,
                and_(
                    other.c.profile_id == audience_members.c.profile_id,
                    other.c.audience_id == b.id,
                ),
            )
            .where(audience_members.c.audience_id == a.id)
        ).scalar_one()
    )
    size_a, size_b = count(a.id), count(b.id)
    union = size_a + size_b - both
    return Overlap(
        first=a.slug,
        second=b.slug,
        first_size=size_a,
        second_size=size_b,
        both=both,
        jaccard=both / union if union else 0.0,
    )


def member_ids(conn: Connection, *, business_id: str, audience: str) -> list[str]:
    found = find_stored(conn, business_id, audience)
    return list(
        conn.execute(
            select(audience_members.c.profile_id)
            .where(audience_members.c.audience_id == found.id)
            .order_by(audience_members.c.profile_id)
        ).scalars()
    )


def changes(
    conn: Connection, *, business_id: str, audience: str, after: int = 0, limit: int = 1000
) -> list[Change]:
    """Entries and exits in order, after a sequence number (for journeys and webhooks)."""
    found = find_stored(conn, business_id, audience)
    rows = conn.execute(
        select(audience_changes)
        .where(audience_changes.c.audience_id == found.id, audience_changes.c.seq > after)
        .order_by(audience_changes.c.seq)
        .limit(limit)
    )
    return [
        Change(
            seq=r.seq,
            audience_id=r.audience_id,
            profile_id=r.profile_id,
            change=r.change,
            origin=r.origin,
            at=r.at,
        )
        for r in rows
    ]
