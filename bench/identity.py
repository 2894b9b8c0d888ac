"""Identity benchmark: batch rebuild of the graph on the engine, and incremental throughput.

1. Batch rebuild: connected components (`accord.identity.batch.components`) of a graph of
   --profiles profiles on DuckDB, and on Spark (local[2]) with --spark-runs N > 0.
   --graph demo (default) builds it from demo-generator people: --sample-visitors
   visitors are generated (accord.demo.generator), their events linked as the worker
   links them (each event's most trusted identifier to each other one) and split into
   people (components). Generating 1M people event by event would take longer than the
   rebuild itself, so the sample is replicated and re-keyed (each copy's values get a
   `~<copy>` suffix, so copies never join) until there are --profiles people. Known
   people (several identifiers) and anonymous visitors (one) are mixed so a profile
   holds --ids-per-profile identifiers on average: 1M profiles / 3M identifiers by
   default, the size issue 4 asks for. --graph synthetic is the older fixed shape (each
   profile: user id, email, anonymous id, two edges). The check: components == profiles.
2. Incremental: --events demo events stored in a throwaway state store (SQLite, and
   PostgreSQL too with --postgres) and processed by the worker (`drain`: identity graph,
   profiles, real-time audiences, journey triggers, lake): events/s, wall clock.

Prints the median of --runs runs as markdown. Usage:
    .venv/bin/python bench/identity.py [--quick] [--profiles 1000000] [--events 20000]
        [--runs 3] [--spark-runs 1] [--graph demo|synthetic] [--ids-per-profile 3]
        [--sample-visitors 5000] [--no-batch] [--no-incremental] [--postgres]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from accord.accounts.models import SourceRef
from accord.accounts.service import bootstrap
from accord.collect.consent_gate import KeepEverything
from accord.collect.service import append
from accord.core.clock import utcnow
from accord.demo.generator import DemoConfig, generate_events, generate_n_events
from accord.engine.connection import connect
from accord.identity.batch import components, node_id
from accord.identity.graph import alias_candidates
from accord.identity.rules import IdentityRules, identifiers_of
from accord.process.worker import drain
from accord.store.db import open_store
from accord.store.migrate import upgrade

PG_ADMIN = os.environ.get("ACCORD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class Graph:
    nodes: pa.Table
    edges: pa.Table
    profiles: int

    @property
    def identifiers(self) -> int:
        return self.nodes.num_rows


def synthetic_graph(profiles: int) -> Graph:
    """Per profile a user id, an email and an anonymous id, joined by two edges."""
    ids = pa.array(range(profiles), pa.int64())
    text = pc.cast(ids, pa.string())

    def named(prefix: str) -> pa.Array:
        return pc.binary_join_element_wise(prefix, text, "")

    users, emails, anons = named("user_id\x1fu"), named("email\x1fe"), named("anonymous_id\x1fa")
    return Graph(
        nodes=pa.table({"node": pa.concat_arrays([users, emails, anons])}),
        edges=pa.table(
            {"src": pa.concat_arrays([users, users]), "dst": pa.concat_arrays([emails, anons])}
        ),
        profiles=profiles,
    )


@dataclass(frozen=True)
class People:
    """Demo people as templates: each one's identifiers and edges, in flat arrays."""

    nodes: pa.Array  # node ids, grouped by person
    node_offsets: np.ndarray  # person i's nodes are nodes[offsets[i]:offsets[i + 1]]
    src: pa.Array  # edges, grouped by person
    dst: pa.Array
    edge_offsets: np.ndarray


def demo_people(visitors: int, seed: int) -> People:
    """Link the demo events of `visitors` visitors as the worker would, and split them."""
    rules = IdentityRules()
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    edges: set[tuple[str, str]] = set()
    for event in generate_events(DemoConfig(seed=seed, visitors=visitors)):
        keys = identifiers_of(event, rules)
        # An alias names the previous id; the worker prefers a known user id, and an
        # anonymous id otherwise, which is what a first alias resolves to.
        keys += [k for k in alias_candidates(event, rules) if k[0] == "anonymous_id"]
        named = [node_id(kind, value) for kind, value in keys]
        for node in named:
            parent.setdefault(node, node)
        for other in named[1:]:
            edges.add((named[0], other))
            a, b = find(named[0]), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    members: dict[str, list[str]] = {}
    for node in sorted(parent):
        members.setdefault(find(node), []).append(node)
    links: dict[str, list[tuple[str, str]]] = {root: [] for root in members}
    for src, dst in sorted(edges):
        links[find(src)].append((src, dst))
    roots = sorted(members)
    return People(
        nodes=pa.array([n for r in roots for n in members[r]], pa.string()),
        node_offsets=np.cumsum([0] + [len(members[r]) for r in roots]),
        src=pa.array([s for r in roots for s, _ in links[r]], pa.string()),
        dst=pa.array([d for r in roots for _, d in links[r]], pa.string()),
        edge_offsets=np.cumsum([0] + [len(links[r]) for r in roots]),
    )


def _explode(offsets: np.ndarray, templates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers of the templates' rows, and for each row which template copy it is."""
    counts = (offsets[1:] - offsets[:-1])[templates]
    starts = np.repeat(offsets[:-1][templates], counts)
    within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return starts + within, np.repeat(np.arange(len(templates)), counts)


def demo_graph(profiles: int, ids_per_profile: float, people: People) -> Graph:
    """`profiles` re-keyed copies of demo people, about `ids_per_profile` identifiers each."""
    if ids_per_profile < 1:
        raise ValueError("a profile holds at least one identifier: --ids-per-profile >= 1")
    sizes = people.node_offsets[1:] - people.node_offsets[:-1]
    known = np.flatnonzero(sizes > 1)
    anonymous = np.flatnonzero(sizes == 1)
    if len(known) == 0 or len(anonymous) == 0:
        raise ValueError("the demo sample is too small: use more --sample-visitors")
    # The share of known people that gives the asked mean (anonymous people hold one).
    share = min(max((ids_per_profile - 1) / (float(sizes[known].mean()) - 1), 0.0), 1.0)
    slots = np.arange(profiles)
    is_known = np.floor((slots + 1) * share) > np.floor(slots * share)
    rank = np.where(is_known, np.cumsum(is_known) - 1, np.cumsum(~is_known) - 1)
    pool = np.where(is_known, len(known), len(anonymous))
    templates = np.where(is_known, known[rank % len(known)], anonymous[rank % len(anonymous)])
    # A profile's copy number makes its values unique: (template, copy) never repeats.
    suffix = pc.binary_join_element_wise("~", pc.cast(pa.array(rank // pool), pa.string()), "")

    def rekey(values: pa.Array, offsets: np.ndarray) -> pa.Array:
        rows, owner = _explode(offsets, templates)
        return pc.binary_join_element_wise(values.take(rows), suffix.take(owner), "")

    return Graph(
        nodes=pa.table({"node": rekey(people.nodes, people.node_offsets)}),
        edges=pa.table(
            {
                "src": rekey(people.src, people.edge_offsets),
                "dst": rekey(people.dst, people.edge_offsets),
            }
        ),
        profiles=profiles,
    )


def time_batch(engine_url: str, graph: Graph) -> float:
    backend = connect(engine_url)
    started = time.perf_counter()
    labels = components(backend, graph.nodes, graph.edges)
    elapsed = time.perf_counter() - started
    found = len(set(labels.values()))
    assert found == graph.profiles, f"{found} components for {graph.profiles} profiles"
    return elapsed


@contextmanager
def state_store(backend: str) -> Iterator[str]:
    """A migrated throwaway state store, removed afterwards."""
    if backend == "SQLite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'state.db'}"
            upgrade(url)
            yield url
        return
    name = f"accord_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = PG_ADMIN.replace("postgresql://", "postgresql+psycopg://", 1).rsplit("/", 1)[0]
        upgrade(f"{url}/{name}")
        yield f"{url}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def time_incremental(backend: str, events: int) -> float:
    """Events per second through `drain`, from a full inbox to an empty one."""
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    demo = list(generate_n_events(events, seed=1, start=start - timedelta(days=30), days=30))
    with state_store(backend) as url, tempfile.TemporaryDirectory() as lake:
        store = open_store(url, sqlite_synchronous="NORMAL")
        keys = bootstrap(store, name="Bench")
        source = SourceRef(business_id=keys.business_id, source_id=keys.source_id)
        for i in range(0, len(demo), 2000):
            append(
                store,
                source=source,
                events=demo[i : i + 2000],
                gate=KeepEverything(),
                received_at=utcnow(),
            )
        started = time.perf_counter()
        done = drain(store, lake_url=lake, batch_size=5000, lease=timedelta(60))
        elapsed = time.perf_counter() - started
        store.dispose()
    assert done == events, f"{done} of {events} events processed"
    return events / elapsed


def _runs(values: list[float], unit: str, digits: int) -> str:
    return (
        f"{statistics.median(values):,.{digits}f} {unit} | "
        f"{', '.join(f'{v:,.{digits}f}' for v in values)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20k profiles, 2k events, 1 run")
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--graph", choices=["demo", "synthetic"], default="demo")
    parser.add_argument("--ids-per-profile", type=float, default=3.0)
    parser.add_argument("--sample-visitors", type=int, default=5_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--spark-runs", type=int, default=0, help="Spark batch runs (0: none)")
    parser.add_argument("--no-batch", action="store_true")
    parser.add_argument("--no-incremental", action="store_true")
    parser.add_argument("--postgres", action="store_true", help="Incremental on PostgreSQL too")
    args = parser.parse_args()
    if args.quick:
        args.profiles, args.events, args.runs = 20_000, 2_000, 1
        args.sample_visitors = min(args.sample_visitors, 1_000)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, load {os.getloadavg()[0]:.2f}"
    )
    print()
    print("| measure | engine | size | median | runs |")
    print("|---|---|---|---|---|")
    if not args.no_batch:
        built = time.perf_counter()
        if args.graph == "demo":
            people = demo_people(args.sample_visitors, seed=1)
            graph = demo_graph(args.profiles, args.ids_per_profile, people)
            shape = f"demo people ({args.sample_visitors:,} visitors re-keyed)"
        else:
            graph = synthetic_graph(args.profiles)
            shape = "synthetic"
        built = time.perf_counter() - built
        size = (
            f"{graph.profiles:,} profiles / {graph.identifiers:,} identifiers / "
            f"{graph.edges.num_rows:,} edges, {shape}, built in {built:.1f} s"
        )
        engines = [("duckdb://", args.runs), ("pyspark://local[2]", args.spark_runs)]
        for engine, runs in engines:
            if runs > 0:
                times = [time_batch(engine, graph) for _ in range(runs)]
                print(f"| batch rebuild | {engine} | {size} | {_runs(times, 's', 1)} |")
    if not args.no_incremental:
        for backend in ["SQLite"] + (["PostgreSQL"] if args.postgres else []):
            rates = [time_incremental(backend, args.events) for _ in range(args.runs)]
            print(
                f"| incremental worker | {backend} | {args.events:,} demo events | "
                f"{_runs(rates, 'events/s', 0)} |"
            )


if __name__ == "__main__":
    main()
