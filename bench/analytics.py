"""Analytics benchmark: a 4-step funnel, a 12-week retention and a paths query over demo
events, on DuckDB and (unless --no-spark) Spark local[2].

The data set is the shared one of bench/dataset.py (`--events N`: built once and cached
under bench/results/data/, see docs/benchmarks.md), or `--data FOLDER`, any folder holding
`lake/` (the event lake, one business) and `identifiers.parquet` (kind, value,
profile_id). Each report is timed as the median of --runs runs of the whole report
(linking events to profiles included).

Usage: .venv/bin/python bench/analytics.py --events 10000000 [--runs 3] [--no-spark]
       .venv/bin/python bench/analytics.py --data bench/results/data/big --business biz_bench
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq

from accord.analytics import funnels, paths, retention
from accord.analytics.people import source_on
from accord.engine.connection import close, connect
from accord.engine.lake import events

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dataset import BUSINESS, DAYS, RESULTS, START, ensure

END = START + timedelta(days=DAYS)


def specs(start: datetime, end: datetime) -> dict[str, tuple[Any, Any]]:
    """The three reports over the data set's whole range."""
    span = {"from": start.isoformat(), "to": end.isoformat()}
    return {
        "funnel_4_steps": (
            funnels,
            funnels.parse_spec(
                {
                    "steps": [
                        {"event": "Product Viewed"},
                        {"event": "Product Added"},
                        {"event": "Checkout Started"},
                        {"event": "Order Completed"},
                    ],
                    "window_seconds": 7 * 86_400,
                    **span,
                }
            ),
        ),
        "retention_12_weeks": (
            retention,
            retention.parse_spec({"period": "week", "periods": 12, **span}),
        ),
        "paths_after_product_viewed": (
            paths,
            paths.parse_spec({"step": {"event": "Product Viewed"}, "depth": 3, "width": 5, **span}),
        ),
    }


def time_engine(
    backend: Any,
    lake: Path,
    identifiers: Path,
    business_id: str,
    runs: int,
    start: datetime,
    end: datetime,
) -> dict[str, Any]:
    source = source_on(
        backend,
        events(backend, str(lake), business_id=business_id),
        pq.read_table(identifiers),
    )
    out: dict[str, Any] = {}
    for name, (module, spec) in specs(start, end).items():
        seconds = []
        summary = ""
        for _ in range(runs):
            began = time.perf_counter()
            result = module.run(source, spec, now=end)
            seconds.append(time.perf_counter() - began)
        if isinstance(result, funnels.FunnelResult):
            summary = "people per step " + ", ".join(str(s.count) for s in result.steps)
        elif isinstance(result, retention.RetentionResult):
            summary = (
                f"{len(result.cohorts)} cohorts, {sum(c.people for c in result.cohorts)} people"
            )
        else:
            summary = f"{result.people} people, {len(result.links)} links"
        out[name] = {"median_s": statistics.median(seconds), "runs_s": seconds, "result": summary}
        print(f"  {name:28} {statistics.median(seconds):8.3f} s   {summary}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--data", type=Path, help="a folder with lake/ and identifiers.parquet")
    parser.add_argument("--business", default=BUSINESS, help="the business id in that lake")
    parser.add_argument("--from", dest="start", help="first instant (default: the demo's start)")
    parser.add_argument("--to", dest="end", help="instant after the last (default: demo's end)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-spark", action="store_true")
    args = parser.parse_args()
    if args.data is not None:
        lake, identifiers = args.data / "lake", args.data / "identifiers.parquet"
        dataset: dict[str, Any] = {"folder": str(args.data)}
    else:
        built = ensure(events=args.events)
        lake, identifiers = built.lake, built.identifiers
        dataset = {"folder": str(built.folder), **built.info}
    start = datetime.fromisoformat(args.start) if args.start else START
    end = datetime.fromisoformat(args.end) if args.end else END
    start, end = (d if d.tzinfo else d.replace(tzinfo=UTC) for d in (start, end))
    print(f"  {dataset}", flush=True)
    report: dict[str, Any] = {
        "dataset": dataset,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "runs": args.runs,
    }
    print("DuckDB", flush=True)
    duck = connect("duckdb://")
    report["duckdb"] = time_engine(duck, lake, identifiers, args.business, args.runs, start, end)
    close(duck)
    if not args.no_spark:
        print("Spark local[2]", flush=True)
        spark = connect("pyspark://local[2]")
        report["spark"] = time_engine(
            spark, lake, identifiers, args.business, args.runs, start, end
        )
        close(spark)
    report["machine"]["load_average_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"analytics-{stamp}.json"
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
