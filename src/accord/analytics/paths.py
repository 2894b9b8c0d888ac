"""Paths: the events people do next after (or just before) a chosen event.

For each person, their first event matching the chosen step inside [from, to) is the
anchor; the path is the `depth` named events that follow it (or precede it) in the same
range, events at the same instant in their arrival order (the inbox sequence). At each
position the `width` most frequent events are kept and the rest fold into "Other".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

import ibis
from pydantic import BaseModel, ConfigDict, Field, field_validator

from accord.analytics.people import (
    EventSource,
    Step,
    between,
    instant_us,
    matching,
    parse,
    range_problems,
    step_problems,
    utc,
    with_people,
)
from accord.core.errors import InvalidInput

OTHER = "Other"
MAX_DEPTH = 10
MAX_WIDTH = 20


class PathSpec(BaseModel):
    """What `POST /api/analytics/paths` takes."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    step: Step
    direction: Literal["after", "before"] = "after"
    depth: int = Field(default=3, ge=1, le=MAX_DEPTH)
    width: int = Field(default=5, ge=1, le=MAX_WIDTH)
    from_: datetime = Field(alias="from")
    to: datetime

    @field_validator("from_", "to", mode="after")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return utc(value)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_spec(data: Any) -> PathSpec:
    spec = parse(PathSpec, data)
    problems = range_problems(spec.from_, spec.to) + step_problems(spec.step, "step")
    if problems:
        raise InvalidInput(problems)
    return spec


@dataclass(frozen=True)
class PathNode:
    # 0 is the chosen event; 1, 2… the events after it; -1, -2… the events before it
    position: int
    event: str
    people: int


@dataclass(frozen=True)
class PathLink:
    """People going from one event to the next, earlier position first."""

    source_position: int
    source: str
    target_position: int
    target: str
    people: int


@dataclass(frozen=True)
class PathResult:
    people: int
    nodes: list[PathNode]
    links: list[PathLink]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# Unfolded counts: (position, event) -> people, and (position, event, next event) -> people,
# positions counted away from the anchor (1 is the nearest event).
NodeCounts = dict[tuple[int, str], int]
LinkCounts = dict[tuple[int, str, str], int]


def fold(spec: PathSpec, nodes: NodeCounts, links: LinkCounts) -> PathResult:
    """Keep the `width` most frequent events at each position (ties by name), the rest as
    "Other"; positions signed by direction, links from the earlier event to the later."""
    kept: dict[int, set[str]] = {}
    by_position: dict[int, list[tuple[str, int]]] = {}
    for (position, event), people in nodes.items():
        by_position.setdefault(position, []).append((event, people))
    for position, items in by_position.items():
        ranked = sorted(items, key=lambda item: (-item[1], item[0]))
        kept[position] = (
            {event for event, _ in ranked[: spec.width]}
            if position
            else {event for event, _ in items}
        )

    def name(position: int, event: str) -> str:
        return event if event in kept.get(position, set()) else OTHER

    sign = 1 if spec.direction == "after" else -1
    folded_nodes: Counter[tuple[int, str]] = Counter()
    for (position, event), people in nodes.items():
        folded_nodes[(sign * position, name(position, event))] += people
    folded_links: Counter[tuple[int, str, int, str]] = Counter()
    for (position, event, following), people in links.items():
        near, far = (position, name(position, event)), (position + 1, name(position + 1, following))
        if spec.direction == "after":
            folded_links[(near[0], near[1], far[0], far[1])] += people
        else:
            folded_links[(-far[0], far[1], -near[0], near[1])] += people
    anchor = sum(people for (position, _), people in nodes.items() if position == 0)
    return PathResult(
        people=anchor,
        nodes=[
            PathNode(position=p, event=e, people=n)
            for (p, e), n in sorted(folded_nodes.items(), key=lambda i: (i[0][0], -i[1], i[0][1]))
        ],
        links=[
            PathLink(source_position=a, source=b, target_position=c, target=d, people=n)
            for (a, b, c, d), n in sorted(
                folded_links.items(), key=lambda i: (i[0][0], -i[1], i[0][1], i[0][3])
            )
        ],
    )


# The expression ----------------------------------------------------------------------


def sequence(source: EventSource, spec: PathSpec, now: datetime) -> Any:
    """profile_id, position (0 the anchor, then away from it) and event: each person's path."""
    events = between(source.events, spec.from_, spec.to)
    events = events.filter(events.event.notnull())
    rows = with_people(
        source,
        events.select(
            "user_id",
            "anonymous_id",
            "event",
            ts=instant_us(source, events),
            seq=events.inbox_seq,
            anchor=matching(events, spec.step),
        ),
    )
    starts = rows.filter(rows.anchor)
    first = ibis.window(group_by=starts.profile_id, order_by=[starts.ts, starts.seq])
    starts = starts.mutate(rank=ibis.row_number().over(first))
    anchors = starts.filter(starts.rank == 0).select(
        a_profile="profile_id", a_ts="ts", a_seq="seq", a_event="event"
    )
    joined = rows.join(anchors, rows.profile_id == anchors.a_profile)
    after = spec.direction == "after"
    later = (joined.ts > joined.a_ts) | ((joined.ts == joined.a_ts) & (joined.seq > joined.a_seq))
    earlier = (joined.ts < joined.a_ts) | ((joined.ts == joined.a_ts) & (joined.seq < joined.a_seq))
    near = joined.filter(later if after else earlier)
    order = [near.ts, near.seq] if after else [ibis.desc(near.ts), ibis.desc(near.seq)]
    near = near.mutate(
        position=ibis.row_number().over(ibis.window(group_by=near.profile_id, order_by=order)) + 1
    )
    steps = near.filter(near.position <= spec.depth).select("profile_id", "position", "event")
    anchored = anchors.select(
        profile_id=anchors.a_profile, position=ibis.literal(0, type="int64"), event=anchors.a_event
    )
    return anchored.union(steps.mutate(position=steps.position.cast("int64")))


def run(source: EventSource, spec: PathSpec, *, now: datetime) -> PathResult:
    backend = source.backend
    seq = sequence(source, spec, now)
    node_rows = backend.to_pyarrow(
        seq.group_by(["position", "event"]).aggregate(people=seq.count())
    )
    nxt = seq.select(n_profile="profile_id", n_position="position", n_event="event")
    pairs = seq.join(nxt, [seq.profile_id == nxt.n_profile, nxt.n_position == seq.position + 1])
    link_rows = backend.to_pyarrow(
        pairs.group_by(["position", "event", "n_event"]).aggregate(people=pairs.count())
    )
    nodes = {(int(r["position"]), r["event"]): int(r["people"]) for r in node_rows.to_pylist()}
    links = {
        (int(r["position"]), r["event"], r["n_event"]): int(r["people"])
        for r in link_rows.to_pylist()
    }
    return fold(spec, nodes, links)
