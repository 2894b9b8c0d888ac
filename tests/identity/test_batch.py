"""Batch components on the engine: against networkx, and equal to the incremental profiles."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import networkx as nx
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.accounts.models import Bootstrap
from accord.core.settings import Settings
from accord.demo.generator import generate_n_events
from accord.engine.connection import connect
from accord.identity.batch import check_graph, components
from accord.identity.service import get_rules
from accord.store.db import Store
from tests.identity.helpers import process

SPARK_URL = "pyspark://local[2]"


def _partition(labels: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for node, label in labels.items():
        groups.setdefault(label, set()).add(node)
    return {frozenset(g) for g in groups.values()}


def _run(backend: Any, n: int, edges: list[tuple[int, int]]) -> set[frozenset[str]]:
    nodes = [f"n{i:03d}" for i in range(n)]
    labels = components(
        backend,
        pa.table({"node": pa.array(nodes, pa.string())}),
        pa.table(
            {
                "src": pa.array([nodes[a] for a, _ in edges], pa.string()),
                "dst": pa.array([nodes[b] for _, b in edges], pa.string()),
            }
        ),
    )
    # Every node is labelled by the smallest node of its component.
    assert all(label == min(g) for g in _partition(labels) for label in [labels[next(iter(g))]])
    return _partition(labels)


def _oracle(n: int, edges: list[tuple[int, int]]) -> set[frozenset[str]]:
    graph = nx.Graph()
    graph.add_nodes_from(f"n{i:03d}" for i in range(n))
    graph.add_edges_from((f"n{a:03d}", f"n{b:03d}") for a, b in edges)
    return {frozenset(c) for c in nx.connected_components(graph)}


@st.composite
def graphs(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]]]:
    n = draw(st.integers(1, 40))
    edges = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=60))
    return n, edges


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_components_match_networkx(graph: tuple[int, list[tuple[int, int]]]) -> None:
    n, edges = graph
    assert _run(connect("duckdb://"), n, edges) == _oracle(n, edges)


def test_a_long_chain_settles() -> None:
    # A path of 300 nodes given in the worst order for label propagation.
    edges = [(i, i + 1) for i in reversed(range(299))]
    assert _run(connect("duckdb://"), 300, edges) == _oracle(300, edges)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    backend = connect(SPARK_URL)
    yield backend


@pytest.mark.spark
@pytest.mark.slow
def test_components_on_spark_match_networkx(spark: Any) -> None:
    import random

    rnd = random.Random(7)
    edges = [(rnd.randrange(60), rnd.randrange(60)) for _ in range(50)]
    assert _run(spark, 60, edges) == _oracle(60, edges)


def _demo(store: Store, keys: Bootstrap, settings: Settings) -> None:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    events = list(generate_n_events(1500, seed=3, start=start, days=20))
    process(store, keys, settings.resolved_lake_url(), events, batch=400)


def test_incremental_equals_batch_on_generated_events(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    _demo(store, keys, settings)
    with store.read() as conn:
        rules = get_rules(conn, business_id=keys.business_id)
        report = check_graph(
            conn, business_id=keys.business_id, rules=rules, engine_url="duckdb://"
        )
    assert report.profiles > 10
    assert report.edges > 0
    assert report.components == report.profiles
    assert report.consistent, (report.mismatched[:3], report.violations[:3])


@pytest.mark.spark
@pytest.mark.slow
def test_incremental_equals_batch_on_spark(
    store: Store, keys: Bootstrap, settings: Settings, spark: Any
) -> None:
    _demo(store, keys, settings)
    with store.read() as conn:
        rules = get_rules(conn, business_id=keys.business_id)
        report = check_graph(conn, business_id=keys.business_id, rules=rules, engine_url=SPARK_URL)
    assert report.components == report.profiles > 10
    assert report.consistent
