"""Recommendations benchmark: quality and training time of each model on one
leave-last-purchase-out split, `implicit` ALS beside them, and serving latency.

1. Reads a data folder holding `lake/` (Parquet events of business `biz_bench`) and
   `identifiers.parquet` (kind, value, profile_id), as bench/dataset.py builds it; with
   --events N and no such folder, builds one of N demo events there first.
2. On the engine (DuckDB, or Spark with --engine pyspark://local[2]): interactions,
   then hit rate@10, NDCG@10 and training seconds of popularity, co-occurrence, ALS as
   served (product neighbours from its factors) and ALS ranked natively with `implicit`
   (and Spark MLlib on Spark), all on the same split.
3. Writes the serving tables to a fresh SQLite state store (every profile allowed
   personalisation, known by its anonymousId; a catalogue with every tenth product out
   of stock) and times `serving.recommend` for random people, every other call with a
   product context: p50 / p99 over --requests calls, in process.
4. Serves that store with `accord serve` and calls `GET /v1/recommendations` open loop
   at --rate calls/s for --duration s: p50 / p99 from each call's due time.

Usage: .venv/bin/python bench/recommend.py DATA_DIR [--events 10000000]
       [--engine duckdb://] [--requests 5000] [--rate 200] [--duration 20]
       [--serving-only] [--keep-store NEW_DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import ingest
from bench.dataset import BUSINESS, DAYS, START, ensure

from accord.accounts.service import bootstrap
from accord.consent import config
from accord.consent.models import PropertyIn
from accord.consent.service import record_consent
from accord.engine.connection import connect, is_spark
from accord.engine.lake import events as lake_events
from accord.engine.tables import register
from accord.profiles.models import profile_identifiers, profiles
from accord.recommend import cooccurrence
from accord.recommend.catalogue import Product, upsert
from accord.recommend.evaluate import (
    TrainSettings,
    evaluate,
    neighbours_from,
    popular_from,
)
from accord.recommend.interactions import interactions, strengths
from accord.recommend.models import (
    recommendation_histories,
    recommendation_neighbours,
    recommendation_popular,
)
from accord.recommend.serving import recommend
from accord.store.db import open_store
from accord.store.migrate import upgrade

NOW = START + timedelta(days=DAYS)


def quality(backend: Any, folder: Path) -> tuple[dict[str, Any], Any, Any]:
    started = time.perf_counter()
    ids = register(backend, pq.read_table(folder / "identifiers.parquet"))
    rows = interactions(
        backend, lake_events(backend, str(folder / "lake"), business_id=BUSINESS), ids
    )
    count = backend.to_pyarrow(rows.count()).as_py()
    prepare = time.perf_counter() - started
    print(f"interactions: {count} ({prepare:.1f} s)", flush=True)
    native = ("implicit", "spark") if is_spark(backend) else ("implicit",)
    found = evaluate(backend, rows, now=NOW, settings=TrainSettings(), native_als=native)
    out = {
        "interactions": count,
        "prepare_s": round(prepare, 2),
        "held_out_people": found.held_out_people,
        "cold_people": found.cold_people,
        "models": [q.as_dict() for q in found.qualities],
    }
    for q in found.qualities:
        print(
            f"  {q.model:22} {q.library:12} HR@10 {q.hit_rate:.3f}  NDCG@10 {q.ndcg:.3f}"
            f"  train {q.training_seconds:8.2f} s  ({q.people} people)",
            flush=True,
        )
    return out, rows, ids


def serving_latency(
    backend: Any, rows: Any, requests: int, rate: float, duration: float, keep: Path | None
) -> dict[str, Any]:
    every = strengths(backend, rows, now=NOW, half_life_days=30)
    related = neighbours_from(cooccurrence.neighbours(backend, every), backend)
    popular = popular_from(cooccurrence.popular(backend, every), backend)
    history = backend.to_pyarrow(
        every.select("profile_id", "product_id", "strength", "bought", "last_seen")
    )
    with contextlib.ExitStack() as stack:
        if keep is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
        else:
            keep.mkdir(parents=True)
            tmp = str(keep)
        url = f"sqlite:///{tmp}/accord.db"  # the data folder's store, for `accord serve`
        upgrade(url)
        store = open_store(url)
        keys = bootstrap(store, name="Bench")
        business = keys.business_id
        data = history.to_pydict()
        people = sorted(set(data["profile_id"]))
        catalogue = sorted(
            {*data["product_id"], *(p for p, _ in popular), *related}
            | {r for pairs in related.values() for r, _ in pairs}
        )
        with store.write() as conn:
            _serving_tables(conn, business, data, related, popular, people, catalogue)
            config.create_property(
                conn, business_id=business, spec=PropertyIn(key="web", name="Web")
            )
        rng = random.Random(5)
        # The profile ids of the data set are anonymous ids: each is asked for by its
        # anonymousId, as a widget does, and every other call is on a product's page.
        sample = [
            (rng.choice(people), rng.choice(catalogue) if i % 2 else None) for i in range(requests)
        ]
        with store.write() as conn:
            # The latency includes the ledger read: each sampled person granted consent.
            for person in sorted({person for person, _ in sample}):
                record_consent(
                    conn,
                    business_id=business,
                    property_key="web",
                    purposes={"preferences": True},
                    source="api",
                    anonymous_id=person,
                )
        load_before = os.getloadavg()
        seconds = []
        personal = 0
        for person, product in sample:
            started = time.perf_counter()
            with store.read() as conn:
                answer = recommend(
                    conn, business_id=business, anonymous_id=person, context=product, limit=10
                )
            seconds.append(time.perf_counter() - started)
            personal += answer.personalised
        store.dispose()
        seconds.sort()
        p50 = statistics.median(seconds) * 1000
        p99 = seconds[int(len(seconds) * 0.99) - 1] * 1000
        print(
            f"serving in process: p50 {p50:.2f} ms, p99 {p99:.2f} ms over {requests} calls"
            f" ({personal} personal; catalogue {len(catalogue)} products, load average"
            f" {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after)",
            flush=True,
        )
        found: dict[str, Any] = {
            "requests": requests,
            "personal": personal,
            "catalogue": len(catalogue),
            "p50_ms": round(p50, 3),
            "p99_ms": round(p99, 3),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        }
        if rate > 0 and duration > 0:
            found["http"] = http_latency(Path(tmp), keys.write_key, sample, rate, duration)
    return found


def _serving_tables(
    conn: Any,
    business: str,
    data: dict[str, list[Any]],
    related: dict[str, list[tuple[str, float]]],
    popular: list[tuple[str, float]],
    people: list[str],
    catalogue: list[str],
) -> None:
    """The serving tables as training writes them, a catalogue with every tenth product
    out of stock, and one profile per person known by its anonymousId."""
    conn.execute(
        insert(recommendation_neighbours),
        [
            {"business_id": business, "product_id": p, "related_id": r, "score": s}
            for p, pairs in related.items()
            for r, s in pairs
        ],
    )
    conn.execute(
        insert(recommendation_popular),
        [{"business_id": business, "product_id": p, "score": s} for p, s in popular],
    )
    batch = [
        {
            "business_id": business,
            "profile_id": person,
            "product_id": product,
            "strength": strength,
            "bought": bool(bought),
            "last_seen_at": seen,
        }
        for person, product, strength, bought, seen in zip(
            data["profile_id"],
            data["product_id"],
            data["strength"],
            data["bought"],
            data["last_seen"],
            strict=True,
        )
    ]
    upsert(
        conn,
        business_id=business,
        items=[
            Product(product_id=p, name=f"Product {p}", in_stock=i % 10 != 7)
            for i, p in enumerate(catalogue)
        ],
    )
    for table, rows in (
        (
            profiles,
            [
                {
                    "id": person,
                    "business_id": business,
                    "traits": "{}",
                    "trait_times": "{}",
                    "first_seen": NOW,
                    "last_seen": NOW,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for person in people
            ],
        ),
        (
            profile_identifiers,
            [
                {
                    "business_id": business,
                    "kind": "anonymous_id",
                    "value": person,
                    "profile_id": person,
                    "first_seen": NOW,
                }
                for person in people
            ],
        ),
        (recommendation_histories, batch),
    ):
        for start in range(0, len(rows), 50_000):
            conn.execute(insert(table), rows[start : start + 50_000])


def http_latency(
    data_dir: Path,
    write_key: str,
    sample: list[tuple[str, str | None]],
    rate: float,
    duration: float,
    senders: int = 16,
) -> dict[str, Any]:
    """`GET /v1/recommendations` through `accord serve` (one process, no worker) on the
    same store, open loop as bench/ingest.py's single calls: call i is due at
    t0 + i/rate and its latency is counted from then, so queueing shows."""
    paths = []
    for person, product in sample:
        query = {"anonymousId": person, "limit": "10"} | (
            {"context": f"product:{product}"} if product else {}
        )
        paths.append("/v1/recommendations?" + urllib.parse.urlencode(query))
    total = min(len(paths), int(rate * duration))
    env = ingest._base_env() | {"ACCORD_DATA_DIR": str(data_dir)}
    target = ingest.Target("sqlite", False, 1, env, None, data_dir, write_key)
    headers = ingest._headers(write_key)
    with ingest.server(target) as srv:
        warm = http.client.HTTPConnection(ingest.HOST, srv.port, timeout=30)
        for path in paths[:200]:  # warm-up: imports, pools, caches
            warm.request("GET", path, headers=headers)
            warm.getresponse().read()
        warm.close()
        load_before = os.getloadavg()
        latency = [float("nan")] * total
        status_of = [-1] * total
        lock = threading.Lock()
        next_index = 0
        t0 = time.perf_counter() + 0.2

        def sender() -> None:
            nonlocal next_index
            conn = http.client.HTTPConnection(ingest.HOST, srv.port, timeout=30)
            try:
                while True:
                    with lock:
                        i = next_index
                        next_index += 1
                    if i >= total:
                        return
                    due = t0 + i / rate
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    conn.request("GET", paths[i], headers=headers)
                    response = conn.getresponse()
                    response.read()
                    latency[i] = time.perf_counter() - due
                    status_of[i] = response.status
            finally:
                conn.close()

        threads = [threading.Thread(target=sender, daemon=True) for _ in range(senders)]
        cpu_before = srv.cpu_seconds()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        span = time.perf_counter() - t0
        cpu = srv.cpu_seconds() - cpu_before
    ok = sorted(latency[i] for i in range(total) if status_of[i] == 200)
    found = {
        "requests": total,
        "ok": len(ok),
        "target_rate": rate,
        "achieved_rate": round(len(ok) / span, 1),
        "p50_ms": round(ingest.percentile(ok, 50) * 1000, 3),
        "p90_ms": round(ingest.percentile(ok, 90) * 1000, 3),
        "p99_ms": round(ingest.percentile(ok, 99) * 1000, 3),
        "max_ms": round(ok[-1] * 1000, 3) if ok else None,
        "server_cpu_ms_per_call": round(cpu / total * 1000, 3),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    print(
        f"serving over HTTP at {rate:.0f} req/s: p50 {found['p50_ms']} ms, p99"
        f" {found['p99_ms']} ms, {len(ok)}/{total} ok, server CPU"
        f" {found['server_cpu_ms_per_call']} ms a call",
        flush=True,
    )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder with lake/ and identifiers.parquet")
    parser.add_argument("--events", type=int, default=0, help="build N demo events if absent")
    parser.add_argument("--engine", default="duckdb://")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=200.0, help="HTTP calls/s (0: none)")
    parser.add_argument("--duration", type=float, default=20.0, help="HTTP seconds")
    parser.add_argument(
        "--serving-only", action="store_true", help="skip the models' quality (step 2)"
    )
    parser.add_argument(
        "--keep-store", type=Path, help="write the served data folder here and keep it"
    )
    args = parser.parse_args()
    if not (args.data / "identifiers.parquet").exists():
        if not args.events:
            parser.error(f"{args.data} holds no data set; give --events N to build one")
        args.data.mkdir(parents=True, exist_ok=True)
        print(f"building {args.events} demo events in {args.data}", flush=True)
        print(ensure(events=args.events, folder=args.data).info, flush=True)
    backend = connect(args.engine)
    if args.serving_only:
        ids = register(backend, pq.read_table(args.data / "identifiers.parquet"))
        events = lake_events(backend, str(args.data / "lake"), business_id=BUSINESS)
        found, rows = {}, interactions(backend, events, ids)
    else:
        found, rows, _ = quality(backend, args.data)
    # The profile ids of the data set are anonymous ids here: one per browser.
    latency = serving_latency(
        backend, rows, args.requests, args.rate, args.duration, args.keep_store
    )
    result = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "engine": args.engine,
        "data": str(args.data),
        "at": datetime.now(UTC).isoformat(),
        "quality": found,
        "serving": latency,
    }
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
