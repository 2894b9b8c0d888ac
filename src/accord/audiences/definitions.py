"""Stored audience definitions: the catalog they are checked against, create, find, list, delete."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, insert, select

from accord.audiences.computed import COMPUTED_TRAITS
from accord.audiences.conditions import (
    Catalog,
    Definition,
    LastDays,
    TraitType,
    aggregate_conditions,
    event_conditions,
    parse_definition,
    referenced_audiences,
    referenced_traits,
    validate,
)
from accord.audiences.models import (
    AudienceIn,
    AudienceView,
    Validated,
    audience_changes,
    audience_members,
    audience_sizes,
    audience_webhook_dead_letters,
    audience_webhooks,
    audiences,
)
from accord.audiences.predefined import BUILTIN_TRAITS, PREDEFINED
from accord.audiences.service import known_purposes
from accord.audiences.text import parse, render
from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, InvalidInput, NotFound
from accord.core.ids import new_id
from accord.profiles.service import profile_rows

# Real-time decisions read the profile's events still held in the inbox; only
# definitions whose event windows fit inside this many days are decided in real time
# (the inbox must keep events at least this long: ACCORD_INBOX_RETENTION_DAYS).
REALTIME_HISTORY_DAYS = 30
CATALOG_SAMPLE = 5000
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}.*)?$")


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
    windows = [c.window for c in event_conditions(definition)]
    windows += [c.window for c in aggregate_conditions(definition)]
    return all(isinstance(w, LastDays) and w.days <= history_days for w in windows)


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


def all_stored(conn: Connection, business_id: str) -> list[StoredAudience]:
    """The business's audiences as stored, by slug."""
    rows = conn.execute(
        select(audiences).where(audiences.c.business_id == business_id).order_by(audiences.c.slug)
    )
    return [_stored(row) for row in rows]


def in_dependency_order(items: list[StoredAudience]) -> list[StoredAudience]:
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


def catalog(conn: Connection, *, business_id: str) -> Catalog:
    """The traits (typed by the values recent profiles hold), purposes and audiences."""
    votes: dict[str, Counter[TraitType]] = {}
    for row in profile_rows(conn, business_id=business_id, latest=CATALOG_SAMPLE):
        for name, value in row.traits.items():
            kind = _infer(value)
            if kind is not None:
                votes.setdefault(name, Counter())[kind] += 1
    traits: dict[str, TraitType] = {name: c.most_common(1)[0][0] for name, c in votes.items()}
    traits.update(BUILTIN_TRAITS)
    traits.update(COMPUTED_TRAITS)
    slugs = conn.execute(
        select(audiences.c.slug, audiences.c.id).where(audiences.c.business_id == business_id)
    )
    return Catalog(
        traits=traits,
        purposes=known_purposes(conn, business_id=business_id),
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
    conn: Connection, *, business_id: str, definition: Definition
) -> tuple[Catalog, dict[str, TraitType]]:
    known = catalog(conn, business_id=business_id)
    validate(definition, known)
    types = {name: known.traits[name] for name in referenced_traits(definition)}
    return known, types


def validate_definition(
    conn: Connection,
    *,
    business_id: str,
    definition: dict[str, Any] | None,
    text: str | None,
) -> Validated:
    parsed = definition_from(definition, text)
    check_definition(conn, business_id=business_id, definition=parsed)
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


def create_audience(conn: Connection, *, business_id: str, audience: AudienceIn) -> AudienceView:
    ensure_predefined(conn, business_id=business_id)
    definition = definition_from(audience.definition, audience.text)
    known, types = check_definition(conn, business_id=business_id, definition=definition)
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


def find_stored(conn: Connection, business_id: str, audience: str) -> StoredAudience:
    """One audience as stored, by id or slug."""
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
    return _view(find_stored(conn, business_id, audience))


def list_audiences(conn: Connection, *, business_id: str) -> list[AudienceView]:
    return [_view(a) for a in all_stored(conn, business_id)]


def delete_audience(conn: Connection, *, business_id: str, audience: str) -> None:
    found = find_stored(conn, business_id, audience)
    if found.predefined:
        raise InvalidInput([FieldProblem("audience", f"{found.slug!r} is predefined")])
    users = [
        a.slug
        for a in all_stored(conn, business_id)
        if found.slug in referenced_audiences(a.definition)
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


def audience_slugs(conn: Connection, *, business_id: str) -> dict[str, str]:
    """Audience ids to their slugs, the names journeys and people use."""
    return {a.id: a.slug for a in all_stored(conn, business_id)}
