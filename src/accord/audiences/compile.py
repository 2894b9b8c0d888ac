"""The compiler: an audience definition as one Ibis expression over the whole base.

Steps, each a plain Ibis expression that runs on DuckDB and Spark alike:
`event_counts` (one pass over the events, one count column per event condition,
grouped by identifier pair before the join to profiles so the join is small),
`consent_flags`, `membership_flags`, then `members` (the condition tree as a
boolean over those columns, every leaf made two-valued with `fill_null(False)`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ibis
import pyarrow as pa

from accord.audiences.conditions import (
    EVENT_PROPERTIES,
    PATH_ROOTS,
    AggregateCondition,
    And,
    Catalog,
    ConsentCondition,
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
    aggregate_conditions,
    coerce,
    event_conditions,
    is_path,
    literal,
    literal_type,
    path_keys,
    referenced_audiences,
    referenced_purposes,
    referenced_traits,
    window_bounds,
)
from accord.engine.json import json_present, json_value
from accord.engine.tables import materialise
from accord.engine.tables import register as engine_table

TIMESTAMP = pa.timestamp("us", tz="UTC")
ARROW_TYPES: dict[TraitType, pa.DataType] = {
    "string": pa.string(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "datetime": TIMESTAMP,
}
IDENTIFIER_SCHEMA = pa.schema(
    [("kind", pa.string()), ("value", pa.string()), ("profile_id", pa.string())]
)
CONSENT_SCHEMA = pa.schema([("profile_id", pa.string()), ("purpose", pa.string())])
MEMBERSHIP_SCHEMA = pa.schema([("profile_id", pa.string()), ("audience_id", pa.string())])


def trait_column(name: str) -> str:
    """The engine column holding a trait (trait names may hold any character)."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"trait_{digest}_{''.join(c for c in name if c.isascii() and c.isalnum())[:40]}"


def profile_schema(traits: dict[str, TraitType]) -> pa.Schema:
    fields = [
        ("profile_id", pa.string()),
        ("first_seen", TIMESTAMP),
        ("last_seen", TIMESTAMP),
    ]
    fields += [(trait_column(name), ARROW_TYPES[kind]) for name, kind in sorted(traits.items())]
    return pa.schema(fields)


@dataclass(frozen=True)
class EngineTables:
    """What the compiled expression reads, as Ibis tables on one backend."""

    # profile_id, first_seen, last_seen and a `trait_column` per referenced trait
    profiles: Any
    # the lake's events, already limited to the business
    events: Any
    # kind ('user_id' | 'anonymous_id'), value, profile_id
    identifiers: Any
    # profile_id, purpose: one row per granted purpose
    consents: Any
    # profile_id, audience_id: current members of other audiences
    memberships: Any


def _bounded(column: Any, window: Any, now: datetime) -> Any:
    start, end = window_bounds(window, now)
    predicate = ibis.literal(True)
    if start is not None:
        predicate = predicate & (column >= ibis.literal(start, type="timestamp('UTC')"))
    if end is not None:
        predicate = predicate & (column < ibis.literal(end, type="timestamp('UTC')"))
    return predicate


def _literal(value: Any, kind: TraitType) -> Any:
    if kind == "datetime":
        return ibis.literal(literal(value, kind), type="timestamp('UTC')")
    if kind == "number":
        return ibis.literal(literal(value, kind), type="float64")
    return ibis.literal(value)


def _compare(column: Any, op: str, value: Any, kind: TraitType) -> Any:
    if op == "exists":
        return column.notnull()
    if op == "missing":
        return column.isnull()
    if op == "in":
        return column.isin([_literal(v, kind) for v in value])
    if op == "contains":
        return column.contains(ibis.literal(value))
    right = _literal(value, kind)
    return {
        "=": column == right,
        "!=": column != right,
        "<": column < right,
        "<=": column <= right,
        ">": column > right,
        ">=": column >= right,
    }[op]


def event_property(events: Any, name: str, kind: TraitType) -> Any:
    """An event property as an Ibis column of `kind`: a typed column of the lake, or the
    value at a path into its JSON (NULL when missing or of another type). A breakdown
    reads a path as a string (`kind="string"`)."""
    if not is_path(name):
        return events[name]
    root, keys = path_keys(name)
    if kind == "datetime":
        raise ValueError(f"{name!r}: a path into event JSON is not read as a date")
    return json_value(events[root], keys, kind)


def _filter(events: Any, where: PropertyFilter) -> Any:
    if where.property in EVENT_PROPERTIES:
        kind = EVENT_PROPERTIES[where.property]
    else:
        if where.op in ("exists", "missing"):
            root, keys = path_keys(where.property)
            present = json_present(events[root], keys)
            return present if where.op == "exists" else ~present
        kind = literal_type(where.value)
    return _compare(event_property(events, where.property, kind), where.op, where.value, kind)


def event_matches(events: Any, event_name: str | None, where: list[PropertyFilter]) -> Any:
    """An Ibis boolean over the lake's events table (or `business_events`): the event is
    `event_name` (any event when None) and passes every filter; never NULL. The filters
    are validated (`conditions.filter_problems`). Its in-memory counterpart is
    `accord.audiences.evaluate.event_matches`; funnel steps compile with it."""
    predicate = ibis.literal(True) if event_name is None else events.event == event_name
    for item in where:
        predicate = predicate & _filter(events, item)
    return predicate.fill_null(False)


def _event_predicate(events: Any, condition: Any, now: datetime) -> Any:
    predicate = event_matches(events, condition.event, condition.where)
    if condition.window is not None:
        predicate = predicate & _bounded(events.timestamp, condition.window, now)
    return predicate.fill_null(False)


def _aggregated(events: Any, condition: AggregateCondition) -> Any:
    return event_property(events, condition.property, "number").cast("float64")


def with_profile(tables: EngineTables, per_pair: Any) -> Any:
    """Rows keyed by (user_id, anonymous_id) with the `profile_id` they belong to: the
    profile of the userId, else of the anonymousId, as the worker links events. Rows of
    no known profile are dropped."""
    ids = tables.identifiers
    by_user = ids.filter(ids.kind == "user_id").select(
        user_value=ids.value, user_profile=ids.profile_id
    )
    by_anonymous = ids.filter(ids.kind == "anonymous_id").select(
        anonymous_value=ids.value, anonymous_profile=ids.profile_id
    )
    joined = per_pair.left_join(by_user, per_pair.user_id == by_user.user_value).left_join(
        by_anonymous, per_pair.anonymous_id == by_anonymous.anonymous_value
    )
    values = [c for c in per_pair.columns if c not in ("user_id", "anonymous_id")]
    resolved = joined.select(
        profile_id=ibis.coalesce(joined.user_profile, joined.anonymous_profile),
        **{c: joined[c] for c in values},
    )
    return resolved.filter(resolved.profile_id.notnull())


def event_counts(
    tables: EngineTables,
    conditions: list[EventCondition],
    now: datetime,
    aggregates: list[AggregateCondition] | None = None,
) -> Any:
    """profile_id, `event_<i>` (how many events satisfy event condition i) and, per
    aggregate condition j, `agg_<j>_sum`, `agg_<j>_n` (values summed), `agg_<j>_min` and
    `agg_<j>_max` over the matching events' numeric values, per profile."""
    aggregates = aggregates or []
    names = {c.event for c in conditions} | {a.event for a in aggregates}
    events = tables.events.filter(tables.events.event.isin(sorted(names)))
    per_event: dict[str, Any] = {}
    for i, c in enumerate(conditions):
        per_event[f"event_{i}"] = _event_predicate(events, c, now).ifelse(1, 0)
    for j, a in enumerate(aggregates):
        value = _event_predicate(events, a, now).ifelse(
            _aggregated(events, a), ibis.null("float64")
        )
        per_event[f"agg_{j}_value"] = value
    rows = events.select("user_id", "anonymous_id", **per_event)
    sums = {f"event_{i}": rows[f"event_{i}"].sum() for i in range(len(conditions))}
    for j in range(len(aggregates)):
        value = rows[f"agg_{j}_value"]
        sums |= {
            f"agg_{j}_sum": value.sum(),
            f"agg_{j}_n": value.count(),
            f"agg_{j}_min": value.min(),
            f"agg_{j}_max": value.max(),
        }
    per_pair = rows.group_by(["user_id", "anonymous_id"]).aggregate(**sums)
    resolved = with_profile(tables, per_pair)
    totals: dict[str, Any] = {
        f"event_{i}": resolved[f"event_{i}"].sum() for i in range(len(conditions))
    }
    for j in range(len(aggregates)):
        totals |= {
            f"agg_{j}_sum": resolved[f"agg_{j}_sum"].sum(),
            f"agg_{j}_n": resolved[f"agg_{j}_n"].sum(),
            f"agg_{j}_min": resolved[f"agg_{j}_min"].min(),
            f"agg_{j}_max": resolved[f"agg_{j}_max"].max(),
        }
    return resolved.group_by("profile_id").aggregate(**totals)


def _flags(table: Any, column: str, values: list[str], prefix: str) -> Any:
    rows = table.filter(table[column].isin(values))
    return rows.group_by("profile_id").aggregate(
        **{
            f"{prefix}_{i}": (rows[column] == value).ifelse(1, 0).max()
            for i, value in enumerate(values)
        }
    )


@dataclass(frozen=True)
class _Columns:
    events: list[str]
    purposes: list[str]
    audiences: list[str]
    aggregates: list[str]


def _aggregate(base: Any, node: AggregateCondition, index: int) -> Any:
    n = base[f"agg_{index}_n"].fill_null(0)
    total = base[f"agg_{index}_sum"]
    value = {
        "sum": total,
        "average": total / n.cast("float64"),
        "min": base[f"agg_{index}_min"],
        "max": base[f"agg_{index}_max"],
    }[node.function]
    return ibis.ifelse(n > 0, value, ibis.null("float64"))


def _boolean(node: Any, base: Any, columns: _Columns, catalog: Catalog, now: datetime) -> Any:
    def leaf(expression: Any) -> Any:
        return expression.fill_null(False)

    if isinstance(node, Everyone):
        return ibis.literal(True)
    if isinstance(node, And | Or):
        parts = [
            _boolean(c, base, columns, catalog, now)
            for c in (node.all if isinstance(node, And) else node.any)
        ]
        result = parts[0]
        for part in parts[1:]:
            result = (result & part) if isinstance(node, And) else (result | part)
        return result
    if isinstance(node, Not):
        return ~_boolean(node.condition, base, columns, catalog, now)
    if isinstance(node, TraitCondition):
        kind = catalog.traits[node.trait]
        return leaf(_compare(base[trait_column(node.trait)], node.op, node.value, kind))
    if isinstance(node, SeenCondition):
        column = base.first_seen if node.which == "first" else base.last_seen
        return leaf(_bounded(column, node.window, now))
    if isinstance(node, EventCondition):
        index = columns.events.index(node.model_dump_json())
        n = base[f"event_{index}"].fill_null(0)
        right = ibis.literal(node.count.value)
        compared = {
            "=": n == right,
            "<": n < right,
            "<=": n <= right,
            ">": n > right,
            ">=": n >= right,
        }[node.count.op]
        return leaf(compared)
    if isinstance(node, AggregateCondition):
        index = columns.aggregates.index(node.model_dump_json())
        value = _aggregate(base, node, index)
        return leaf(_compare(value, node.op, node.value, "number"))
    if isinstance(node, ConsentCondition):
        return leaf(base[f"purpose_{columns.purposes.index(node.purpose)}"] == 1)
    if isinstance(node, MemberCondition):
        audience_id = catalog.audiences[node.audience]
        return leaf(base[f"audience_{columns.audiences.index(audience_id)}"] == 1)
    raise TypeError(f"not a condition: {node!r}")


def members(
    definition: Definition, *, tables: EngineTables, catalog: Catalog, now: datetime
) -> Any:
    """An Ibis table of `profile_id`: the profiles the definition selects at `now`."""
    conditions = event_conditions(definition)
    aggregates = aggregate_conditions(definition)
    purposes = sorted(referenced_purposes(definition))
    audiences = sorted(catalog.audiences[slug] for slug in referenced_audiences(definition))
    base = tables.profiles
    steps: list[Any] = []
    if conditions or aggregates:
        steps.append(event_counts(tables, conditions, now, aggregates))
    if purposes:
        steps.append(_flags(tables.consents, "purpose", purposes, "purpose"))
    if audiences:
        steps.append(_flags(tables.memberships, "audience_id", audiences, "audience"))
    for step in steps:
        renamed = step.rename(step_profile_id="profile_id")
        joined = base.left_join(renamed, base.profile_id == renamed.step_profile_id)
        base = joined.drop("step_profile_id")
    columns = _Columns(
        events=[c.model_dump_json() for c in conditions],
        purposes=purposes,
        audiences=audiences,
        aggregates=[a.model_dump_json() for a in aggregates],
    )
    missing = referenced_traits(definition) - set(catalog.traits)
    if missing:
        raise KeyError(f"traits without a type: {sorted(missing)}")
    selected = base.filter(_boolean(definition.condition, base, columns, catalog, now))
    return selected.select("profile_id")


def profiles_table(rows: Any, traits: dict[str, TraitType]) -> pa.Table:
    """Profiles as the compiler reads them: (id, traits, first_seen, last_seen) rows, with
    each referenced trait typed by `coerce`, the same function the in-memory evaluator uses.
    """
    names = sorted(traits)
    columns: dict[str, list[Any]] = {"profile_id": [], "first_seen": [], "last_seen": []}
    for name in names:
        columns[trait_column(name)] = []
    for profile_id, values, first_seen, last_seen in rows:
        columns["profile_id"].append(profile_id)
        columns["first_seen"].append(first_seen)
        columns["last_seen"].append(last_seen)
        for name in names:
            columns[trait_column(name)].append(coerce(values.get(name), traits[name]))
    return pa.Table.from_pydict(columns, schema=profile_schema(traits))


EVENT_COLUMNS = ("user_id", "anonymous_id", "event", "timestamp", *EVENT_PROPERTIES)


@dataclass(frozen=True)
class EventNeeds:
    """What of the events some definitions read: the named events (None: every named
    event), the columns (the ids and time, and the typed properties their conditions
    name) and whether the JSON columns (`PATH_ROOTS`) come along: a condition reads a path."""

    names: tuple[str, ...] | None = None
    columns: tuple[str, ...] = EVENT_COLUMNS
    documents: bool = False


# Every named event with every typed column conditions can read (no JSON columns).
EVERY_EVENT = EventNeeds()


def event_needs(definitions: Iterable[Definition]) -> EventNeeds:
    """Only the events and columns these definitions' conditions read: at 10M events,
    copying every property column of every named event is most of a refresh's read."""
    chosen = list(definitions)
    nodes: list[EventCondition | AggregateCondition] = [
        *(c for d in chosen for c in event_conditions(d)),
        *(c for d in chosen for c in aggregate_conditions(d)),
    ]
    used = {where.property for c in nodes for where in c.where}
    used |= {c.property for c in nodes if isinstance(c, AggregateCondition)}
    return EventNeeds(
        names=tuple(sorted({c.event for c in nodes})),
        columns=(*EVENT_COLUMNS[:4], *(p for p in EVENT_PROPERTIES if p in used)),
        documents=any(is_path(name) for name in used),
    )


def business_events(
    backend: Any, lake_events: Any, business_id: str, needs: EventNeeds = EVERY_EVENT
) -> Any:
    """One business's named events with only the columns conditions read, materialised on
    the engine: a refresh evaluates many audiences over them, and reads the lake once.
    The JSON columns (`PATH_ROOTS`) come along only when `needs.documents`."""
    wanted = lake_events.event.notnull()
    if needs.names is not None:
        # No names (no event condition at all) keeps no row: isin of nothing is false.
        wanted = lake_events.event.isin(needs.names) if needs.names else ibis.literal(False)
    events = lake_events.filter((lake_events.business_id == business_id) & wanted)
    columns = (*needs.columns, *PATH_ROOTS) if needs.documents else needs.columns
    return materialise(backend, events.select(*columns))


def tables_on(
    backend: Any,
    *,
    profiles: pa.Table,
    events: Any,
    identifiers: pa.Table,
    consents: pa.Table,
    memberships: pa.Table,
) -> EngineTables:
    """Arrow tables from the state store as Ibis tables beside the lake's events."""
    return EngineTables(
        profiles=engine_table(backend, profiles),
        events=events,
        identifiers=engine_table(backend, identifiers),
        consents=engine_table(backend, consents),
        memberships=engine_table(backend, memberships),
    )
