"""Helpers of the identity tests: store events, process them, read the graph back."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import select

from accord.accounts.models import Bootstrap, SourceRef
from accord.collect.consent_gate import KeepEverything
from accord.collect.service import append
from accord.core.clock import utcnow
from accord.process.worker import drain
from accord.profiles.derive import ProfileState, derive
from accord.profiles.models import profile_events, profile_identifiers
from accord.profiles.service import load_states
from accord.store.db import Store

LEASE = timedelta(seconds=60)
_counter = iter(range(1_000_000))


def ev(kind: str = "track", minute: int = 0, **fields: Any) -> dict[str, Any]:
    """An event at 10:`minute` on 2026-11-10 with a fresh messageId."""
    event: dict[str, Any] = {
        "type": kind,
        "messageId": f"msg-{next(_counter)}",
        "timestamp": f"2026-11-10T10:{minute:02d}:00.000Z",
    }
    if kind == "track":
        event.setdefault("event", "Page Viewed")
    event.update(fields)
    return event


def process(
    store: Store, keys: Bootstrap, lake_url: str, events: list[dict[str, Any]], batch: int = 3
) -> None:
    source = SourceRef(business_id=keys.business_id, source_id=keys.source_id)
    append(store, source=source, events=events, gate=KeepEverything(), received_at=utcnow())
    drain(store, lake_url=lake_url, batch_size=batch, lease=LEASE)


def groups(store: Store, business_id: str) -> set[frozenset[str]]:
    """The profiles as sets of 'kind:value' strings."""
    with store.read() as conn:
        rows = conn.execute(
            select(
                profile_identifiers.c.profile_id,
                profile_identifiers.c.kind,
                profile_identifiers.c.value,
            ).where(profile_identifiers.c.business_id == business_id)
        ).all()
    by_profile: dict[str, set[str]] = {}
    for row in rows:
        by_profile.setdefault(row.profile_id, set()).add(f"{row.kind}:{row.value}")
    return {frozenset(g) for g in by_profile.values()}


def profile_of(store: Store, business_id: str, key: str) -> str:
    kind, value = key.split(":", 1)
    with store.read() as conn:
        return str(
            conn.execute(
                select(profile_identifiers.c.profile_id).where(
                    profile_identifiers.c.business_id == business_id,
                    profile_identifiers.c.kind == kind,
                    profile_identifiers.c.value == value,
                )
            ).scalar_one()
        )


def states(store: Store, business_id: str) -> dict[str, ProfileState]:
    with store.read() as conn:
        ids = {
            r
            for r in conn.execute(
                select(profile_identifiers.c.profile_id).where(
                    profile_identifiers.c.business_id == business_id
                )
            ).scalars()
        }
        return load_states(conn, profile_ids=ids)


def linked_events(store: Store, business_id: str) -> dict[str, list[dict[str, Any]]]:
    with store.read() as conn:
        rows = conn.execute(
            select(profile_events.c.profile_id, profile_events.c.payload)
            .where(profile_events.c.business_id == business_id)
            .order_by(profile_events.c.inbox_seq)
        ).all()
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row.profile_id, []).append(orjson.loads(row.payload))
    return out


def assert_conserved(store: Store, business_id: str, sent: list[dict[str, Any]]) -> None:
    """Every event is in at most one profile, and each profile is exactly its events.

    A stored profile equal to the fold of its own events has lost nothing and counted
    nothing twice; events linked nowhere are only those without a usable identifier.
    """
    linked = linked_events(store, business_id)
    stored = states(store, business_id)
    seen = [e["messageId"] for events in linked.values() for e in events]
    assert len(seen) == len(set(seen))
    assert set(seen) <= {e["messageId"] for e in sent}
    for pid, state in stored.items():
        assert state == derive(linked.get(pid, [])) or not linked.get(pid), pid
    assert sum(s.event_count for s in stored.values()) == len(seen)
