"""Minimal profiles: events keyed by userId / anonymousId / email, with identify traits.

The identity context replaces the linking rules here with a real identity graph;
the tables and the read API stay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select, update

from accord.collect.service import recent_payloads
from accord.core.clock import parse_instant, utcnow
from accord.core.errors import NotFound
from accord.core.ids import new_id
from accord.profiles.models import Identifier, ProfileView, profile_identifiers, profiles

LOOKUP_KINDS = ("user_id", "anonymous_id", "email")
RECENT_EVENTS = 50


def normalise_email(value: str) -> str:
    return value.strip().lower()


_PROFILE_VALUES = ("traits", "trait_times", "first_seen", "last_seen", "updated_at")
_CHUNK = 500


def _chunks(values: list[str]) -> list[list[str]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def _direct_keys(event: dict[str, Any]) -> list[tuple[str, str]]:
    """The identifiers an event names itself, in the order that decides its profile."""
    keys: list[tuple[str, str]] = []
    if event.get("userId"):
        keys.append(("user_id", str(event["userId"])))
    if event.get("anonymousId"):
        keys.append(("anonymous_id", str(event["anonymousId"])))
    traits = event.get("traits") if event["type"] == "identify" else None
    email = traits.get("email") if isinstance(traits, dict) else None
    if isinstance(email, str) and "@" in email:
        keys.append(("email", normalise_email(email)))
    return keys


def _candidate_keys(event: dict[str, Any]) -> list[tuple[str, str]]:
    """Every identifier an event could be linked by, for prefetching."""
    keys = _direct_keys(event)
    if event["type"] == "alias" and event.get("previousId"):
        previous = str(event["previousId"])
        keys += [("user_id", previous), ("anonymous_id", previous)]
    return keys


@dataclass
class _Profile:
    id: str
    traits: dict[str, Any]
    trait_times: dict[str, str]
    first_seen: datetime
    last_seen: datetime
    new: bool = False
    changed: bool = False


@dataclass
class ProfileBatch:
    """Applies a run of one business's events to profiles inside one transaction."""

    conn: Connection
    business_id: str
    lock_rows: bool
    _profiles: dict[str, _Profile] = field(default_factory=dict)
    _identifiers: dict[tuple[str, str], str] = field(default_factory=dict)
    _new_identifiers: list[dict[str, Any]] = field(default_factory=list)
    # After `preload`, an identifier missing from `_identifiers` is known not to exist.
    _complete: bool = False

    def _remember(self, row: Any) -> _Profile:
        profile = _Profile(
            id=row.id,
            traits=orjson.loads(row.traits),
            trait_times=orjson.loads(row.trait_times),
            first_seen=row.first_seen,
            last_seen=row.last_seen,
        )
        self._profiles[profile.id] = profile
        return profile

    def _load(self, profile_id: str) -> _Profile:
        cached = self._profiles.get(profile_id)
        if cached is not None:
            return cached
        query = select(profiles).where(profiles.c.id == profile_id)
        if self.lock_rows:
            query = query.with_for_update()
        return self._remember(self.conn.execute(query).one())

    def preload(self, events: list[dict[str, Any]]) -> None:
        """Fetch every identifier and profile the events can touch in a few queries."""
        by_kind: dict[str, set[str]] = {}
        for event in events:
            for kind, value in _candidate_keys(event):
                by_kind.setdefault(kind, set()).add(value)
        for kind, values in sorted(by_kind.items()):
            # (business, kind, value) is the primary key: naming the kind lets every
            # lookup use it, however many identifiers the business has.
            for chunk in _chunks(sorted(values)):
                found = self.conn.execute(
                    select(profile_identifiers.c.value, profile_identifiers.c.profile_id).where(
                        profile_identifiers.c.business_id == self.business_id,
                        profile_identifiers.c.kind == kind,
                        profile_identifiers.c.value.in_(chunk),
                    )
                )
                for row in found:
                    self._identifiers[(kind, row.value)] = row.profile_id
        # Locks are taken in id order so concurrent workers cannot deadlock on them.
        for chunk in _chunks(sorted(set(self._identifiers.values()))):
            query = select(profiles).where(profiles.c.id.in_(chunk)).order_by(profiles.c.id)
            if self.lock_rows:
                query = query.with_for_update()
            for row in self.conn.execute(query):
                self._remember(row)
        self._complete = True

    def _find(self, kind: str, value: str) -> str | None:
        key = (kind, value)
        if key in self._identifiers or self._complete:
            return self._identifiers.get(key)
        found = self.conn.execute(
            select(profile_identifiers.c.profile_id).where(
                profile_identifiers.c.business_id == self.business_id,
                profile_identifiers.c.kind == kind,
                profile_identifiers.c.value == value,
            )
        ).scalar()
        if found is not None:
            self._identifiers[key] = found
        return found

    def _attach(self, profile: _Profile, kind: str, value: str, when: datetime) -> None:
        if self._find(kind, value) is not None:
            return
        self._identifiers[(kind, value)] = profile.id
        self._new_identifiers.append(
            {
                "business_id": self.business_id,
                "kind": kind,
                "value": value,
                "profile_id": profile.id,
                "first_seen": when,
            }
        )

    def _create(self, when: datetime) -> _Profile:
        profile = _Profile(
            id=new_id("prof"),
            traits={},
            trait_times={},
            first_seen=when,
            last_seen=when,
            new=True,
            changed=True,
        )
        self._profiles[profile.id] = profile
        return profile

    def apply(self, event: dict[str, Any]) -> str:
        """Link the event to a profile (creating one if needed); returns the profile id."""
        when = parse_instant(event["timestamp"])
        keys = _direct_keys(event)
        if event["type"] == "alias" and event.get("previousId"):
            previous = str(event["previousId"])
            kind = "user_id" if self._find("user_id", previous) else "anonymous_id"
            keys.append((kind, previous))
        traits = event.get("traits") if event["type"] == "identify" else None

        # A userId decides the profile; otherwise the first known identifier does.
        # Two different known profiles are not merged here: that needs the
        # guardrails of the identity graph.
        profile_id = next((pid for kind, value in keys if (pid := self._find(kind, value))), None)
        profile = self._load(profile_id) if profile_id else self._create(when)
        for kind, value in keys:
            self._attach(profile, kind, value, when)

        if when < profile.first_seen:
            profile.first_seen, profile.changed = when, True
        if when > profile.last_seen:
            profile.last_seen, profile.changed = when, True
        if isinstance(traits, dict):
            stamp = event["timestamp"]
            for key, value in traits.items():
                previous_stamp = profile.trait_times.get(key)
                if previous_stamp is None or parse_instant(previous_stamp) <= when:
                    profile.traits[key] = value
                    profile.trait_times[key] = stamp
                    profile.changed = True
        return profile.id

    def flush(self) -> None:
        now = utcnow()
        for profile in self._profiles.values():
            if not profile.changed:
                continue
            values = {
                "traits": orjson.dumps(profile.traits).decode(),
                "trait_times": orjson.dumps(profile.trait_times).decode(),
                "first_seen": profile.first_seen,
                "last_seen": profile.last_seen,
                "updated_at": now,
            }
            if profile.new:
                self.conn.execute(
                    profiles.insert().values(
                        id=profile.id, business_id=self.business_id, created_at=now, **values
                    )
                )
            else:
                self.conn.execute(
                    update(profiles).where(profiles.c.id == profile.id).values(**values)
                )
        if self._new_identifiers:
            self.conn.execute(profile_identifiers.insert(), self._new_identifiers)


def find_profile(conn: Connection, *, business_id: str, kind: str, value: str) -> ProfileView:
    if kind == "email":
        value = normalise_email(value)
    profile_id = conn.execute(
        select(profile_identifiers.c.profile_id).where(
            profile_identifiers.c.business_id == business_id,
            profile_identifiers.c.kind == kind,
            profile_identifiers.c.value == value,
        )
    ).scalar()
    if profile_id is None:
        raise NotFound(f"profile with {kind} {value!r}")
    row = conn.execute(select(profiles).where(profiles.c.id == profile_id)).one()
    identifiers = conn.execute(
        select(profile_identifiers.c.kind, profile_identifiers.c.value)
        .where(profile_identifiers.c.profile_id == profile_id)
        .order_by(profile_identifiers.c.kind, profile_identifiers.c.value)
    ).all()
    recent = recent_payloads(conn, profile_id=profile_id, limit=RECENT_EVENTS)
    return ProfileView(
        id=row.id,
        business_id=row.business_id,
        identifiers=[Identifier(kind=i.kind, value=i.value) for i in identifiers],
        traits=orjson.loads(row.traits),
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        recent_events=[orjson.loads(payload) for payload in recent],
    )


@dataclass(frozen=True)
class ProfileRow:
    """A profile's traits and times, for contexts that evaluate profiles (audiences)."""

    id: str
    traits: dict[str, Any]
    first_seen: datetime
    last_seen: datetime


def profile_rows(
    conn: Connection,
    *,
    business_id: str,
    profile_ids: list[str] | None = None,
    latest: int | None = None,
) -> list[ProfileRow]:
    """Every profile of a business, the ones named, or the `latest` updated."""
    query = select(profiles.c.id, profiles.c.traits, profiles.c.first_seen, profiles.c.last_seen)
    query = query.where(profiles.c.business_id == business_id)
    if latest is not None:
        query = query.order_by(profiles.c.updated_at.desc()).limit(latest)
    out: list[ProfileRow] = []
    for chunk in _chunks(sorted(profile_ids)) if profile_ids is not None else [None]:
        scoped = query if chunk is None else query.where(profiles.c.id.in_(chunk))
        out += [
            ProfileRow(r.id, orjson.loads(r.traits), r.first_seen, r.last_seen)
            for r in conn.execute(scoped)
        ]
    return out


def identifier_rows(
    conn: Connection, *, business_id: str, profile_ids: list[str] | None = None
) -> list[tuple[str, str, str]]:
    """(profile_id, kind, value) of every identifier of a business, or of the profiles named."""
    query = select(
        profile_identifiers.c.profile_id, profile_identifiers.c.kind, profile_identifiers.c.value
    ).where(profile_identifiers.c.business_id == business_id)
    out: list[tuple[str, str, str]] = []
    for chunk in _chunks(sorted(profile_ids)) if profile_ids is not None else [None]:
        scoped = (
            query if chunk is None else query.where(profile_identifiers.c.profile_id.in_(chunk))
        )
        out += [(r.profile_id, r.kind, r.value) for r in conn.execute(scoped)]
    return out


def profile_ids_for(
    conn: Connection, *, business_id: str, identifiers: list[tuple[str, str]]
) -> set[str]:
    """The profiles these (kind, value) identifiers belong to."""
    found: set[str] = set()
    for kind, value in identifiers:
        if kind == "email":
            value = normalise_email(value)
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


def set_traits(
    conn: Connection, *, business_id: str, values: dict[str, dict[str, Any]], at: datetime
) -> int:
    """Set computed traits (predictions, affinities) on profiles, stamped `at` so a later
    identify still wins; returns how many profiles changed."""
    changed = 0
    ids = sorted(values)
    for chunk in _chunks(ids):
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
