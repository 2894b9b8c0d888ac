"""Lake compaction benchmark: reading one business's events for an audience refresh on
DuckDB before and after compaction, and the time compaction itself takes.

1. Builds (once, cached under bench/results/data/) a lake of --events demo events over
   --days days for one business, written like the worker writes it: one file per
   business and day for every --batch-size events (the generator's events are not in
   time order, so each batch touches nearly every day).
2. For each of --runs runs, on a fresh copy of that lake:
   - reads the business's events as an audience refresh does
     (`business_events(backend, events(backend, lake), business)`: filter, the columns
     conditions read, cached on the engine), on a new in-memory DuckDB each time;
   - compacts the lake (`accord.lake.compaction.compact`) and times it;
   - reads again while the superseded files are still on disk (within the grace),
     then after a compaction past the grace has deleted them.
3. Reports the median of the runs (and each run) as markdown and writes JSON to
   bench/results/.

Usage: .venv/bin/python bench/lake_compaction.py [--events 2000000] [--days 60]
       [--batch-size 250000] [--runs 3]
       .venv/bin/python bench/lake_compaction.py --quick

The default layout is the one the audience benchmark writes (2M events in batches of
250,000 over 60 days: 480 files, the lake of issue 15); --batch-size 5000 is the
inbox worker's default batch (24,000 files at 2M events).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson

from accord.audiences.compile import business_events
from accord.demo.generator import generate_n_events
from accord.engine.connection import connect
from accord.engine.lake import events
from accord.lake.compaction import compact
from accord.lake.schema import lake_row
from accord.lake.service import visible_files, write_batch

BUSINESS = "biz_bench"
RESULTS = Path(__file__).resolve().parent / "results"
# Generated data sets, cached between runs (bench/results/ is git-ignored).
DATA = RESULTS / "data"
START = datetime(2026, 9, 1, tzinfo=UTC)


def build(folder: Path, n_events: int, days: int, batch_size: int) -> dict[str, Any]:
    """The lake of n demo events in batches of batch_size (cached by those three)."""
    done = folder / "done.json"
    if done.exists():
        return dict(json.loads(done.read_text()))
    lake = folder / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    started = time.perf_counter()
    rows: list[tuple[str, dict[str, Any]]] = []
    seq = 0
    for event in generate_n_events(n_events, start=START, days=days):
        seq += 1
        rows.append((BUSINESS, lake_row(seq, "src_bench", event)))
        if len(rows) >= batch_size:
            write_batch(str(lake), batch_id=f"bat_{seq:09d}", rows=rows, clean_leftovers=False)
            rows = []
    if rows:
        write_batch(str(lake), batch_id=f"bat_{seq:09d}", rows=rows, clean_leftovers=False)
    info = {
        "events": seq,
        "days": days,
        "batch_size": batch_size,
        "files": len(visible_files(str(lake))),
        "bytes": sum(p.stat().st_size for p in lake.rglob("*.parquet")),
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    done.write_text(json.dumps(info))
    return info


def read_for_refresh(lake: Path) -> tuple[float, int]:
    """Seconds to read the business's events the way an audience refresh does."""
    backend = connect("duckdb://")
    started = time.perf_counter()
    cached = business_events(backend, events(backend, str(lake)), BUSINESS)
    seconds = time.perf_counter() - started
    rows = int(backend.to_pyarrow(cached.count()).as_py())
    return seconds, rows


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def one_run(source: Path, scratch: Path) -> dict[str, Any]:
    lake = scratch / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    shutil.copytree(source, lake)
    # The copy is in the page cache, as a lake written by a running worker would be.
    before_files = len(visible_files(str(lake)))
    list_before, _ = timed(lambda: visible_files(str(lake)))
    read_before, rows_before = read_for_refresh(lake)
    compact_s, report = timed(lambda: compact(str(lake)))
    after_files = len(visible_files(str(lake)))
    list_after, _ = timed(lambda: visible_files(str(lake)))
    read_within_grace, rows_within = read_for_refresh(lake)
    cleanup_s, cleanup = timed(
        lambda: compact(str(lake), grace=timedelta(0), now=datetime.now(UTC) + timedelta(hours=1))
    )
    read_after, rows_after = read_for_refresh(lake)
    assert rows_before == rows_within == rows_after, (rows_before, rows_within, rows_after)
    return {
        "files_before": before_files,
        "files_after": after_files,
        "files_on_disk_within_grace": before_files + after_files,
        "list_before_s": list_before,
        "list_after_s": list_after,
        "read_before_s": read_before,
        "compact_s": compact_s,
        "read_within_grace_s": read_within_grace,
        "cleanup_s": cleanup_s,
        "read_after_s": read_after,
        "rows_read": rows_after,
        "report": report.__dict__,
        "deleted": cleanup.superseded_files_deleted,
    }


def median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def git_commit() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=250_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100k events in 5,000s, 1 run")
    args = parser.parse_args()
    if args.quick:
        args.events, args.batch_size, args.runs = 100_000, 5_000, 1
    folder = DATA / f"lake-compaction-{args.events}-{args.days}d-{args.batch_size}"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"building {args.events} events in {folder} (cached)", flush=True)
    dataset = build(folder, args.events, args.days, args.batch_size)
    print(f"  {dataset}", flush=True)
    runs = []
    with tempfile.TemporaryDirectory(dir=DATA) as scratch:
        for index in range(args.runs):
            run = one_run(folder / "lake", Path(scratch))
            runs.append(run)
            print(
                f"  run {index + 1}: {run['files_before']} -> {run['files_after']} files; "
                f"read {run['read_before_s']:.2f} s -> {run['read_within_grace_s']:.2f} s "
                f"(within grace) -> {run['read_after_s']:.2f} s; "
                f"compaction {run['compact_s']:.1f} s",
                flush=True,
            )
    keys = [
        "list_before_s",
        "read_before_s",
        "compact_s",
        "list_after_s",
        "read_within_grace_s",
        "cleanup_s",
        "read_after_s",
    ]
    report = {
        "dataset": dataset,
        "commit": git_commit(),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "duckdb": duckdb.__version__,
        },
        "runs": runs,
        "median": {key: median(runs, key) for key in keys},
    }
    print("\n| figure | median s | runs s |\n|---|---:|---|")
    for key in keys:
        values = ", ".join(f"{run[key]:.2f}" for run in runs)
        print(f"| {key} | {report['median'][key]:.2f} | {values} |")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"lake-compaction-{stamp}.json"
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
