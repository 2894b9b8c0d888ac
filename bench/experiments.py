"""Experiment analysis benchmark: the full gated analysis of a CMA three-arm test.

1. simulates ad logs for --users units with about --impressions-per-user impressions each
   in the 14-day test period (plus a 7-day pre-period for CUPED, bid requests, auctions,
   bid responses, clicks, conversions and spend records), with known effects,
2. writes them to a lake as Parquet (one file per day, as `load-logs` does), cached under
   bench/results/data/ per size and reused by later runs (--fresh simulates it again),
3. times `service.analyse_experiment` end to end (read Parquet, per-unit values, gates,
   winsorisation caps, per-arm and per-slice sufficient statistics, statistics) on DuckDB
   (--runs times, median reported) and on PySpark (local[2], --spark-runs times),
4. prints a markdown table and writes the figures to bench/results/experiments-<ts>.json.

Usage: .venv/bin/python bench/experiments.py [--quick] [--users 1000000]
       [--impressions-per-user 10] [--runs 3] [--spark-runs 1] [--no-spark] [--fresh]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from accord.engine.connection import connect
from accord.experiments import adlogs, service
from accord.experiments.models import ExperimentView, cma_three_arm
from accord.experiments.simulate import Scenario, simulate

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DATA_DIR = RESULTS_DIR / "data"  # bench/results/ is git-ignored
START = datetime(2026, 10, 1, tzinfo=UTC)


def experiment() -> ExperimentView:
    design = cma_three_arm(
        key="bench",
        name="Benchmark",
        primary_metrics=["ctr", "conversions_per_euro", "conversions_per_unit"],
        guardrail_metrics=["auction_latency", "timeout_rate", "fill_rate"],
    )
    design.plan.secondary_metrics = [
        "avg_topics_per_bid_request",
        "avg_time_in_view",
        "unique_users_reached",
        "video_completion_rate",
        "revenue_per_impression",
    ]
    design.plan.slices = ["device"]
    design.start_day = START.date().isoformat()
    design.pre_period_days = 7
    return ExperimentView(
        id="exp_bench",
        key="bench",
        name="Benchmark",
        status="running",
        seed="bench",
        plan_hash="0" * 64,
        created_at=START,
        started_at=START,
        stopped_at=None,
        design=design,
    )


def run_once(engine_url: str, lake: str, view: ExperimentView) -> tuple[float, bool]:
    backend = connect(engine_url)
    began = time.perf_counter()
    analysis = service.analyse_experiment(
        backend, lake, business_id="b1", experiment=view, now=datetime.now(UTC)
    )
    elapsed = time.perf_counter() - began
    return elapsed, analysis.blocked


def make_lake(lake: str, users: int, impressions_per_user: float) -> dict[str, Any]:
    """Simulate the logs, write them to the lake, and describe what was written."""
    began = time.perf_counter()
    table = simulate(
        Scenario(
            arms=["treatment", "control_1", "control_2"],
            weights=[3, 1, 3],
            users=users,
            impressions_per_user=impressions_per_user,
            days=14,
            pre_period_days=7,
            start=START,
            effects={"treatment": 0.95, "control_2": 0.8},
            topics_arms=["treatment"],
        )
    )
    types = table.group_by("type").aggregate([("record_id", "count")]).to_pylist()
    test_impressions = int(
        pc.sum(
            pc.and_(
                pc.equal(table.column("type"), "impression"),
                pc.greater_equal(table.column("timestamp"), START),
            )
        ).as_py()
    )
    adlogs.write_table(lake, business_id="b1", experiment_key="bench", table=table)
    return {
        "records": table.num_rows,
        "records_by_type": {r["type"]: r["record_id_count"] for r in types},
        "test_impressions": test_impressions,
        "generated_seconds": time.perf_counter() - began,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 000 units: a smoke run")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--impressions-per-user", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--spark-runs", type=int, default=1)
    parser.add_argument("--no-spark", action="store_true")
    parser.add_argument(
        "--fresh", action="store_true", help="simulate the lake again instead of reusing it"
    )
    args = parser.parse_args()
    users = 20_000 if args.quick else args.users
    view = experiment()
    folder = DATA_DIR / f"experiments-{users}u-{args.impressions_per_user:g}i"
    lake = str(folder / "lake")
    described = folder / "lake.json"  # written last: its presence marks a complete lake
    if args.fresh or not described.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        description = make_lake(lake, users, args.impressions_per_user)
        described.write_text(json.dumps(description, indent=2))
    else:
        description = json.loads(described.read_text())
        print(f"reusing the lake in {folder} (--fresh to simulate it again)")
    rows, counts = description["records"], description["records_by_type"]
    test_impressions = description["test_impressions"]
    print(
        f"{rows:,} records ({test_impressions:,} test-period impressions), {users:,} units;"
        f" generated and written in {description['generated_seconds']:.1f} s"
    )
    duck = [run_once("duckdb://", lake, view) for _ in range(args.runs)]
    figures: dict[str, Any] = {
        "duckdb_seconds": [round(t, 2) for t, _ in duck],
        "duckdb_median": round(statistics.median(t for t, _ in duck), 2),
        "blocked": duck[0][1],
    }
    if not args.no_spark:
        spark = [run_once("pyspark://local[2]", lake, view) for _ in range(args.spark_runs)]
        figures["spark_seconds"] = [round(t, 2) for t, _ in spark]
        figures["spark_median"] = round(statistics.median(t for t, _ in spark), 2)
    result = {
        "benchmark": "experiments",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        },
        "units": users,
        "records": rows,
        "records_by_type": counts,
        "test_impressions": test_impressions,
        **figures,
    }
    print("| engine | runs (s) | median (s) |")
    print("|---|---|---|")
    print(f"| DuckDB | {figures['duckdb_seconds']} | {figures['duckdb_median']} |")
    if "spark_median" in figures:
        print(f"| PySpark local[2] | {figures['spark_seconds']} | {figures['spark_median']} |")
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (RESULTS_DIR / f"experiments-{stamp}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
