"""The in-memory evaluator: is this one profile a member, given its traits and events?

The worker calls it for the profiles a batch of events touched; the compiler in
`compile.py` gives the same answers for the whole base (tests hold both to it).
Every leaf is two-valued: a comparison with a missing value is false, so `not`
of it is true, exactly as the compiled expression does with `fill_null(False)`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from accord.audiences.conditions import (
    EVENT_PROPERTIES,
    AggregateCondition,
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
    is_path,
    literal,
    literal_type,
    window_bounds,
)
from accord.core.clock import parse_instant
from accord.lake.schema import lake_row

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
    """One event as the lake types it: its name, time and typed property columns, and
    its JSON columns (`properties`, `context`, `traits`) decoded, for paths into them."""

    event: str | None
    timestamp: datetime
    properties: Mapping[str, Any]
    documents: Mapping[str, Any] = field(default_factory=dict)


class _LakeDocuments(Mapping[str, Any]):
    """A lake row's JSON columns, decoded when a path first reads one (real-time
    decisions read many events and most conditions name no path)."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        self._row = row
        self._decoded: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._decoded:
            text = self._row.get(key)
            self._decoded[key] = orjson.loads(text) if isinstance(text, str) else None
        return self._decoded[key]

    def __iter__(self) -> Iterator[str]:
        return iter(("properties", "context", "traits"))

    def __len__(self) -> int:
        return 3


def event_facts(row: Mapping[str, Any]) -> EventFacts:
    """From a lake row (`accord.lake.schema.lake_row`)."""
    return EventFacts(
        event=row["event"],
        timestamp=row["timestamp"],
        properties={name: row.get(name) for name in EVENT_PROPERTIES},
        documents=_LakeDocuments(row),
    )


def path_value(data: Mapping[str, Any], path: str) -> Any:
    """A dotted path into nested mappings (`properties.cart_id`), or None."""
    current: Any = data
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


class _EventValues(Mapping[str, Any]):
    """A raw event's values by property: the lake's typed columns as the lake derives
    them (so `category` means here what it means to audiences), any other name as a
    dotted path into the event."""

    def __init__(self, event: Mapping[str, Any]) -> None:
        self._event = event
        self._typed: dict[str, Any] | None = None

    def __getitem__(self, key: str) -> Any:
        if key not in EVENT_PROPERTIES:
            return path_value(self._event, key)
        if self._typed is None:
            try:
                self._typed = lake_row(0, "", {"messageId": "", "type": "track", **self._event})
            except ValueError:
                self._typed = {}
        return self._typed.get(key)

    def __iter__(self) -> Iterator[str]:
        return iter(EVENT_PROPERTIES)

    def __len__(self) -> int:
        return len(EVENT_PROPERTIES)


def raw_event_facts(event: Mapping[str, Any], now: datetime) -> EventFacts:
    """A Segment event as it arrives (journeys and lead scoring test one in real time)."""
    name = event.get("event")
    timestamp = event.get("timestamp")
    try:
        at = parse_instant(timestamp) if isinstance(timestamp, str) else now
    except ValueError:
        at = now
    return EventFacts(
        event=name if isinstance(name, str) else None,
        timestamp=at,
        properties=_EventValues(event),
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


def event_value(event: EventFacts, name: str) -> Any:
    """An event property as stored: a typed column, or the raw JSON value at a path."""
    if event.documents and is_path(name):
        return path_value(event.documents, name)
    return event.properties.get(name)


def _filter_matches(where: PropertyFilter, event: EventFacts) -> bool:
    raw = event_value(event, where.property)
    if where.property in EVENT_PROPERTIES:
        kind = EVENT_PROPERTIES[where.property]
    else:
        if where.op in ("exists", "missing"):
            # Any JSON value but null is there, an object or a list too.
            return (raw is not None) == (where.op == "exists")
        kind = literal_type(where.value, raw)
    return compare(where.op, coerce(raw, kind), where.value, kind)


def filters_match(where: Sequence[PropertyFilter], event: EventFacts) -> bool:
    """Whether one event passes every filter (a journey's entry or wait, a lead rule)."""
    return all(_filter_matches(f, event) for f in where)


def event_matches(
    event_name: str | None, where: Sequence[PropertyFilter], event: EventFacts
) -> bool:
    """Whether one event is `event_name` (any event when None) and passes every filter:
    the in-memory counterpart of `accord.audiences.compile.event_matches`."""
    if event_name is not None and event.event != event_name:
        return False
    return filters_match(where, event)


def count_matches(count: Count, n: int) -> bool:
    return _ORDER[count.op](n, count.value)


def event_count(condition: EventCondition, facts: ProfileFacts, now: datetime) -> int:
    start, end = window_bounds(condition.window, now)
    return sum(
        1
        for event in facts.by_name.get(condition.event, ())
        if (start is None or event.timestamp >= start)
        and (end is None or event.timestamp < end)
        and filters_match(condition.where, event)
    )


def aggregate_value(
    condition: AggregateCondition, facts: ProfileFacts, now: datetime
) -> float | None:
    """The aggregate over the matching events' numeric values, None when there are none."""
    start, end = window_bounds(condition.window, now)
    values: list[float] = []
    for event in facts.by_name.get(condition.event, ()):
        if (start is not None and event.timestamp < start) or (
            end is not None and event.timestamp >= end
        ):
            continue
        if not filters_match(condition.where, event):
            continue
        number = coerce(event_value(event, condition.property), "number")
        if number is not None:
            values.append(number)
    if not values:
        return None
    if condition.function == "sum":
        return float(sum(values))
    if condition.function == "average":
        return float(sum(values)) / len(values)
    return min(values) if condition.function == "min" else max(values)


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
    if isinstance(node, AggregateCondition):
        return compare(node.op, aggregate_value(node, facts, now), node.value, "number")
    raise TypeError(f"not a condition: {node!r}")
