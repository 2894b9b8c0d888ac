"""Profiles as the contexts that evaluate them read them (audiences): traits, times and
the computed facts of the fold over their events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select

from accord.core.clock import parse_instant
from accord.profiles.models import profile_computed, profiles

_CHUNK = 500


def _chunks(values: list[str]) -> list[list[str]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


@dataclass(frozen=True)
class ComputedFacts:
    """What the fold over a profile's whole history keeps about its orders and events."""

    event_count: int
    order_count: int
    spend_cents: int
    first_order_at: datetime | None
    last_order_at: datetime | None
    cart_abandoned: bool


@dataclass(frozen=True)
class ProfileRow:
    """A profile's traits and times, for contexts that evaluate profiles (audiences)."""

    id: str
    traits: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    # With `profile_rows(..., computed=True)`, for a profile that has them.
    computed: ComputedFacts | None = None


def _computed_facts(row: Any) -> ComputedFacts | None:
    if row.order_count is None:
        return None
    first = orjson.loads(row.details).get("first_order_at") if row.details else None
    return ComputedFacts(
        event_count=row.event_count,
        order_count=row.order_count,
        spend_cents=row.spend_cents,
        first_order_at=parse_instant(first) if isinstance(first, str) else None,
        last_order_at=row.last_order_at,
        cart_abandoned=bool(row.cart_abandoned),
    )


def profile_rows(
    conn: Connection,
    *,
    business_id: str,
    profile_ids: list[str] | None = None,
    latest: int | None = None,
    computed: bool = False,
) -> list[ProfileRow]:
    """Every profile of a business, the ones named, or the `latest` updated; with their
    computed facts when `computed`."""
    columns = [profiles.c.id, profiles.c.traits, profiles.c.first_seen, profiles.c.last_seen]
    query = select(*columns)
    if computed:
        c = profile_computed.c
        query = select(
            *columns,
            c.event_count,
            c.order_count,
            c.spend_cents,
            c.last_order_at,
            c.cart_abandoned,
            c.details,
        ).join(profile_computed, c.profile_id == profiles.c.id, isouter=True)
    query = query.where(profiles.c.business_id == business_id)
    if latest is not None:
        query = query.order_by(profiles.c.updated_at.desc()).limit(latest)
    out: list[ProfileRow] = []
    for chunk in _chunks(sorted(profile_ids)) if profile_ids is not None else [None]:
        scoped = query if chunk is None else query.where(profiles.c.id.in_(chunk))
        out += [
            ProfileRow(
                r.id,
                orjson.loads(r.traits),
                r.first_seen,
                r.last_seen,
                _computed_facts(r) if computed else None,
            )
            for r in conn.execute(scoped)
        ]
    return out
