"""SIGKILL the journey loop while timers are due: after a restart every due step runs
exactly once and every message leaves at most once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from accord.core.clock import utcnow
from accord.core.outbound import OutboundPolicy
from accord.journeys import service
from accord.journeys.models import journey_outbox, journey_runs, journey_steps, journey_timers
from accord.journeys.runner import Runner
from accord.store.db import Store
from tests.journeys.helpers import World

PEOPLE = 400
DEFINITION = {
    "entry": {"type": "api"},
    "start": "pause",
    "nodes": {
        "pause": {"type": "wait", "duration": "1s", "next": "text"},
        "text": {"type": "send", "channel": "sms", "message": "hello", "next": "out"},
        "out": {"type": "exit"},
    },
    "messages": {"hello": {"channel": "sms", "body": "Hello"}},
}


def _loop(url: str, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.journeys.loop_main", url, str(log)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == b"ready"
    return process


def _pending(store: Store) -> tuple[int, int]:
    with store.read() as conn:
        timers = conn.execute(select(func.count()).select_from(journey_timers)).scalar_one()
        queued = conn.execute(
            select(func.count()).where(
                journey_outbox.c.status.in_(("queued", "claimed", "sending"))
            )
        ).scalar_one()
    return timers, queued


@pytest.mark.slow
def test_sigkill_while_timers_are_due_loses_and_repeats_nothing(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    runner = Runner(World().environment())
    with store.write() as conn:
        service.create_journey(
            conn,
            business_id="b",
            key="hello",
            name="Hello",
            definition=DEFINITION,
            now=utcnow(),
            outbound=OutboundPolicy(),
        )
        service.set_status(conn, business_id="b", key="hello", status="active", now=utcnow())
        start = utcnow()
        for n in range(PEOPLE):
            service.trigger(
                conn,
                runner,
                business_id="b",
                key="hello",
                profile_id=f"p{n}",
                entry_key=str(n),
                context={},
                now=start,
            )
    log = tmp_path / "sent.log"
    first = _loop(database_url, log)
    # Kill once the timers are due and some, not all, of the work is done.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if log.exists() and len(log.read_text().split()) >= 20:
            break
        time.sleep(0.01)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert _pending(store) != (0, 0), "the kill came too late to test anything"

    second = _loop(database_url, log)
    deadline = time.monotonic() + 60
    # Claimed messages return to the queue after the 1 s lease; the one in flight at the
    # kill becomes `unknown` and is never resent.
    while _pending(store) != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    second.send_signal(signal.SIGKILL)
    second.wait()

    with store.read() as conn:
        waited = Counter(
            conn.execute(
                select(journey_steps.c.run_id).where(
                    journey_steps.c.node == "pause", journey_steps.c.outcome == "waited"
                )
            ).scalars()
        )
        queued = Counter(
            conn.execute(
                select(journey_steps.c.run_id).where(journey_steps.c.outcome == "queued")
            ).scalars()
        )
        outbox = conn.execute(select(journey_outbox.c.id, journey_outbox.c.status)).all()
        statuses = Counter(conn.execute(select(journey_runs.c.status)).scalars())
    assert len(waited) == PEOPLE and set(waited.values()) == {1}
    assert len(queued) == PEOPLE and set(queued.values()) == {1}
    assert len(outbox) == PEOPLE
    assert statuses == {"exited": PEOPLE}
    sent = Counter(log.read_text().split())
    assert max(sent.values()) == 1, "a message left twice"
    delivered = {row.id for row in outbox if row.status == "sent"}
    assert delivered <= set(sent)
    # Only a message in flight at the kill may be in doubt.
    assert sum(1 for row in outbox if row.status != "sent") <= 1
    assert timedelta(0) <= utcnow() - start
