"""Reproducible job-scheduler benchmark: jobs started per second and delay from due to start.

For each backend (SQLite, PostgreSQL) this script:

1. creates a throwaway store with one business and --jobs scheduled jobs of a kind that
   does nothing (so the figures are the scheduler's own cost),
2. makes them come due evenly over --spread seconds, starting one second from now,
3. runs --workers schedulers (threads, each with its own connection pool, as separate
   `accord worker` processes would have; SQLite runs one, as in production) with
   --concurrency jobs at a time each, until every job has run once,
4. reads the history: jobs started per second (from the first due time to the last
   start) and the delay from each job's due time to its start (p50, p99, max),
5. reports the median of --runs runs as markdown and writes JSON to bench/results/.

Usage: .venv/bin/python bench/scheduler.py [--backend sqlite|postgresql|both]
       [--jobs 10000] [--spread 10] [--workers 2] [--concurrency 4] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select, update
from stores import throwaway

from accord.accounts.service import bootstrap
from accord.core.clock import utcnow
from accord.core.settings import Settings
from accord.process import scheduler
from accord.process.kinds import JobContext, JobKind, JobOutcome
from accord.process.models import job_runs, jobs
from accord.process.scheduler import Scheduler
from accord.store.db import open_store
from accord.store.migrate import upgrade

RESULTS = Path(__file__).resolve().parent / "results"


def nothing(context: JobContext) -> JobOutcome:
    return JobOutcome(counts={"done": 1.0})


def kinds_for(count: int) -> dict[str, JobKind]:
    targets = [f"obj_{i:06d}" for i in range(count)]
    kind = JobKind(
        name="bench.noop",
        title="does nothing",
        run=nothing,
        schedule="every 1d",
        scope="object",
        targets=lambda conn, business_id: targets,
    )
    return {kind.name: kind}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def one_run(backend: str, args: argparse.Namespace) -> dict[str, float]:
    with throwaway(backend) as url:
        upgrade(url)
        store = open_store(url, sqlite_synchronous="FULL")
        keys = bootstrap(store, name="Bench")
        kinds = kinds_for(args.jobs)
        settings = Settings(
            database_url=url,
            scheduler_poll_seconds=0.05,
            scheduler_sync_seconds=3600,
            scheduler_concurrency=args.concurrency,
        )
        scheduler.sync(store, kinds, settings=settings)
        start = utcnow() + timedelta(seconds=1)
        step = args.spread / args.jobs
        with store.write() as conn:
            ids = list(conn.execute(select(jobs.c.id).order_by(jobs.c.target)).scalars())
            conn.execute(
                update(jobs)
                .where(jobs.c.id == bindparam("job"))
                .values(next_due_at=bindparam("due")),
                [
                    {"job": job, "due": start + timedelta(seconds=i * step)}
                    for i, job in enumerate(ids)
                ],
            )
        workers = 1 if backend == "sqlite" else args.workers
        stores = [open_store(url, sqlite_synchronous="FULL") for _ in range(workers)]
        stop = threading.Event()
        runners = [Scheduler(s, settings, kinds) for s in stores]
        threads = [threading.Thread(target=r.run, args=(stop,)) for r in runners]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + args.timeout
        done = 0
        while time.monotonic() < deadline:
            with store.read() as conn:
                done = len(
                    conn.execute(
                        select(job_runs.c.id).where(job_runs.c.status == "succeeded")
                    ).all()
                )
            if done >= args.jobs:
                break
            time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(30)
        elapsed = time.perf_counter() - began
        with store.read() as conn:
            rows = conn.execute(
                select(job_runs.c.due_at, job_runs.c.started_at, job_runs.c.job_id).where(
                    job_runs.c.business_id == keys.business_id
                )
            ).all()
        for s in stores:
            s.dispose()
        store.dispose()
    if done < args.jobs:
        raise SystemExit(f"{backend}: only {done} of {args.jobs} jobs ran in {args.timeout}s")
    assert len({r.job_id for r in rows}) == len(rows) == args.jobs, "a job ran twice"
    delays = [(r.started_at - r.due_at).total_seconds() for r in rows]
    first_due = min(r.due_at for r in rows)
    last_start = max(r.started_at for r in rows)
    span = (last_start - first_due).total_seconds()
    return {
        "jobs": float(args.jobs),
        "workers": float(workers),
        "jobs_per_second": args.jobs / span,
        "delay_p50_ms": percentile(delays, 0.5) * 1000,
        "delay_p99_ms": percentile(delays, 0.99) * 1000,
        "delay_max_ms": max(delays) * 1000,
        "wall_seconds": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument(
        "--spread", type=float, default=10.0, help="seconds over which jobs fall due"
    )
    parser.add_argument("--workers", type=int, default=2, help="schedulers on PostgreSQL")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "args": vars(args),
        "results": {},
    }
    print("| backend | jobs | schedulers | jobs started/s | delay p50 | delay p99 | max |")
    print("|---|---|---|---|---|---|---|")
    for backend in backends:
        runs = [one_run(backend, args) for _ in range(args.runs)]
        median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        report["results"][backend] = {"runs": runs, "median": median}
        print(
            f"| {backend} | {median['jobs']:.0f} | {median['workers']:.0f} "
            f"| {median['jobs_per_second']:.0f} | {median['delay_p50_ms']:.0f} ms "
            f"| {median['delay_p99_ms']:.0f} ms | {median['delay_max_ms']:.0f} ms |"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scheduler.json").write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
