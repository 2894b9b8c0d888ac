"""The in-memory evaluator: is this one profile a member, given its traits and events?

The worker calls it for the profiles a batch of events touched; the compiler in
`compile.py` gives the same answers for the whole base (tests hold both to it).
Every leaf is two-valued: a comparison with a missing value is false, so `not`
of it is true, exactly as the compiled expression does with `fill_null(False)`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from accord.audiences.conditions import (
    EVENT_PROPERTIES,
    And,
    Catalog,
    ConsentCondition,
    Count,
    Definition,
    EventCondition,
    Everyone,
    MemberCondition,
    Not,
    Or,
    PropertyFilter,
    SeenCondition,
    TraitCondition,
    TraitType,
    coerce,
    literal,
    window_bounds,
)

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class EventFacts:
    """One event as the lake types it: its name, time and typed property columns."""

    event: str | None
    timestamp: datetime
    properties: Mapping[str, Any]


def event_facts(row: Mapping[str, Any]) -> EventFacts:
    """From a lake row (`accord.lake.schema.lake_row`)."""
    return EventFacts(
        event=row["event"],
        timestamp=row["timestamp"],
        properties={name: row.get(name) for name in EVENT_PROPERTIES},
    )


@dataclass(frozen=True)
class ProfileFacts:
    profile_id: str
    traits: Mapping[str, Any]
    first_seen: datetime
    last_seen: datetime
    events: Sequence[EventFacts] = ()
    purposes: frozenset[str] = frozenset()
    # ids of the audiences the profile is a member of now
    audiences: frozenset[str] = field(default_factory=frozenset)
    # events by name, so each event condition looks only at its own events
    by_name: Mapping[str | None, list[EventFacts]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str | None, list[EventFacts]] = {}
        for event in self.events:
            index.setdefault(event.event, []).append(event)
        object.__setattr__(self, "by_name", index)


def compare(op: str, value: Any, expected: Any, kind: TraitType) -> bool:
    """One comparison of a typed value (None when missing) with a definition's literal."""
    if op == "exists":
        return value is not None
    if op == "missing":
        return value is None
    if value is None:
        return False
    if op == "in":
        return any(value == item for item in literal(expected, kind))
    if op == "contains":
        return isinstance(value, str) and expected in value
    return _ORDER[op](value, literal(expected, kind))


def in_window(instant: datetime, window: Any, now: datetime) -> bool:
    start, end = window_bounds(window, now)
    return (start is None or instant >= start) and (end is None or instant < end)


def _filter_matches(where: PropertyFilter, event: EventFacts) -> bool:
    kind = EVENT_PROPERTIES[where.property]
    value = coerce(event.properties.get(where.property), kind)
    return compare(where.op, value, where.value, kind)


def count_matches(count: Count, n: int) -> bool:
    return _ORDER[count.op](n, count.value)


def event_count(condition: EventCondition, facts: ProfileFacts, now: datetime) -> int:
    start, end = window_bounds(condition.window, now)
    return sum(
        1
        for event in facts.by_name.get(condition.event, ())
        if (start is None or event.timestamp >= start)
        and (end is None or event.timestamp < end)
        and all(_filter_matches(where, event) for where in condition.where)
    )


def matches(node: Any, facts: ProfileFacts, *, catalog: Catalog, now: datetime) -> bool:
    """Whether the profile satisfies the condition at `now` (the definition is validated)."""
    if isinstance(node, Definition):
        node = node.condition
    if isinstance(node, Everyone):
        return True
    if isinstance(node, And):
        return all(matches(c, facts, catalog=catalog, now=now) for c in node.all)
    if isinstance(node, Or):
        return any(matches(c, facts, catalog=catalog, now=now) for c in node.any)
    if isinstance(node, Not):
        return not matches(node.condition, facts, catalog=catalog, now=now)
    if isinstance(node, TraitCondition):
        kind = catalog.traits[node.trait]
        return compare(node.op, coerce(facts.traits.get(node.trait), kind), node.value, kind)
    if isinstance(node, ConsentCondition):
        return node.purpose in facts.purposes
    if isinstance(node, MemberCondition):
        return catalog.audiences[node.audience] in facts.audiences
    if isinstance(node, SeenCondition):
        instant = facts.first_seen if node.which == "first" else facts.last_seen
        return in_window(instant, node.window, now)
    if isinstance(node, EventCondition):
        return count_matches(node.count, event_count(node, facts, now))
    raise TypeError(f"not a condition: {node!r}")
