"""Hypothesis strategies: condition trees, and profiles with their events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from accord.audiences.conditions import (
    AggregateCondition,
    And,
    Before,
    Between,
    Catalog,
    ConsentCondition,
    Count,
    EventCondition,
    Everyone,
    LastDays,
    MemberCondition,
    Not,
    Or,
    PropertyFilter,
    SeenCondition,
    Since,
    TraitCondition,
)
from accord.audiences.evaluate import EventFacts, ProfileFacts

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
START = NOW - timedelta(days=40)

CATALOG = Catalog(
    traits={"plan": "string", "ltv": "number", "vip": "boolean", "signup": "datetime"},
    purposes=frozenset({"marketing", "advertising"}),
    audiences={"buyers": "aud_buyers", "fans": "aud_fans"},
)
EVENTS = ["Product Viewed", "Order Completed", "Signed Up"]
CATEGORIES = ["shoes", "hats", "bags"]
PLANS = ["pro", "free", "team"]

# Instants on whole seconds plus a few exact boundaries of the windows used below.
instants = st.one_of(
    st.integers(min_value=0, max_value=40 * 24 * 60).map(lambda m: START + timedelta(minutes=m)),
    st.sampled_from([NOW - timedelta(days=7), NOW - timedelta(days=30), START]),
)
window_dates = st.sampled_from(
    [NOW - timedelta(days=d) for d in (1, 7, 10, 30)] + [datetime(2026, 11, 1, tzinfo=UTC)]
)


@st.composite
def windows(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["last", "since", "before", "between"]))
    if kind == "last":
        return LastDays(days=draw(st.sampled_from([1, 7, 30, 365])))
    if kind == "since":
        return Since(at=draw(window_dates))
    if kind == "before":
        return Before(at=draw(window_dates))
    start, end = sorted(draw(st.lists(window_dates, min_size=2, max_size=2, unique=True)))
    return Between(start=start, end=end)


def _trait_value(trait: str) -> st.SearchStrategy[Any]:
    return {
        "plan": st.sampled_from(PLANS),
        "ltv": st.one_of(st.integers(0, 300), st.sampled_from([49.5, 100.0, 250.25])),
        "vip": st.booleans(),
        "signup": window_dates.map(lambda d: d.isoformat()),
    }[trait]


@st.composite
def trait_conditions(draw: st.DrawFn) -> TraitCondition:
    trait = draw(st.sampled_from(sorted(CATALOG.traits)))
    kind = CATALOG.traits[trait]
    ops = ["=", "!=", "exists", "missing", "in"]
    if kind in ("number", "datetime"):
        ops += ["<", "<=", ">", ">="]
    if kind == "string":
        ops += ["contains"]
    op = draw(st.sampled_from(ops))
    if op in ("exists", "missing"):
        return TraitCondition(trait=trait, op=op)
    if op == "in":
        values = draw(st.lists(_trait_value(trait), min_size=1, max_size=3))
        return TraitCondition(trait=trait, op=op, value=values)
    if op == "contains":
        return TraitCondition(trait=trait, op=op, value=draw(st.sampled_from(["pr", "e", "x"])))
    return TraitCondition(trait=trait, op=op, value=draw(_trait_value(trait)))


STORES = ["s1", "s2"]
METHODS = ["card", "cash"]
PATHS = ["properties.store_id", "properties.payment.method", "properties.items", "context.store"]


@st.composite
def path_filters(draw: st.DrawFn) -> PropertyFilter:
    """Filters on paths into the events' JSON, typed by their literal."""
    path = draw(st.sampled_from(PATHS))
    kind = draw(st.sampled_from(["presence", "string", "number", "boolean"]))
    if kind == "presence":
        return PropertyFilter(property=path, op=draw(st.sampled_from(["exists", "missing"])))
    if kind == "string":
        op = draw(st.sampled_from(["=", "!=", "contains", "in"]))
        words = st.sampled_from([*STORES, *METHODS, "12"])
        if op == "in":
            value: Any = draw(st.lists(words, min_size=1, max_size=2))
        elif op == "contains":
            value = draw(st.sampled_from(["s", "a", "1"]))
        else:
            value = draw(words)
        return PropertyFilter(property=path, op=op, value=value)
    if kind == "boolean":
        return PropertyFilter(property=path, op=draw(st.sampled_from(["=", "!="])), value=True)
    op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "in"]))
    numbers = st.sampled_from([1, 2, 2.5, 12])
    if op == "in":
        return PropertyFilter(
            property=path, op=op, value=draw(st.lists(numbers, min_size=1, max_size=2))
        )
    return PropertyFilter(property=path, op=op, value=draw(numbers))


@st.composite
def property_filters(draw: st.DrawFn) -> PropertyFilter:
    if draw(st.integers(0, 3)) == 0:
        return draw(path_filters())
    if draw(st.integers(0, 4)) == 0:
        return PropertyFilter(
            property=draw(st.sampled_from(["category", "revenue"])),
            op=draw(st.sampled_from(["exists", "missing"])),
        )
    if draw(st.booleans()):
        op = draw(st.sampled_from(["=", "!=", "contains", "in"]))
        if op == "in":
            value: Any = draw(st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2))
        elif op == "contains":
            value = draw(st.sampled_from(["o", "sh"]))
        else:
            value = draw(st.sampled_from(CATEGORIES))
        return PropertyFilter(property="category", op=op, value=value)
    op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
    return PropertyFilter(property="revenue", op=op, value=draw(st.sampled_from([0, 20, 49.5])))


@st.composite
def event_conditions(draw: st.DrawFn) -> EventCondition:
    op = draw(st.sampled_from([">=", "<=", "=", ">", "<"]))
    value = draw(st.integers(1 if op == "<" else 0, 4))
    return EventCondition(
        event=draw(st.sampled_from(EVENTS)),
        where=draw(st.lists(property_filters(), max_size=2)),
        count=Count(op=op, value=value),
        window=draw(st.none() | windows()),
    )


@st.composite
def aggregate_conditions(draw: st.DrawFn) -> AggregateCondition:
    return AggregateCondition(
        function=draw(st.sampled_from(["sum", "average", "min", "max"])),
        property=draw(st.sampled_from(["revenue", "properties.items", "properties.store_id"])),
        event=draw(st.sampled_from(EVENTS)),
        where=draw(st.lists(property_filters(), max_size=1)),
        op=draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="])),
        value=draw(st.sampled_from([0, 2, 2.5, 20, 49.5, 100])),
        window=draw(st.none() | windows()),
    )


leaves = st.one_of(
    st.just(Everyone()),
    trait_conditions(),
    st.sampled_from(sorted(CATALOG.purposes)).map(lambda p: ConsentCondition(purpose=p)),
    st.sampled_from(sorted(CATALOG.audiences)).map(lambda a: MemberCondition(audience=a)),
    event_conditions(),
    aggregate_conditions(),
    st.builds(SeenCondition, which=st.sampled_from(["first", "last"]), window=windows()),
)

conditions = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda c: And(all=c)),
        st.lists(inner, min_size=2, max_size=3).map(lambda c: Or(any=c)),
        inner.map(lambda c: Not(condition=c)),
    ),
    max_leaves=6,
)


# Profiles and their events ------------------------------------------------------------


@st.composite
def traits(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for trait in sorted(CATALOG.traits):
        choice = draw(st.sampled_from(["missing", "value", "value", "wrong type", "null"]))
        if choice == "value":
            out[trait] = draw(_trait_value(trait))
        elif choice == "wrong type":
            out[trait] = draw(st.sampled_from(["12", 7, True, [1], {"a": 1}]))
        elif choice == "null":
            out[trait] = None
    return out


# JSON values a path may meet: of the type compared, of another, null, an object.
odd_values = st.sampled_from([None, True, False, "12", 12, {"a": 1}, [1]])


@st.composite
def extra_properties(draw: st.DrawFn) -> dict[str, Any]:
    """Properties the lake does not type, as an event's JSON carries them."""
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["store_id"] = draw(st.sampled_from(STORES) | odd_values)
    choice = draw(st.integers(0, 3))
    if choice == 1:
        out["payment"] = {"method": draw(st.sampled_from(METHODS) | odd_values)}
    elif choice == 2:
        out["payment"] = draw(odd_values)
    if draw(st.booleans()):
        out["items"] = draw(st.sampled_from([1, 2, 2.5, -1, 12]) | odd_values)
    return out


@st.composite
def events_of(draw: st.DrawFn) -> list[EventFacts]:
    out = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from([*EVENTS, "Cart Viewed"]))
        typed = {
            "category": draw(st.none() | st.sampled_from(CATEGORIES)),
            "revenue": draw(st.none() | st.sampled_from([0.0, 20.0, 49.5, 120.0])),
        }
        properties = {k: v for k, v in typed.items() if v is not None}
        properties |= draw(extra_properties())
        documents: dict[str, Any] = {"properties": properties or None, "context": None}
        if draw(st.booleans()):
            documents["context"] = {"store": draw(st.sampled_from(STORES) | odd_values)}
        out.append(
            EventFacts(event=name, timestamp=draw(instants), properties=typed, documents=documents)
        )
    return out


@st.composite
def profiles(draw: st.DrawFn, index: int) -> ProfileFacts:
    first, last = sorted(draw(st.lists(instants, min_size=2, max_size=2)))
    return ProfileFacts(
        profile_id=f"prof_{index}",
        traits=draw(traits()),
        first_seen=first,
        last_seen=last,
        events=draw(events_of()),
        purposes=frozenset(draw(st.sets(st.sampled_from(sorted(CATALOG.purposes))))),
        audiences=frozenset(draw(st.sets(st.sampled_from(sorted(CATALOG.audiences.values()))))),
    )


@st.composite
def populations(draw: st.DrawFn) -> list[ProfileFacts]:
    size = draw(st.integers(1, 8))
    return [draw(profiles(i)) for i in range(size)]


# Any model-valid tree, with odd names, for the text round trip -----------------------

names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12
)
scalars = st.one_of(
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    names,
)
any_windows = st.one_of(
    st.builds(LastDays, days=st.integers(-5, 5000)),
    st.builds(Since, at=st.datetimes(timezones=st.just(UTC))),
    st.builds(Before, at=st.datetimes(timezones=st.just(UTC))),
    st.builds(
        Between,
        start=st.datetimes(timezones=st.just(UTC)),
        end=st.datetimes(timezones=st.just(UTC)),
    ),
)
any_leaves = st.one_of(
    st.just(Everyone()),
    st.builds(TraitCondition, trait=names, op=st.sampled_from(["exists", "missing"])),
    st.builds(
        TraitCondition,
        trait=names,
        op=st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "contains"]),
        value=scalars,
    ),
    st.builds(
        TraitCondition,
        trait=names,
        op=st.just("in"),
        value=st.lists(scalars, min_size=1, max_size=3),
    ),
    st.builds(ConsentCondition, purpose=names),
    st.builds(MemberCondition, audience=names),
    st.builds(
        EventCondition,
        event=names,
        where=st.lists(
            st.builds(
                PropertyFilter,
                property=names,
                op=st.sampled_from(["=", "!=", "<", ">=", "contains"]),
                value=scalars,
            )
            | st.builds(PropertyFilter, property=names, op=st.sampled_from(["exists", "missing"])),
            max_size=2,
        ),
        count=st.builds(
            Count, op=st.sampled_from([">=", "<=", "=", ">", "<"]), value=st.integers(-3, 50)
        ),
        window=st.none() | any_windows,
    ),
    st.builds(SeenCondition, which=st.sampled_from(["first", "last"]), window=any_windows),
    st.builds(
        AggregateCondition,
        function=st.sampled_from(["sum", "average", "min", "max"]),
        property=names,
        event=names,
        where=st.lists(st.builds(PropertyFilter, property=names, op=st.just("exists")), max_size=1),
        op=st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
        value=st.integers(-(10**12), 10**12) | st.floats(allow_nan=False, allow_infinity=False),
        window=st.none() | any_windows,
    ),
)
any_conditions = st.recursive(
    any_leaves,
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda c: And(all=c)),
        st.lists(inner, min_size=2, max_size=3).map(lambda c: Or(any=c)),
        inner.map(lambda c: Not(condition=c)),
    ),
    max_leaves=8,
)
