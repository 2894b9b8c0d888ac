"""The inbox worker: takes events out of the inbox in order and exactly once.

A batch is claimed by stamping a batch id on its rows and goes through the pipeline
(`pipeline.default_steps()`: identity, profiles, audiences, journeys, leads, lake).
Its lake files are named by that id, and its profile changes (with everything the
other chunk steps change) commit in the same transaction that marks the rows
processed, so a batch interrupted anywhere is redone with the same rows, rewrites the
same files and changes profiles once. An erased person's events are kept nowhere:
left out of the lake, deleted from the inbox, joined to no profile.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import multiprocessing
import multiprocessing.process
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from accord.collect.models import inbox
from accord.core.clock import utcnow
from accord.core.ids import new_id
from accord.core.settings import Settings
from accord.process.jobs import default_kinds
from accord.process.journeys import start as start_journeys
from accord.process.pipeline import Batch, Chunk, Step, default_steps, run_chunk
from accord.process.scheduler import start as start_scheduler
from accord.store.db import Store, open_store

log = logging.getLogger(__name__)

PROFILE_RETRIES = 5
PROFILE_CHUNK = 250
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Claim:
    batch_id: str
    rows: list[Any]
    # A claim taken over from a worker that stopped may have left temporary lake files.
    resumed: bool = False


def _take_over(
    conn: Connection, batch_id: str, now: datetime, lease: timedelta, take_over_all: bool
) -> bool:
    """Renew a stale claim's lease only if it is still stale, so one worker wins a race."""
    takeover = update(inbox).where(inbox.c.batch_id == batch_id, inbox.c.processed_at.is_(None))
    if not take_over_all:
        takeover = takeover.where(inbox.c.claimed_at < now - lease)
    return bool(conn.execute(takeover.values(claimed_at=now)).rowcount)


def claim(
    store: Store, *, batch_size: int, lease: timedelta, take_over_all: bool = False
) -> Claim | None:
    """Claim the oldest pending events, or take over a claim whose worker has gone."""
    now = utcnow()
    with store.write() as conn:
        stale = select(inbox.c.batch_id).where(
            inbox.c.processed_at.is_(None), inbox.c.batch_id.is_not(None)
        )
        if not take_over_all:
            stale = stale.where(inbox.c.claimed_at < now - lease)
        stale = stale.order_by(inbox.c.seq).limit(1)
        if store.dialect == "postgresql":
            stale = stale.with_for_update(skip_locked=True)
        batch_id = conn.execute(stale).scalar()
        if batch_id is not None and not _take_over(conn, batch_id, now, lease, take_over_all):
            batch_id = None
        resumed = batch_id is not None
        if batch_id is None:
            pending = (
                select(inbox.c.seq)
                .where(inbox.c.processed_at.is_(None), inbox.c.batch_id.is_(None))
                .order_by(inbox.c.seq)
                .limit(batch_size)
            )
            if store.dialect == "postgresql":
                pending = pending.with_for_update(skip_locked=True)
            seqs = list(conn.execute(pending).scalars())
            if not seqs:
                return None
            batch_id = new_id("bat")
            conn.execute(
                update(inbox).where(inbox.c.seq.in_(seqs)).values(batch_id=batch_id, claimed_at=now)
            )
    with store.read() as conn:
        rows = conn.execute(
            select(inbox.c.seq, inbox.c.business_id, inbox.c.source_id, inbox.c.payload)
            # Every row of the batch, processed ones too: the lake files are rewritten
            # whole, and only unprocessed rows reach the profiles again.
            .where(inbox.c.batch_id == batch_id)
            .order_by(inbox.c.seq)
        ).all()
    return Claim(batch_id=batch_id, rows=list(rows), resumed=resumed)


def apply_chunk(
    store: Store, pairs: list[tuple[Any, dict[str, Any]]], steps: Sequence[Step]
) -> int:
    """The chunk steps and the processed mark of some events, in one transaction.

    Only events this transaction marks processed reach the steps, so a chunk already
    done by an earlier attempt (or another worker) changes nothing again.
    """
    with store.write() as conn:
        marked = set(
            conn.execute(
                update(inbox)
                .where(
                    inbox.c.seq.in_([row.seq for row, _ in pairs]), inbox.c.processed_at.is_(None)
                )
                .values(processed_at=utcnow())
                .returning(inbox.c.seq)
            ).scalars()
        )
        by_business: dict[str, list[tuple[Any, dict[str, Any]]]] = defaultdict(list)
        for row, event in pairs:
            if row.seq in marked:
                by_business[row.business_id].append((row, event))
        for business_id, todo in by_business.items():
            chunk = Chunk(
                business_id=business_id, events=todo, lock_rows=store.dialect == "postgresql"
            )
            run_chunk(conn, chunk, steps)
    return len(marked)


def process(
    store: Store, claim: Claim, *, lake_url: str, steps: Sequence[Step] | None = None
) -> int:
    """Process one claimed batch through the pipeline; returns how many events it finished.

    `steps` are the pipeline's (`pipeline.default_steps()`); one list kept across batches
    keeps the journey runner's cache of journey definitions.
    """
    steps = steps or default_steps()
    batch = Batch(
        id=claim.batch_id,
        rows=claim.rows,
        events=[orjson.loads(row.payload) for row in claim.rows],
        lake_url=lake_url,
        resumed=claim.resumed,
    )
    for step in steps:
        if step.before_chunks is not None:
            step.before_chunks(store, batch)
    pairs = list(zip(batch.rows, batch.events, strict=True))
    done = 0
    # Short transactions: on SQLite the write lock is held for one chunk at a time,
    # so collection is never kept waiting behind a whole batch.
    for start in range(0, len(pairs), PROFILE_CHUNK):
        chunk = pairs[start : start + PROFILE_CHUNK]
        for attempt in range(PROFILE_RETRIES):
            try:
                done += apply_chunk(store, chunk, steps)
                break
            except (IntegrityError, OperationalError) as exc:
                # Another worker created one of the same identifiers first, or the
                # database chose this transaction as a deadlock victim: read again.
                if attempt == PROFILE_RETRIES - 1:
                    raise
                log.info("retrying batch %s after %s", claim.batch_id, type(exc).__name__)
    for step in steps:
        if step.after_chunks is not None:
            step.after_chunks(store, batch)
    return done


def drain(
    store: Store,
    *,
    lake_url: str,
    batch_size: int,
    lease: timedelta,
    take_over_all: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Process until nothing is pending or `should_stop`; returns how many events were done.

    `on_batch` hears how many events each batch finished (for progress bars).
    """
    done = 0
    first = True
    steps = default_steps()
    while not should_stop():
        batch = claim(
            store, batch_size=batch_size, lease=lease, take_over_all=take_over_all and first
        )
        if batch is None:
            break
        first = False
        finished = process(store, batch, lake_url=lake_url, steps=steps)
        done += finished
        if on_batch is not None:
            on_batch(finished)
    return done


def pending_count(store: Store) -> int:
    with store.read() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(inbox).where(inbox.c.processed_at.is_(None))
            ).scalar_one()
        )


def run(
    settings: Settings,
    *,
    should_stop: Callable[[], bool],
    on_processed: Callable[[int], None] | None = None,
    once: bool = False,
) -> None:
    """The worker loop: drain the inbox, sleep while idle, until told to stop. Beside it,
    on threads of this process, the journey loop and the job scheduler run (not with
    `once`, which only drains)."""
    store = open_store(
        settings.resolved_database_url(), sqlite_synchronous=settings.sqlite_synchronous
    )
    lease = timedelta(seconds=settings.worker_lease_seconds)
    # One worker owns an SQLite store, so a claim left unfinished is its own.
    take_over = store.dialect == "sqlite"
    background = threading.Event()
    threads: list[threading.Thread] = []
    if not once:
        threads.append(start_journeys(settings, background))
        if settings.scheduler_enabled:
            threads.append(start_scheduler(settings, store, default_kinds(), background))
    try:
        while not should_stop():
            try:
                done = drain(
                    store,
                    lake_url=settings.resolved_lake_url(),
                    batch_size=settings.worker_batch_size,
                    lease=lease,
                    take_over_all=take_over,
                    should_stop=should_stop,
                )
                take_over = False
                if done and on_processed is not None:
                    on_processed(done)
            except Exception:
                if once:
                    raise
                log.exception("inbox processing failed; retrying")
            if once:
                break
            time.sleep(settings.worker_idle_seconds)
    finally:
        background.set()
        for thread in threads:
            thread.join(timeout=10)
        store.dispose()


def _die_with_parent() -> None:
    """Ask Linux to end this process when its parent dies, however it dies."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        # SIGKILL: a server killed outright takes its worker with it, as one process would.
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        log.info("no prctl here; the worker watches its parent instead")


def process_main(settings: Settings, parent_pid: int) -> None:
    """Entry point of the worker process that `accord serve` starts beside the server.

    A separate process keeps the worker's CPU work off the server's interpreter, so
    acknowledgements are not delayed behind processing.
    """
    logging.basicConfig(level=logging.INFO)
    _die_with_parent()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The modules are loaded for good: out of the collector's sight, a full collection
    # walks only what batches create. It used to walk them all, pausing for up to a
    # second, sometimes with SQLite's write lock held and collection waiting on it.
    gc.collect()
    gc.freeze()
    run(settings, should_stop=lambda: stopping.is_set() or os.getppid() != parent_pid)


def start_process(settings: Settings) -> multiprocessing.process.BaseProcess:
    context = multiprocessing.get_context("spawn")
    worker = context.Process(
        target=process_main, args=(settings, os.getpid()), name="accord-worker", daemon=True
    )
    worker.start()
    return worker


def stop_process(worker: multiprocessing.process.BaseProcess, timeout: float = 30) -> None:
    """Let the worker finish its batch, then make sure it is gone."""
    worker.terminate()
    worker.join(timeout)
    if worker.is_alive():
        worker.kill()
        worker.join(5)
