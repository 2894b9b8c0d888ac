"""Audience benchmark: typical audiences over the whole base on DuckDB and Spark, and the
cost real-time evaluation adds to each processed event.

1. Takes the shared data set of --events demo events (bench/dataset.py: built once in
   parallel, cached under bench/results/data/): the lake, one file per day, and the
   profiles and identifiers the worker would link them to (one profile per browser;
   a userId joins the browser's profile that first sent it; identify traits latest-wins).
2. Times the compiled expression of each typical audience (the predefined ones and a few
   written for the demo shop) on DuckDB and, unless --no-spark, on local Spark: the
   median of --runs runs of computing the member ids.
3. Real time, in memory: the in-memory evaluator deciding every real-time audience for
   the profile of each of a sample of events, given that profile's events.
4. Real time, end to end: events through the inbox worker on SQLite with and without the
   predefined audiences; the difference per event is what real-time evaluation adds.

Usage: .venv/bin/python bench/audiences.py [--events 10000000] [--runs 3] [--no-spark]
                                          [--no-realtime] [--processes N]
       .venv/bin/python bench/audiences.py --quick
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
from typing import Any

import orjson
import pyarrow.parquet as pq
from dataset import TRAITS, Built, ensure

from accord.accounts.models import SourceRef
from accord.accounts.service import bootstrap
from accord.audiences import definitions
from accord.audiences.compile import (
    CONSENT_SCHEMA,
    EVERY_EVENT,
    MEMBERSHIP_SCHEMA,
    EventNeeds,
    business_events,
    event_needs,
    members,
    tables_on,
)
from accord.audiences.conditions import Catalog, Definition
from accord.audiences.evaluate import ProfileFacts, event_facts, matches
from accord.audiences.predefined import PREDEFINED
from accord.audiences.text import parse
from accord.collect.consent_gate import KeepEverything
from accord.collect.service import append
from accord.core.clock import utcnow
from accord.demo.generator import generate_n_events
from accord.engine.connection import close, connect
from accord.engine.lake import events
from accord.lake.schema import lake_row
from accord.process.worker import drain
from accord.store.db import open_store
from accord.store.migrate import upgrade

RESULTS = Path(__file__).resolve().parent / "results"

EXTRA = {
    "jacket-fans": 'did "Product Viewed" where category = "jackets" at least 3 times '
    "in the last 30 days",
    "big-spenders-not-recent": 'did "Order Completed" where revenue >= 150 '
    'and did not "Order Completed" in the last 14 days',
    "german-newsletter": 'trait locale = "de-DE" or did "Signed Up" in the last 60 days',
    # The grown language: a path into the events' JSON, and aggregates.
    "cash-in-store": 'did "Order Completed" where properties.payment_method = "cash", '
    "properties.store_id exists in the last 30 days",
    "big-baskets": 'did "Order Completed" with average of revenue >= 100 in the last 30 days',
    "shipping-payers": 'did "Order Completed" with sum of properties.shipping > 10 '
    "in the last 30 days",
}


def typical() -> dict[str, Definition]:
    out = {item.slug: parse(item.text) for item in PREDEFINED}
    out.update({slug: parse(text) for slug, text in EXTRA.items()})
    return out


def read_events(backend: Any, data: Built, needs: EventNeeds) -> tuple[Any, float, float]:
    """The business's events on the engine as a refresh reads them; wall and CPU seconds
    (CPU of this process: DuckDB's threads, not Spark's executors)."""
    wall, cpu = time.perf_counter(), time.process_time()
    lake = events(backend, str(data.lake), business_id=data.business_id)
    prepared = business_events(backend, lake, data.business_id, needs)
    return prepared, time.perf_counter() - wall, time.process_time() - cpu


def time_engine(backend: Any, data: Built, runs: int, now: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {}
    definitions = typical()
    # Before: every named event with every column conditions can read.
    reads = [read_events(backend, data, EVERY_EVENT)[1:] for _ in range(runs)]
    out["read_every_column_s"] = statistics.median(w for w, _ in reads)
    out["read_every_column_cpu_s"] = statistics.median(c for _, c in reads)
    # Now: the events and columns the refreshed definitions name.
    needs = event_needs(definitions.values())
    reads = []
    for _ in range(runs):
        prepared, wall, cpu = read_events(backend, data, needs)
        reads.append((wall, cpu))
    out["read_s"] = statistics.median(w for w, _ in reads)
    out["read_cpu_s"] = statistics.median(c for _, c in reads)
    out["read_columns"] = list(needs.columns)
    tables = tables_on(
        backend,
        profiles=pq.read_table(data.profiles),
        events=prepared,
        identifiers=pq.read_table(data.identifiers),
        consents=CONSENT_SCHEMA.empty_table(),
        memberships=MEMBERSHIP_SCHEMA.empty_table(),
    )
    print(
        f"  reading the lake once per refresh: every column {out['read_every_column_s']:.2f} s "
        f"(CPU {out['read_every_column_cpu_s']:.2f} s), the needed ones {out['read_s']:.2f} s "
        f"(CPU {out['read_cpu_s']:.2f} s)",
        flush=True,
    )
    catalog = Catalog(traits=TRAITS)
    for slug, definition in definitions.items():
        expression = members(definition, tables=tables, catalog=catalog, now=now)
        seconds = []
        cpu_seconds = []
        size = 0
        for _ in range(runs):
            started, cpu = time.perf_counter(), time.process_time()
            size = backend.to_pyarrow(expression).num_rows
            seconds.append(time.perf_counter() - started)
            cpu_seconds.append(time.process_time() - cpu)
        out[slug] = {
            "size": size,
            "median_s": statistics.median(seconds),
            "runs_s": seconds,
            "median_cpu_s": statistics.median(cpu_seconds),
        }
        print(
            f"  {slug:28} {size:>9} members  {statistics.median(seconds):7.3f} s "
            f"(CPU {statistics.median(cpu_seconds):.3f} s)",
            flush=True,
        )
    return out


def realtime_in_memory(n_events: int, now: datetime) -> dict[str, Any]:
    """Decide every real-time audience for the profile of each event, from its history."""
    live = {s: d for s, d in typical().items() if definitions.is_realtime(d)}
    catalog = Catalog(traits=TRAITS)
    histories: dict[str, list[Any]] = {}
    stream = list(generate_n_events(n_events, start=now - timedelta(days=30), days=30))
    for event in stream:
        key = event.get("userId") or event.get("anonymousId") or ""
        histories.setdefault(key, []).append(event_facts(lake_row(0, "", event)))
    started = time.perf_counter()
    decisions = 0
    for event in stream:
        key = event.get("userId") or event.get("anonymousId") or ""
        facts = ProfileFacts(
            profile_id=key,
            traits=event.get("traits") or {},
            first_seen=now - timedelta(days=20),
            last_seen=now,
            events=histories[key],
        )
        for definition in live.values():
            matches(definition, facts, catalog=catalog, now=now)
            decisions += 1
    elapsed = time.perf_counter() - started
    mean_history = statistics.mean(len(h) for h in histories.values())
    return {
        "events": len(stream),
        "realtime_audiences": len(live),
        "mean_events_per_profile": round(mean_history, 1),
        "ms_per_event": 1000 * elapsed / len(stream),
    }


def realtime_end_to_end(n_events: int, runs: int) -> dict[str, Any]:
    """Worker time per event on SQLite, without and with the predefined audiences."""
    results: dict[str, list[float]] = {"without": [], "with": []}
    for run in range(runs):
        for mode in ("without", "with"):
            with tempfile.TemporaryDirectory() as folder:
                url = f"sqlite:///{folder}/state.db"
                upgrade(url)
                store = open_store(url, sqlite_synchronous="NORMAL")
                keys = bootstrap(store, name="Bench")
                if mode == "with":
                    with store.write() as conn:
                        definitions.ensure_predefined(conn, business_id=keys.business_id)
                now = utcnow()
                start = now - timedelta(days=7)
                stream = list(generate_n_events(n_events, seed=run, start=start, days=7))
                source = SourceRef(business_id=keys.business_id, source_id=keys.source_id)
                append(store, source=source, events=stream, gate=KeepEverything(), received_at=now)
                started = time.perf_counter()
                drain(store, lake_url=f"{folder}/lake", batch_size=5000, lease=timedelta(minutes=5))
                results[mode].append((time.perf_counter() - started) / n_events)
                store.dispose()
    without = statistics.median(results["without"])
    with_ = statistics.median(results["with"])
    return {
        "events": n_events,
        "worker_ms_per_event_without": 1000 * without,
        "worker_ms_per_event_with": 1000 * with_,
        "added_ms_per_event": 1000 * (with_ - without),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-spark", action="store_true")
    parser.add_argument("--processes", type=int, help="to build the data set (default: cores)")
    parser.add_argument("--no-realtime", action="store_true", help="the engine figures only")
    parser.add_argument("--quick", action="store_true", help="200k events, 1 run, small real-time")
    args = parser.parse_args()
    if args.quick:
        args.events, args.runs = 200_000, 1
    realtime_events = 2_000 if args.quick else 20_000
    print(f"the data set of {args.events} events (built once, cached)", flush=True)
    data = ensure(events=args.events, processes=args.processes)
    print(f"  {data.folder}: {data.info}", flush=True)
    now = data.now
    report: dict[str, Any] = {
        "dataset": data.info,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average": os.getloadavg(),
        },
        "runs": args.runs,
    }
    print("DuckDB", flush=True)
    report["duckdb"] = time_engine(connect("duckdb://"), data, args.runs, now)
    if not args.no_spark:
        print("Spark local[2]", flush=True)
        spark = connect("pyspark://local[2]")
        report["spark"] = time_engine(spark, data, args.runs, now)
        close(spark)
    if not args.no_realtime:
        print("real time, in memory", flush=True)
        report["realtime_in_memory"] = realtime_in_memory(realtime_events, now)
        print(f"  {report['realtime_in_memory']}", flush=True)
        print("real time, through the worker on SQLite", flush=True)
        report["realtime_worker"] = realtime_end_to_end(realtime_events, args.runs)
        print(f"  {report['realtime_worker']}", flush=True)
    report["machine"]["load_average_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"audiences-{stamp}.json"
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
