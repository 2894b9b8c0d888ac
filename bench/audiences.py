"""Audience benchmark: typical audiences over the whole base on DuckDB and Spark, and the
cost real-time evaluation adds to each processed event.

1. Builds (once, cached under bench/results/data/) a lake of --events demo events and the
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
       .venv/bin/python bench/audiences.py --quick
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from accord.accounts.models import SourceRef
from accord.accounts.service import bootstrap
from accord.audiences import definitions
from accord.audiences.compile import (
    CONSENT_SCHEMA,
    IDENTIFIER_SCHEMA,
    MEMBERSHIP_SCHEMA,
    business_events,
    members,
    profiles_table,
    tables_on,
)
from accord.audiences.conditions import Catalog, Definition, reads_paths
from accord.audiences.evaluate import ProfileFacts, event_facts, matches
from accord.audiences.predefined import BUILTIN_TRAITS, PREDEFINED
from accord.audiences.text import parse
from accord.collect.consent_gate import KeepEverything
from accord.collect.service import append
from accord.core.clock import parse_instant, utcnow
from accord.demo.generator import generate_n_events
from accord.engine.connection import close, connect
from accord.engine.lake import events
from accord.lake.schema import lake_row
from accord.lake.service import write_batch
from accord.process.worker import drain
from accord.store.db import open_store
from accord.store.migrate import upgrade

BUSINESS = "biz_bench"
RESULTS = Path(__file__).resolve().parent / "results"
# Generated data sets, cached between runs (bench/results/ is git-ignored).
DATA = RESULTS / "data"
CHUNK = 250_000
START = datetime(2026, 9, 1, tzinfo=UTC)
DAYS = 60

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
TRAITS = {**BUILTIN_TRAITS, "locale": "string"}


def typical() -> dict[str, Definition]:
    out = {item.slug: parse(item.text) for item in PREDEFINED}
    out.update({slug: parse(text) for slug, text in EXTRA.items()})
    return out


def build(folder: Path, n_events: int) -> dict[str, Any]:
    """The lake, profiles and identifiers for n demo events (cached by size)."""
    done = folder / "done.json"
    if done.exists():
        return dict(json.loads(done.read_text()))
    lake = folder / "lake"
    by_browser: dict[str, str] = {}
    by_user: dict[str, str] = {}
    profiles: dict[str, dict[str, Any]] = {}
    rows: list[tuple[str, dict[str, Any]]] = []
    seq = 0
    started = time.perf_counter()
    for event in generate_n_events(n_events, start=START, days=DAYS):
        seq += 1
        anonymous, user = event.get("anonymousId"), event.get("userId")
        profile_id = (by_user.get(user) if user else None) or (
            by_browser.get(anonymous) if anonymous else None
        )
        if profile_id is None:
            profile_id = f"prof_{len(profiles)}"
            profiles[profile_id] = {"traits": {}, "first": event["timestamp"], "last": None}
        if anonymous:
            by_browser.setdefault(anonymous, profile_id)
        if user:
            by_user.setdefault(user, profile_id)
        profile = profiles[profile_id]
        profile["first"] = min(profile["first"], event["timestamp"])
        profile["last"] = max(profile["last"] or event["timestamp"], event["timestamp"])
        if event["type"] == "identify" and isinstance(event.get("traits"), dict):
            profile["traits"].update(event["traits"])
        locale = (event.get("context") or {}).get("locale")
        if locale and "locale" not in profile["traits"]:
            profile["traits"]["locale"] = locale
        rows.append((BUSINESS, lake_row(seq, "src_bench", event)))
        if len(rows) >= CHUNK:
            write_batch(str(lake), batch_id=f"bat_{seq}", rows=rows)
            rows = []
    if rows:
        write_batch(str(lake), batch_id=f"bat_{seq}", rows=rows)
    pq.write_table(
        profiles_table(
            (
                (pid, p["traits"], parse_instant(p["first"]), parse_instant(p["last"]))
                for pid, p in profiles.items()
            ),
            TRAITS,
        ),
        folder / "profiles.parquet",
    )
    identifiers = [("anonymous_id", a, p) for a, p in by_browser.items()]
    identifiers += [("user_id", u, p) for u, p in by_user.items()]
    pq.write_table(
        pa.Table.from_pydict(
            {
                "kind": [k for k, _, _ in identifiers],
                "value": [v for _, v, _ in identifiers],
                "profile_id": [p for _, _, p in identifiers],
            },
            schema=IDENTIFIER_SCHEMA,
        ),
        folder / "identifiers.parquet",
    )
    info = {
        "events": seq,
        "profiles": len(profiles),
        "identifiers": len(identifiers),
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    done.write_text(json.dumps(info))
    return info


def time_engine(backend: Any, folder: Path, runs: int, now: datetime) -> dict[str, Any]:
    started = time.perf_counter()
    paths = any(reads_paths(d) for d in typical().values())
    prepared = business_events(
        backend, events(backend, str(folder / "lake")), BUSINESS, documents=paths
    )
    tables = tables_on(
        backend,
        profiles=pq.read_table(folder / "profiles.parquet"),
        events=prepared,
        identifiers=pq.read_table(folder / "identifiers.parquet"),
        consents=CONSENT_SCHEMA.empty_table(),
        memberships=MEMBERSHIP_SCHEMA.empty_table(),
    )
    prepare = time.perf_counter() - started
    print(f"  reading the lake once per refresh: {prepare:.3f} s", flush=True)
    catalog = Catalog(traits=TRAITS)
    out: dict[str, Any] = {"prepare_s": prepare}
    for slug, definition in typical().items():
        expression = members(definition, tables=tables, catalog=catalog, now=now)
        seconds = []
        size = 0
        for _ in range(runs):
            started = time.perf_counter()
            size = backend.to_pyarrow(expression).num_rows
            seconds.append(time.perf_counter() - started)
        out[slug] = {"size": size, "median_s": statistics.median(seconds), "runs_s": seconds}
        print(f"  {slug:28} {size:>9} members  {statistics.median(seconds):7.3f} s", flush=True)
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
    parser.add_argument("--quick", action="store_true", help="200k events, 1 run, small real-time")
    args = parser.parse_args()
    if args.quick:
        args.events, args.runs = 200_000, 1
    realtime_events = 2_000 if args.quick else 20_000
    folder = DATA / f"audiences-{args.events}"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"building {args.events} events in {folder} (cached)", flush=True)
    dataset = build(folder, args.events)
    print(f"  {dataset}", flush=True)
    now = START + timedelta(days=DAYS)
    report: dict[str, Any] = {
        "dataset": dataset,
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "runs": args.runs,
    }
    print("DuckDB", flush=True)
    report["duckdb"] = time_engine(connect("duckdb://"), folder, args.runs, now)
    if not args.no_spark:
        print("Spark local[2]", flush=True)
        spark = connect("pyspark://local[2]")
        report["spark"] = time_engine(spark, folder, args.runs, now)
        close(spark)
    print("real time, in memory", flush=True)
    report["realtime_in_memory"] = realtime_in_memory(realtime_events, now)
    print(f"  {report['realtime_in_memory']}", flush=True)
    print("real time, through the worker on SQLite", flush=True)
    report["realtime_worker"] = realtime_end_to_end(realtime_events, args.runs)
    print(f"  {report['realtime_worker']}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"audiences-{stamp}.json"
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
