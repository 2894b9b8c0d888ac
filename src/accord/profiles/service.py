"""Profiles: storage of their state, identifiers and events, and the read views.

Which identifiers belong together is decided by the identity context
(`accord.identity.service`); this module stores and shows the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, delete, func, or_, select, tuple_, update

from accord.core.clock import iso, utcnow
from accord.core.errors import NotFound
from accord.core.ids import new_id
from accord.profiles import rfm
from accord.profiles.derive import ProfileState, TraitPolicy, derive, from_details
from accord.profiles.models import (
    Identifier,
    ProfileView,
    profile_computed,
    profile_events,
    profile_identifiers,
    profiles,
)
from accord.profiles.rows import ComputedFacts as ComputedFacts
from accord.profiles.rows import ProfileRow as ProfileRow
from accord.profiles.rows import profile_rows as profile_rows
from accord.store.db import Store

RECENT_EVENTS = 50
_CHUNK = 500

Key = tuple[str, str]


def chunks(values: list[Any], size: int = _CHUNK) -> list[list[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def new_profile_id() -> str:
    return new_id("prof")


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def owners(conn: Connection, *, business_id: str, keys: Iterable[Key]) -> dict[Key, str]:
    """The profile holding each identifier that has one."""
    by_kind: dict[str, set[str]] = {}
    for kind, value in keys:
        by_kind.setdefault(kind, set()).add(value)
    found: dict[Key, str] = {}
    for kind, values in sorted(by_kind.items()):
        # (business, kind, value) is the primary key: naming the kind lets every
        # lookup use it, however many identifiers the business has.
        for chunk in chunks(sorted(values)):
            rows = conn.execute(
                select(profile_identifiers.c.value, profile_identifiers.c.profile_id).where(
                    profile_identifiers.c.business_id == business_id,
                    profile_identifiers.c.kind == kind,
                    profile_identifiers.c.value.in_(chunk),
                )
            )
            for row in rows:
                found[(kind, row.value)] = row.profile_id
    return found


@cache
def _owner_with_members(keys: int) -> Any:
    owner = profile_identifiers.alias("found_by")
    member = profile_identifiers.alias("same_profile")
    return (
        select(
            owner.c.kind.label("owner_kind"),
            owner.c.value.label("owner_value"),
            member.c.profile_id,
            member.c.kind,
            member.c.value,
        )
        .join_from(
            owner,
            member,
            (member.c.business_id == owner.c.business_id)
            & (member.c.profile_id == owner.c.profile_id),
        )
        .where(
            owner.c.business_id == bindparam("business_id"),
            or_(
                *(
                    (owner.c.kind == bindparam(f"kind_{i}"))
                    & (owner.c.value == bindparam(f"value_{i}"))
                    for i in range(keys)
                )
            ),
        )
    )


_MEMBERS_OF = select(profile_identifiers.c.kind, profile_identifiers.c.value).where(
    profile_identifiers.c.business_id == bindparam("business_id"),
    profile_identifiers.c.profile_id == bindparam("profile_id"),
)


def owner_with_identifiers(
    conn: Connection,
    *,
    business_id: str,
    keys: Sequence[Key] = (),
    profile_id: str | None = None,
) -> tuple[str | None, list[Key]]:
    """The profile of the first of `keys` that has one (or the profile named), and every
    identifier of that profile, in one query: a request path can afford no more."""
    if profile_id is not None:
        rows = conn.execute(_MEMBERS_OF, {"business_id": business_id, "profile_id": profile_id})
        return profile_id, [(r.kind, r.value) for r in rows]
    if not keys:
        return None, []
    parameters: dict[str, Any] = {"business_id": business_id}
    for i, (kind, value) in enumerate(keys):
        parameters |= {f"kind_{i}": kind, f"value_{i}": value}
    owner: dict[Key, str] = {}
    identifiers: dict[str, list[Key]] = {}
    for row in conn.execute(_owner_with_members(len(keys)), parameters):
        owner[(row.owner_kind, row.owner_value)] = row.profile_id
        identifiers.setdefault(row.profile_id, []).append((row.kind, row.value))
    found = next((owner[key] for key in keys if key in owner), None)
    if found is None:
        return None, []
    # The owner row joins once per key it matched: one copy of each identifier.
    return found, list(dict.fromkeys(identifiers[found]))


def members(conn: Connection, *, profile_ids: Iterable[str]) -> dict[str, dict[Key, datetime]]:
    """Each profile's identifiers with the time each was first seen in it."""
    out: dict[str, dict[Key, datetime]] = {}
    for chunk in chunks(sorted(set(profile_ids))):
        for pid in chunk:
            out[pid] = {}
        rows = conn.execute(
            select(
                profile_identifiers.c.profile_id,
                profile_identifiers.c.kind,
                profile_identifiers.c.value,
                profile_identifiers.c.first_seen,
            ).where(profile_identifiers.c.profile_id.in_(chunk))
        )
        for row in rows:
            out[row.profile_id][(row.kind, row.value)] = row.first_seen
    return out


def load_states(
    conn: Connection, *, profile_ids: Iterable[str], lock_rows: bool = False
) -> dict[str, ProfileState]:
    """The stored state of profiles; rows are locked in id order when asked."""
    out: dict[str, ProfileState] = {}
    for chunk in chunks(sorted(set(profile_ids))):
        query = (
            select(profiles, profile_computed)
            .join(profile_computed, profile_computed.c.profile_id == profiles.c.id, isouter=True)
            .where(profiles.c.id.in_(chunk))
            .order_by(profiles.c.id)
        )
        if lock_rows:
            query = query.with_for_update(of=profiles)
        for row in conn.execute(query):
            details = from_details(orjson.loads(row.details)) if row.details else {}
            out[row.id] = ProfileState(
                traits=orjson.loads(row.traits),
                trait_times=orjson.loads(row.trait_times),
                first_seen=row.first_seen,
                last_seen=row.last_seen,
                event_count=row.event_count or 0,
                order_count=row.order_count or 0,
                spend_cents=row.spend_cents or 0,
                last_order_at=row.last_order_at,
                last_cart_at=row.last_cart_at,
                **details,
            )
    return out


def save_states(
    conn: Connection, *, business_id: str, states: dict[str, ProfileState], new: set[str]
) -> None:
    """Insert the new profiles and update the others, a few statements for all of them."""
    now = utcnow()
    # With a batch run's boundaries, every changed customer is scored now, the same way.
    bounds = rfm.load_boundaries(conn, business_id=business_id)
    rows: list[dict[str, Any]] = []
    computed: list[dict[str, Any]] = []
    for pid, state in sorted(states.items()):
        if state.first_seen is None or state.last_seen is None:
            raise ValueError(f"profile {pid} has no event")
        traits, times = state.traits, state.trait_times
        scores = _rfm_scores(bounds, state, now)
        if scores:
            traits, times = {**traits, **scores}, {**times, **dict.fromkeys(scores, iso(now))}
        rows.append(
            {
                "pid": pid,
                "traits": _dumps(traits),
                "trait_times": _dumps(times),
                "first_seen": state.first_seen,
                "last_seen": state.last_seen,
                "updated_at": now,
            }
        )
        computed.append(
            {
                "pid": pid,
                "business_id": business_id,
                "event_count": state.event_count,
                "order_count": state.order_count,
                "spend_cents": state.spend_cents,
                "last_order_at": state.last_order_at,
                "last_cart_at": state.last_cart_at,
                "cart_abandoned": state.cart_abandoned,
                "details": _dumps(state.details()),
            }
        )
    inserted = [
        {"id": r["pid"], "business_id": business_id, "created_at": now, **_without_pid(r)}
        for r in rows
        if r["pid"] in new
    ]
    if inserted:
        conn.execute(profiles.insert(), inserted)
    updated = [r for r in rows if r["pid"] not in new]
    if updated:
        conn.execute(
            update(profiles)
            .where(profiles.c.id == bindparam("pid"))
            .values({k: bindparam(k) for k in _without_pid(updated[0])}),
            updated,
        )
    # Profiles made before computed traits existed have no row yet.
    have: set[str] = set()
    for chunk in chunks([c["pid"] for c in computed if c["pid"] not in new]):
        have.update(
            conn.execute(
                select(profile_computed.c.profile_id).where(
                    profile_computed.c.profile_id.in_(chunk)
                )
            ).scalars()
        )
    fresh = [{"profile_id": c["pid"], **_without_pid(c)} for c in computed if c["pid"] not in have]
    if fresh:
        conn.execute(profile_computed.insert(), fresh)
    stale = [c for c in computed if c["pid"] in have]
    if stale:
        conn.execute(
            update(profile_computed)
            .where(profile_computed.c.profile_id == bindparam("pid"))
            .values({k: bindparam(k) for k in _without_pid(stale[0]) if k != "business_id"}),
            [{k: v for k, v in c.items() if k != "business_id"} for c in stale],
        )


def _rfm_scores(bounds: rfm.Boundaries | None, state: ProfileState, at: datetime) -> dict[str, Any]:
    if bounds is None:
        return {}
    inputs = rfm.inputs_of(
        order_count=state.order_count,
        spend_cents=state.spend_cents,
        last_order_at=state.last_order_at,
    )
    return {} if inputs is None else rfm.score(bounds, inputs, as_of=at)


@dataclass(frozen=True)
class RfmRun:
    business_id: str
    as_of: datetime
    customers: int
    scored: int
    boundaries: dict[str, list[float]]


def run_rfm(
    store: Store, *, business_id: str, engine_url: str, as_of: datetime | None = None
) -> RfmRun:
    """Score every customer of a business on the engine, store the boundaries, and set
    the scores as traits (stamped `as_of`), so audiences can select on them."""
    from accord.engine.connection import connect

    as_of = as_of or utcnow()
    with store.read() as conn:
        base = rfm.base_table(conn, business_id=business_id)
    backend = connect(engine_url)
    bounds = rfm.boundaries_on_engine(backend, base, as_of=as_of)
    scores = rfm.scores_on_engine(backend, base, bounds) if bounds is not None else {}
    with store.write() as conn:
        if bounds is not None:
            rfm.save_boundaries(conn, business_id=business_id, bounds=bounds)
        scored = set_traits(conn, business_id=business_id, values=scores, at=as_of)
    return RfmRun(
        business_id=business_id,
        as_of=as_of,
        customers=base.num_rows,
        scored=scored,
        boundaries={
            name: list(getattr(bounds, name)) if bounds is not None else []
            for name in rfm.DIMENSIONS
        },
    )


def business_ids(conn: Connection) -> list[str]:
    """The businesses that have profiles."""
    return list(
        conn.execute(
            select(profiles.c.business_id).distinct().order_by(profiles.c.business_id)
        ).scalars()
    )


def _without_pid(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "pid"}


def add_identifiers(
    conn: Connection, *, business_id: str, rows: list[tuple[Key, str, datetime]]
) -> None:
    """Attach identifiers ((kind, value), profile id, first seen) to profiles."""
    if rows:
        conn.execute(
            profile_identifiers.insert(),
            [
                {
                    "business_id": business_id,
                    "kind": kind,
                    "value": value,
                    "profile_id": pid,
                    "first_seen": first_seen,
                }
                for (kind, value), pid, first_seen in rows
            ],
        )


def move_identifiers(
    conn: Connection, *, business_id: str, keys: list[Key], profile_id: str
) -> None:
    for chunk in chunks(keys):
        conn.execute(
            update(profile_identifiers)
            .where(
                profile_identifiers.c.business_id == business_id,
                tuple_(profile_identifiers.c.kind, profile_identifiers.c.value).in_(chunk),
            )
            .values(profile_id=profile_id)
        )


def absorb(conn: Connection, *, into: str, merged: str) -> None:
    """Move a merged profile's identifiers and events to the surviving one, then drop it."""
    conn.execute(
        update(profile_identifiers)
        .where(profile_identifiers.c.profile_id == merged)
        .values(profile_id=into)
    )
    conn.execute(
        update(profile_events).where(profile_events.c.profile_id == merged).values(profile_id=into)
    )
    delete_profile_rows(conn, profile_id=merged)


def delete_profile_rows(conn: Connection, *, profile_id: str) -> None:
    conn.execute(delete(profile_computed).where(profile_computed.c.profile_id == profile_id))
    conn.execute(delete(profiles).where(profiles.c.id == profile_id))


@dataclass(frozen=True)
class EventLink:
    inbox_seq: int
    message_id: str
    occurred_at: datetime
    identifiers: list[Key]
    payload: str


def link_events(conn: Connection, *, business_id: str, links: list[tuple[EventLink, str]]) -> None:
    if links:
        conn.execute(
            profile_events.insert(),
            [
                {
                    "inbox_seq": link.inbox_seq,
                    "business_id": business_id,
                    "profile_id": pid,
                    "message_id": link.message_id,
                    "occurred_at": link.occurred_at,
                    "identifiers": _dumps([list(k) for k in link.identifiers]),
                    "payload": link.payload,
                }
                for link, pid in links
            ],
        )


def events_of(conn: Connection, *, profile_id: str) -> list[EventLink]:
    """A profile's events, oldest first."""
    rows = conn.execute(
        select(profile_events)
        .where(profile_events.c.profile_id == profile_id)
        .order_by(profile_events.c.occurred_at, profile_events.c.inbox_seq)
    )
    return [
        EventLink(
            inbox_seq=row.inbox_seq,
            message_id=row.message_id,
            occurred_at=row.occurred_at,
            identifiers=[(k, v) for k, v in orjson.loads(row.identifiers)],
            payload=row.payload,
        )
        for row in rows
    ]


def move_events(conn: Connection, *, seqs: list[int], profile_id: str) -> None:
    for chunk in chunks(seqs):
        conn.execute(
            update(profile_events)
            .where(profile_events.c.inbox_seq.in_(chunk))
            .values(profile_id=profile_id)
        )


def rederive(
    conn: Connection,
    *,
    business_id: str,
    profile_id: str,
    policies: dict[str, TraitPolicy],
    new: bool = False,
) -> ProfileState | None:
    """Compute a profile again from its events and store the result.

    A profile without recorded events (built before events were recorded per profile)
    is left as it is.
    """
    events = events_of(conn, profile_id=profile_id)
    if not events:
        return None
    state = derive([orjson.loads(e.payload) for e in events], policies)
    save_states(
        conn,
        business_id=business_id,
        states={profile_id: state},
        new={profile_id} if new else set(),
    )
    return state


def profile_ids(conn: Connection, *, business_id: str) -> list[str]:
    return list(
        conn.execute(
            select(profiles.c.id)
            .where(profiles.c.business_id == business_id)
            .order_by(profiles.c.id)
        ).scalars()
    )


# Identifiers a browser or device makes up by itself: a profile holding only these is
# anonymous; any other kind (user id, email, phone, a custom id) makes it known.
ANONYMOUS_KINDS = ("anonymous_id", "device_id")


@dataclass(frozen=True)
class ProfileCounts:
    known: int
    anonymous: int

    @property
    def total(self) -> int:
        return self.known + self.anonymous


def known_and_anonymous(conn: Connection, *, business_id: str) -> ProfileCounts:
    """How many profiles of the business are known (hold an identifier a person gave) and
    how many are anonymous, in two counting queries."""
    total = conn.execute(
        select(func.count()).select_from(profiles).where(profiles.c.business_id == business_id)
    ).scalar_one()
    known = conn.execute(
        select(func.count(func.distinct(profile_identifiers.c.profile_id))).where(
            profile_identifiers.c.business_id == business_id,
            profile_identifiers.c.kind.not_in(ANONYMOUS_KINDS),
        )
    ).scalar_one()
    return ProfileCounts(known=int(known), anonymous=int(total) - int(known))


def find_profile_id(conn: Connection, *, business_id: str, kind: str, value: str) -> str:
    profile_id = conn.execute(
        select(profile_identifiers.c.profile_id).where(
            profile_identifiers.c.business_id == business_id,
            profile_identifiers.c.kind == kind,
            profile_identifiers.c.value == value,
        )
    ).scalar()
    if profile_id is None:
        raise NotFound(f"profile with {kind} {value!r}")
    return str(profile_id)


def profile_view(
    conn: Connection, *, business_id: str, profile_id: str, as_of: datetime | None = None
) -> ProfileView:
    """A profile with its identifiers, traits, newest events and computed traits, RFM
    scores among them: scored now (or at `as_of`) with the business's stored boundaries,
    none without a batch run or for a profile that never ordered."""
    row = conn.execute(
        select(profiles).where(profiles.c.id == profile_id, profiles.c.business_id == business_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"profile {profile_id!r}")
    identifiers = conn.execute(
        select(profile_identifiers.c.kind, profile_identifiers.c.value)
        .where(profile_identifiers.c.profile_id == profile_id)
        .order_by(profile_identifiers.c.kind, profile_identifiers.c.value)
    ).all()
    state = load_states(conn, profile_ids=[profile_id])[profile_id]
    recent = conn.execute(
        select(profile_events.c.payload)
        .where(profile_events.c.profile_id == profile_id)
        # Newest arrivals first, as the inbox had them.
        .order_by(profile_events.c.inbox_seq.desc())
        .limit(RECENT_EVENTS)
    ).scalars()
    return ProfileView(
        id=row.id,
        business_id=row.business_id,
        identifiers=[Identifier(kind=i.kind, value=i.value) for i in identifiers],
        traits=orjson.loads(row.traits),
        trait_times=orjson.loads(row.trait_times),
        computed={
            **state.computed(),
            **_rfm_scores(
                rfm.load_boundaries(conn, business_id=business_id), state, as_of or utcnow()
            ),
        },
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        recent_events=[orjson.loads(payload) for payload in recent],
    )


def find_profile(conn: Connection, *, business_id: str, kind: str, value: str) -> ProfileView:
    """The profile holding an identifier (already in its canonical form)."""
    profile_id = find_profile_id(conn, business_id=business_id, kind=kind, value=value)
    return profile_view(conn, business_id=business_id, profile_id=profile_id)


def delete_profile(conn: Connection, *, business_id: str, profile_id: str) -> tuple[int, int]:
    """Delete a profile with its identifiers and events; returns (identifiers, events)."""
    events = conn.execute(
        delete(profile_events).where(
            profile_events.c.business_id == business_id,
            profile_events.c.profile_id == profile_id,
        )
    ).rowcount
    identifiers = conn.execute(
        delete(profile_identifiers).where(
            profile_identifiers.c.business_id == business_id,
            profile_identifiers.c.profile_id == profile_id,
        )
    ).rowcount
    delete_profile_rows(conn, profile_id=profile_id)
    return max(identifiers, 0), max(events, 0)


def track_times(
    conn: Connection,
    *,
    business_id: str,
    events: Iterable[str],
    since: datetime,
    profile_id: str | None = None,
    limit: int = 100_000,
) -> list[datetime]:
    """When a profile (or, without one, the business's profiles) did any of these track
    events since `since`, whether sent live or imported; at most `limit` moments."""
    names = set(events)
    query = select(profile_events.c.occurred_at, profile_events.c.payload).where(
        profile_events.c.business_id == business_id,
        profile_events.c.occurred_at >= since,
        # A cheap first cut; the JSON decides below.
        or_(*(profile_events.c.payload.contains(name, autoescape=True) for name in names)),
    )
    if profile_id is not None:
        query = query.where(profile_events.c.profile_id == profile_id)
    out: list[datetime] = []
    for row in conn.execute(query.order_by(profile_events.c.occurred_at.desc())):
        payload = orjson.loads(row.payload)
        if payload.get("type") == "track" and payload.get("event") in names:
            out.append(row.occurred_at)
            if len(out) >= limit:
                break
    return out


def identifier_rows(
    conn: Connection, *, business_id: str, profile_ids: list[str] | None = None
) -> list[tuple[str, str, str]]:
    """(profile_id, kind, value) of every identifier of a business, or of the profiles named."""
    query = select(
        profile_identifiers.c.profile_id, profile_identifiers.c.kind, profile_identifiers.c.value
    ).where(profile_identifiers.c.business_id == business_id)
    out: list[tuple[str, str, str]] = []
    for chunk in chunks(sorted(profile_ids)) if profile_ids is not None else [None]:
        scoped = (
            query if chunk is None else query.where(profile_identifiers.c.profile_id.in_(chunk))
        )
        out += [(r.profile_id, r.kind, r.value) for r in conn.execute(scoped)]
    return out


def profile_ids_for(
    conn: Connection, *, business_id: str, identifiers: list[tuple[str, str]]
) -> set[str]:
    """The profiles these (kind, canonical value) identifiers belong to."""
    found: set[str] = set()
    for kind, value in identifiers:
        profile_id = conn.execute(
            select(profile_identifiers.c.profile_id).where(
                profile_identifiers.c.business_id == business_id,
                profile_identifiers.c.kind == kind,
                profile_identifiers.c.value == value,
            )
        ).scalar()
        if profile_id is not None:
            found.add(profile_id)
    return found


def traits_by_identifier(
    conn: Connection, *, business_id: str, kind: str, values: list[str]
) -> dict[str, dict[str, Any]]:
    """Identifier value (canonical form) → traits of its profile, in a few queries."""
    found: dict[str, dict[str, Any]] = {}
    for chunk in chunks(values):
        rows = conn.execute(
            select(profile_identifiers.c.value, profiles.c.traits)
            .join(profiles, profiles.c.id == profile_identifiers.c.profile_id)
            .where(
                profile_identifiers.c.business_id == business_id,
                profile_identifiers.c.kind == kind,
                profile_identifiers.c.value.in_(chunk),
            )
        ).all()
        found.update({row.value: orjson.loads(row.traits) for row in rows})
    return found


def set_traits(
    conn: Connection, *, business_id: str, values: dict[str, dict[str, Any]], at: datetime
) -> int:
    """Set computed traits (predictions, affinities) on profiles, stamped `at` so a later
    identify still wins; returns how many profiles changed."""
    changed = 0
    ids = sorted(values)
    for chunk in chunks(ids):
        rows = conn.execute(
            select(profiles.c.id, profiles.c.traits, profiles.c.trait_times).where(
                profiles.c.business_id == business_id, profiles.c.id.in_(chunk)
            )
        ).all()
        stamp = at.isoformat()
        for row in rows:
            traits = orjson.loads(row.traits)
            times = orjson.loads(row.trait_times)
            traits.update(values[row.id])
            times.update(dict.fromkeys(values[row.id], stamp))
            conn.execute(
                update(profiles)
                .where(profiles.c.id == row.id)
                .values(
                    traits=orjson.dumps(traits).decode(),
                    trait_times=orjson.dumps(times).decode(),
                    updated_at=utcnow(),
                )
            )
            changed += 1
    return changed
