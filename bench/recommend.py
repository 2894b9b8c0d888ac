"""Recommendations benchmark: quality and training time of each model on one
leave-last-purchase-out split, `implicit` ALS beside them, and serving latency.

1. Reads a data folder holding `lake/` (Parquet events of business `biz_bench`) and
   `identifiers.parquet` (kind, value, profile_id), as bench/audiences.py builds it; with
   --events N and no such folder, builds one of N demo events there first.
2. On the engine (DuckDB, or Spark with --engine pyspark://local[2]): interactions,
   then hit rate@10, NDCG@10 and training seconds of popularity, co-occurrence, ALS as
   served (product neighbours from its factors) and ALS ranked natively with `implicit`
   (and Spark MLlib on Spark), all on the same split.
3. Writes the serving tables to a fresh SQLite state store (every profile allowed
   personalisation) and times `serving.recommend` for random profiles: p50 / p99 over
   --requests calls, in process.

Usage: .venv/bin/python bench/recommend.py DATA_DIR [--events 10000000]
       [--engine duckdb://] [--requests 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.audiences import BUSINESS, DAYS, START, build

from accord.accounts.service import bootstrap
from accord.consent import config
from accord.consent.models import PropertyIn
from accord.consent.service import record_consent
from accord.engine.connection import connect, is_spark
from accord.engine.lake import events as lake_events
from accord.engine.tables import register
from accord.recommend import cooccurrence
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


def serving_latency(backend: Any, rows: Any, requests: int) -> dict[str, Any]:
    every = strengths(backend, rows, now=NOW, half_life_days=30)
    related = neighbours_from(cooccurrence.neighbours(backend, every), backend)
    popular = popular_from(cooccurrence.popular(backend, every), backend)
    history = backend.to_pyarrow(
        every.select("profile_id", "product_id", "strength", "bought", "last_seen")
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/state.db"
        upgrade(url)
        store = open_store(url)
        keys = bootstrap(store, name="Bench")
        business = keys.business_id
        data = history.to_pydict()
        people = sorted(set(data["profile_id"]))
        with store.write() as conn:
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
            for start in range(0, len(batch), 50_000):
                conn.execute(insert(recommendation_histories), batch[start : start + 50_000])
            config.create_property(
                conn, business_id=business, spec=PropertyIn(key="web", name="Web")
            )
        rng = random.Random(5)
        sample = [rng.choice(people) for _ in range(requests)]
        with store.write() as conn:
            # The latency includes the ledger read: each sampled person granted consent.
            for person in sorted(set(sample)):
                record_consent(
                    conn,
                    business_id=business,
                    property_key="web",
                    purposes={"preferences": True},
                    source="api",
                    anonymous_id=person,
                )
        seconds = []
        for person in sample:
            started = time.perf_counter()
            with store.read() as conn:
                recommend(
                    conn, business_id=business, profile_id=person, anonymous_id=person, limit=10
                )
            seconds.append(time.perf_counter() - started)
        store.dispose()
    seconds.sort()
    p50 = statistics.median(seconds) * 1000
    p99 = seconds[int(len(seconds) * 0.99) - 1] * 1000
    print(f"serving: p50 {p50:.2f} ms, p99 {p99:.2f} ms over {requests} calls", flush=True)
    return {"requests": requests, "p50_ms": round(p50, 3), "p99_ms": round(p99, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder with lake/ and identifiers.parquet")
    parser.add_argument("--events", type=int, default=0, help="build N demo events if absent")
    parser.add_argument("--engine", default="duckdb://")
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    if not (args.data / "identifiers.parquet").exists():
        if not args.events:
            parser.error(f"{args.data} holds no data set; give --events N to build one")
        args.data.mkdir(parents=True, exist_ok=True)
        print(f"building {args.events} demo events in {args.data}", flush=True)
        print(build(args.data, args.events), flush=True)
    backend = connect(args.engine)
    found, rows, _ = quality(backend, args.data)
    # The profile ids of the data set are anonymous ids here: one per browser.
    latency = serving_latency(backend, rows, args.requests)
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
