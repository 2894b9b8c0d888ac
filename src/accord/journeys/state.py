"""A pass through a journey as the runner holds it, the cache of journey versions, and
the batched writes of timer firings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, delete, insert, select, update

from accord.journeys.graph import (
    JourneyDefinition,
    load_definition,
)
from accord.journeys.models import (
    journey_outbox,
    journey_runs,
    journey_steps,
    journey_timers,
    journey_versions,
    journey_waits,
)

# Profile ids per IN (...) list, well under every database's bound-parameter limit.
IN_CHUNK = 500


@dataclass
class Run:
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
class Definitions:
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


def run_from(row: Any) -> Run:
    return Run(
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
class Writes:
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
            for start in range(0, len(run_ids), IN_CHUNK):
                conn.execute(
                    delete(table).where(table.c.run_id.in_(run_ids[start : start + IN_CHUNK]))
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
