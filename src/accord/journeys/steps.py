"""Moving one pass through a journey's nodes, in the caller's transaction: entering,
steps, waits, branches, splits and messages (the runner adds what triggers them)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, insert, select, update

from accord.audiences.evaluate import path_value
from accord.core.errors import NotFound
from accord.core.ids import new_id
from accord.journeys import policy, smart
from accord.journeys.analytics import settled_winner
from accord.journeys.environment import Environment
from accord.journeys.graph import (
    BranchNode,
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
    parse_duration,
)
from accord.journeys.models import (
    journey_outbox,
    journey_runs,
    journey_steps,
    journey_timers,
    journey_waits,
    journeys,
)
from accord.journeys.state import Definitions, Run, Writes

# A guard against a graph that would spin: validation rejects loops without a wait,
# so a real journey never takes this many instant steps in a row.
MAX_INSTANT_STEPS = 200


class Steps:
    """The moves of a pass; `Runner` adds the triggers that start them."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.definitions = Definitions()
        self._writes: Writes | None = None

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
        run = Run(
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
        run: Run,
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

    def _park(self, conn: Connection, run: Run, node: str, now: datetime) -> None:
        run.node = node
        self._update_run(conn, run.id, {"node": node, "updated_at": now})

    def _timer(self, conn: Connection, run: Run, node: str, kind: str, due: datetime) -> None:
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

    def finish(self, conn: Connection, run: Run, status: str, reason: str, now: datetime) -> None:
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
        run: Run,
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
        run: Run,
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

    def _best_channel(self, conn: Connection, run: Run, node: SendNode) -> str | None:
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

    def _split(self, conn: Connection, run: Run, node_id: str, node: SplitNode) -> str:
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
        run: Run,
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
