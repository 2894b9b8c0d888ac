"""Identity benchmark: batch components on the engine, and incremental resolution speed.

1. Batch: a graph shaped like the demo's people (per profile one user id, one email and
   one anonymous id, joined by two edges: 3 identifiers per profile), with --profiles
   profiles, through `accord.identity.batch.components` on DuckDB (and Spark with
   --spark). Checks that the number of components equals the number of profiles.
2. Incremental: --events demo events (accord.demo.generator) stored in a throwaway SQLite
   state store and processed by the worker (identity graph, profiles, lake): events/s.

Prints the median of --runs as markdown. Usage:
    .venv/bin/python bench/identity.py [--quick] [--profiles 1000000] [--events 20000]
        [--runs 3] [--spark]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from accord.accounts.models import SourceRef
from accord.accounts.service import bootstrap
from accord.collect.consent_gate import KeepEverything
from accord.collect.service import append
from accord.collect.worker import drain
from accord.core.clock import utcnow
from accord.demo.generator import generate_n_events
from accord.engine.connection import connect
from accord.identity.batch import components
from accord.store.db import open_store
from accord.store.migrate import upgrade


def graph(profiles: int) -> tuple[pa.Table, pa.Table]:
    ids = pa.array(range(profiles), pa.int64())
    text = pc.cast(ids, pa.string())

    def named(prefix: str) -> pa.Array:
        return pc.binary_join_element_wise(prefix, text, "")

    users, emails, anons = named("user_id\x1fu"), named("email\x1fe"), named("anonymous_id\x1fa")
    nodes = pa.table({"node": pa.concat_arrays([users, emails, anons])})
    edges = pa.table(
        {"src": pa.concat_arrays([users, users]), "dst": pa.concat_arrays([emails, anons])}
    )
    return nodes, edges


def time_batch(engine_url: str, profiles: int) -> float:
    nodes, edges = graph(profiles)
    backend = connect(engine_url)
    started = time.perf_counter()
    labels = components(backend, nodes, edges)
    elapsed = time.perf_counter() - started
    assert len(set(labels.values())) == profiles, "wrong number of components"
    return elapsed


def time_incremental(events: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'state.db'}"
        upgrade(url)
        store = open_store(url, sqlite_synchronous="NORMAL")
        keys = bootstrap(store, name="Bench")
        start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        demo = list(generate_n_events(events, seed=1, start=start - timedelta(days=30), days=30))
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
        done = drain(
            store, lake_url=str(Path(folder) / "lake"), batch_size=5000, lease=timedelta(60)
        )
        elapsed = time.perf_counter() - started
        store.dispose()
        assert done == events
        return events / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k profiles, 2k events, 1 run")
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--spark", action="store_true", help="Also time the batch on Spark")
    args = parser.parse_args()
    if args.quick:
        args.profiles, args.events, args.runs = 10_000, 2_000, 1
    engines = ["duckdb://"] + (["pyspark://local[2]"] if args.spark else [])
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    print("| measure | engine | size | median | runs |")
    print("|---|---|---|---|---|")
    for engine in engines:
        runs = [time_batch(engine, args.profiles) for _ in range(args.runs)]
        print(
            f"| batch components | {engine} | {args.profiles:,} profiles / "
            f"{3 * args.profiles:,} identifiers | {statistics.median(runs):.1f} s | "
            f"{', '.join(f'{r:.1f}' for r in runs)} |"
        )
    rates = [time_incremental(args.events) for _ in range(args.runs)]
    print(
        f"| incremental worker | SQLite | {args.events:,} demo events | "
        f"{statistics.median(rates):,.0f} events/s | {', '.join(f'{r:,.0f}' for r in rates)} |"
    )


if __name__ == "__main__":
    main()
