"""Takes events out of the inbox in order and exactly once: profiles, then the lake.

A batch is claimed by stamping a batch id on its rows. Its lake files are named by
that id and its profile changes commit in the same transaction that marks the rows
processed, so a batch interrupted anywhere is redone with the same rows, rewrites
the same files and changes profiles once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import multiprocessing.process
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, and_, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from accord.audiences.service import apply_realtime, audience_slugs
from accord.collect.models import inbox
from accord.core.clock import parse_instant, utcnow
from accord.core.ids import new_id
from accord.core.settings import Settings
from accord.identity.service import erased_events, resolve_events
from accord.journeys.runner import Runner
from accord.journeys.wiring import environment as journey_environment
from accord.journeys.worker import start as start_journeys
from accord.lake.schema import lake_row
from accord.lake.service import remove_events, write_batch
from accord.store.db import Store, open_store

log = logging.getLogger(__name__)

PROFILE_RETRIES = 5
PROFILE_CHUNK = 250
PURGE_EVERY_SECONDS = 3600
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


def _apply_profiles(
    store: Store, pairs: list[tuple[Any, dict[str, Any]]], runner: Runner | None = None
) -> int:
    """Profile changes and the processed mark of some events in one transaction.

    Only events this transaction marks processed are applied, so a chunk already done
    by an earlier attempt (or another worker) changes nothing again.
    """
    runner = runner or Runner(journey_environment())
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
        if not marked:
            return 0
        by_business: dict[str, list[tuple[Any, dict[str, Any]]]] = defaultdict(list)
        for row, event in pairs:
            if row.seq in marked:
                by_business[row.business_id].append((row, event))
        links: list[dict[str, Any]] = []
        erased: list[int] = []
        for business_id, todo in by_business.items():
            # An anonymous count (consent refused) names nobody, so it joins no profile.
            named = [(r, e) for r, e in todo if e.get("userId") or e.get("anonymousId")]
            if not named:
                continue
            resolved = resolve_events(
                conn,
                business_id=business_id,
                events=[(row.seq, row.source_id, event, row.payload) for row, event in named],
                lock_rows=store.dialect == "postgresql",
            )
            links += [{"row": seq, "profile": pid} for seq, pid, gone in resolved if not gone]
            erased += [seq for seq, _, gone in resolved if gone]
        if erased:
            # An erased person's late or replayed event is not kept anywhere.
            conn.execute(delete(inbox).where(inbox.c.seq.in_(erased)))
        if not links:
            return len(marked)
        conn.execute(
            update(inbox)
            .where(inbox.c.seq == bindparam("row"))
            .values(profile_id=bindparam("profile")),
            links,
        )
        # Real-time audiences: entries and exits of the profiles these events touched.
        touched: dict[str, set[str]] = defaultdict(set)
        for business_id, todo in by_business.items():
            seqs = {row.seq for row, _ in todo}
            touched[business_id] |= {
                link["profile"] for link in links if link["row"] in seqs and link["profile"]
            }
        # An event whose identifiers are all blocked placeholders joins no profile.
        profile_of = {link["row"]: link["profile"] for link in links if link["profile"]}
        for business_id, todo in by_business.items():
            changes = apply_realtime(
                conn, business_id=business_id, profile_ids=sorted(touched[business_id])
            )
            # Journeys: goals, waits and entries on these events and audience changes.
            runner.handle_events(
                conn,
                business_id=business_id,
                events=[(profile_of[r.seq], e) for r, e in todo if r.seq in profile_of],
            )
            if changes:
                slugs = audience_slugs(conn, business_id=business_id)
                runner.handle_audience_changes(
                    conn,
                    business_id=business_id,
                    changes=[
                        (
                            c.profile_id,
                            slugs.get(c.audience_id, c.audience_id),
                            c.change == "entered",
                        )
                        for c in changes
                    ],
                )
    return len(marked)


def _erased(store: Store, rows: list[Any], events: list[dict[str, Any]]) -> set[int]:
    """Events naming an erased person: they never reach the lake."""
    by_business: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for row, event in zip(rows, events, strict=True):
        by_business[row.business_id].append((row.seq, event))
    with store.read() as conn:
        return {
            seq
            for business_id, todo in by_business.items()
            for seq in erased_events(conn, business_id=business_id, events=todo)
        }


def process(store: Store, claim: Claim, *, lake_url: str, runner: Runner | None = None) -> int:
    """Process one claimed batch; returns how many events it finished.

    `runner` moves people through journeys; one kept across batches keeps its cache of
    journey definitions.
    """
    runner = runner or Runner(journey_environment())
    events = [orjson.loads(row.payload) for row in claim.rows]
    erased = _erased(store, claim.rows, events)
    write_batch(
        lake_url,
        batch_id=claim.batch_id,
        clean_leftovers=claim.resumed,
        rows=[
            (row.business_id, lake_row(row.seq, row.source_id, event))
            for row, event in zip(claim.rows, events, strict=True)
            if row.seq not in erased
        ],
    )
    pairs = list(zip(claim.rows, events, strict=True))
    done = 0
    # Short transactions: on SQLite the write lock is held for one chunk at a time,
    # so collection is never kept waiting behind a whole batch.
    for start in range(0, len(pairs), PROFILE_CHUNK):
        chunk = pairs[start : start + PROFILE_CHUNK]
        for attempt in range(PROFILE_RETRIES):
            try:
                done += _apply_profiles(store, chunk, runner)
                break
            except (IntegrityError, OperationalError) as exc:
                # Another worker created one of the same identifiers first, or the
                # database chose this transaction as a deadlock victim: read again.
                if attempt == PROFILE_RETRIES - 1:
                    raise
                log.info("retrying batch %s after %s", claim.batch_id, type(exc).__name__)
    _unwrite_erased(store, claim, events, lake_url=lake_url, written_without=erased)
    return done


def _unwrite_erased(
    store: Store,
    claim: Claim,
    events: list[dict[str, Any]],
    *,
    lake_url: str,
    written_without: set[int],
) -> None:
    """Cut from this batch's lake files the events of a person erased while it ran.

    An erasure stores its tombstones before it rewrites the lake, so either its rewrite
    sees this batch's files or this second look sees its tombstones.
    """
    late = _erased(store, claim.rows, events) - written_without
    by_business: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row, event in zip(claim.rows, events, strict=True):
        if row.seq in late:
            by_business[row.business_id].append(event)
    for business_id, gone in by_business.items():
        remove_events(
            lake_url,
            business_id=business_id,
            days={parse_instant(e["timestamp"]).date().isoformat() for e in gone},
            message_ids={str(e["messageId"]) for e in gone},
        )


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
    runner = Runner(journey_environment())
    while not should_stop():
        batch = claim(
            store, batch_size=batch_size, lease=lease, take_over_all=take_over_all and first
        )
        if batch is None:
            break
        first = False
        finished = process(store, batch, lake_url=lake_url, runner=runner)
        done += finished
        if on_batch is not None:
            on_batch(finished)
    return done


def purge_processed(store: Store, *, older_than: timedelta) -> int:
    """Forget processed inbox rows past the retention window (the lake keeps them)."""
    with store.write() as conn:
        result = conn.execute(
            delete(inbox).where(
                and_(
                    inbox.c.processed_at.is_not(None), inbox.c.processed_at < utcnow() - older_than
                )
            )
        )
    return max(result.rowcount, 0)


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
    """The worker loop: drain, purge old rows hourly, sleep while idle, until told to stop."""
    store = open_store(
        settings.resolved_database_url(), sqlite_synchronous=settings.sqlite_synchronous
    )
    lease = timedelta(seconds=settings.worker_lease_seconds)
    retention = timedelta(days=settings.inbox_retention_days)
    # One worker owns an SQLite store, so a claim left unfinished is its own.
    take_over = store.dialect == "sqlite"
    last_purge = 0.0
    journeys_stop = threading.Event()
    if not once:
        start_journeys(settings, journeys_stop)
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
                if time.monotonic() - last_purge > PURGE_EVERY_SECONDS:
                    purge_processed(store, older_than=retention)
                    last_purge = time.monotonic()
            except Exception:
                if once:
                    raise
                log.exception("inbox processing failed; retrying")
            if once:
                break
            time.sleep(settings.worker_idle_seconds)
    finally:
        journeys_stop.set()
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
