"""One definition, two evaluators: the compiled Ibis expression selects exactly the
profiles the in-memory evaluator admits, on DuckDB and on Spark."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.audiences.compile import (
    CONSENT_SCHEMA,
    EVENT_COLUMNS,
    IDENTIFIER_SCHEMA,
    MEMBERSHIP_SCHEMA,
    EventNeeds,
    business_events,
    event_needs,
    members,
    profiles_table,
    tables_on,
)
from accord.audiences.conditions import Definition, validate
from accord.audiences.evaluate import EventFacts, ProfileFacts, matches
from accord.audiences.text import parse
from accord.core.clock import iso
from accord.engine.connection import connect
from accord.engine.lake import events
from accord.lake.schema import lake_row
from accord.lake.service import write_batch
from tests.audiences.strategies import CATALOG, NOW, conditions, populations

BUSINESS = "biz_test"


def _identifiers(index: int) -> tuple[str | None, list[str]]:
    user_id = f"u{index}" if index % 2 == 0 else None
    return user_id, [f"a{index}-0", f"a{index}-1"]


def write_population(lake: Path, population: list[ProfileFacts]) -> None:
    """Each profile's events as Segment track calls in the lake (and a stranger's)."""
    rows = []
    seq = 0
    for index, facts in enumerate(population):
        user_id, anonymous_ids = _identifiers(index)
        for j, event in enumerate(facts.events):
            seq += 1
            call: dict[str, Any] = {
                "type": "track",
                "messageId": f"m{seq}",
                "event": event.event,
                "anonymousId": anonymous_ids[j % 2],
                "timestamp": event.timestamp.isoformat(),
                "properties": event.documents.get("properties")
                or {k: v for k, v in event.properties.items() if v is not None},
            }
            if event.documents.get("context") is not None:
                call["context"] = event.documents["context"]
            if user_id and j % 3 == 0:
                call["userId"] = user_id
            rows.append((BUSINESS, lake_row(seq, "src", call)))
            # The same event by someone with no profile, and in another business.
            rows.append(("biz_other", lake_row(seq, "src", call)))
    stranger = {
        "type": "track",
        "messageId": "stranger",
        "event": "Order Completed",
        "anonymousId": "nobody",
        "timestamp": iso(NOW),
    }
    rows.append((BUSINESS, lake_row(seq + 1, "src", stranger)))
    write_batch(str(lake), batch_id="bat_1", rows=rows)


def engine_members(
    backend: Any, lake: Path, population: list[ProfileFacts], definitions: list[Definition]
) -> list[set[str]]:
    """Members of each definition, computed in one query (one Spark job for all)."""
    identifiers = []
    for index, facts in enumerate(population):
        user_id, anonymous_ids = _identifiers(index)
        if user_id:
            identifiers.append(
                {"kind": "user_id", "value": user_id, "profile_id": facts.profile_id}
            )
        identifiers += [
            {"kind": "anonymous_id", "value": a, "profile_id": facts.profile_id}
            for a in anonymous_ids
        ]
    lake_events = events(backend, str(lake))
    tables = tables_on(
        backend,
        profiles=profiles_table(
            [(f.profile_id, f.traits, f.first_seen, f.last_seen) for f in population],
            CATALOG.traits,
        ),
        # Only the events and columns the definitions read, as a refresh reads them.
        events=business_events(backend, lake_events, BUSINESS, event_needs(definitions)),
        identifiers=pa.Table.from_pylist(identifiers, schema=IDENTIFIER_SCHEMA),
        consents=pa.Table.from_pylist(
            [{"profile_id": f.profile_id, "purpose": p} for f in population for p in f.purposes],
            schema=CONSENT_SCHEMA,
        ),
        memberships=pa.Table.from_pylist(
            [
                {"profile_id": f.profile_id, "audience_id": a}
                for f in population
                for a in f.audiences
            ],
            schema=MEMBERSHIP_SCHEMA,
        ),
    )
    expressions = [
        members(d, tables=tables, catalog=CATALOG, now=NOW).mutate(definition=i)
        for i, d in enumerate(definitions)
    ]
    everything = expressions[0].union(*expressions[1:]) if len(expressions) > 1 else expressions[0]
    found: list[set[str]] = [set() for _ in definitions]
    for row in backend.to_pyarrow(everything).to_pylist():
        found[row["definition"]].add(row["profile_id"])
    return found


def memory_members(population: list[ProfileFacts], definition: Definition) -> set[str]:
    return {f.profile_id for f in population if matches(definition, f, catalog=CATALOG, now=NOW)}


def check(backend: Any, population: list[ProfileFacts], definitions: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        lake = Path(folder) / "lake"
        write_population(lake, population)
        parsed = [Definition(condition=c) for c in definitions]
        got = engine_members(backend, lake, population, parsed)
        for definition, selected in zip(parsed, got, strict=True):
            assert selected == memory_members(population, definition), definition.model_dump_json()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(population=populations(), definitions=st.lists(conditions, min_size=1, max_size=4))
def test_duckdb_agrees_with_the_in_memory_evaluator(
    population: list[ProfileFacts], definitions: list[Any]
) -> None:
    check(connect("duckdb://"), population, definitions)


@pytest.fixture(scope="module")
def spark_backend() -> Iterator[Any]:
    backend = connect("pyspark://local[2]")
    yield backend


@pytest.mark.slow
@pytest.mark.spark
def test_spark_agrees_with_the_in_memory_evaluator(spark_backend: Any) -> None:
    @settings(
        max_examples=10,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(population=populations(), definitions=st.lists(conditions, min_size=4, max_size=8))
    def run(population: list[ProfileFacts], definitions: list[Any]) -> None:
        check(spark_backend, population, definitions)

    run()


def _at(days_ago: float) -> Any:
    from datetime import timedelta

    return NOW - timedelta(days=days_ago)


BOUNDARY_POPULATION = [
    ProfileFacts(
        profile_id=f"prof_{i}",
        traits={"plan": "pro" if i % 2 else "free", "ltv": float(i * 50)},
        first_seen=_at(days),
        last_seen=_at(days),
        events=[
            EventFacts(
                event="Order Completed",
                timestamp=_at(days),
                properties={"revenue": 20.0, "category": None},
            )
        ]
        * (i + 1),
    )
    for i, days in enumerate([30, 7, 6.999, 30.001])
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('did "Order Completed" in the last 7 days', {"prof_1", "prof_2"}),
        ('did "Order Completed" in the last 30 days', {"prof_0", "prof_1", "prof_2"}),
        ('did not "Order Completed" in the last 30 days', {"prof_3"}),
        ('did "Order Completed" at least 2 times in the last 30 days', {"prof_1", "prof_2"}),
        ('did "Order Completed" exactly 3 times', {"prof_2"}),
        ('did "Order Completed" where revenue > 20 at least 1 time', set()),
        ('did "Order Completed" where category = "shoes"', set()),
        ('not did "Order Completed" where category != "shoes"', {"prof_0", "prof_1", "prof_2", "prof_3"}),  # noqa: E501
        ('did "Order Completed" where category missing, revenue exists', {"prof_0", "prof_1", "prof_2", "prof_3"}),  # noqa: E501
        ('did "Order Completed" where category exists', set()),
        (f"first seen before {_at(7).isoformat()}", {"prof_0", "prof_3"}),
        (f"last seen between {_at(30).isoformat()} and {_at(7).isoformat()}", {"prof_0"}),
        (f"first seen since {_at(7).isoformat()}", {"prof_1", "prof_2"}),
        ("trait plan != \"pro\"", {"prof_0", "prof_2"}),
        ("not trait signup exists and trait ltv >= 100", {"prof_2", "prof_3"}),
    ],
)  # fmt: skip
def test_windows_counts_and_missing_values_at_their_edges(text: str, expected: set[str]) -> None:
    definition = parse(text)
    validate(definition, CATALOG)
    assert memory_members(BOUNDARY_POPULATION, definition) == expected
    with tempfile.TemporaryDirectory() as folder:
        lake = Path(folder) / "lake"
        write_population(lake, BOUNDARY_POPULATION)
        assert engine_members(connect("duckdb://"), lake, BOUNDARY_POPULATION, [definition]) == [
            expected
        ]


def test_a_refresh_reads_only_the_events_and_columns_its_definitions_name() -> None:
    definitions = [
        parse('did "Order Completed" where revenue >= 150 and did "Signed Up"'),
        parse('did "Product Viewed" where category = "jackets", revenue exists at least 3 times'),
        parse('trait plan = "pro"'),
    ]
    assert event_needs(definitions) == EventNeeds(
        names=("Order Completed", "Product Viewed", "Signed Up"),
        columns=("user_id", "anonymous_id", "event", "timestamp", "category", "revenue"),
    )
    assert event_needs(definitions[2:]) == EventNeeds(names=(), columns=EVENT_COLUMNS[:4])
    with tempfile.TemporaryDirectory() as folder:
        lake = Path(folder) / "lake"
        write_population(lake, BOUNDARY_POPULATION)
        backend = connect("duckdb://")
        lake_events = events(backend, str(lake))
        read = business_events(backend, lake_events, BUSINESS, event_needs(definitions[:1]))
        assert read.columns == ("user_id", "anonymous_id", "event", "timestamp", "revenue")
        # The population's 10 orders and the stranger's; no other business's.
        assert read.count().execute() == 11
        nothing = business_events(backend, lake_events, BUSINESS, event_needs(definitions[2:]))
        assert nothing.count().execute() == 0
        assert business_events(backend, lake_events, BUSINESS).columns == EVENT_COLUMNS
