"""Audiences: definitions, refresh on the engine, real-time entries and exits,
suppression lists, and activation (exports, webhook destinations with their dead
letters) that respects consent and suppression."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

import httpx
import orjson
import pyarrow as pa
from sqlalchemy import Connection, Select, and_, delete, func, insert, select, update

from accord.audiences import exports, webhook
from accord.audiences.compile import (
    CONSENT_SCHEMA,
    IDENTIFIER_SCHEMA,
    MEMBERSHIP_SCHEMA,
    EngineTables,
    business_events,
    members,
    profiles_table,
    tables_on,
)
from accord.audiences.conditions import (
    Catalog,
    Definition,
    EventCondition,
    LastDays,
    TraitType,
    event_conditions,
    parse_definition,
    referenced_audiences,
    referenced_purposes,
    referenced_traits,
    validate,
    walk,
)
from accord.audiences.evaluate import ProfileFacts, event_facts, matches
from accord.audiences.exports import Destination, InterestGroupOptions, Person
from accord.audiences.models import (
    AudienceIn,
    AudienceView,
    Change,
    DeadLetterStatus,
    DeadLetterView,
    Member,
    Overlap,
    Preview,
    RefreshResult,
    SizePoint,
    Validated,
    WebhookIn,
    WebhookView,
    audience_changes,
    audience_members,
    audience_sizes,
    audience_webhook_dead_letters,
    audience_webhooks,
    audiences,
)
from accord.audiences.predefined import BUILTIN_TRAITS, PREDEFINED
from accord.audiences.text import parse, render
from accord.collect.service import payloads_of_profiles
from accord.consent import config as consent_config
from accord.consent import service as consent_service
from accord.consent.models import STANDARD_PURPOSES
from accord.core.clock import utcnow
from accord.core.errors import Conflict, FieldProblem, InvalidInput, NotFound, WebhookNotDelivered
from accord.core.ids import new_id
from accord.engine.connection import arrow_table as engine_table
from accord.engine.connection import events as lake_events
from accord.lake.schema import lake_row
from accord.profiles.service import identifier_rows, profile_rows
from accord.reach import service as reach
from accord.store.db import Store

# Real-time decisions read the profile's events still held in the inbox; only
# definitions whose event windows fit inside this many days are decided in real time
# (the inbox must keep events at least this long: ACCORD_INBOX_RETENTION_DAYS).
REALTIME_HISTORY_DAYS = 30
# The purpose a destination's consent must cover. In the consent model, `marketing`
# is advertising and personalised ads (TCF purposes 1-4, Consent Mode ad_* signals).
DESTINATION_PURPOSES: dict[str, str] = {
    "csv": "marketing",
    "meta": "marketing",
    "google": "marketing",
    "interest_groups": "marketing",
}
CATALOG_SAMPLE = 5000
SAMPLE_SIZE = 10
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}.*)?$")


# Consent, as the consent context will offer it ---------------------------------------


class ConsentSource(Protocol):
    """What audiences need from the consent context."""

    def purposes(self, conn: Connection, *, business_id: str) -> frozenset[str]: ...

    def granted_purposes(
        self,
        conn: Connection,
        *,
        business_id: str,
        anonymous_ids: list[str],
        user_ids: list[str],
    ) -> dict[str, bool]: ...


@dataclass(frozen=True)
class NoConsentRecorded:
    """Consent-first default while no consent ledger is connected: no one has granted any
    purpose, so consent conditions select no one and exports leave everyone out."""

    known: frozenset[str] = frozenset(STANDARD_PURPOSES)

    def purposes(self, conn: Connection, *, business_id: str) -> frozenset[str]:
        return self.known

    def granted_purposes(
        self,
        conn: Connection,
        *,
        business_id: str,
        anonymous_ids: list[str],
        user_ids: list[str],
    ) -> dict[str, bool]:
        return {}


NO_CONSENT_RECORDED = NoConsentRecorded()


class LedgerConsent:
    """Consent as the consent ledger holds it: the business's configured purposes, and
    each person's newest decision per purpose across their identifiers."""

    def purposes(self, conn: Connection, *, business_id: str) -> frozenset[str]:
        return frozenset(consent_config.purpose_keys(conn, business_id=business_id)) | set(
            STANDARD_PURPOSES
        )

    def granted_purposes(
        self,
        conn: Connection,
        *,
        business_id: str,
        anonymous_ids: list[str],
        user_ids: list[str],
    ) -> dict[str, bool]:
        return consent_service.granted_purposes(
            conn, business_id=business_id, anonymous_ids=anonymous_ids, user_ids=user_ids
        )


LEDGER_CONSENT = LedgerConsent()


def granted(
    conn: Connection, *, business_id: str, people: Iterable[Person], consent: ConsentSource
) -> dict[str, frozenset[str]]:
    """The purposes each person has granted."""
    out = {}
    for person in people:
        answer = consent.granted_purposes(
            conn,
            business_id=business_id,
            anonymous_ids=list(person.anonymous_ids),
            user_ids=list(person.user_ids),
        )
        out[person.profile_id] = frozenset(p for p, yes in answer.items() if yes)
    return out


# Stored audiences -----------------------------------------------------------------------


@dataclass(frozen=True)
class StoredAudience:
    id: str
    slug: str
    name: str
    description: str
    definition: Definition
    # The type of each trait the definition names, fixed when it was validated.
    trait_types: dict[str, TraitType]
    predefined: bool
    suppression: bool
    size: int | None
    refreshed_at: datetime | None


def _stored(row: Any) -> StoredAudience:
    data = orjson.loads(row.definition)
    return StoredAudience(
        id=row.id,
        slug=row.slug,
        name=row.name,
        description=row.description,
        definition=Definition.model_validate({"condition": data["condition"]}),
        trait_types=data["trait_types"],
        predefined=row.predefined,
        suppression=row.suppression,
        size=row.size,
        refreshed_at=row.refreshed_at,
    )


def is_realtime(definition: Definition, *, history_days: int = REALTIME_HISTORY_DAYS) -> bool:
    """Whether the events a real-time decision can read are enough to decide it."""
    for condition in event_conditions(definition):
        window = condition.window
        if not (isinstance(window, LastDays) and window.days <= history_days):
            return False
    return True


def _view(audience: StoredAudience) -> AudienceView:
    return AudienceView(
        id=audience.id,
        slug=audience.slug,
        name=audience.name,
        description=audience.description,
        definition=audience.definition.model_dump(mode="json")["condition"],
        text=render(audience.definition),
        predefined=audience.predefined,
        suppression=audience.suppression,
        realtime=is_realtime(audience.definition),
        size=audience.size,
        refreshed_at=audience.refreshed_at,
    )


def _all(conn: Connection, business_id: str) -> list[StoredAudience]:
    rows = conn.execute(
        select(audiences).where(audiences.c.business_id == business_id).order_by(audiences.c.slug)
    )
    return [_stored(row) for row in rows]


def _in_dependency_order(items: list[StoredAudience]) -> list[StoredAudience]:
    """Audiences after the audiences their definitions name (definitions have no cycles)."""
    by_slug = {a.slug: a for a in items}
    done: dict[str, StoredAudience] = {}

    def visit(audience: StoredAudience) -> None:
        if audience.slug in done:
            return
        for slug in sorted(referenced_audiences(audience.definition)):
            if slug in by_slug:
                visit(by_slug[slug])
        done[audience.slug] = audience

    for audience in items:
        visit(audience)
    return list(done.values())


def _infer(value: Any) -> TraitType | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "datetime" if _ISO_DATE.match(value) else "string"
    return None


def catalog(conn: Connection, *, business_id: str, consent: ConsentSource) -> Catalog:
    """The traits (typed by the values recent profiles hold), purposes and audiences."""
    votes: dict[str, Counter[TraitType]] = {}
    for row in profile_rows(conn, business_id=business_id, latest=CATALOG_SAMPLE):
        for name, value in row.traits.items():
            kind = _infer(value)
            if kind is not None:
                votes.setdefault(name, Counter())[kind] += 1
    traits: dict[str, TraitType] = {name: c.most_common(1)[0][0] for name, c in votes.items()}
    traits.update(BUILTIN_TRAITS)
    slugs = conn.execute(
        select(audiences.c.slug, audiences.c.id).where(audiences.c.business_id == business_id)
    )
    return Catalog(
        traits=traits,
        purposes=consent.purposes(conn, business_id=business_id),
        audiences={row.slug: row.id for row in slugs},
    )


def definition_from(
    definition: dict[str, Any] | None, text: str | None, *, prefix: str = "definition"
) -> Definition:
    """The definition given as JSON or as text (exactly one of them)."""
    if (definition is None) == (text is None):
        raise InvalidInput([FieldProblem(prefix, "give either `definition` (JSON) or `text`")])
    if text is not None:
        return parse(text, field="text")
    return parse_definition(definition, prefix=prefix)


def check_definition(
    conn: Connection, *, business_id: str, definition: Definition, consent: ConsentSource
) -> tuple[Catalog, dict[str, TraitType]]:
    known = catalog(conn, business_id=business_id, consent=consent)
    validate(definition, known)
    types = {name: known.traits[name] for name in referenced_traits(definition)}
    return known, types


def validate_definition(
    conn: Connection,
    *,
    business_id: str,
    definition: dict[str, Any] | None,
    text: str | None,
    consent: ConsentSource,
) -> Validated:
    parsed = definition_from(definition, text)
    check_definition(conn, business_id=business_id, definition=parsed, consent=consent)
    return Validated(
        definition=parsed.model_dump(mode="json")["condition"],
        text=render(parsed),
        realtime=is_realtime(parsed),
    )


def _insert(
    conn: Connection,
    *,
    business_id: str,
    slug: str,
    name: str,
    description: str,
    definition: Definition,
    trait_types: dict[str, TraitType],
    predefined: bool,
    suppression: bool,
) -> str:
    now = utcnow()
    audience_id = new_id("aud")
    stored = {
        "condition": definition.model_dump(mode="json")["condition"],
        "trait_types": trait_types,
    }
    conn.execute(
        insert(audiences).values(
            id=audience_id,
            business_id=business_id,
            slug=slug,
            name=name,
            description=description,
            definition=orjson.dumps(stored).decode(),
            predefined=predefined,
            suppression=suppression,
            size=None,
            refreshed_at=None,
            created_at=now,
            updated_at=now,
        )
    )
    return audience_id


def ensure_predefined(conn: Connection, *, business_id: str) -> None:
    """Create the predefined audiences this business does not have yet."""
    present = set(
        conn.execute(
            select(audiences.c.slug).where(audiences.c.business_id == business_id)
        ).scalars()
    )
    for item in PREDEFINED:
        if item.slug in present:
            continue
        definition = parse(item.text)
        validate(definition, Catalog(traits=BUILTIN_TRAITS))
        _insert(
            conn,
            business_id=business_id,
            slug=item.slug,
            name=item.name,
            description=item.description,
            definition=definition,
            trait_types={n: BUILTIN_TRAITS[n] for n in referenced_traits(definition)},
            predefined=True,
            suppression=item.suppression,
        )


def create_audience(
    conn: Connection, *, business_id: str, audience: AudienceIn, consent: ConsentSource
) -> AudienceView:
    ensure_predefined(conn, business_id=business_id)
    definition = definition_from(audience.definition, audience.text)
    known, types = check_definition(
        conn, business_id=business_id, definition=definition, consent=consent
    )
    if audience.slug in known.audiences:
        raise InvalidInput([FieldProblem("slug", f"an audience {audience.slug!r} exists already")])
    # A definition names only audiences that exist already and definitions never change,
    # so audiences cannot name each other in a cycle.
    audience_id = _insert(
        conn,
        business_id=business_id,
        slug=audience.slug,
        name=audience.name,
        description=audience.description,
        definition=definition,
        trait_types=types,
        predefined=False,
        suppression=audience.suppression,
    )
    return get_audience(conn, business_id=business_id, audience=audience_id)


def _find(conn: Connection, business_id: str, audience: str) -> StoredAudience:
    row = conn.execute(
        select(audiences).where(
            audiences.c.business_id == business_id,
            (audiences.c.id == audience) | (audiences.c.slug == audience),
        )
    ).first()
    if row is None:
        raise NotFound(f"audience {audience!r}")
    return _stored(row)


def get_audience(conn: Connection, *, business_id: str, audience: str) -> AudienceView:
    """By id or slug."""
    return _view(_find(conn, business_id, audience))


def list_audiences(conn: Connection, *, business_id: str) -> list[AudienceView]:
    return [_view(a) for a in _all(conn, business_id)]


def delete_audience(conn: Connection, *, business_id: str, audience: str) -> None:
    found = _find(conn, business_id, audience)
    if found.predefined:
        raise InvalidInput([FieldProblem("audience", f"{found.slug!r} is predefined")])
    users = [
        a.slug for a in _all(conn, business_id) if found.slug in referenced_audiences(a.definition)
    ]
    if users:
        raise InvalidInput(
            [FieldProblem("audience", f"{found.slug!r} is named by {', '.join(users)}")]
        )
    letters = audience_webhook_dead_letters
    parked = conn.execute(
        select(func.count()).where(letters.c.audience_id == found.id, letters.c.status == "parked")
    ).scalar_one()
    if parked:
        # They may hold erasure notices: going with the audience, they would be lost unseen.
        raise InvalidInput(
            [
                FieldProblem(
                    "audience",
                    f"{found.slug!r} has {parked} parked webhook batches: "
                    "replay or discard them first",
                )
            ]
        )
    for table in (
        audience_members,
        audience_changes,
        audience_sizes,
        audience_webhook_dead_letters,
        audience_webhooks,
    ):
        conn.execute(delete(table).where(table.c.audience_id == found.id))
    conn.execute(delete(audiences).where(audiences.c.id == found.id))


# Whole-base evaluation on the engine ----------------------------------------------------


def people(
    conn: Connection, *, business_id: str, profile_ids: list[str] | None = None
) -> dict[str, Person]:
    """Who each profile is: its identifiers and traits."""
    ids: dict[str, dict[str, list[str]]] = {}
    for profile_id, kind, value in identifier_rows(
        conn, business_id=business_id, profile_ids=profile_ids
    ):
        ids.setdefault(profile_id, {}).setdefault(kind, []).append(value)
    out = {}
    for row in profile_rows(conn, business_id=business_id, profile_ids=profile_ids):
        known = ids.get(row.id, {})
        out[row.id] = Person(
            profile_id=row.id,
            user_ids=tuple(sorted(known.get("user_id", []))),
            anonymous_ids=tuple(sorted(known.get("anonymous_id", []))),
            emails=tuple(sorted(known.get("email", []))),
            phones=tuple(sorted(known.get("phone", []))),
            traits=row.traits,
        )
    return out


def _memberships(conn: Connection, business_id: str) -> dict[str, set[str]]:
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


@dataclass
class Snapshot:
    """The state-store side of a whole-base evaluation, loaded once per refresh."""

    profiles: pa.Table
    identifiers: pa.Table
    consents: pa.Table
    memberships: dict[str, set[str]]
    rows: dict[str, Any] = field(default_factory=dict)


def snapshot(
    conn: Connection,
    *,
    business_id: str,
    trait_types: dict[str, TraitType],
    with_consent: bool,
    consent: ConsentSource,
) -> Snapshot:
    rows = profile_rows(conn, business_id=business_id)
    identifiers = identifier_rows(conn, business_id=business_id)
    consents: list[dict[str, str]] = []
    if with_consent:
        everyone = people(conn, business_id=business_id)
        for profile_id, purposes in granted(
            conn, business_id=business_id, people=everyone.values(), consent=consent
        ).items():
            consents += [{"profile_id": profile_id, "purpose": p} for p in sorted(purposes)]
    return Snapshot(
        profiles=profiles_table(
            ((r.id, r.traits, r.first_seen, r.last_seen) for r in rows), trait_types
        ),
        identifiers=pa.Table.from_pydict(
            {
                "kind": [kind for _, kind, _ in identifiers],
                "value": [value for _, _, value in identifiers],
                "profile_id": [pid for pid, _, _ in identifiers],
            },
            schema=IDENTIFIER_SCHEMA,
        ),
        consents=pa.Table.from_pylist(consents, schema=CONSENT_SCHEMA),
        memberships=_memberships(conn, business_id),
        rows={r.id: r for r in rows},
    )


def _membership_table(memberships: dict[str, set[str]]) -> pa.Table:
    pairs = [(p, a) for a, members_ in memberships.items() for p in members_]
    return pa.Table.from_pydict(
        {"profile_id": [p for p, _ in pairs], "audience_id": [a for _, a in pairs]},
        schema=MEMBERSHIP_SCHEMA,
    )


def engine_tables(
    backend: Any, *, lake_url: str, business_id: str, state: Snapshot
) -> EngineTables:
    """The snapshot and the business's events as tables on the engine, prepared once."""
    return tables_on(
        backend,
        profiles=state.profiles,
        events=business_events(
            lake_events(backend, lake_url, business_id=business_id), business_id
        ),
        identifiers=state.identifiers,
        consents=state.consents,
        memberships=_membership_table(state.memberships),
    )


def evaluate_on_engine(
    definition: Definition,
    *,
    backend: Any,
    tables: EngineTables,
    state: Snapshot,
    catalog: Catalog,
    now: datetime,
) -> set[str]:
    """The profile ids the definition selects, computed on the engine."""
    if referenced_audiences(definition):
        # Memberships change as a refresh goes: read them as they are now.
        tables = replace(
            tables, memberships=engine_table(backend, _membership_table(state.memberships))
        )
    expression = members(definition, tables=tables, catalog=catalog, now=now)
    return set(backend.to_pyarrow(expression).column("profile_id").to_pylist())


def _record(
    conn: Connection,
    *,
    business_id: str,
    audience_id: str,
    entered: Iterable[str],
    exited: Iterable[str],
    origin: str,
    now: datetime,
) -> list[Change]:
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


# Told of the entries and exits a refresh records, inside the transaction that records
# them, so each change is handed on exactly once (journeys start and resume on them):
# (conn, business id, audience slug, changes).
ChangeListener = Callable[[Connection, str, str, list[Change]], None]


def refresh(
    store: Store,
    *,
    business_id: str,
    backend: Any,
    lake_url: str,
    consent: ConsentSource,
    only: list[str] | None = None,
    now: datetime | None = None,
    on_changes: ChangeListener | None = None,
) -> list[RefreshResult]:
    """Recompute audiences on the engine and record who entered and who left."""
    now = now or utcnow()
    with store.write() as conn:
        ensure_predefined(conn, business_id=business_id)
    with store.read() as conn:
        everything = _in_dependency_order(_all(conn, business_id))
        wanted = {_find(conn, business_id, a).id for a in only} if only else None
        targets = [a for a in everything if wanted is None or a.id in wanted]
        trait_types: dict[str, TraitType] = {}
        for audience in targets:
            trait_types.update(audience.trait_types)
        with_consent = any(referenced_purposes(a.definition) for a in targets)
        state = snapshot(
            conn,
            business_id=business_id,
            trait_types=trait_types,
            with_consent=with_consent,
            consent=consent,
        )
    slugs = {a.slug: a.id for a in everything}
    tables = engine_tables(backend, lake_url=lake_url, business_id=business_id, state=state)
    results = []
    for audience in targets:
        known = Catalog(traits=audience.trait_types, audiences=slugs)
        selected = evaluate_on_engine(
            audience.definition,
            backend=backend,
            tables=tables,
            state=state,
            catalog=known,
            now=now,
        )
        before = state.memberships.get(audience.id, set())
        entered, exited = selected - before, before - selected
        with store.write() as conn:
            recorded = _record(
                conn,
                business_id=business_id,
                audience_id=audience.id,
                entered=entered,
                exited=exited,
                origin="refresh",
                now=now,
            )
            if recorded and on_changes is not None:
                on_changes(conn, business_id, audience.slug, recorded)
            conn.execute(
                insert(audience_sizes).values(
                    audience_id=audience.id, at=now, business_id=business_id, size=len(selected)
                )
            )
            conn.execute(
                update(audiences)
                .where(audiences.c.id == audience.id)
                .values(size=len(selected), refreshed_at=now)
            )
        state.memberships[audience.id] = selected
        results.append(
            RefreshResult(
                audience_id=audience.id,
                size=len(selected),
                entered=len(entered),
                exited=len(exited),
            )
        )
    return results


def preview(
    store: Store,
    *,
    business_id: str,
    definition: Definition,
    backend: Any,
    lake_url: str,
    consent: ConsentSource,
    sample: int = SAMPLE_SIZE,
    now: datetime | None = None,
) -> Preview:
    """How many people a definition selects now, with a few of them."""
    with store.read() as conn:
        known, types = check_definition(
            conn, business_id=business_id, definition=definition, consent=consent
        )
        state = snapshot(
            conn,
            business_id=business_id,
            trait_types=types,
            with_consent=bool(referenced_purposes(definition)),
            consent=consent,
        )
    selected = evaluate_on_engine(
        definition,
        backend=backend,
        tables=engine_tables(backend, lake_url=lake_url, business_id=business_id, state=state),
        state=state,
        catalog=known,
        now=now or utcnow(),
    )
    chosen = sorted(selected)[:sample]
    return Preview(
        size=len(selected),
        sample=[Member(profile_id=p, traits=state.rows[p].traits) for p in chosen],
    )


def sizes(conn: Connection, *, business_id: str, audience: str) -> list[SizePoint]:
    found = _find(conn, business_id, audience)
    rows = conn.execute(
        select(audience_sizes.c.at, audience_sizes.c.size)
        .where(audience_sizes.c.audience_id == found.id)
        .order_by(audience_sizes.c.at)
    )
    return [SizePoint(at=r.at, size=r.size) for r in rows]


def overlap(conn: Connection, *, business_id: str, first: str, second: str) -> Overlap:
    a, b = _find(conn, business_id, first), _find(conn, business_id, second)

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
    found = _find(conn, business_id, audience)
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
    found = _find(conn, business_id, audience)
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


# Real time ---------------------------------------------------------------------------------


def audience_slugs(conn: Connection, *, business_id: str) -> dict[str, str]:
    """Audience ids to their slugs, the names journeys and people use."""
    return {a.id: a.slug for a in _all(conn, business_id)}


def apply_realtime(
    conn: Connection,
    *,
    business_id: str,
    profile_ids: list[str],
    consent: ConsentSource = LEDGER_CONSENT,
    now: datetime | None = None,
    history_days: int = REALTIME_HISTORY_DAYS,
) -> list[Change]:
    """Decide again, for the profiles a batch of events touched, their membership of every
    real-time audience; record and return who entered and who left.

    The worker calls it inside the transaction that applied the batch to profiles.
    """
    if not profile_ids:
        return []
    every = _all(conn, business_id)
    live = [
        a
        for a in _in_dependency_order(every)
        if is_realtime(a.definition, history_days=history_days)
    ]
    if not live:
        return []
    now = now or utcnow()
    ids = sorted(set(profile_ids))
    rows = {r.id: r for r in profile_rows(conn, business_id=business_id, profile_ids=ids)}
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
            consent=consent,
        )
    history: dict[str, list[Any]] = {}
    if any(isinstance(n, EventCondition) for a in live for _, n in walk(a.definition.condition)):
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
                traits=profile.traits,
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
        recorded += _record(
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


# Suppression -----------------------------------------------------------------------------


def forget_profile(conn: Connection, *, business_id: str, profile_id: str) -> dict[str, int]:
    """Erase a person from audiences, in the caller's transaction: their memberships and
    change history go, and every audience they were ever in gets one `erased` change, which
    webhook destinations receive like entries and exits. Their entries and exits are
    taken out of the batches webhook dead letters keep."""
    touched = set(
        conn.execute(
            select(audience_members.c.audience_id).where(
                audience_members.c.business_id == business_id,
                audience_members.c.profile_id == profile_id,
            )
        ).scalars()
    ) | set(
        conn.execute(
            select(audience_changes.c.audience_id).where(
                audience_changes.c.business_id == business_id,
                audience_changes.c.profile_id == profile_id,
            )
        ).scalars()
    )
    members = conn.execute(
        delete(audience_members).where(
            audience_members.c.business_id == business_id,
            audience_members.c.profile_id == profile_id,
        )
    ).rowcount
    # The notices go in before the history goes out: SQLite hands the numbers of deleted
    # newest rows out again, which would put a notice at or before a change destinations
    # received already (their `delivered_seq`), and it would never be sent.
    replaced = conn.execute(select(func.max(audience_changes.c.seq))).scalar() or 0
    now = utcnow()
    if touched:
        conn.execute(
            insert(audience_changes),
            [
                {
                    "business_id": business_id,
                    "audience_id": audience_id,
                    "profile_id": profile_id,
                    "change": "erased",
                    "origin": "erasure",
                    "at": now,
                }
                for audience_id in sorted(touched)
            ],
        )
    history = conn.execute(
        delete(audience_changes).where(
            audience_changes.c.business_id == business_id,
            audience_changes.c.profile_id == profile_id,
            audience_changes.c.seq <= replaced,
        )
    ).rowcount
    return {
        "audience_members": max(members, 0),
        "audience_changes": max(history, 0),
        "audience_webhook_dead_letters_scrubbed": _scrub_dead_letters(
            conn, business_id=business_id, profile_id=profile_id
        ),
        "erasure_notices": len(touched),
    }


def suppression_lists(
    conn: Connection, business_id: str, profile_ids: Sequence[str]
) -> dict[str, str]:
    """Profile id → the suppression audience it is a member of, for those in one (reach
    counts these as suppressions)."""
    lists = conn.execute(
        select(audiences.c.id, audiences.c.slug).where(
            audiences.c.business_id == business_id, audiences.c.suppression.is_(True)
        )
    ).all()
    found: dict[str, str] = {}
    ids = sorted(set(profile_ids))
    for audience_id, slug in lists:
        for start in range(0, len(ids), 500):
            rows = conn.execute(
                select(audience_members.c.profile_id).where(
                    audience_members.c.audience_id == audience_id,
                    audience_members.c.profile_id.in_(ids[start : start + 500]),
                )
            ).scalars()
            for profile_id in rows:
                found.setdefault(profile_id, f"in audience {slug}")
    return found


# Activation ----------------------------------------------------------------------------------


@dataclass
class Export:
    body: bytes
    media_type: str
    included: int
    left_out: dict[str, int]


def _addressee(person: Person) -> reach.Addressee:
    email, phone = person.traits.get("email"), person.traits.get("phone")
    return reach.Addressee(
        key=person.profile_id,
        profile_ids=(person.profile_id,),
        anonymous_ids=person.anonymous_ids,
        user_ids=person.user_ids,
        emails=(*person.emails, *([email] if isinstance(email, str) else [])),
        phones=(*person.phones, *([phone] if isinstance(phone, str) else [])),
    )


def _reachable(
    conn: Connection, *, business_id: str, profile_ids: list[str], purpose: str
) -> tuple[list[Person], Counter[str]]:
    """Members reach allows for the purpose (consent in the ledger, not suppressed), and
    how many were left out for each reason."""
    found = people(conn, business_id=business_id, profile_ids=profile_ids)
    left_out: Counter[str] = Counter()
    left_out["profile no longer exists"] += len(set(profile_ids) - set(found))
    decided = reach.decisions(
        conn,
        business_id=business_id,
        people=[_addressee(found[pid]) for pid in sorted(found)],
        channel="ads",
        purpose=purpose,
        lists=suppression_lists,
    )
    kept = []
    for profile_id, decision in decided.items():
        if decision.allowed:
            kept.append(found[profile_id])
        elif decision.reason == "no_consent":
            left_out[decision.detail] += 1
        else:
            left_out[f"suppressed: {decision.detail}"] += 1
    return kept, +left_out


def export_audience(
    conn: Connection,
    *,
    business_id: str,
    audience: str,
    destination: Destination,
    purpose: str | None = None,
    interest_groups: InterestGroupOptions | None = None,
) -> Export:
    """The audience's members in the destination's format, consent and suppression applied."""
    found = _find(conn, business_id, audience)
    purpose = purpose or DESTINATION_PURPOSES[destination]
    if destination == "interest_groups" and interest_groups is None:
        raise InvalidInput(
            [FieldProblem("owner", "interest groups need the buyer's owner and bidding logic URL")]
        )
    kept, left_out = _reachable(
        conn,
        business_id=business_id,
        profile_ids=member_ids(conn, business_id=business_id, audience=found.id),
        purpose=purpose,
    )
    rendered = exports.render(
        destination, kept, audience=found.slug, interest_groups=interest_groups
    )
    if rendered.unmatchable:
        left_out[f"nothing {destination} can match on"] += rendered.unmatchable
    return Export(
        body=rendered.body,
        media_type=rendered.media_type,
        included=len(kept) - rendered.unmatchable,
        left_out=dict(sorted(left_out.items())),
    )


def add_webhook(
    conn: Connection, *, business_id: str, audience: str, webhook_in: WebhookIn
) -> dict[str, str]:
    """A destination that receives the audience's entries and exits; the secret is shown once."""
    found = _find(conn, business_id, audience)
    webhook_id = new_id("whk")
    secret = webhook.new_secret()
    last = conn.execute(
        select(func.max(audience_changes.c.seq)).where(audience_changes.c.audience_id == found.id)
    ).scalar()
    conn.execute(
        insert(audience_webhooks).values(
            id=webhook_id,
            business_id=business_id,
            audience_id=found.id,
            url=webhook_in.url,
            secret=secret,
            purpose=webhook_in.purpose,
            # Changes from now on: a new destination does not replay history.
            delivered_seq=last or 0,
            created_at=utcnow(),
        )
    )
    return {"id": webhook_id, "secret": secret}


def _webhook_change(change: Change, person: Person | None) -> dict[str, Any]:
    return {
        "seq": change.seq,
        "change": change.change,
        "at": change.at.isoformat(),
        "profile_id": change.profile_id,
        "user_id": person.user_ids[0] if person is not None and person.user_ids else None,
        "email": person.emails[0] if person is not None and person.emails else None,
    }


@dataclass
class WebhookRun:
    webhook_id: str
    sent: int
    left_out: dict[str, int]
    delivery: webhook.Delivery | None
    # Failed runs in a row on the pending batch, this one included; 0 once it went.
    failures: int = 0
    # The dead letter this run parked the batch as.
    parked: str | None = None

    @property
    def failed(self) -> bool:
        """The batch is still pending after a failed delivery: a later run tries again."""
        return self.delivery is not None and not self.delivery.delivered and self.parked is None


def deliver_webhooks(
    store: Store,
    *,
    business_id: str,
    client: httpx.Client,
    batch: int = 500,
    dead_letter_after: int = 10,
    sleep: Callable[[float], None] | None = None,
) -> list[WebhookRun]:
    """Send each webhook destination the entries and exits it has not received yet.

    A batch is marked delivered only after the receiver accepted it, so a failure is
    retried on the next run (receivers dedupe by `webhook-id`). A batch the receiver
    refused (a 4xx other than 408, 425 and 429), or that failed `dead_letter_after` runs
    in a row, is parked as a dead letter and the destination moves on past it.
    """
    with store.read() as conn:
        hooks = conn.execute(
            select(audience_webhooks, audiences.c.slug)
            .join(audiences, audiences.c.id == audience_webhooks.c.audience_id)
            .where(audience_webhooks.c.business_id == business_id)
            .order_by(audience_webhooks.c.id)
        ).all()
    runs = []
    for hook in hooks:
        with store.read() as conn:
            pending = changes(
                conn,
                business_id=business_id,
                audience=hook.audience_id,
                after=hook.delivered_seq,
                limit=batch,
            )
            if not pending:
                runs.append(WebhookRun(hook.id, 0, {}, None))
                continue
            kept, left_out = _reachable(
                conn,
                business_id=business_id,
                profile_ids=sorted({c.profile_id for c in pending}),
                purpose=hook.purpose,
            )
        allowed = {p.profile_id: p for p in kept}
        body = {
            "audience": hook.slug,
            # An erasure goes to every destination whatever its purpose (it asks them
            # to forget), naming only the profile id they received entries under.
            "changes": [
                _webhook_change(c, None if c.change == "erased" else allowed[c.profile_id])
                for c in pending
                if c.change == "erased" or c.profile_id in allowed
            ],
        }
        batch_sent = _Batch(
            first_seq=pending[0].seq,
            last_seq=pending[-1].seq,
            message_id=f"{hook.id}-{pending[-1].seq}",
            body=orjson.dumps(body),
        )
        delivery = webhook.deliver(
            client,
            url=hook.url,
            secret=hook.secret,
            message_id=batch_sent.message_id,
            body=batch_sent.body,
            sleep=sleep if sleep is not None else time.sleep,
        )
        failures = 0 if delivery.delivered else hook.failures + 1
        settlement = webhook.settle(
            delivery, failures=failures, dead_letter_after=dead_letter_after
        )
        with store.write() as conn:
            parked = _settle(
                conn,
                hook=hook,
                batch=batch_sent,
                settlement=settlement,
                failures=failures,
                error=_error(delivery),
            )
        runs.append(
            WebhookRun(hook.id, len(body["changes"]), dict(left_out), delivery, failures, parked)
        )
    return runs


@dataclass(frozen=True)
class _Batch:
    """A batch as it was sent: what a dead letter keeps to send it again unchanged."""

    first_seq: int
    last_seq: int
    message_id: str
    body: bytes


def _error(delivery: webhook.Delivery) -> str | None:
    if delivery.delivered:
        return None
    return delivery.error or f"HTTP {delivery.status}"


def _settle(
    conn: Connection,
    *,
    hook: Any,
    batch: _Batch,
    settlement: webhook.Settlement,
    failures: int,
    error: str | None,
) -> str | None:
    """Record a delivery run on its destination, parking the batch when it is given up;
    the id of the dead letter made, if any.

    Parking and moving `delivered_seq` past the batch are one transaction, so a batch is
    never skipped without being kept. Each write is guarded by the `delivered_seq` the run
    started from: a run that overlapped another one changes nothing.
    """
    now = utcnow()
    same_batch = and_(
        audience_webhooks.c.id == hook.id,
        audience_webhooks.c.delivered_seq == hook.delivered_seq,
    )
    if settlement == "retry":
        conn.execute(
            update(audience_webhooks)
            .where(same_batch)
            .values(failures=failures, last_error=error, last_attempt_at=now)
        )
        return None
    moved = conn.execute(
        update(audience_webhooks)
        .where(same_batch)
        .values(delivered_seq=batch.last_seq, failures=0, last_error=error, last_attempt_at=now)
    ).rowcount
    if settlement == "delivered" or moved != 1:
        return None
    dead_letter_id = new_id("dlt")
    conn.execute(
        insert(audience_webhook_dead_letters).values(
            id=dead_letter_id,
            business_id=hook.business_id,
            webhook_id=hook.id,
            audience_id=hook.audience_id,
            first_seq=batch.first_seq,
            last_seq=batch.last_seq,
            message_id=batch.message_id,
            # orjson writes UTF-8, so the text encodes back to the very bytes sent.
            body=batch.body.decode(),
            attempts=failures,
            last_error=error or "not delivered",
            status="parked",
            created_at=now,
            resolved_at=None,
        )
    )
    return dead_letter_id


# Webhook destinations and their dead letters -------------------------------------------

# A replay is answered to a person waiting for it: one retry absorbs a blip, more would
# keep them waiting; they can press Replay again.
REPLAY_ATTEMPTS = 2


def list_webhooks(conn: Connection, *, business_id: str, audience: str) -> list[WebhookView]:
    """The audience's destinations with how their deliveries go."""
    found = _find(conn, business_id, audience)
    letters = audience_webhook_dead_letters
    parked: dict[str, int] = {
        row.webhook_id: row.parked
        for row in conn.execute(
            select(letters.c.webhook_id, func.count().label("parked"))
            .where(letters.c.audience_id == found.id, letters.c.status == "parked")
            .group_by(letters.c.webhook_id)
        )
    }
    rows = conn.execute(
        select(audience_webhooks)
        .where(
            audience_webhooks.c.business_id == business_id,
            audience_webhooks.c.audience_id == found.id,
        )
        .order_by(audience_webhooks.c.created_at, audience_webhooks.c.id)
    )
    return [
        WebhookView(
            id=row.id,
            audience_id=row.audience_id,
            url=row.url,
            purpose=row.purpose,
            delivered_seq=row.delivered_seq,
            failures=row.failures,
            last_error=row.last_error,
            last_attempt_at=row.last_attempt_at,
            parked=parked.get(row.id, 0),
        )
        for row in rows
    ]


def _dead_letters() -> Select[Any]:
    letters = audience_webhook_dead_letters
    return select(letters, audience_webhooks.c.url, audience_webhooks.c.secret).join(
        audience_webhooks, audience_webhooks.c.id == letters.c.webhook_id
    )


def _dead_letter_view(row: Any) -> DeadLetterView:
    sent = orjson.loads(row.body)["changes"]
    return DeadLetterView(
        id=row.id,
        webhook_id=row.webhook_id,
        url=row.url,
        audience_id=row.audience_id,
        first_seq=row.first_seq,
        last_seq=row.last_seq,
        message_id=row.message_id,
        changes=len(sent),
        erasures=sum(1 for change in sent if change["change"] == "erased"),
        attempts=row.attempts,
        last_error=row.last_error,
        status=row.status,
        created_at=row.created_at,
        resolved_at=row.resolved_at,
    )


def list_dead_letters(
    conn: Connection,
    *,
    business_id: str,
    audience: str,
    status: DeadLetterStatus | None = None,
) -> list[DeadLetterView]:
    """The audience's dead letters, oldest batch first: the order to replay them in."""
    found = _find(conn, business_id, audience)
    letters = audience_webhook_dead_letters
    query = _dead_letters().where(
        letters.c.business_id == business_id, letters.c.audience_id == found.id
    )
    if status is not None:
        query = query.where(letters.c.status == status)
    rows = conn.execute(query.order_by(letters.c.first_seq, letters.c.id))
    return [_dead_letter_view(row) for row in rows]


def _parked(conn: Connection, business_id: str, audience: str, dead_letter_id: str) -> Any:
    found = _find(conn, business_id, audience)
    letters = audience_webhook_dead_letters
    row = conn.execute(
        _dead_letters().where(
            letters.c.id == dead_letter_id,
            letters.c.business_id == business_id,
            letters.c.audience_id == found.id,
        )
    ).first()
    if row is None:
        raise NotFound(f"dead letter {dead_letter_id!r}")
    if row.status != "parked":
        raise Conflict(f"dead letter {dead_letter_id} was {row.status} already")
    return row


def _reread(conn: Connection, dead_letter_id: str) -> DeadLetterView:
    letters = audience_webhook_dead_letters
    return _dead_letter_view(
        conn.execute(_dead_letters().where(letters.c.id == dead_letter_id)).one()
    )


def discard_dead_letter(
    conn: Connection, *, business_id: str, audience: str, dead_letter_id: str
) -> DeadLetterView:
    """Give a parked batch up: its receiver will never get it."""
    row = _parked(conn, business_id, audience, dead_letter_id)
    letters = audience_webhook_dead_letters
    done = conn.execute(
        update(letters)
        .where(letters.c.id == row.id, letters.c.status == "parked")
        .values(status="discarded", resolved_at=utcnow())
    ).rowcount
    if done != 1:
        raise Conflict(f"dead letter {dead_letter_id} was resolved meanwhile")
    return _reread(conn, row.id)


def replay_dead_letter(
    store: Store,
    *,
    business_id: str,
    audience: str,
    dead_letter_id: str,
    client: httpx.Client,
    sleep: Callable[[float], None] | None = None,
) -> DeadLetterView:
    """POST a parked batch again: the same body and `webhook-id`, freshly signed.

    Raises `WebhookNotDelivered` when the receiver still does not accept it; the batch
    stays parked with the new error.
    """
    with store.read() as conn:
        row = _parked(conn, business_id, audience, dead_letter_id)
    delivery = webhook.deliver(
        client,
        url=row.url,
        secret=row.secret,
        message_id=row.message_id,
        body=row.body.encode(),
        attempts=REPLAY_ATTEMPTS,
        sleep=sleep if sleep is not None else time.sleep,
    )
    letters = audience_webhook_dead_letters
    error = _error(delivery)
    with store.write() as conn:
        if error is None:
            # Delivered is what happened, even if someone discarded it meanwhile.
            conn.execute(
                update(letters)
                .where(letters.c.id == row.id, letters.c.status != "replayed")
                .values(status="replayed", resolved_at=utcnow())
            )
        else:
            conn.execute(
                update(letters)
                .where(letters.c.id == row.id)
                .values(attempts=letters.c.attempts + 1, last_error=error)
            )
        view = _reread(conn, row.id)
    if error is not None:
        raise WebhookNotDelivered(url=row.url, reason=error)
    return view


def _scrub_dead_letters(conn: Connection, *, business_id: str, profile_id: str) -> int:
    """Take an erased person's entries and exits out of the batches dead letters keep;
    their erasure notices stay, they are what the receiver must still be told."""
    letters = audience_webhook_dead_letters
    rows = conn.execute(
        select(letters.c.id, letters.c.body).where(
            letters.c.business_id == business_id,
            letters.c.body.contains(profile_id, autoescape=True),
        )
    ).all()
    scrubbed = 0
    for row in rows:
        body = orjson.loads(row.body)
        kept = [
            change
            for change in body["changes"]
            if change["profile_id"] != profile_id or change["change"] == "erased"
        ]
        if len(kept) == len(body["changes"]):
            continue
        body["changes"] = kept
        conn.execute(
            update(letters).where(letters.c.id == row.id).values(body=orjson.dumps(body).decode())
        )
        scrubbed += 1
    return scrubbed
