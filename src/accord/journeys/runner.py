"""The durable runner: moves people through journeys, exactly once per step.

Every transition happens in one transaction that also deletes the timer or wait that
triggered it, records the step and writes what comes next (a timer, a wait, a message
in the outbox). A crash anywhere leaves either the old state or the new one, so after
a restart each due step runs once. Messages leave through the outbox after commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, and_, bindparam, delete, func, insert, select, update

from accord.audiences.evaluate import path_value
from accord.core.clock import utcnow
from accord.core.errors import NotFound
from accord.core.ids import new_id
from accord.journeys import policy, smart
from accord.journeys.analytics import settle_splits, settled_winner
from accord.journeys.engagement import Engagement, JourneyEngagement
from accord.journeys.graph import (
    AudienceEntry,
    BranchNode,
    DateTraitEntry,
    EventEntry,
    ExitNode,
    JourneyDefinition,
    ListNode,
    SendNode,
    SplitNode,
    UpdateTraitNode,
    WaitForAudienceNode,
    WaitForEventNode,
    WaitNode,
    WebhookNode,
    audience_event,
    load_definition,
    parse_duration,
)
from accord.journeys.models import (
    journey_outbox,
    journey_runs,
    journey_steps,
    journey_timers,
    journey_versions,
    journey_waits,
    journeys,
)
from accord.store.db import Store

log = logging.getLogger(__name__)

# A guard against a graph that would spin: validation rejects loops without a wait,
# so a real journey never takes this many instant steps in a row.
MAX_INSTANT_STEPS = 200
# Profile ids per IN (...) list, well under every database's bound-parameter limit.
_IN_CHUNK = 500


@dataclass(frozen=True)
class Reach:
    """Whether a person can be messaged on a channel now, and if not, why."""

    allowed: bool
    reason: str = ""


class People(Protocol):
    """What the runner reads and writes of a person (the profiles context)."""

    def traits(self, conn: Connection, *, business_id: str, profile_id: str) -> dict[str, Any]: ...

    def set_trait(
        self, conn: Connection, *, business_id: str, profile_id: str, trait: str, value: Any
    ) -> None: ...

    def with_trait(
        self, conn: Connection, *, business_id: str, trait: str
    ) -> Iterable[tuple[str, dict[str, Any]]]:
        """Every person of the business who has the trait, with their traits."""
        ...

    def record(
        self,
        conn: Connection,
        *,
        business_id: str,
        profile_id: str,
        event: str,
        properties: dict[str, Any],
    ) -> None:
        """Add an event to the person's history (a message delivered or failed)."""
        ...


class Reachability(Protocol):
    """Consent for the channel's purpose, suppression, unsubscribes and an address."""

    def check(
        self, conn: Connection, *, business_id: str, profile_id: str, channel: str
    ) -> Reach: ...


class Lists(Protocol):
    def change(
        self, conn: Connection, *, business_id: str, profile_id: str, name: str, add: bool
    ) -> None: ...


@dataclass
class Environment:
    """The other contexts a journey touches, passed in rather than reached for."""

    people: People
    reachability: Reachability
    lists: Lists
    engagement: Engagement = field(default_factory=JourneyEngagement)


@dataclass
class _Run:
    id: str
    business_id: str
    journey_id: str
    version: int
    profile_id: str
    node: str | None
    status: str
    context: dict[str, Any]
    entered_at: datetime


@dataclass
class _Definitions:
    """Journey versions are immutable, so one cache per runner serves every step."""

    cache: dict[tuple[str, int], JourneyDefinition] = field(default_factory=dict)

    def get(self, conn: Connection, journey_id: str, version: int) -> JourneyDefinition:
        key = (journey_id, version)
        found = self.cache.get(key)
        if found is None:
            text = conn.execute(
                select(journey_versions.c.definition).where(
                    journey_versions.c.journey_id == journey_id,
                    journey_versions.c.version == version,
                )
            ).scalar_one()
            found = self.cache[key] = load_definition(orjson.loads(text))
        return found


def _run_from(row: Any) -> _Run:
    return _Run(
        id=row.id,
        business_id=row.business_id,
        journey_id=row.journey_id,
        version=row.version,
        profile_id=row.profile_id,
        node=row.node,
        status=row.status,
        context=orjson.loads(row.context),
        entered_at=row.entered_at,
    )


@dataclass
class _Writes:
    """Rows a batch of timer firings writes, applied together when the batch ends:
    one statement per table and shape instead of one round trip per row.

    A run's waits and timers are removed before the new ones are inserted, and a
    removal drops what the batch had buffered for that run, so the end state is the
    one the steps would have left one by one."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    timers: list[dict[str, Any]] = field(default_factory=list)
    waits: dict[str, dict[str, Any]] = field(default_factory=dict)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    drop_timers: set[str] = field(default_factory=set)
    drop_waits: set[str] = field(default_factory=set)

    def forget_timers(self, run_id: str) -> None:
        self.timers = [t for t in self.timers if t["run_id"] != run_id]
        self.drop_timers.add(run_id)

    def forget_waits(self, run_id: str) -> None:
        self.waits.pop(run_id, None)
        self.drop_waits.add(run_id)

    def flush_outbox(self, conn: Connection) -> None:
        if self.outbox:
            conn.execute(insert(journey_outbox), self.outbox)
            self.outbox = []

    def flush(self, conn: Connection) -> None:
        for table, run_ids in (
            (journey_timers, sorted(self.drop_timers)),
            (journey_waits, sorted(self.drop_waits)),
        ):
            for start in range(0, len(run_ids), _IN_CHUNK):
                conn.execute(
                    delete(table).where(table.c.run_id.in_(run_ids[start : start + _IN_CHUNK]))
                )
        if self.steps:
            conn.execute(insert(journey_steps), self.steps)
        if self.timers:
            conn.execute(insert(journey_timers), self.timers)
        if self.waits:
            conn.execute(insert(journey_waits), list(self.waits.values()))
        self.flush_outbox(conn)
        # Group run updates by the columns they set, one executemany per shape.
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for run_id, values in self.runs.items():
            shapes.setdefault(tuple(sorted(values)), []).append({"run_key": run_id, **values})
        for columns, rows in shapes.items():
            conn.execute(
                update(journey_runs)
                .where(journey_runs.c.id == bindparam("run_key"))
                .values({c: bindparam(c) for c in columns}),
                rows,
            )
        self.steps, self.timers, self.waits, self.runs = [], [], {}, {}
        self.drop_timers, self.drop_waits = set(), set()


class Runner:
    """Executes journeys against one store; hold one per worker process."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.definitions = _Definitions()
        self._writes: _Writes | None = None

    def _insert(self, conn: Connection, table: Any, values: dict[str, Any]) -> None:
        writes = self._writes
        if writes is None:
            conn.execute(insert(table), values)
        elif table is journey_steps:
            writes.steps.append(values)
        elif table is journey_timers:
            writes.timers.append(values)
        elif table is journey_waits:
            writes.waits[values["run_id"]] = values
        else:
            writes.outbox.append(values)

    def _update_run(self, conn: Connection, run_id: str, values: dict[str, Any]) -> None:
        if self._writes is None:
            conn.execute(update(journey_runs).where(journey_runs.c.id == run_id).values(values))
        else:
            self._writes.runs.setdefault(run_id, {}).update(values)

    # ----- entering -------------------------------------------------------------

    def enter(
        self,
        conn: Connection,
        *,
        business_id: str,
        journey_id: str,
        profile_id: str,
        entry_key: str,
        now: datetime,
        context: dict[str, Any] | None = None,
    ) -> str | None:
        """Put a person into a journey; None when the rules keep them out."""
        row = conn.execute(
            select(journeys).where(
                journeys.c.id == journey_id, journeys.c.business_id == business_id
            )
        ).first()
        if row is None:
            raise NotFound(f"journey {journey_id}")
        if row.status != "active":
            return None
        definition = self.definitions.get(conn, journey_id, row.current_version)
        if not self._may_enter(conn, definition, journey_id, profile_id, now):
            return None
        if conn.execute(
            select(journey_runs.c.id).where(
                journey_runs.c.journey_id == journey_id, journey_runs.c.entry_key == entry_key
            )
        ).first():
            return None
        run = _Run(
            id=new_id("run"),
            business_id=business_id,
            journey_id=journey_id,
            version=row.current_version,
            profile_id=profile_id,
            node=definition.start,
            status="active",
            context=dict(context or {}),
            entered_at=now,
        )
        run.context["holdout"] = policy.bucket(run.id, "smart") < definition.smart_holdout
        conn.execute(
            insert(journey_runs).values(
                id=run.id,
                business_id=business_id,
                journey_id=journey_id,
                version=run.version,
                profile_id=profile_id,
                entry_key=entry_key,
                node=run.node,
                status="active",
                context=orjson.dumps(run.context).decode(),
                holdout=bool(run.context["holdout"]),
                entered_at=now,
                updated_at=now,
            )
        )
        self._step(conn, run, "entry", "entered", now, {"entry_key": entry_key})
        self._advance(conn, run, definition, definition.start, now)
        return run.id

    def _may_enter(
        self,
        conn: Connection,
        definition: JourneyDefinition,
        journey_id: str,
        profile_id: str,
        now: datetime,
    ) -> bool:
        runs = journey_runs.c
        if definition.max_people is not None:
            inside = conn.execute(
                select(func.count()).where(runs.journey_id == journey_id, runs.status == "active")
            ).scalar_one()
            if inside >= definition.max_people:
                return False
        previous = conn.execute(
            select(runs.status, runs.finished_at, runs.entered_at)
            .where(runs.journey_id == journey_id, runs.profile_id == profile_id)
            .order_by(runs.entered_at.desc())
            .limit(1)
        ).first()
        if previous is None:
            return True
        if previous.status == "active":
            return False
        rule = definition.reentry
        if rule.mode == "never":
            return False
        if rule.mode == "after_days":
            assert rule.days is not None
            return bool(previous.finished_at <= now - timedelta(days=rule.days))
        return True

    # ----- moving ---------------------------------------------------------------

    def _step(
        self,
        conn: Connection,
        run: _Run,
        node: str,
        outcome: str,
        now: datetime,
        detail: dict[str, Any] | None = None,
        path: str | None = None,
    ) -> None:
        self._insert(
            conn,
            journey_steps,
            {
                "path": path,
                "business_id": run.business_id,
                "run_id": run.id,
                "journey_id": run.journey_id,
                "profile_id": run.profile_id,
                "node": node,
                "outcome": outcome,
                "detail": orjson.dumps(detail or {}).decode(),
                "at": now,
            },
        )

    def _park(self, conn: Connection, run: _Run, node: str, now: datetime) -> None:
        run.node = node
        self._update_run(conn, run.id, {"node": node, "updated_at": now})

    def _timer(self, conn: Connection, run: _Run, node: str, kind: str, due: datetime) -> None:
        self._insert(
            conn,
            journey_timers,
            {
                "business_id": run.business_id,
                "run_id": run.id,
                "node": node,
                "kind": kind,
                "due_at": due,
            },
        )

    def finish(self, conn: Connection, run: _Run, status: str, reason: str, now: datetime) -> None:
        run.status = status
        self._update_run(
            conn,
            run.id,
            {"status": status, "exit_reason": reason, "finished_at": now, "updated_at": now},
        )
        self._drop_timers(conn, run.id)
        self._drop_waits(conn, run.id)

    def _drop_timers(self, conn: Connection, run_id: str) -> None:
        if self._writes is None:
            conn.execute(delete(journey_timers).where(journey_timers.c.run_id == run_id))
        else:
            self._writes.forget_timers(run_id)

    def _drop_waits(self, conn: Connection, run_id: str) -> None:
        if self._writes is None:
            conn.execute(delete(journey_waits).where(journey_waits.c.run_id == run_id))
        else:
            self._writes.forget_waits(run_id)

    def _advance(
        self,
        conn: Connection,
        run: _Run,
        definition: JourneyDefinition,
        node_id: str,
        now: datetime,
    ) -> None:
        """Execute nodes from `node_id` until the person waits or leaves."""
        traits: dict[str, Any] | None = None

        def person() -> dict[str, Any]:
            nonlocal traits
            if traits is None:
                traits = self.env.people.traits(
                    conn, business_id=run.business_id, profile_id=run.profile_id
                )
            return traits

        zone = None
        for _ in range(MAX_INSTANT_STEPS):
            node = definition.nodes[node_id]
            if isinstance(node, ExitNode):
                self._step(conn, run, node_id, "exited", now)
                self.finish(conn, run, "exited", f"reached {node_id}", now)
                return
            if isinstance(node, WaitNode):
                zone = zone or policy.zone_of(
                    person(), definition.timezone_trait, definition.default_timezone
                )
                due = self._wait_until(conn, run, node, person(), zone, now)
                if due is None or due <= now:
                    self._step(conn, run, node_id, "waited", now, {"due": None})
                    node_id = node.next
                    continue
                self._park(conn, run, node_id, now)
                self._timer(conn, run, node_id, "wake", due)
                self._step(conn, run, node_id, "waiting", now, {"due": due.isoformat()})
                return
            if isinstance(node, WaitForEventNode | WaitForAudienceNode):
                assert node.timeout is not None
                due = now + parse_duration(node.timeout)
                awaited = (
                    node.event
                    if isinstance(node, WaitForEventNode)
                    else audience_event(node.audience, node.change)
                )
                self._park(conn, run, node_id, now)
                self._insert(
                    conn,
                    journey_waits,
                    {
                        "run_id": run.id,
                        "business_id": run.business_id,
                        "profile_id": run.profile_id,
                        "event": awaited,
                        "node": node_id,
                    },
                )
                self._timer(conn, run, node_id, "timeout", due)
                self._step(
                    conn, run, node_id, "waiting", now, {"event": awaited, "due": due.isoformat()}
                )
                return
            if isinstance(node, BranchNode):
                taken = node.then if policy.holds(node.condition, person(), now) else node.otherwise
                self._step(conn, run, node_id, "branched", now, {"to": taken})
                node_id = taken
                continue
            if isinstance(node, SplitNode):
                path = self._split(conn, run, node_id, node)
                run.context.setdefault("paths", {})[node_id] = path
                self._update_run(conn, run.id, {"context": orjson.dumps(run.context).decode()})
                chosen = next(p for p in node.paths if p.name == path)
                self._step(conn, run, node_id, "split", now, {"path": path}, path=path)
                node_id = chosen.next
                continue
            if isinstance(node, SendNode | WebhookNode):
                if isinstance(node, WebhookNode):
                    channel, message = "webhook", node.destination
                elif node.channel == "best":
                    picked = self._best_channel(conn, run, node)
                    if picked is None:
                        self._step(conn, run, node_id, "skipped", now, {"reason": "no channel"})
                        node_id = node.next
                        continue
                    channel, message = picked, node.options[picked]  # type: ignore[index]
                else:
                    channel, message = node.channel, node.message
                zone = zone or policy.zone_of(
                    person(), definition.timezone_trait, definition.default_timezone
                )
                decision = self._send_decision(conn, run, definition, channel, zone, now)
                if decision.action == "delay":
                    assert decision.until is not None
                    self._park(conn, run, node_id, now)
                    self._timer(conn, run, node_id, "retry", decision.until)
                    self._step(
                        conn,
                        run,
                        node_id,
                        "delayed",
                        now,
                        {"reason": decision.reason, "until": decision.until.isoformat()},
                    )
                    return
                if decision.action == "skip":
                    self._step(conn, run, node_id, "skipped", now, {"reason": decision.reason})
                else:
                    outbox_id = new_id("msg")
                    self._insert(
                        conn,
                        journey_outbox,
                        {
                            "id": outbox_id,
                            "business_id": run.business_id,
                            "run_id": run.id,
                            "profile_id": run.profile_id,
                            "channel": channel,
                            "message": message,
                            "node": node_id,
                            "status": "queued",
                            "attempts": 0,
                            "detail": "{}",
                            "created_at": now,
                            "claimed_at": None,
                            "sent_at": None,
                        },
                    )
                    self._step(
                        conn, run, node_id, "queued", now, {"channel": channel, "outbox": outbox_id}
                    )
                node_id = node.next
                continue
            if isinstance(node, UpdateTraitNode):
                self.env.people.set_trait(
                    conn,
                    business_id=run.business_id,
                    profile_id=run.profile_id,
                    trait=node.trait,
                    value=node.value,
                )
                if traits is not None:
                    traits[node.trait] = node.value
                self._step(conn, run, node_id, "trait_set", now, {"trait": node.trait})
                node_id = node.next
                continue
            if isinstance(node, ListNode):
                self.env.lists.change(
                    conn,
                    business_id=run.business_id,
                    profile_id=run.profile_id,
                    name=node.name,
                    add=node.action == "add",
                )
                self._step(conn, run, node_id, f"list_{node.action}", now, {"list": node.name})
                node_id = node.next
                continue
            raise AssertionError(f"unhandled node type {type(node).__name__}")
        self._step(conn, run, node_id, "failed", now, {"reason": "too many instant steps"})
        self.finish(conn, run, "failed", "too many instant steps", now)

    def _wait_until(
        self,
        conn: Connection,
        run: _Run,
        node: WaitNode,
        traits: dict[str, Any],
        zone: Any,
        now: datetime,
    ) -> datetime | None:
        if node.duration:
            return now + parse_duration(node.duration)
        if node.until_best_hour:
            if run.context.get("holdout"):
                return None
            engagement = self.env.engagement
            hour, _ = smart.best_hour(
                engagement.personal_hours(
                    conn, business_id=run.business_id, profile_id=run.profile_id, zone=zone
                ),
                engagement.population_hours(conn, business_id=run.business_id),
                fallback=node.fallback_hour,
            )
            return policy.next_local_time(now, f"{hour:02d}:00", zone)
        if node.until_time:
            return policy.next_local_time(now, node.until_time, zone)
        assert node.until_trait is not None
        when = policy.trait_instant(path_value(traits, node.until_trait), zone)
        if when is None:
            return None
        return when + (parse_duration(node.offset) if node.offset else timedelta(0))

    def _best_channel(self, conn: Connection, run: _Run, node: SendNode) -> str | None:
        """The person's next-best channel among the node's options (the first reachable
        option for the holdout)."""
        candidates = list(node.options)
        reachable = [
            channel
            for channel in candidates
            if self.env.reachability.check(
                conn, business_id=run.business_id, profile_id=run.profile_id, channel=channel
            ).allowed
        ]
        if run.context.get("holdout"):
            return reachable[0] if reachable else None
        engagement = self.env.engagement
        return smart.next_best_channel(
            candidates,
            reachable,
            engagement.personal_channels(
                conn, business_id=run.business_id, profile_id=run.profile_id
            ),
            engagement.population_channels(conn, business_id=run.business_id),
        )

    def _split(self, conn: Connection, run: _Run, node_id: str, node: SplitNode) -> str:
        if node.ab_test:
            winner = settled_winner(
                conn, journey_id=run.journey_id, version=run.version, node=node_id
            )
            if winner is not None:
                return winner
        return policy.choose_path(list(node.paths), run_id=run.id, node=node_id).name

    def _send_decision(
        self,
        conn: Connection,
        run: _Run,
        definition: JourneyDefinition,
        channel: str,
        zone: Any,
        now: datetime,
    ) -> policy.SendDecision:
        reach = self.env.reachability.check(
            conn, business_id=run.business_id, profile_id=run.profile_id, channel=channel
        )
        cap = definition.caps.get(channel)  # type: ignore[call-overload]
        sent = 0
        if cap is not None:
            if self._writes is not None:
                self._writes.flush_outbox(conn)
            out = journey_outbox.c
            sent = conn.execute(
                select(func.count()).where(
                    out.business_id == run.business_id,
                    out.profile_id == run.profile_id,
                    out.channel == channel,
                    out.status != "failed",
                    out.created_at > now - parse_duration(cap.per),
                )
            ).scalar_one()
        return policy.decide_send(
            reachable=reach.allowed,
            unreachable_reason=reach.reason,
            now=now,
            zone=zone,
            quiet=definition.quiet_hours,
            sent_in_window=sent,
            cap=cap.max if cap is not None else None,
        )

    # ----- triggers -------------------------------------------------------------

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
                row.id: _run_from(row)
                for row in conn.execute(
                    select(journey_runs).where(journey_runs.c.id.in_({t.run_id for t in timers}))
                )
            }
            self._writes = _Writes()
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

    def _wake(self, conn: Connection, run: _Run, node_id: str, kind: str, now: datetime) -> None:
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
        for start in range(0, len(people), _IN_CHUNK):
            found.update(
                conn.execute(
                    select(journey_runs.c.profile_id)
                    .where(
                        journey_runs.c.business_id == business_id,
                        journey_runs.c.profile_id.in_(people[start : start + _IN_CHUNK]),
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
        for start in range(0, len(people), _IN_CHUNK):
            rows = conn.execute(
                select(journey_waits.c.profile_id, journey_waits.c.event)
                .where(
                    journey_waits.c.business_id == business_id,
                    journey_waits.c.profile_id.in_(people[start : start + _IN_CHUNK]),
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
            run = _run_from(row)
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
            run = _run_from(row)
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
