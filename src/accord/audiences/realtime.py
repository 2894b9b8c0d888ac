"""Real-time membership: decide again, per batch of events, for the profiles it touched."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select, update

from accord.audiences.computed import reads_computed, with_computed
from accord.audiences.conditions import (
    AggregateCondition,
    Catalog,
    EventCondition,
    referenced_purposes,
    walk,
)
from accord.audiences.definitions import (
    REALTIME_HISTORY_DAYS,
    all_stored,
    in_dependency_order,
    is_realtime,
)
from accord.audiences.evaluate import ProfileFacts, event_facts, matches
from accord.audiences.membership import record_changes
from accord.audiences.models import Change, audience_members, audiences
from accord.audiences.service import granted, people
from accord.collect.service import payloads_of_profiles
from accord.core.clock import utcnow
from accord.lake.schema import lake_row
from accord.profiles.service import profile_rows


def apply_realtime(
    conn: Connection,
    *,
    business_id: str,
    profile_ids: list[str],
    now: datetime | None = None,
    history_days: int = REALTIME_HISTORY_DAYS,
) -> list[Change]:
    """Decide again, for the profiles a batch of events touched, their membership of every
    real-time audience; record and return who entered and who left.

    The worker calls it inside the transaction that applied the batch to profiles.
    """
    if not profile_ids:
        return []
    every = all_stored(conn, business_id)
    live = [
        a
        for a in in_dependency_order(every)
        if is_realtime(a.definition, history_days=history_days)
    ]
    if not live:
        return []
    now = now or utcnow()
    ids = sorted(set(profile_ids))
    computed = any(reads_computed(a.trait_types) for a in live)
    rows = {
        r.id: r
        for r in profile_rows(conn, business_id=business_id, profile_ids=ids, computed=computed)
    }
    current: dict[str, set[str]] = {}
    for start in range(0, len(ids), 500):
        found = conn.execute(
            select(audience_members.c.audience_id, audience_members.c.profile_id).where(
                audience_members.c.business_id == business_id,
                audience_members.c.profile_id.in_(ids[start : start + 500]),
            )
        )
        for row in found:
            current.setdefault(row.profile_id, set()).add(row.audience_id)
    purposes: dict[str, frozenset[str]] = {}
    if any(referenced_purposes(a.definition) for a in live):
        purposes = granted(
            conn,
            business_id=business_id,
            people=people(conn, business_id=business_id, profile_ids=ids).values(),
        )
    history: dict[str, list[Any]] = {}
    if any(
        isinstance(n, EventCondition | AggregateCondition)
        for a in live
        for _, n in walk(a.definition.condition)
    ):
        for profile_id, payloads in payloads_of_profiles(
            conn, profile_ids=ids, types=("track",)
        ).items():
            history[profile_id] = [
                event_facts(lake_row(0, "", orjson.loads(payload))) for payload in payloads
            ]
    slugs = {a.slug: a.id for a in every}
    recorded: list[Change] = []
    for audience in live:
        known = Catalog(traits=audience.trait_types, audiences=slugs)
        entered: list[str] = []
        exited: list[str] = []
        for profile_id, profile in rows.items():
            facts = ProfileFacts(
                profile_id=profile_id,
                traits=with_computed(profile.traits, profile.computed, now)
                if computed
                else profile.traits,
                first_seen=profile.first_seen,
                last_seen=profile.last_seen,
                events=history.get(profile_id, ()),
                purposes=purposes.get(profile_id, frozenset()),
                audiences=frozenset(current.get(profile_id, ())),
            )
            member = audience.id in facts.audiences
            if matches(audience.definition, facts, catalog=known, now=now) != member:
                (exited if member else entered).append(profile_id)
                if member:
                    current[profile_id].discard(audience.id)
                else:
                    current.setdefault(profile_id, set()).add(audience.id)
        recorded += record_changes(
            conn,
            business_id=business_id,
            audience_id=audience.id,
            entered=entered,
            exited=exited,
            origin="realtime",
            now=now,
        )
        if entered or exited:
            conn.execute(
                update(audiences)
                .where(audiences.c.id == audience.id, audiences.c.size.is_not(None))
                .values(size=audiences.c.size + len(entered) - len(exited))
            )
    return recorded
