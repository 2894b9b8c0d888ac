"""Whole-base membership on the engine: refresh every audience, preview a definition."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection, insert, update

from accord.audiences.compile import (
    CONSENT_SCHEMA,
    EVERY_EVENT,
    IDENTIFIER_SCHEMA,
    MEMBERSHIP_SCHEMA,
    EngineTables,
    EventNeeds,
    business_events,
    event_needs,
    members,
    profiles_table,
    tables_on,
)
from accord.audiences.computed import reads_computed, with_computed
from accord.audiences.conditions import (
    Catalog,
    Definition,
    TraitType,
    referenced_audiences,
    referenced_purposes,
)
from accord.audiences.definitions import (
    all_stored,
    check_definition,
    ensure_predefined,
    find_stored,
    in_dependency_order,
)
from accord.audiences.membership import current_members, record_changes
from accord.audiences.models import (
    Change,
    Member,
    Preview,
    RefreshResult,
    audience_sizes,
    audiences,
)
from accord.audiences.service import granted, people
from accord.core.clock import utcnow
from accord.engine.lake import events as lake_events
from accord.engine.tables import register as engine_table
from accord.profiles.service import identifier_rows, profile_rows
from accord.store.db import Store

SAMPLE_SIZE = 10


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
    now: datetime | None = None,
) -> Snapshot:
    """Profiles with the referenced traits (computed ones as at `now`), identifiers and
    consents, as the engine reads them."""
    at = now or utcnow()
    computed = reads_computed(trait_types)
    rows = profile_rows(conn, business_id=business_id, computed=computed)
    if computed:
        rows = [replace(r, traits=with_computed(r.traits, r.computed, at)) for r in rows]
    identifiers = identifier_rows(conn, business_id=business_id)
    consents: list[dict[str, str]] = []
    if with_consent:
        everyone = people(conn, business_id=business_id)
        for profile_id, purposes in granted(
            conn, business_id=business_id, people=everyone.values()
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
        memberships=current_members(conn, business_id),
        rows={r.id: r for r in rows},
    )


def _membership_table(memberships: dict[str, set[str]]) -> pa.Table:
    pairs = [(p, a) for a, members_ in memberships.items() for p in members_]
    return pa.Table.from_pydict(
        {"profile_id": [p for p, _ in pairs], "audience_id": [a for _, a in pairs]},
        schema=MEMBERSHIP_SCHEMA,
    )


def engine_tables(
    backend: Any,
    *,
    lake_url: str,
    business_id: str,
    state: Snapshot,
    needs: EventNeeds = EVERY_EVENT,
) -> EngineTables:
    """The snapshot and the business's events as tables on the engine, prepared once
    (only the events and columns `needs` names)."""
    return tables_on(
        backend,
        profiles=state.profiles,
        events=business_events(
            backend, lake_events(backend, lake_url, business_id=business_id), business_id, needs
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
    only: list[str] | None = None,
    now: datetime | None = None,
    on_changes: ChangeListener | None = None,
) -> list[RefreshResult]:
    """Recompute audiences on the engine and record who entered and who left."""
    now = now or utcnow()
    with store.write() as conn:
        ensure_predefined(conn, business_id=business_id)
    with store.read() as conn:
        everything = in_dependency_order(all_stored(conn, business_id))
        wanted = {find_stored(conn, business_id, a).id for a in only} if only else None
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
            now=now,
        )
    slugs = {a.slug: a.id for a in everything}
    tables = engine_tables(
        backend,
        lake_url=lake_url,
        business_id=business_id,
        state=state,
        needs=event_needs(a.definition for a in targets),
    )
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
            recorded = record_changes(
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
    sample: int = SAMPLE_SIZE,
    now: datetime | None = None,
) -> Preview:
    """How many people a definition selects now, with a few of them."""
    now = now or utcnow()
    with store.read() as conn:
        known, types = check_definition(conn, business_id=business_id, definition=definition)
        state = snapshot(
            conn,
            business_id=business_id,
            trait_types=types,
            with_consent=bool(referenced_purposes(definition)),
            now=now,
        )
    selected = evaluate_on_engine(
        definition,
        backend=backend,
        tables=engine_tables(
            backend,
            lake_url=lake_url,
            business_id=business_id,
            state=state,
            needs=event_needs([definition]),
        ),
        state=state,
        catalog=known,
        now=now,
    )
    chosen = sorted(selected)[:sample]
    return Preview(
        size=len(selected),
        sample=[Member(profile_id=p, traits=state.rows[p].traits) for p in chosen],
    )
