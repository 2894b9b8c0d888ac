"""Reproducible journey-runner benchmark: step transitions per second and timer lag.

For each backend (SQLite, PostgreSQL) this script:

1. creates a throwaway store and a journey `api → wait 1h → send SMS → wait 1d → exit`,
2. puts --people people inside it, each parked on the first wait with a pending timer
   (bulk-inserted, as if they had entered over the last hour),
3. throughput: makes --backlog of those timers due at once and times the runner firing
   them (each fire is a transition: the wait ends, the send is decided and queued, the
   next wait starts; every step row counts as one transition),
4. lag: makes --rate timers per second come due over --duration seconds in real time
   while the rest stay pending, runs the journey loop, and measures for each timer the
   delay between its due time and the step that ran it,
5. reports the median of --runs runs as markdown and writes JSON to bench/results/.

Usage: .venv/bin/python bench/journeys.py [--backend sqlite|postgresql|both]
       [--people 1000000] [--backlog 50000] [--rate 2000] [--duration 20] [--runs 3]
       [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from stores import throwaway

from accord.core.clock import utcnow
from accord.journeys import service, worker
from accord.journeys.models import journey_runs, journey_steps, journey_timers
from accord.journeys.runner import Runner
from accord.messaging.channels import Delivery, Outgoing
from accord.store.db import Store, open_store
from accord.store.migrate import upgrade

# The cost-free journey world is the crash test's too; it lives with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.journeys.helpers import everyone

RESULTS = Path(__file__).resolve().parent / "results"
DEFINITION = {
    "entry": {"type": "api"},
    "start": "pause",
    "nodes": {
        "pause": {"type": "wait", "duration": "1h", "next": "text"},
        "text": {"type": "send", "channel": "sms", "message": "hello", "next": "rest"},
        "rest": {"type": "wait", "duration": "1d", "next": "out"},
        "out": {"type": "exit"},
    },
    "messages": {"hello": {"channel": "sms", "body": "Hello {{ name | default('there') }}"}},
}


class NullSms:
    name = "sms"

    def send(self, message: Outgoing) -> Delivery:
        return Delivery("sent", provider_id=message.id)


def populate(store: Store, people: int, start: datetime) -> str:
    with store.write() as conn:
        view = service.create_journey(
            conn, business_id="b", key="bench", name="Bench", definition=DEFINITION, now=start
        )
        service.set_status(conn, business_id="b", key="bench", status="active", now=start)
    chunk = 20_000
    for first in range(0, people, chunk):
        ids = range(first, min(people, first + chunk))
        with store.write() as conn:
            conn.execute(
                insert(journey_runs),
                [
                    {
                        "id": f"run_{n}",
                        "business_id": "b",
                        "journey_id": view.id,
                        "version": 1,
                        "profile_id": f"p{n}",
                        "entry_key": f"api:{n}",
                        "node": "pause",
                        "status": "active",
                        "context": "{}",
                        "entered_at": start,
                        "updated_at": start,
                    }
                    for n in ids
                ],
            )
            # Far in the future: the phases below bring some of them forward.
            conn.execute(
                insert(journey_timers),
                [
                    {
                        "business_id": "b",
                        "run_id": f"run_{n}",
                        "node": "pause",
                        "kind": "wake",
                        "due_at": start + timedelta(days=30),
                    }
                    for n in ids
                ],
            )
    return view.id


def bring_forward(store: Store, first: int, count: int, due: list[datetime]) -> None:
    with store.write() as conn:
        for offset in range(count):
            conn.execute(
                update(journey_timers)
                .where(journey_timers.c.run_id == f"run_{first + offset}")
                .values(due_at=due[offset])
            )


def step_count(store: Store) -> int:
    with store.read() as conn:
        return len(conn.execute(select(journey_steps.c.id)).all())


def throughput(store: Store, runner: Runner, backlog: int) -> dict[str, float]:
    now = utcnow()
    bring_forward(store, 0, backlog, [now - timedelta(seconds=1)] * backlog)
    before = step_count(store)
    began = time.perf_counter()
    fired = 0
    while True:
        n = runner.fire_due(store, now=utcnow(), limit=1000)
        if not n:
            break
        fired += n
    elapsed = time.perf_counter() - began
    steps = step_count(store) - before
    return {
        "timers": fired,
        "seconds": elapsed,
        "timers_per_s": fired / elapsed,
        "transitions_per_s": steps / elapsed,
    }


def lag(store: Store, runner: Runner, first: int, rate: int, duration: float) -> dict[str, float]:
    count = int(rate * duration)
    start = utcnow() + timedelta(seconds=2)
    due = [start + timedelta(seconds=i / rate) for i in range(count)]
    bring_forward(store, first, count, due)
    stop = threading.Event()
    loop = threading.Thread(
        target=worker.run,
        args=(store, runner, {"sms": NullSms()}),
        kwargs={"stop": stop, "poll": 0.1},
        daemon=True,
    )
    loop.start()
    deadline = time.monotonic() + duration + 60
    wanted = {f"run_{first + i}": due[i] for i in range(count)}
    fired_at: dict[str, datetime] = {}
    while len(fired_at) < count and time.monotonic() < deadline:
        time.sleep(0.5)
        with store.read() as conn:
            rows = conn.execute(
                select(journey_steps.c.run_id, journey_steps.c.at).where(
                    journey_steps.c.node == "pause", journey_steps.c.outcome == "waited"
                )
            ).all()
        fired_at = {r.run_id: r.at for r in rows if r.run_id in wanted}
    stop.set()
    loop.join()
    lags = sorted((fired_at[k] - wanted[k]).total_seconds() for k in fired_at)
    return {
        "timers": count,
        "fired": len(lags),
        "p50_s": lags[len(lags) // 2],
        "p99_s": lags[int(len(lags) * 0.99)],
        "max_s": lags[-1],
    }


def one_run(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    with throwaway(backend) as url:
        upgrade(url)
        store = open_store(url)
        runner = Runner(everyone())
        began = time.perf_counter()
        populate(store, args.people, utcnow() - timedelta(minutes=30))
        setup = time.perf_counter() - began
        result = {
            "setup_s": setup,
            "throughput": throughput(store, runner, args.backlog),
            "lag": lag(store, runner, args.backlog, args.rate, args.duration),
        }
        store.dispose()
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--backlog", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10k people, one short run")
    args = parser.parse_args()
    if args.quick:
        args.people, args.backlog, args.rate, args.duration, args.runs = 10_000, 2000, 200, 3, 1
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    report: dict[str, Any] = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "args": vars(args),
        "at": datetime.now(UTC).isoformat(),
        "backends": {},
    }
    print("| backend | people | transitions/s | timers/s | lag p50 | lag p99 | lag max |")
    print("|---|---|---|---|---|---|---|")
    for backend in backends:
        runs = [one_run(backend, args) for _ in range(args.runs)]
        report["backends"][backend] = runs

        def median(section: str, key: str, runs: list[dict[str, Any]] = runs) -> float:
            return statistics.median(r[section][key] for r in runs)

        print(
            f"| {backend} | {args.people:,} | {median('throughput', 'transitions_per_s'):,.0f} "
            f"| {median('throughput', 'timers_per_s'):,.0f} | {median('lag', 'p50_s'):.3f} s "
            f"| {median('lag', 'p99_s'):.3f} s | {median('lag', 'max_s'):.3f} s |"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"journeys-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
