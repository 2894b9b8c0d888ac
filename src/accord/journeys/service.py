"""Journeys: create, version, activate, trigger by API, and read a person's path."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, delete, insert, select, update

from accord.core.errors import FieldProblem, InvalidInput, NotFound
from accord.core.ids import new_id
from accord.core.outbound import OutboundPolicy
from accord.journeys.environment import Environment
from accord.journeys.graph import ApiEntry, JourneyDefinition, load_definition, parse_definition
from accord.journeys.models import (
    JourneyView,
    RunView,
    StepView,
    journey_outbox,
    journey_runs,
    journey_steps,
    journey_timers,
    journey_versions,
    journey_waits,
    journeys,
)
from accord.journeys.runner import Runner

KEY = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
STATUSES = ("draft", "active", "paused", "archived")


def _row(conn: Connection, *, business_id: str, key: str) -> Any:
    row = conn.execute(
        select(journeys).where(journeys.c.business_id == business_id, journeys.c.key == key)
    ).first()
    if row is None:
        raise NotFound(f"journey {key}")
    return row


def _view(conn: Connection, row: Any) -> JourneyView:
    text = conn.execute(
        select(journey_versions.c.definition).where(
            journey_versions.c.journey_id == row.id,
            journey_versions.c.version == row.current_version,
        )
    ).scalar_one()
    return JourneyView(
        id=row.id,
        key=row.key,
        name=row.name,
        status=row.status,
        current_version=row.current_version,
        # Versions saved in an older form are shown (and run) in today's.
        definition=load_definition(orjson.loads(text)).model_dump(mode="json", by_alias=True),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def create_journey(
    conn: Connection,
    *,
    business_id: str,
    key: str,
    name: str,
    definition: dict[str, Any],
    now: datetime,
    outbound: OutboundPolicy,
) -> JourneyView:
    """A new journey in draft, with its first version."""
    if not KEY.match(key):
        raise InvalidInput(
            [FieldProblem("key", "lower-case letters, digits, _ and -, starting with a letter")]
        )
    if not name.strip() or len(name) > 200:
        raise InvalidInput([FieldProblem("name", "a name of 1 to 200 characters")])
    parsed = parse_definition(definition)
    refuse_destinations(parsed, outbound)
    exists = conn.execute(
        select(journeys.c.id).where(journeys.c.business_id == business_id, journeys.c.key == key)
    ).first()
    if exists:
        raise InvalidInput([FieldProblem("key", f"a journey {key!r} exists already")])
    journey_id = new_id("jny")
    conn.execute(
        insert(journeys).values(
            id=journey_id,
            business_id=business_id,
            key=key,
            name=name.strip(),
            status="draft",
            current_version=1,
            created_at=now,
            updated_at=now,
        )
    )
    _write_version(conn, business_id, journey_id, 1, parsed, now)
    return _view(conn, _row(conn, business_id=business_id, key=key))


def destination_problems(
    definition: JourneyDefinition, outbound: OutboundPolicy
) -> list[FieldProblem]:
    """Webhook destinations the outbound policy refuses (loopback, private, metadata...)."""
    return outbound.problems(
        {f"destinations.{name}": url for name, url in definition.destinations.items()}
    )


def refuse_destinations(definition: JourneyDefinition, outbound: OutboundPolicy) -> None:
    problems = destination_problems(definition, outbound)
    if problems:
        raise InvalidInput(problems)


def _write_version(
    conn: Connection,
    business_id: str,
    journey_id: str,
    version: int,
    definition: JourneyDefinition,
    now: datetime,
) -> None:
    conn.execute(
        insert(journey_versions).values(
            journey_id=journey_id,
            version=version,
            business_id=business_id,
            definition=definition.model_dump_json(by_alias=True),
            created_at=now,
        )
    )


def publish_version(
    conn: Connection,
    *,
    business_id: str,
    key: str,
    definition: dict[str, Any],
    now: datetime,
    outbound: OutboundPolicy,
) -> JourneyView:
    """A new version for new entries; people inside finish on the version they entered."""
    row = _row(conn, business_id=business_id, key=key)
    parsed = parse_definition(definition)
    refuse_destinations(parsed, outbound)
    version = row.current_version + 1
    _write_version(conn, business_id, row.id, version, parsed, now)
    conn.execute(
        update(journeys)
        .where(journeys.c.id == row.id)
        .values(current_version=version, updated_at=now)
    )
    return _view(conn, _row(conn, business_id=business_id, key=key))


def set_status(
    conn: Connection, *, business_id: str, key: str, status: str, now: datetime
) -> JourneyView:
    if status not in STATUSES:
        raise InvalidInput([FieldProblem("status", f"one of {', '.join(STATUSES)}")])
    row = _row(conn, business_id=business_id, key=key)
    conn.execute(
        update(journeys).where(journeys.c.id == row.id).values(status=status, updated_at=now)
    )
    return _view(conn, _row(conn, business_id=business_id, key=key))


def get_journey(conn: Connection, *, business_id: str, key: str) -> JourneyView:
    return _view(conn, _row(conn, business_id=business_id, key=key))


def list_journeys(conn: Connection, *, business_id: str) -> list[JourneyView]:
    rows = conn.execute(
        select(journeys).where(journeys.c.business_id == business_id).order_by(journeys.c.key)
    ).all()
    return [_view(conn, row) for row in rows]


def definition_of(conn: Connection, *, business_id: str, key: str) -> tuple[str, JourneyDefinition]:
    view = get_journey(conn, business_id=business_id, key=key)
    return view.id, load_definition(view.definition)


def trigger(
    conn: Connection,
    runner: Runner,
    *,
    business_id: str,
    key: str,
    profile_id: str,
    entry_key: str,
    context: dict[str, Any],
    now: datetime,
) -> str | None:
    """Enter a person into a journey whose entry is `api`; the run id, or None if the
    entry rules keep them out (already inside, re-entry, maximum reached)."""
    journey_id, definition = definition_of(conn, business_id=business_id, key=key)
    if not isinstance(definition.entry, ApiEntry):
        raise InvalidInput([FieldProblem("key", f"journey {key!r} is not entered through the API")])
    return runner.enter(
        conn,
        business_id=business_id,
        journey_id=journey_id,
        profile_id=profile_id,
        entry_key=f"api:{entry_key}",
        now=now,
        context=context,
    )


def migrate_runs(
    conn: Connection,
    *,
    business_id: str,
    key: str,
    from_version: int,
    node_map: dict[str, str],
    now: datetime,
) -> int:
    """Move the people inside an older version onto the current one.

    Each person's current node must exist in the new version, directly or through
    `node_map`; otherwise nothing moves and the error names the nodes. Timers and
    waits keep their due times and are re-pointed at the mapped nodes.
    """
    from accord.journeys.models import journey_timers, journey_waits

    journey_id, definition = definition_of(conn, business_id=business_id, key=key)
    row = _row(conn, business_id=business_id, key=key)
    runs = journey_runs.c
    inside = conn.execute(
        select(runs.id, runs.node).where(
            runs.journey_id == journey_id, runs.version == from_version, runs.status == "active"
        )
    ).all()
    missing = sorted(
        {
            node_map.get(r.node, r.node)
            for r in inside
            if node_map.get(r.node, r.node) not in definition.nodes
        }
    )
    if missing:
        raise InvalidInput(
            [FieldProblem(f"node_map.{n}", "has no node in the current version") for n in missing]
        )
    for run in inside:
        target = node_map.get(run.node, run.node)
        conn.execute(
            update(journey_runs)
            .where(journey_runs.c.id == run.id)
            .values(version=row.current_version, node=target, updated_at=now)
        )
        conn.execute(
            update(journey_timers).where(journey_timers.c.run_id == run.id).values(node=target)
        )
        conn.execute(
            update(journey_waits).where(journey_waits.c.run_id == run.id).values(node=target)
        )
    return len(inside)


def person_path(conn: Connection, *, business_id: str, profile_id: str) -> list[RunView]:
    """Every journey pass of a person with each step they took, oldest first."""
    runs = conn.execute(
        select(journey_runs)
        .where(journey_runs.c.business_id == business_id, journey_runs.c.profile_id == profile_id)
        .order_by(journey_runs.c.entered_at)
    ).all()
    views = []
    for run in runs:
        steps = conn.execute(
            select(journey_steps)
            .where(journey_steps.c.run_id == run.id)
            .order_by(journey_steps.c.id)
        ).all()
        views.append(
            RunView(
                id=run.id,
                journey_id=run.journey_id,
                version=run.version,
                profile_id=run.profile_id,
                node=run.node,
                status=run.status,
                exit_reason=run.exit_reason,
                entered_at=run.entered_at,
                finished_at=run.finished_at,
                steps=[
                    StepView(
                        run_id=s.run_id,
                        journey_id=s.journey_id,
                        node=s.node,
                        outcome=s.outcome,
                        detail=orjson.loads(s.detail),
                        at=s.at,
                    )
                    for s in steps
                ],
            )
        )
    return views


def reachable_channels(
    conn: Connection, *, business_id: str, profile_id: str, env: Environment
) -> list[str]:
    """The channels a journey could message the person on now: an address or token for
    the channel among their traits and identifiers, and the check a send makes (consent
    for the channel's purpose, not suppressed, for email not unsubscribed or bounced).

    `env` is the runner's view of the other contexts (`process.journeys.environment()`).
    """
    from accord.journeys.outbox import ADDRESS_TRAITS, address

    traits = env.people.traits(conn, business_id=business_id, profile_id=profile_id)
    return [
        channel
        # The channels that reach a person (webhooks go to the business's own systems).
        for channel in ADDRESS_TRAITS
        if address(channel, traits) is not None
        and env.reachability.check(
            conn, business_id=business_id, profile_id=profile_id, channel=channel
        ).allowed
    ]


def erase_person(conn: Connection, *, business_id: str, profile_id: str) -> dict[str, int]:
    """Delete a person's journey runs with their steps, timers, waits and outbox messages
    (a message not yet sent never leaves). Journey analytics no longer count them."""
    run_ids = list(
        conn.execute(
            select(journey_runs.c.id).where(
                journey_runs.c.business_id == business_id, journey_runs.c.profile_id == profile_id
            )
        ).scalars()
    )
    counts = {"journey_runs": len(run_ids)}
    for name, table in (
        ("journey_steps", journey_steps),
        ("journey_waits", journey_waits),
        ("journey_outbox", journey_outbox),
    ):
        counts[name] = max(
            conn.execute(
                delete(table).where(
                    table.c.business_id == business_id, table.c.profile_id == profile_id
                )
            ).rowcount,
            0,
        )
    timers = 0
    for start in range(0, len(run_ids), 500):
        chunk = run_ids[start : start + 500]
        timers += max(
            conn.execute(delete(journey_timers).where(journey_timers.c.run_id.in_(chunk))).rowcount,
            0,
        )
        conn.execute(delete(journey_runs).where(journey_runs.c.id.in_(chunk)))
    counts["journey_timers"] = timers
    return counts
