"""Identity resolution: rules, resolving events, merge history, review queue, unmerge."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import Connection, and_, delete, or_, select, update

from accord.core.clock import utcnow
from accord.core.errors import Conflict, FieldProblem, InvalidInput, NotFound
from accord.identity.graph import (
    Evidence,
    Key,
    Resolver,
    alias_candidates,
    tombstoned,
    value_hash,
)
from accord.identity.models import (
    Edge,
    IdentifierRef,
    MergeRecord,
    ReviewDiff,
    ReviewItem,
    SplitReport,
    TraitChange,
    identity_edges,
    identity_merges,
    identity_reviews,
    identity_rules,
    identity_tombstones,
)
from accord.identity.rules import IdentityRules, clean, identifiers_of, normalise
from accord.profiles import service as profiles
from accord.profiles.derive import ProfileState

__all__ = ["IdentityRules", "identifiers_of"]


def get_rules(conn: Connection, *, business_id: str) -> IdentityRules:
    stored = conn.execute(
        select(identity_rules.c.rules).where(identity_rules.c.business_id == business_id)
    ).scalar()
    return IdentityRules.model_validate_json(stored) if stored else IdentityRules()


def set_rules(conn: Connection, *, business_id: str, rules: dict[str, Any]) -> IdentityRules:
    """Validate and store a business's identity rules (they apply to events processed next)."""
    try:
        parsed = IdentityRules.model_validate(rules)
    except ValidationError as exc:
        raise InvalidInput(
            [
                FieldProblem(".".join(str(p) for p in error["loc"]) or "rules", error["msg"])
                for error in exc.errors()
            ]
        ) from exc
    values = {"rules": parsed.model_dump_json(), "updated_at": utcnow()}
    changed = conn.execute(
        update(identity_rules).where(identity_rules.c.business_id == business_id).values(**values)
    )
    if changed.rowcount == 0:
        conn.execute(identity_rules.insert().values(business_id=business_id, **values))
    return parsed


def normalise_email(value: str) -> str:
    """An email address as the identity graph stores it (trimmed, lower-case); a value
    that is not an address is only trimmed and lower-cased."""
    return normalise("email", value) or value.strip().lower()


def lookup_key(conn: Connection, *, business_id: str, kind: str, value: str) -> Key:
    """An identifier as a person types it, in the canonical form it is stored under."""
    rules = get_rules(conn, business_id=business_id)
    if kind not in rules.kinds:
        raise InvalidInput(
            [FieldProblem(kind, f"unknown identifier type; use one of {rules.kinds}")]
        )
    cleaned = clean(kind, value, rules)
    if cleaned is None:
        raise InvalidInput([FieldProblem(kind, "not a usable value of this identifier type")])
    return (kind, cleaned)


def profiles_holding(
    conn: Connection, *, business_id: str, value: str, kind: str | None = None
) -> dict[str, list[Key]]:
    """Profile id → the identifiers it holds that read `value` as typed, taking it as
    every identifier type of the business (or only `kind`), each normalised as at
    collection: an email lower-cased, a phone number to E.164."""
    rules = get_rules(conn, business_id=business_id)
    if kind is not None and kind not in rules.kinds:
        raise InvalidInput(
            [FieldProblem("kind", f"unknown identifier type; use one of {rules.kinds}")]
        )
    keys = {
        (k, cleaned)
        for k in ([kind] if kind else rules.kinds)
        if (cleaned := clean(k, value, rules)) is not None
    }
    found: dict[str, list[Key]] = {}
    for key, pid in sorted(profiles.owners(conn, business_id=business_id, keys=keys).items()):
        found.setdefault(pid, []).append(key)
    return found


def resolve_events(
    conn: Connection,
    *,
    business_id: str,
    events: list[tuple[int, str, dict[str, Any], str]],
    lock_rows: bool,
) -> list[tuple[int, str | None, bool]]:
    """Resolve (inbox seq, source id, event, payload) in order.

    Returns each seq's profile (None when the event names no usable identifier) and
    whether the event names an erased person (it is then linked to nothing).
    """
    resolver = Resolver(
        conn=conn,
        business_id=business_id,
        rules=get_rules(conn, business_id=business_id),
        lock_rows=lock_rows,
    )
    resolver.preload([event for _, _, event, _ in events])
    linked = []
    for seq, source_id, event, payload in events:
        pid = resolver.apply(event, inbox_seq=seq, source_id=source_id, payload=payload)
        linked.append((seq, pid, pid is None and resolver.erased(resolver.event_keys(event))))
    resolver.flush()
    return [(seq, resolver.final(pid) if pid else None, erased) for seq, pid, erased in linked]


def erased_events(
    conn: Connection, *, business_id: str, events: list[tuple[int, dict[str, Any]]]
) -> set[int]:
    """The seqs of events that name an erased person's identifier."""
    anyone = conn.execute(
        select(identity_tombstones.c.kind)
        .where(identity_tombstones.c.business_id == business_id)
        .limit(1)
    ).first()
    if anyone is None:
        # Nobody of this business was ever erased: nothing to look for.
        return set()
    rules = get_rules(conn, business_id=business_id)
    keys = {
        seq: identifiers_of(event, rules) + alias_candidates(event, rules) for seq, event in events
    }
    erased = tombstoned(conn, business_id=business_id, keys={k for ks in keys.values() for k in ks})
    return {seq for seq, ks in keys.items() if any(k in erased for k in ks)}


# -- merge history -------------------------------------------------------------------


def _merge_record(row: Any) -> MergeRecord:
    return MergeRecord(
        id=row.id,
        action=row.action,
        profile_id=row.profile_id,
        other_profile_id=row.other_profile_id,
        rule=row.rule,
        evidence=orjson.loads(row.evidence),
        occurred_at=row.occurred_at,
        created_at=row.created_at,
    )


def merge_history(conn: Connection, *, business_id: str, profile_id: str) -> list[MergeRecord]:
    """Every merge and split that shaped a profile, following merged profiles back."""
    seen = {profile_id}
    todo = [profile_id]
    records: dict[int, MergeRecord] = {}
    while todo:
        current = todo.pop()
        rows = conn.execute(
            select(identity_merges).where(
                identity_merges.c.business_id == business_id,
                or_(
                    identity_merges.c.profile_id == current,
                    identity_merges.c.other_profile_id == current,
                ),
            )
        )
        for row in rows:
            records[row.id] = _merge_record(row)
            # Profiles merged into this one shaped it too; a profile split off is listed
            # but not followed.
            if (
                row.action == "merge"
                and row.profile_id == current
                and row.other_profile_id not in seen
            ):
                seen.add(row.other_profile_id)
                todo.append(row.other_profile_id)
    return sorted(records.values(), key=lambda r: r.id)


def edges_of(conn: Connection, *, business_id: str, profile_id: str) -> list[Edge]:
    """The edges among a profile's identifiers, removed ones included."""
    keys = list(profiles.members(conn, profile_ids=[profile_id]).get(profile_id, {}))
    return [_edge(row) for row in _edge_rows(conn, business_id, keys)]


def _edge_rows(conn: Connection, business_id: str, keys: list[Key]) -> list[Any]:
    by_kind: dict[str, list[str]] = defaultdict(list)
    for kind, value in keys:
        by_kind[kind].append(value)
    out: dict[int, Any] = {}
    for kind, values in by_kind.items():
        for chunk in profiles.chunks(values):
            rows = conn.execute(
                select(identity_edges).where(
                    identity_edges.c.business_id == business_id,
                    or_(
                        and_(identity_edges.c.a_kind == kind, identity_edges.c.a_value.in_(chunk)),
                        and_(identity_edges.c.b_kind == kind, identity_edges.c.b_value.in_(chunk)),
                    ),
                )
            )
            for row in rows:
                out[row.id] = row
    return sorted(out.values(), key=lambda r: r.id)


def _edge(row: Any) -> Edge:
    return Edge(
        id=row.id,
        a=IdentifierRef(kind=row.a_kind, value=row.a_value),
        b=IdentifierRef(kind=row.b_kind, value=row.b_value),
        rule=row.rule,
        source_id=row.source_id,
        message_id=row.message_id,
        occurred_at=row.occurred_at,
        removed_at=row.removed_at,
    )


# -- review queue ----------------------------------------------------------------------


def _review(row: Any) -> ReviewItem:
    return ReviewItem(
        id=row.id,
        status=row.status,
        reason=row.reason,
        profile_ids=orjson.loads(row.profile_ids),
        identifiers=[IdentifierRef(kind=k, value=v) for k, v in orjson.loads(row.identifiers)],
        message_id=row.message_id,
        occurred_at=row.occurred_at,
        created_at=row.created_at,
        decided_at=row.decided_at,
        decision_note=row.decision_note,
    )


def list_reviews(
    conn: Connection, *, business_id: str, status: str | None = "pending"
) -> list[ReviewItem]:
    query = select(identity_reviews).where(identity_reviews.c.business_id == business_id)
    if status is not None:
        query = query.where(identity_reviews.c.status == status)
    return [_review(row) for row in conn.execute(query.order_by(identity_reviews.c.created_at))]


def _get_review(conn: Connection, business_id: str, review_id: str) -> Any:
    row = conn.execute(
        select(identity_reviews).where(
            identity_reviews.c.business_id == business_id, identity_reviews.c.id == review_id
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"review {review_id!r}")
    return row


def _hard_conflicts(resolver: Resolver, keys: list[Key]) -> list[str]:
    """Hard identifier types the merge would give two values: never allowed, even by hand."""
    held: dict[str, set[str]] = defaultdict(set)
    for key in keys:
        pid = resolver.profile_of(key)
        for kind, value in resolver.members_of(pid) if pid else [key]:
            held[kind].add(value)
    return [
        f"would join profiles with different {kind} values"
        for kind in resolver.rules.hard_kinds
        if len(held[kind]) > 1
    ]


def _apply_review(
    conn: Connection, business_id: str, row: Any, lock_rows: bool
) -> tuple[Resolver, list[str], str | None, list[str]]:
    keys: list[Key] = [(k, v) for k, v in orjson.loads(row.identifiers)]
    resolver = Resolver(
        conn=conn,
        business_id=business_id,
        rules=get_rules(conn, business_id=business_id),
        lock_rows=lock_rows,
    )
    resolver.preload([])
    for key in keys:
        resolver.profile_of(key)
    before = []
    for key in keys:
        pid = resolver.profile_of(key)
        if pid is not None and pid not in before:
            before.append(pid)
    violations = _hard_conflicts(resolver, keys)
    if violations:
        return resolver, before, None, violations
    evidence = Evidence(
        rule="review",
        occurred_at=utcnow(),
        source_id=row.source_id,
        message_id=row.message_id,
        inbox_seq=row.inbox_seq,
        note=f"review {row.id} accepted",
    )
    outcome = resolver.link(keys, evidence, enforce_size=False)
    return resolver, before, outcome.profile_id, [reason for _, reason in outcome.dropped]


def review_diff(conn: Connection, *, business_id: str, review_id: str) -> ReviewDiff:
    """What accepting the review would change, computed without writing anything."""
    row = _get_review(conn, business_id, review_id)
    before_states: dict[str, Any] = {}
    resolver, before, target, violations = _apply_review(conn, business_id, row, lock_rows=False)
    for pid in before:
        stored = profiles.load_states(conn, profile_ids=[pid]).get(pid)
        if stored is not None:
            before_states[pid] = stored
    members = profiles.members(conn, profile_ids=before)
    after = resolver.state(target) if target else None
    changes: list[TraitChange] = []
    if after is not None:
        for trait in sorted({t for s in before_states.values() for t in s.traits}):
            values = {pid: s.traits[trait] for pid, s in before_states.items() if trait in s.traits}
            if any(v != after.traits.get(trait) for v in values.values()) or len(values) < len(
                before_states
            ):
                changes.append(
                    TraitChange(trait=trait, before=values, after=after.traits.get(trait))
                )
    added: dict[str, list[IdentifierRef]] = {}
    if target is not None:
        final = resolver.members_of(target)
        for pid in before:
            gained = sorted(set(final) - set(members.get(pid, {})))
            added[pid] = [IdentifierRef(kind=k, value=v) for k, v in gained]
    return ReviewDiff(
        review=_review(row),
        profiles_merged=[p for p in before if p != target],
        surviving_profile=target or "",
        identifiers_added=added,
        traits_changed=changes,
        computed_after=after.computed() if after else {},
        guardrail_violations=violations,
    )


def accept_review(
    conn: Connection, *, business_id: str, review_id: str, note: str | None, lock_rows: bool
) -> ReviewDiff:
    """Make the merge the review proposed (the size limit is waived, hard ids are not)."""
    diff = review_diff(conn, business_id=business_id, review_id=review_id)
    row = _get_review(conn, business_id, review_id)
    if row.status != "pending":
        raise Conflict(f"review {review_id} is already {row.status}")
    if diff.guardrail_violations:
        raise Conflict("; ".join(diff.guardrail_violations))
    resolver, _, _, _ = _apply_review(conn, business_id, row, lock_rows)
    resolver.flush()
    _decide(conn, business_id, review_id, "accepted", note)
    return diff


def reject_review(
    conn: Connection, *, business_id: str, review_id: str, note: str | None
) -> ReviewItem:
    row = _get_review(conn, business_id, review_id)
    if row.status != "pending":
        raise Conflict(f"review {review_id} is already {row.status}")
    _decide(conn, business_id, review_id, "rejected", note)
    return _review(_get_review(conn, business_id, review_id))


def _decide(
    conn: Connection, business_id: str, review_id: str, status: str, note: str | None
) -> None:
    conn.execute(
        update(identity_reviews)
        .where(identity_reviews.c.business_id == business_id, identity_reviews.c.id == review_id)
        .values(status=status, decided_at=utcnow(), decision_note=note)
    )


# -- unmerge -------------------------------------------------------------------------


def _components(keys: list[Key], edges: list[tuple[Key, Key]]) -> list[list[Key]]:
    parent = {k: k for k in keys}

    def find(k: Key) -> Key:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for a, b in edges:
        if a in parent and b in parent:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[Key, list[Key]] = defaultdict(list)
    for k in keys:
        groups[find(k)].append(k)
    return [sorted(g) for g in groups.values()]


def unmerge(conn: Connection, *, business_id: str, edge_id: int, reason: str | None) -> SplitReport:
    """Remove an edge for good and split its profile where nothing else holds it together.

    Each part is derived again from its own events; an event goes to the part holding
    the most trusted identifier it was resolved by. The edge stays recorded as removed,
    so later events naming both ends no longer link them.
    """
    row = conn.execute(
        select(identity_edges).where(
            identity_edges.c.business_id == business_id, identity_edges.c.id == edge_id
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"edge {edge_id}")
    if row.removed_at is not None:
        raise Conflict(f"edge {edge_id} was already removed")
    now = utcnow()
    conn.execute(
        update(identity_edges)
        .where(identity_edges.c.id == edge_id)
        .values(removed_at=now, removed_reason=reason)
    )
    a: Key = (row.a_kind, row.a_value)
    owner = profiles.owners(conn, business_id=business_id, keys=[a]).get(a)
    if owner is None:
        raise NotFound(f"profile holding {a[0]} {a[1]!r}")
    rules = get_rules(conn, business_id=business_id)
    profiles.load_states(conn, profile_ids=[owner], lock_rows=conn.dialect.name == "postgresql")
    held = profiles.members(conn, profile_ids=[owner])[owner]
    live = [
        ((r.a_kind, r.a_value), (r.b_kind, r.b_value))
        for r in _edge_rows(conn, business_id, list(held))
        if r.removed_at is None
    ]
    parts = _components(list(held), live)
    # The part holding the oldest identifier keeps the profile id.
    parts.sort(key=lambda part: min((held[k], rules.rank(k[0]), k) for k in part))
    ids = [owner] + [profiles.new_profile_id() for _ in parts[1:]]
    part_of = {k: ids[i] for i, part in enumerate(parts) for k in part}
    events = profiles.events_of(conn, profile_id=owner)
    by_part: dict[str, list[int]] = defaultdict(list)
    for link in events:
        home = next((part_of[k] for k in link.identifiers if k in part_of), owner)
        by_part[home].append(link.inbox_seq)
    for pid, part in zip(ids[1:], parts[1:], strict=True):
        seen = min(held[k] for k in part)
        profiles.save_states(
            conn,
            business_id=business_id,
            # A part whose identifiers came only with events of another part keeps no
            # event; it is known from when its identifiers were first seen.
            states={pid: ProfileState(first_seen=seen, last_seen=seen)},
            new={pid},
        )
        profiles.move_identifiers(conn, business_id=business_id, keys=part, profile_id=pid)
        profiles.move_events(conn, seqs=by_part.get(pid, []), profile_id=pid)
    for pid, part in zip(ids, parts, strict=True):
        if not by_part.get(pid):
            seen = min(held[k] for k in part)
            profiles.save_states(
                conn,
                business_id=business_id,
                states={pid: ProfileState(first_seen=seen, last_seen=seen)},
                new=set(),
            )
        else:
            profiles.rederive(
                conn, business_id=business_id, profile_id=pid, policies=rules.trait_policies
            )
    evidence = {
        "edge_id": edge_id,
        "edge": [list(a), [row.b_kind, row.b_value]],
        "reason": reason,
        "rule": row.rule,
        "message_id": row.message_id,
    }
    if len(ids) > 1:
        conn.execute(
            identity_merges.insert(),
            [
                {
                    "business_id": business_id,
                    "action": "split",
                    "profile_id": owner,
                    "other_profile_id": pid,
                    "rule": "unmerge",
                    "evidence": orjson.dumps(evidence).decode(),
                    "occurred_at": now,
                    "created_at": now,
                }
                for pid in ids[1:]
            ],
        )
    return SplitReport(
        edge_id=edge_id,
        profiles=ids,
        identifiers={
            pid: [IdentifierRef(kind=k, value=v) for k, v in part]
            for pid, part in zip(ids, parts, strict=True)
        },
        events={pid: len(by_part.get(pid, [])) for pid in ids},
    )


def rederive_all(conn: Connection, *, business_id: str) -> int:
    """Derive every profile of a business again from its events; returns how many."""
    rules = get_rules(conn, business_id=business_id)
    done = 0
    for pid in profiles.profile_ids(conn, business_id=business_id):
        state = profiles.rederive(
            conn, business_id=business_id, profile_id=pid, policies=rules.trait_policies
        )
        done += state is not None
    return done


# -- erasure -------------------------------------------------------------------------


@dataclass(frozen=True)
class Forgotten:
    tombstones: int
    edges: int
    merges: int
    reviews: int


def add_tombstones(
    conn: Connection, *, business_id: str, keys: list[Key], erasure_id: str
) -> list[str]:
    """Remember erased identifiers by hash only; returns the hashes."""
    known = tombstoned(conn, business_id=business_id, keys=keys)
    now = utcnow()
    rows = [
        {
            "business_id": business_id,
            "kind": key[0],
            "value_hash": value_hash(business_id, key),
            "erasure_id": erasure_id,
            "erased_at": now,
        }
        for key in sorted(set(keys) - known)
    ]
    if rows:
        conn.execute(identity_tombstones.insert(), rows)
    return sorted(value_hash(business_id, key) for key in keys)


def forget_graph(
    conn: Connection, *, business_id: str, profile_id: str, keys: list[Key]
) -> Forgotten:
    """Delete the edges, merge history and review items that name an erased person."""
    edge_ids = [row.id for row in _edge_rows(conn, business_id, keys)]
    for chunk in profiles.chunks(edge_ids):
        conn.execute(delete(identity_edges).where(identity_edges.c.id.in_(chunk)))
    merge_ids = [m.id for m in merge_history(conn, business_id=business_id, profile_id=profile_id)]
    for chunk in profiles.chunks(merge_ids):
        conn.execute(delete(identity_merges).where(identity_merges.c.id.in_(chunk)))
    wanted = set(keys)
    review_ids = [
        item.id
        for item in list_reviews(conn, business_id=business_id, status=None)
        if profile_id in item.profile_ids
        or any((i.kind, i.value) in wanted for i in item.identifiers)
    ]
    for chunk in profiles.chunks(review_ids):
        conn.execute(delete(identity_reviews).where(identity_reviews.c.id.in_(chunk)))
    return Forgotten(
        tombstones=len(keys), edges=len(edge_ids), merges=len(merge_ids), reviews=len(review_ids)
    )


def purge_tombstones(conn: Connection, *, erased_before: datetime) -> int:
    """Forget tombstones of erasures older than any event collection still accepts: an
    event naming the person from before the erasure would be refused as too old."""
    result = conn.execute(
        delete(identity_tombstones).where(identity_tombstones.c.erased_at < erased_before)
    )
    return max(result.rowcount, 0)
