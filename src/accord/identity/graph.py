"""Incremental identity resolution: link an event's identifiers into one profile, or refuse.

A `Resolver` works inside one transaction on one business. It keeps what it read and
changed in memory and writes it all in `flush`, so a chunk of events costs a few
queries. The rules it applies, in order, for each event:

1. The event's identifiers are cleaned (normalised, blocked values removed) and sorted
   by the business's priority order, most trusted first.
2. The profiles already holding any of them would be merged, and the new identifiers
   attached. That is refused when the result would hold two values of a hard type
   (`user_id`), more values of a type than its limit, or a pair an operator separated.
   Then the lowest-priority identifier is dropped from the event and the rest is tried
   again (as Segment Unify does), until one identifier is left.
3. A link that passes but would make a profile larger than `max_component_identifiers`
   (a merge of big profiles, or one profile growing an identifier at a time) is not
   made: the full proposal goes to the review queue, and the event is resolved as in 2,
   dropping identifiers until the profile no longer grows past the limit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import combinations
from typing import Any

import orjson
from sqlalchemy import Connection, select

from accord.core.clock import parse_instant, utcnow
from accord.core.ids import new_id
from accord.identity.models import (
    identity_edges,
    identity_merges,
    identity_reviews,
    identity_tombstones,
)
from accord.identity.rules import IdentityRules, clean, counts_towards_limit, identifiers_of
from accord.profiles import service as profiles
from accord.profiles.derive import ProfileState, combine, contribution

Key = tuple[str, str]


def value_hash(business_id: str, key: Key) -> str:
    """How a tombstone names an identifier without keeping it."""
    kind, value = key
    return hashlib.sha256(f"{business_id}\x1f{kind}\x1f{value}".encode()).hexdigest()


def tombstoned(conn: Connection, *, business_id: str, keys: Iterable[Key]) -> set[Key]:
    """Which of these identifiers belong to an erased person."""
    by_hash = {value_hash(business_id, key): key for key in keys}
    found: set[Key] = set()
    for chunk in profiles.chunks(sorted(by_hash)):
        rows = conn.execute(
            select(identity_tombstones.c.kind, identity_tombstones.c.value_hash).where(
                identity_tombstones.c.business_id == business_id,
                identity_tombstones.c.value_hash.in_(chunk),
            )
        )
        for row in rows:
            key = by_hash[row.value_hash]
            if key[0] == row.kind:
                found.add(key)
    return found


def alias_candidates(event: dict[str, Any], rules: IdentityRules) -> list[Key]:
    """What an alias call's previousId may be: a user id or an anonymous id."""
    if event.get("type") != "alias":
        return []
    out = []
    for kind in ("user_id", "anonymous_id"):
        value = clean(kind, event.get("previousId"), rules)
        if value is not None:
            out.append((kind, value))
    return out


def _times_by_kind(held: dict[Key, datetime]) -> dict[str, list[datetime]]:
    """When each held identifier was first seen, grouped by its type."""
    out: dict[str, list[datetime]] = {}
    for (kind, _), first_seen in held.items():
        out.setdefault(kind, []).append(first_seen)
    return out


def pair(a: Key, b: Key) -> tuple[Key, Key]:
    """Edges are stored with their ends in a fixed order."""
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class Evidence:
    """Why identifiers were linked: the event (or operator action) and the rule."""

    rule: str
    occurred_at: datetime
    source_id: str | None = None
    message_id: str | None = None
    inbox_seq: int | None = None
    note: str | None = None
    # What a rule measured (a probabilistic match: its probability and levels).
    details: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "source_id": self.source_id,
            "message_id": self.message_id,
            "inbox_seq": self.inbox_seq,
            "occurred_at": self.occurred_at.isoformat(),
            **({"note": self.note} if self.note else {}),
            **({"details": self.details} if self.details else {}),
        }


@dataclass
class Outcome:
    profile_id: str | None
    kept: list[Key]
    dropped: list[tuple[Key, str]]
    review_id: str | None = None


@dataclass
class Resolver:
    conn: Connection
    business_id: str
    rules: IdentityRules
    lock_rows: bool = False
    _owner: dict[Key, str] = field(default_factory=dict)
    _looked_up: set[Key] = field(default_factory=set)
    _members: dict[str, dict[Key, datetime]] = field(default_factory=dict)
    _states: dict[str, ProfileState] = field(default_factory=dict)
    _new_profiles: set[str] = field(default_factory=set)
    _changed: set[str] = field(default_factory=set)
    _redirect: dict[str, str] = field(default_factory=dict)
    _pairs: set[tuple[Key, Key]] = field(default_factory=set)
    _separated: set[tuple[Key, Key]] = field(default_factory=set)
    _pairs_loaded: set[Key] = field(default_factory=set)
    _new_identifiers: dict[Key, datetime] = field(default_factory=dict)
    _new_edges: list[dict[str, Any]] = field(default_factory=list)
    _merges: list[dict[str, Any]] = field(default_factory=list)
    _reviews: list[dict[str, Any]] = field(default_factory=list)
    _links: list[tuple[profiles.EventLink, str]] = field(default_factory=list)
    _erased: set[Key] = field(default_factory=set)
    _event_keys: dict[int, tuple[dict[str, Any], list[Key]]] = field(default_factory=dict)

    # -- reading -----------------------------------------------------------------

    def _lookup(self, keys: list[Key]) -> None:
        todo = [k for k in keys if k not in self._looked_up]
        if not todo:
            return
        found = profiles.owners(self.conn, business_id=self.business_id, keys=todo)
        self._erased |= tombstoned(self.conn, business_id=self.business_id, keys=todo)
        self._looked_up.update(todo)
        for key, pid in found.items():
            self._owner.setdefault(key, pid)
        self._load_profiles({self._owner[k] for k in todo if k in self._owner})

    def _load_profiles(self, pids: set[str]) -> None:
        todo = {p for p in pids if p not in self._states}
        if not todo:
            return
        states = profiles.load_states(self.conn, profile_ids=todo, lock_rows=self.lock_rows)
        self._states.update(states)
        for pid, keys in profiles.members(self.conn, profile_ids=todo).items():
            self._members[pid] = keys
            for key in keys:
                self._owner[key] = pid
                self._looked_up.add(key)

    def _load_pairs(self, keys: Iterable[Key]) -> None:
        """Read the stored edges among identifiers an event may link.

        Only pairs of identifiers named together are ever asked about (`pair` order,
        both ends loaded here first), so the edges whose first end is loaded are all
        there is to know: one query per type, on the unique index's leading columns.
        """
        todo = [k for k in keys if k not in self._pairs_loaded]
        by_kind: dict[str, list[str]] = {}
        for kind, value in todo:
            by_kind.setdefault(kind, []).append(value)
        edges = identity_edges.c
        for kind, values in sorted(by_kind.items()):
            for chunk in profiles.chunks(sorted(values)):
                rows = self.conn.execute(
                    select(
                        edges.a_kind,
                        edges.a_value,
                        edges.b_kind,
                        edges.b_value,
                        edges.removed_at,
                    ).where(
                        edges.business_id == self.business_id,
                        edges.a_kind == kind,
                        edges.a_value.in_(chunk),
                    )
                )
                for row in rows:
                    ends = ((row.a_kind, row.a_value), (row.b_kind, row.b_value))
                    self._pairs.add(ends)
                    if row.removed_at is not None:
                        self._separated.add(ends)
        self._pairs_loaded.update(todo)

    def preload(self, events: list[dict[str, Any]]) -> None:
        """Fetch every identifier, profile and edge the events can touch in a few queries."""
        keys: set[Key] = set()
        linking: set[Key] = set()
        for event in events:
            named = [*self._keys_of(event), *self._alias_candidates(event)]
            keys.update(named)
            if len(named) > 1:
                # An event naming one identifier links nothing: it needs no edges.
                linking.update(named)
        self._lookup(sorted(keys))
        self._load_pairs(sorted(linking))

    def _keys_of(self, event: dict[str, Any]) -> list[Key]:
        """The event's own identifiers, computed once per event of the chunk."""
        cached = self._event_keys.get(id(event))
        if cached is None or cached[0] is not event:
            cached = (event, identifiers_of(event, self.rules))
            self._event_keys[id(event)] = cached
        return cached[1]

    def _alias_candidates(self, event: dict[str, Any]) -> list[Key]:
        return alias_candidates(event, self.rules)

    def profile_of(self, key: Key) -> str | None:
        if key not in self._looked_up:
            self._lookup([key])
        pid = self._owner.get(key)
        while pid is not None and pid in self._redirect:
            pid = self._redirect[pid]
        return pid

    def state(self, pid: str) -> ProfileState:
        return self._states[pid]

    def members_of(self, pid: str) -> dict[Key, datetime]:
        return self._members[pid]

    # -- deciding ----------------------------------------------------------------

    def _matched(self, keys: list[Key]) -> list[str]:
        out: list[str] = []
        for key in keys:
            pid = self.profile_of(key)
            if pid is not None and pid not in out:
                out.append(pid)
        return out

    def _violation(self, keys: list[Key], matched: list[str], when: datetime) -> str | None:
        """Why linking these identifiers (and merging their profiles) is refused, if it is."""
        if len(matched) <= 1 and all(self.profile_of(key) is not None for key in keys):
            # Nothing new joins anything: a returning visitor's usual event.
            return None
        for a, b in combinations(keys, 2):
            if pair(a, b) in self._separated:
                return f"{a[0]} and {b[0]} were separated by an operator"
        union: dict[Key, datetime] = {}
        for pid in matched:
            union.update(self._members[pid])
        for key in keys:
            union.setdefault(key, when)

        # One pass over each profile's identifiers: a big profile is read once, not
        # once per limited type.
        times = [_times_by_kind(self._members[p]) for p in matched]
        union_times = _times_by_kind(union)

        def count(kind: str, held: dict[str, list[datetime]], windowed: bool) -> int:
            seen = held.get(kind, [])
            limit = self.rules.limits.get(kind)
            if not windowed or limit is None or limit.window_days is None:
                return len(seen)
            return sum(1 for first_seen in seen if counts_towards_limit(first_seen, when, limit))

        # A profile already beyond a limit (the rules changed since) is not made worse,
        # but an event that only repeats what it holds is not refused either.
        for kind in self.rules.hard_kinds:
            before = max((count(kind, held, False) for held in times), default=0)
            total = count(kind, union_times, False)
            if total > 1 and total > before:
                return f"would join profiles with different {kind} values"
        for kind, limit in self.rules.limits.items():
            before = max((count(kind, held, True) for held in times), default=0)
            total = count(kind, union_times, True)
            if total > limit.max and total > before:
                return f"would hold more than {limit.max} {kind} values"
        return None

    def _too_big(self, keys: list[Key], matched: list[str]) -> bool:
        """Whether the link would grow a profile past the size limit.

        A profile already past it (the limit was lowered) may take events that only
        repeat what it holds.
        """
        # Identifiers with an owner are members of a matched profile, and profiles do
        # not share identifiers, so the size is a sum.
        new = sum(1 for key in keys if self.profile_of(key) is None)
        if len(matched) < 2 and not new:
            return False
        size = sum(len(self._members[p]) for p in matched) + new
        return size > self.rules.max_component_identifiers

    def link(self, keys: list[Key], evidence: Evidence, *, enforce_size: bool = True) -> Outcome:
        """Resolve identifiers to one profile under the guardrails, merging where allowed."""
        keys = sorted(dict.fromkeys(keys), key=lambda k: (self.rules.rank(k[0]), k[1]))
        self._lookup(keys)
        if len(keys) > 1:
            self._load_pairs(keys)
        dropped: list[tuple[Key, str]] = []
        review_id: str | None = None
        kept = list(keys)
        while kept:
            matched = self._matched(kept)
            reason = self._violation(kept, matched, evidence.occurred_at)
            if reason is None and enforce_size and self._too_big(kept, matched):
                reason = (
                    f"{'merge' if len(matched) > 1 else 'link'} would make a profile of "
                    f"more than {self.rules.max_component_identifiers} identifiers"
                )
                if review_id is None:
                    review_id = self._propose(kept, matched, evidence, reason)
            if reason is None or len(kept) == 1:
                break
            dropped.append((kept.pop(), reason))
        if not kept:
            return Outcome(profile_id=None, kept=[], dropped=dropped)
        matched = self._matched(kept)
        if matched:
            target = matched[0]
            for other in matched[1:]:
                self._merge(target, other, kept, evidence)
        else:
            target = profiles.new_profile_id()
            self._states[target] = ProfileState()
            self._members[target] = {}
            self._new_profiles.add(target)
        for key in kept:
            if self.profile_of(key) is None:
                self._owner[key] = target
                self._looked_up.add(key)
                self._members[target][key] = evidence.occurred_at
                self._new_identifiers[key] = evidence.occurred_at
        for key in kept[1:]:
            ends = pair(kept[0], key)
            if ends not in self._pairs:
                self._pairs.add(ends)
                self._new_edges.append(self._edge_row(ends, evidence))
        return Outcome(profile_id=target, kept=kept, dropped=dropped, review_id=review_id)

    def _edge_row(self, ends: tuple[Key, Key], evidence: Evidence) -> dict[str, Any]:
        (a_kind, a_value), (b_kind, b_value) = ends
        return {
            "business_id": self.business_id,
            "a_kind": a_kind,
            "a_value": a_value,
            "b_kind": b_kind,
            "b_value": b_value,
            "rule": evidence.rule,
            "source_id": evidence.source_id,
            "message_id": evidence.message_id,
            "inbox_seq": evidence.inbox_seq,
            "occurred_at": evidence.occurred_at,
            "created_at": utcnow(),
        }

    def _merge(self, target: str, other: str, keys: list[Key], evidence: Evidence) -> None:
        self._states[target] = combine(
            self._states[target], self._states.pop(other), self.rules.trait_policies
        )
        moved = self._members.pop(other)
        self._members[target].update(moved)
        for key in moved:
            self._owner[key] = target
        self._redirect[other] = target
        self._changed.add(target)
        self._merges.append(
            {
                "business_id": self.business_id,
                "action": "merge",
                "profile_id": target,
                "other_profile_id": other,
                "rule": evidence.rule,
                "evidence": orjson.dumps(
                    {**evidence.as_dict(), "identifiers": [list(k) for k in keys]}
                ).decode(),
                "occurred_at": evidence.occurred_at,
                "created_at": utcnow(),
            }
        )

    def _propose(self, keys: list[Key], matched: list[str], evidence: Evidence, reason: str) -> str:
        profile_ids = orjson.dumps(sorted(matched)).decode()
        pending = [r["id"] for r in self._reviews if r["profile_ids"] == profile_ids]
        pending += self.conn.execute(
            select(identity_reviews.c.id).where(
                identity_reviews.c.business_id == self.business_id,
                identity_reviews.c.status == "pending",
                identity_reviews.c.profile_ids == profile_ids,
            )
        ).scalars()
        if pending:
            # The same proposal is already waiting for an operator.
            return str(pending[0])
        review_id = new_id("rev")
        self._reviews.append(
            {
                "id": review_id,
                "business_id": self.business_id,
                "status": "pending",
                "reason": reason,
                "profile_ids": profile_ids,
                "identifiers": orjson.dumps([list(k) for k in keys]).decode(),
                "source_id": evidence.source_id,
                "message_id": evidence.message_id,
                "inbox_seq": evidence.inbox_seq,
                "occurred_at": evidence.occurred_at,
                "created_at": utcnow(),
            }
        )
        return review_id

    # -- events ------------------------------------------------------------------

    def event_keys(self, event: dict[str, Any]) -> list[Key]:
        keys = list(self._keys_of(event))
        if event.get("type") == "alias":
            # previousId names a user id when one is known as such, else an anonymous id.
            candidates = self._alias_candidates(event)
            known = [k for k in candidates if self.profile_of(k) is not None]
            chosen = (
                known[0] if known else next((k for k in candidates if k[0] == "anonymous_id"), None)
            )
            if chosen is not None:
                keys.append(chosen)
        return keys

    def apply(
        self, event: dict[str, Any], *, inbox_seq: int, source_id: str, payload: str
    ) -> str | None:
        """Resolve one event and add it to its profile; returns the profile id, if any."""
        when = parse_instant(event["timestamp"])
        keys = self.event_keys(event)
        self._lookup(keys)
        if self.erased(keys):
            return None
        evidence = Evidence(
            rule="alias" if event.get("type") == "alias" else "same_event",
            occurred_at=when,
            source_id=source_id,
            message_id=str(event.get("messageId")),
            inbox_seq=inbox_seq,
        )
        outcome = self.link(keys, evidence)
        if outcome.profile_id is None:
            return None
        pid = outcome.profile_id
        self._states[pid] = combine(
            self._states[pid], contribution(event), self.rules.trait_policies
        )
        self._changed.add(pid)
        self._links.append(
            (
                profiles.EventLink(
                    inbox_seq=inbox_seq,
                    message_id=str(event.get("messageId")),
                    occurred_at=when,
                    identifiers=outcome.kept,
                    payload=payload,
                ),
                pid,
            )
        )
        return pid

    def erased(self, keys: list[Key]) -> bool:
        """An event naming an erased person's identifier is not taken in at all."""
        return any(key in self._erased for key in keys)

    def final(self, pid: str) -> str:
        while pid in self._redirect:
            pid = self._redirect[pid]
        return pid

    # -- writing -----------------------------------------------------------------

    def flush(self) -> None:
        live_new = {p for p in self._new_profiles if p not in self._redirect}
        profiles.save_states(
            self.conn,
            business_id=self.business_id,
            states={p: self._states[p] for p in self._changed | live_new if p in self._states},
            new=live_new,
        )
        for merged in self._redirect:
            if merged not in self._new_profiles:
                profiles.absorb(self.conn, into=self.final(merged), merged=merged)
        profiles.add_identifiers(
            self.conn,
            business_id=self.business_id,
            rows=[
                (key, self.final(self._owner[key]), first_seen)
                for key, first_seen in self._new_identifiers.items()
            ],
        )
        profiles.link_events(
            self.conn,
            business_id=self.business_id,
            links=[(link, self.final(pid)) for link, pid in self._links],
        )
        for table, rows in (
            (identity_edges, self._new_edges),
            (identity_reviews, self._reviews),
            (identity_merges, self._merges),
        ):
            if rows:
                self.conn.execute(table.insert(), rows)

    # -- proposals from outside the event stream (probabilistic matching) ----------

    def refusal(self, keys: list[Key], when: datetime) -> str | None:
        """Why linking these identifiers would be refused by a guardrail, if it would."""
        keys = sorted(dict.fromkeys(keys), key=lambda k: (self.rules.rank(k[0]), k[1]))
        self._lookup(keys)
        return self._violation(keys, self._matched(keys), when)

    def propose_merge(self, keys: list[Key], evidence: Evidence, reason: str) -> str:
        """Put the merge of the profiles holding these identifiers in the review queue."""
        self._lookup(keys)
        return self._propose(keys, self._matched(keys), evidence, reason)
