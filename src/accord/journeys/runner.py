"""The durable runner: moves people through journeys, exactly once per step.

Every transition happens in one transaction that also deletes the timer or wait that
triggered it, records the step and writes what comes next (a timer, a wait, a message
in the outbox). A crash anywhere leaves either the old state or the new one, so after
a restart each due step runs once. Messages leave through the outbox after commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, select, update

from accord.audiences.evaluate import path_value
from accord.core.clock import utcnow
from accord.journeys import policy
from accord.journeys.analytics import settle_splits
from accord.journeys.graph import (
    AudienceEntry,
    DateTraitEntry,
    EventEntry,
    WaitForAudienceNode,
    WaitForEventNode,
    WaitNode,
    audience_event,
    parse_duration,
)
from accord.journeys.models import (
    journey_runs,
    journey_timers,
    journey_waits,
    journeys,
)
from accord.journeys.state import IN_CHUNK, Run, Writes, run_from
from accord.journeys.steps import Steps
from accord.store.db import Store


class Runner(Steps):
    """Executes journeys against one store; hold one per worker process."""

    def fire_due(self, store: Store, *, now: datetime | None = None, limit: int = 500) -> int:
        """Run the steps of every timer due by `now`, in one transaction; their count."""
        now = now or utcnow()
        with store.write() as conn:
            due = (
                select(journey_timers)
                .where(journey_timers.c.due_at <= now)
                .order_by(journey_timers.c.due_at, journey_timers.c.id)
                .limit(limit)
            )
            if store.dialect == "postgresql":
                due = due.with_for_update(skip_locked=True)
            timers = conn.execute(due).all()
            if not timers:
                return 0
            conn.execute(
                delete(journey_timers).where(journey_timers.c.id.in_([t.id for t in timers]))
            )
            runs = {
                row.id: run_from(row)
                for row in conn.execute(
                    select(journey_runs).where(journey_runs.c.id.in_({t.run_id for t in timers}))
                )
            }
            self._writes = Writes()
            try:
                for timer in timers:
                    run = runs.get(timer.run_id)
                    if run is None or run.status != "active" or run.node != timer.node:
                        continue
                    self._wake(conn, run, timer.node, timer.kind, now)
                self._writes.flush(conn)
            finally:
                self._writes = None
            return len(timers)

    def _wake(self, conn: Connection, run: Run, node_id: str, kind: str, now: datetime) -> None:
        definition = self.definitions.get(conn, run.journey_id, run.version)
        node = definition.nodes[node_id]
        if kind == "retry":
            self._advance(conn, run, definition, node_id, now)
        elif isinstance(node, WaitNode):
            self._step(conn, run, node_id, "waited", now)
            self._advance(conn, run, definition, node.next, now)
        elif isinstance(node, WaitForEventNode | WaitForAudienceNode):
            self._drop_waits(conn, run.id)
            assert node.on_timeout is not None
            self._step(conn, run, node_id, "timed_out", now)
            self._advance(conn, run, definition, node.on_timeout, now)

    def handle_events(
        self,
        conn: Connection,
        *,
        business_id: str,
        events: Iterable[tuple[str, dict[str, Any]]],
        now: datetime | None = None,
    ) -> int:
        """React to processed events `(profile_id, event)`: goals, waits, then entries.

        Returns the number of transitions made. Runs in the caller's transaction, so
        the events and the moves they cause commit together.
        """
        now = now or utcnow()
        moves = 0
        tracked = [
            (profile_id, event)
            for profile_id, event in events
            if event.get("type") == "track" and isinstance(event.get("event"), str)
        ]
        if not tracked:
            return 0
        active = self._event_journeys(conn, business_id)
        # Most people are in no journey: one look per chunk finds who has a pass or a
        # wait, so only they cost queries per event. A person something happens to in
        # this chunk may gain passes or waits, so from then on they are read each time.
        people = sorted({profile_id for profile_id, _ in tracked})
        in_runs = self._with_runs(conn, business_id, people)
        waiting = self._waiting(conn, business_id, people)
        touched: set[str] = set()
        for profile_id, event in tracked:
            name = str(event["event"])
            if profile_id in in_runs or profile_id in touched:
                moved = self._goals(conn, business_id, profile_id, name, now)
                if moved:
                    touched.add(profile_id)
                    moves += moved
            if (profile_id, name) in waiting or profile_id in touched:
                moved = self._resume_waits(conn, business_id, profile_id, name, event, now)
                if moved:
                    touched.add(profile_id)
                    moves += moved
            for journey_id, entry in active.get(name, []):
                if not policy.passes(entry.where, event, now):
                    continue
                key = path_value(event, entry.dedupe) if entry.dedupe else event.get("messageId")
                entry_key = f"{entry.event}:{key}"
                # An entry may start a pass with waits: read this person each time after.
                touched.add(profile_id)
                if self.enter(
                    conn,
                    business_id=business_id,
                    journey_id=journey_id,
                    profile_id=profile_id,
                    entry_key=entry_key,
                    now=now,
                    context={"event": {"name": name, "properties": event.get("properties", {})}},
                ):
                    moves += 1
        return moves

    def _with_runs(self, conn: Connection, business_id: str, people: list[str]) -> set[str]:
        """Which of these people have a pass a goal could still credit."""
        found: set[str] = set()
        for start in range(0, len(people), IN_CHUNK):
            found.update(
                conn.execute(
                    select(journey_runs.c.profile_id)
                    .where(
                        journey_runs.c.business_id == business_id,
                        journey_runs.c.profile_id.in_(people[start : start + IN_CHUNK]),
                        journey_runs.c.status.in_(("active", "exited")),
                    )
                    .distinct()
                ).scalars()
            )
        return found

    def _waiting(
        self, conn: Connection, business_id: str, people: list[str]
    ) -> set[tuple[str, str]]:
        """(person, event) pairs some pass of these people is waiting for."""
        found: set[tuple[str, str]] = set()
        for start in range(0, len(people), IN_CHUNK):
            rows = conn.execute(
                select(journey_waits.c.profile_id, journey_waits.c.event)
                .where(
                    journey_waits.c.business_id == business_id,
                    journey_waits.c.profile_id.in_(people[start : start + IN_CHUNK]),
                )
                .distinct()
            )
            found.update((row.profile_id, row.event) for row in rows)
        return found

    def handle_audience_changes(
        self,
        conn: Connection,
        *,
        business_id: str,
        changes: Iterable[tuple[str, str, bool]],
        now: datetime | None = None,
    ) -> int:
        """React to `(profile_id, audience, entered)` changes: resume people waiting for
        them, and enter people into journeys whose entry is that audience."""
        now = now or utcnow()
        moves = 0
        entries: dict[str, list[str]] = {}
        for row in conn.execute(
            select(journeys.c.id, journeys.c.current_version).where(
                journeys.c.business_id == business_id, journeys.c.status == "active"
            )
        ).all():
            entry = self.definitions.get(conn, row.id, row.current_version).entry
            if isinstance(entry, AudienceEntry):
                entries.setdefault(entry.audience, []).append(row.id)
        changes = list(changes)
        waiting = self._waiting(conn, business_id, sorted({c[0] for c in changes}))
        touched: set[str] = set()
        for profile_id, audience, entered in changes:
            change = "enter" if entered else "exit"
            name = audience_event(audience, change)
            if (profile_id, name) in waiting or profile_id in touched:
                moved = self._resume_waits(conn, business_id, profile_id, name, {}, now)
                if moved:
                    touched.add(profile_id)
                    moves += moved
            if not entered:
                continue
            for journey_id in entries.get(audience, []):
                # An entry may start a pass with waits: read this person each time after.
                touched.add(profile_id)
                if self.enter(
                    conn,
                    business_id=business_id,
                    journey_id=journey_id,
                    profile_id=profile_id,
                    entry_key=f"{name}:{profile_id}:{now.isoformat()}",
                    now=now,
                    context={"audience": audience},
                ):
                    moves += 1
        return moves

    def settle(self, conn: Connection, *, business_id: str, now: datetime | None = None) -> int:
        """Decide the A/B splits of the business's active journeys that can be decided now;
        returns how many winners were chosen."""
        now = now or utcnow()
        decided = 0
        for row in conn.execute(
            select(journeys.c.id, journeys.c.current_version).where(
                journeys.c.business_id == business_id, journeys.c.status == "active"
            )
        ).all():
            results = settle_splits(
                conn,
                business_id=business_id,
                journey_id=row.id,
                version=row.current_version,
                definition=self.definitions.get(conn, row.id, row.current_version),
                now=now,
            )
            decided += sum(1 for r in results if r.winner is not None)
        return decided

    def enter_by_date(
        self, conn: Connection, *, business_id: str, now: datetime | None = None
    ) -> int:
        """Enter the people whose date trait (birthday, renewal) falls today, once the
        journey's local time has come; once per person and year."""
        now = now or utcnow()
        entered = 0
        for row in conn.execute(
            select(journeys.c.id, journeys.c.current_version).where(
                journeys.c.business_id == business_id, journeys.c.status == "active"
            )
        ).all():
            definition = self.definitions.get(conn, row.id, row.current_version)
            entry = definition.entry
            if not isinstance(entry, DateTraitEntry):
                continue
            for profile_id, traits in self.env.people.with_trait(
                conn, business_id=business_id, trait=entry.trait
            ):
                zone = policy.zone_of(
                    traits, definition.timezone_trait, definition.default_timezone
                )
                when = policy.anniversary(
                    path_value(traits, entry.trait), zone, now, entry.offset_days, entry.at
                )
                if when is None or not (when <= now < when + timedelta(days=1)):
                    continue
                if self.enter(
                    conn,
                    business_id=business_id,
                    journey_id=row.id,
                    profile_id=profile_id,
                    entry_key=f"date:{entry.trait}:{profile_id}:{when.date().isoformat()}",
                    now=now,
                    context={"date_trait": entry.trait},
                ):
                    entered += 1
        return entered

    def _event_journeys(
        self, conn: Connection, business_id: str
    ) -> dict[str, list[tuple[str, EventEntry]]]:
        by_event: dict[str, list[tuple[str, EventEntry]]] = {}
        rows = conn.execute(
            select(journeys.c.id, journeys.c.current_version).where(
                journeys.c.business_id == business_id, journeys.c.status == "active"
            )
        ).all()
        for row in rows:
            definition = self.definitions.get(conn, row.id, row.current_version)
            if isinstance(definition.entry, EventEntry):
                by_event.setdefault(definition.entry.event, []).append((row.id, definition.entry))
        return by_event

    def _goals(
        self, conn: Connection, business_id: str, profile_id: str, name: str, now: datetime
    ) -> int:
        """Credit the goal to every pass still inside its window: an active pass ends as
        converted; one that already left (after its last message, say) is credited too,
        which is what makes a journey's conversions and its A/B results meaningful."""
        moves = 0
        rows = conn.execute(
            select(journey_runs).where(
                journey_runs.c.business_id == business_id,
                journey_runs.c.profile_id == profile_id,
                journey_runs.c.status.in_(("active", "exited")),
            )
        ).all()
        for row in rows:
            run = run_from(row)
            definition = self.definitions.get(conn, run.journey_id, run.version)
            goal = definition.goal
            if goal is None or goal.event != name:
                continue
            if now > run.entered_at + parse_duration(goal.within):
                continue
            self._step(conn, run, run.node or "goal", "converted", now, {"event": name})
            if run.status == "active":
                self.finish(conn, run, "converted", f"goal {name}", now)
            else:
                conn.execute(
                    update(journey_runs)
                    .where(journey_runs.c.id == run.id)
                    .values(status="converted", updated_at=now)
                )
            moves += 1
        return moves

    def _resume_waits(
        self,
        conn: Connection,
        business_id: str,
        profile_id: str,
        name: str,
        event: dict[str, Any],
        now: datetime,
    ) -> int:
        moves = 0
        waits = conn.execute(
            select(journey_waits).where(
                journey_waits.c.business_id == business_id,
                journey_waits.c.profile_id == profile_id,
                journey_waits.c.event == name,
            )
        ).all()
        for wait in waits:
            row = conn.execute(select(journey_runs).where(journey_runs.c.id == wait.run_id)).first()
            if row is None or row.status != "active" or row.node != wait.node:
                continue
            run = run_from(row)
            definition = self.definitions.get(conn, run.journey_id, run.version)
            node = definition.nodes[wait.node]
            if isinstance(node, WaitForEventNode):
                if not policy.passes(node.where, event, now):
                    continue
                follow = node.on_event
            else:
                assert isinstance(node, WaitForAudienceNode)
                follow = node.on_change
            conn.execute(delete(journey_waits).where(journey_waits.c.run_id == run.id))
            conn.execute(
                delete(journey_timers).where(
                    and_(journey_timers.c.run_id == run.id, journey_timers.c.node == wait.node)
                )
            )
            self._step(conn, run, wait.node, "event_received", now, {"event": name})
            self._advance(conn, run, definition, follow, now)
            moves += 1
        return moves
