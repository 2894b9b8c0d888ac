"""Takes events out of the inbox in order and exactly once: profiles, then the lake.

A batch is claimed by stamping a batch id on its rows. Its lake files are named by
that id and its profile changes commit in the same transaction that marks the rows
processed, so a batch interrupted anywhere is redone with the same rows, rewrites
the same files and changes profiles once.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, and_, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from accord.collect.models import inbox
from accord.core.clock import utcnow
from accord.core.ids import new_id
from accord.lake.schema import lake_row
from accord.lake.service import write_batch
from accord.profiles.service import ProfileBatch
from accord.store.db import Store

log = logging.getLogger(__name__)

PROFILE_RETRIES = 5


@dataclass(frozen=True)
class Claim:
    batch_id: str
    rows: list[Any]


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
            .where(inbox.c.batch_id == batch_id, inbox.c.processed_at.is_(None))
            .order_by(inbox.c.seq)
        ).all()
    return Claim(batch_id=batch_id, rows=list(rows))


def _apply_profiles(store: Store, claim: Claim, events: list[dict[str, Any]]) -> bool:
    """Profile changes and the processed mark in one transaction; False if already done."""
    with store.write() as conn:
        marked = conn.execute(
            update(inbox)
            .where(inbox.c.batch_id == claim.batch_id, inbox.c.processed_at.is_(None))
            .values(processed_at=utcnow())
        ).rowcount
        if marked == 0:
            return False
        by_business: dict[str, list[tuple[Any, dict[str, Any]]]] = defaultdict(list)
        for row, event in zip(claim.rows, events, strict=True):
            by_business[row.business_id].append((row, event))
        links: list[dict[str, Any]] = []
        for business_id, pairs in by_business.items():
            batch = ProfileBatch(
                conn=conn, business_id=business_id, lock_rows=store.dialect == "postgresql"
            )
            batch.preload([event for _, event in pairs])
            links += [{"row": row.seq, "profile": batch.apply(event)} for row, event in pairs]
            batch.flush()
        conn.execute(
            update(inbox)
            .where(inbox.c.seq == bindparam("row"))
            .values(profile_id=bindparam("profile")),
            links,
        )
    return True


def process(store: Store, claim: Claim, *, lake_url: str) -> int:
    """Process one claimed batch; returns how many events it finished."""
    events = [orjson.loads(row.payload) for row in claim.rows]
    write_batch(
        lake_url,
        batch_id=claim.batch_id,
        rows=[
            (row.business_id, lake_row(row.seq, row.source_id, event))
            for row, event in zip(claim.rows, events, strict=True)
        ],
    )
    for attempt in range(PROFILE_RETRIES):
        try:
            return len(events) if _apply_profiles(store, claim, events) else 0
        except (IntegrityError, OperationalError) as exc:
            # Another worker created one of the same identifiers first, or the
            # database chose this transaction as a deadlock victim: read again.
            if attempt == PROFILE_RETRIES - 1:
                raise
            log.info("retrying batch %s after %s", claim.batch_id, type(exc).__name__)
    return 0


def drain(
    store: Store, *, lake_url: str, batch_size: int, lease: timedelta, take_over_all: bool = False
) -> int:
    """Process until the inbox has nothing pending; returns the number of events processed."""
    done = 0
    first = True
    while (
        batch := claim(
            store, batch_size=batch_size, lease=lease, take_over_all=take_over_all and first
        )
    ) is not None:
        first = False
        done += process(store, batch, lake_url=lake_url)
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


class Worker(threading.Thread):
    """Runs `drain` in a loop until stopped; used inside `accord serve`."""

    def __init__(
        self,
        store: Store,
        *,
        lake_url: str,
        batch_size: int,
        lease: timedelta,
        idle_seconds: float,
        take_over_all: bool,
    ) -> None:
        super().__init__(name="accord-worker", daemon=True)
        self.store = store
        self.lake_url = lake_url
        self.batch_size = batch_size
        self.lease = lease
        self.idle_seconds = idle_seconds
        self.take_over_all = take_over_all
        self.stopping = threading.Event()
        self.wake = threading.Event()

    def run(self) -> None:
        take_over = self.take_over_all
        while not self.stopping.is_set():
            try:
                drain(
                    self.store,
                    lake_url=self.lake_url,
                    batch_size=self.batch_size,
                    lease=self.lease,
                    take_over_all=take_over,
                )
                take_over = False
            except Exception:
                log.exception("inbox processing failed; retrying")
                self.stopping.wait(1.0)
            self.wake.wait(self.idle_seconds)
            self.wake.clear()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self.join(timeout=30)
