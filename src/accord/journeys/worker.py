"""The journey loop: fires due timers, delivers the outbox, settles A/B splits.

It sleeps until the next timer is due (at most `poll` seconds), so a timer fires within
`poll` of its due time. Several loops may run against PostgreSQL: timers and messages
are claimed with `FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import func, select

from accord.core.clock import utcnow
from accord.journeys.analytics import settle_splits
from accord.journeys.models import journey_timers, journeys
from accord.journeys.outbox import LEASE, dispatch
from accord.journeys.runner import Runner
from accord.messaging.channels import Channel
from accord.store.db import Store

log = logging.getLogger(__name__)

SETTLE_EVERY = timedelta(minutes=1)


def next_due(store: Store) -> datetime | None:
    with store.read() as conn:
        value: datetime | None = conn.execute(select(func.min(journey_timers.c.due_at))).scalar()
    return value


def settle_all(store: Store, runner: Runner, now: datetime) -> int:
    """Decide the A/B splits of every active journey that can be decided now."""
    decided = 0
    with store.write() as conn:
        active = conn.execute(
            select(journeys.c.id, journeys.c.business_id, journeys.c.current_version).where(
                journeys.c.status == "active"
            )
        ).all()
        for row in active:
            definition = runner.definitions.get(conn, row.id, row.current_version)
            results = settle_splits(
                conn,
                business_id=row.business_id,
                journey_id=row.id,
                version=row.current_version,
                definition=definition,
                now=now,
            )
            decided += sum(1 for r in results if r.winner is not None)
    return decided


def deliver_forever(
    store: Store,
    runner: Runner,
    channels: Mapping[str, Channel],
    *,
    stop: threading.Event,
    poll: float,
    clock: Callable[[], datetime],
    lease: timedelta,
) -> None:
    """Send queued messages until stopped; apart from the timers so that slow
    providers never delay a due step."""
    while not stop.is_set():
        try:
            sent = dispatch(store, runner, channels, now=clock(), lease=lease)
        except Exception:
            log.exception("journey delivery failed; retrying")
            sent = 0
        if not sent:
            stop.wait(poll)


def run(
    store: Store,
    runner: Runner,
    channels: Mapping[str, Channel],
    *,
    stop: threading.Event,
    poll: float = 0.25,
    clock: Callable[[], datetime] = utcnow,
    lease: timedelta = LEASE,
) -> None:
    """Fire timers as they come due and deliver the outbox, until `stop` is set."""
    delivery = threading.Thread(
        target=deliver_forever,
        args=(store, Runner(runner.env), channels),
        kwargs={"stop": stop, "poll": poll, "clock": clock, "lease": lease},
        name="journey-delivery",
        daemon=True,
    )
    delivery.start()
    last_settle = clock() - SETTLE_EVERY
    try:
        while not stop.is_set():
            try:
                fired = runner.fire_due(store, now=clock())
                if clock() - last_settle >= SETTLE_EVERY:
                    settle_all(store, runner, clock())
                    last_settle = clock()
            except Exception:
                log.exception("journey timers failed; retrying")
                stop.wait(poll)
                continue
            if fired:
                continue
            due = next_due(store)
            wait = poll if due is None else min(poll, max(0.0, (due - clock()).total_seconds()))
            stop.wait(wait)
    finally:
        stop.set()
        delivery.join()
