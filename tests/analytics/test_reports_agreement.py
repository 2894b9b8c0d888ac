"""Funnels, paths and retention on the engine equal plain Python versions of their
definitions (tests/analytics/reference.py) on random event sets, on DuckDB and Spark."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.analytics import funnels, paths, retention
from accord.analytics.people import source_on, trait_table
from accord.engine.connection import connect
from accord.engine.lake import events as lake_events
from tests.analytics import reference
from tests.analytics.reference import BASE, BUSINESS, NAMES, Event, event_sets

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
NOW = BASE + timedelta(days=30)

wheres = st.sampled_from(
    [
        [],
        [{"property": "category", "op": "=", "value": "x"}],
        [{"property": "revenue", "op": ">", "value": 10}],
        [{"property": "category", "op": "missing"}],
    ]
)
steps = st.fixed_dictionaries({"event": st.sampled_from([*NAMES, "Never"]), "where": wheres})


# Each person's traits: a `plan` of text, of another type (3: no value) or none.
traits = st.fixed_dictionaries(
    {
        f"p{i}": st.sampled_from([{"plan": "free"}, {"plan": "pro"}, {"plan": 3}, {}])
        for i in range(5)
    }
)


@st.composite
def funnel_specs(draw: Any) -> funnels.FunnelSpec:
    first = draw(st.integers(0, 40))
    spec = {
        "steps": draw(st.lists(steps, min_size=1, max_size=4)),
        "window_seconds": 60 * draw(st.integers(1, 40)),
        "from": (BASE + MINUTE * first).isoformat(),
        "to": (BASE + MINUTE * (first + draw(st.integers(0, 40)))).isoformat(),
        "exclusions": draw(st.lists(steps, max_size=1)),
    }
    breakdown = draw(st.sampled_from([None, "category", "revenue", "trait plan"]))
    if breakdown == "trait plan":
        spec["breakdown_trait"] = "plan"
    elif breakdown is not None:
        spec["breakdown"] = breakdown
    return funnels.parse_spec(spec)


@st.composite
def path_specs(draw: Any) -> paths.PathSpec:
    return paths.parse_spec(
        {
            "step": draw(steps),
            "direction": draw(st.sampled_from(["after", "before"])),
            "depth": draw(st.integers(1, 4)),
            "width": draw(st.integers(1, 3)),
            "from": (BASE + MINUTE * draw(st.integers(0, 10))).isoformat(),
            "to": (BASE + MINUTE * draw(st.integers(30, 70))).isoformat(),
        }
    )


@st.composite
def retention_specs(draw: Any) -> retention.RetentionSpec:
    first = draw(st.integers(0, 20))
    return retention.parse_spec(
        {
            "cohort_event": draw(st.one_of(st.none(), steps)),
            "return_event": draw(st.one_of(st.none(), steps)),
            "period": draw(st.sampled_from(["week", "day"])),
            "periods": draw(st.integers(1, 6)),
            "from": (BASE + DAY * first).isoformat(),
            "to": (BASE + DAY * (first + draw(st.integers(0, 20)))).isoformat(),
        }
    )


def check(
    backend: Any,
    events: list[Event],
    funnel_list: list[funnels.FunnelSpec],
    path_list: list[paths.PathSpec],
    retention_list: list[retention.RetentionSpec],
    profile_traits: dict[str, Any] | None = None,
) -> None:
    profile_traits = profile_traits or {}
    with tempfile.TemporaryDirectory() as folder:
        lake = Path(folder) / "lake"
        identifiers = reference.write(lake, events)
        plans = trait_table(
            [(pid, values, BASE, BASE) for pid, values in profile_traits.items()], "plan", "string"
        )
        source = source_on(
            backend, lake_events(backend, str(lake), business_id=BUSINESS), identifiers, plans
        )
        for spec in funnel_list:
            expected = reference.funnel(events, spec, profile_traits).to_json()
            assert _rounded(funnels.run(source, spec, now=NOW).to_json()) == _rounded(expected), (
                spec.to_json()
            )
        for spec in path_list:
            assert paths.run(source, spec, now=NOW) == reference.path(events, spec), spec.to_json()
        for spec in retention_list:
            got = retention.run(source, spec, now=NOW)
            assert got == reference.retained(events, spec, NOW), spec.to_json()


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


minutes = event_sets(unit=MINUTE, span=60)
days = event_sets(unit=DAY, span=40)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=minutes,
    funnel_list=st.lists(funnel_specs(), min_size=1, max_size=3),
    path_list=st.lists(path_specs(), min_size=1, max_size=2),
    profile_traits=traits,
)
def test_duckdb_funnels_and_paths_equal_their_definitions(
    events: list[Event], funnel_list: list[Any], path_list: list[Any], profile_traits: Any
) -> None:
    check(connect("duckdb://"), events, funnel_list, path_list, [], profile_traits)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=days, retention_list=st.lists(retention_specs(), min_size=1, max_size=3))
def test_duckdb_retention_equals_its_definition(
    events: list[Event], retention_list: list[Any]
) -> None:
    check(connect("duckdb://"), events, [], [], retention_list)


@pytest.fixture(scope="module")
def spark_backend() -> Iterator[Any]:
    # Spark's session is shared by the whole run (getOrCreate); it is not stopped here.
    yield connect("pyspark://local[2]")


@pytest.mark.slow
@pytest.mark.spark
def test_spark_reports_equal_their_definitions(spark_backend: Any) -> None:
    @settings(
        max_examples=2,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        events=minutes,
        funnel_list=st.lists(funnel_specs(), min_size=1, max_size=1),
        path_list=st.lists(path_specs(), min_size=1, max_size=1),
        retention_list=st.lists(retention_specs(), min_size=1, max_size=1),
        profile_traits=traits,
    )
    def run(
        events: list[Event],
        funnel_list: Any,
        path_list: Any,
        retention_list: Any,
        profile_traits: Any,
    ) -> None:
        check(spark_backend, events, funnel_list, path_list, retention_list, profile_traits)

    run()


@pytest.mark.slow
@pytest.mark.spark
def test_spark_funnel_by_trait_equals_its_definition(spark_backend: Any) -> None:
    """The trait breakdown on Spark, every example broken down by the trait (the test
    above draws it one time in four)."""

    @settings(
        max_examples=2,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(events=minutes, spec=funnel_specs(), profile_traits=traits)
    def run(events: list[Event], spec: funnels.FunnelSpec, profile_traits: Any) -> None:
        by_trait = spec.model_copy(update={"breakdown": None, "breakdown_trait": "plan"})
        check(spark_backend, events, [by_trait], [], [], profile_traits)

    run()
