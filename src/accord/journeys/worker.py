"""The journey loop: fires due timers and delivers the outbox (A/B splits are settled by
the `journeys.settle_splits` job).

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
from accord.journeys.models import journey_timers
from accord.journeys.outbox import LEASE, dispatch
from accord.journeys.runner import Runner
from accord.messaging.channels import Channel
from accord.store.db import Store

log = logging.getLogger(__name__)


def next_due(store: Store) -> datetime | None:
    with store.read() as conn:
        value: datetime | None = conn.execute(select(func.min(journey_timers.c.due_at))).scalar()
    return value


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
    try:
        while not stop.is_set():
            try:
                fired = runner.fire_due(store, now=clock())
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
