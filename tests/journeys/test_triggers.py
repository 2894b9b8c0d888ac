"""Entries by audience and by date trait, and waiting for an audience change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from accord.core.outbound import OutboundPolicy
from accord.journeys import service
from accord.journeys.models import journey_outbox, journey_runs
from accord.journeys.runner import Runner
from accord.store.db import Store
from tests.journeys.helpers import World

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _activate(store: Store, key: str, definition: dict[str, Any]) -> None:
    with store.write() as conn:
        service.create_journey(
            conn,
            business_id="b",
            key=key,
            name=key,
            definition=definition,
            now=T0,
            outbound=OutboundPolicy(),
        )
        service.set_status(conn, business_id="b", key=key, status="active", now=T0)


def _runs(store: Store) -> list[tuple[str, str]]:
    with store.read() as conn:
        return [
            (r.profile_id, r.status)
            for r in conn.execute(select(journey_runs).order_by(journey_runs.c.profile_id))
        ]


BIRTHDAY: dict[str, Any] = {
    "entry": {"type": "date_trait", "trait": "birthday", "at": "09:00"},
    "start": "gift",
    "nodes": {
        "gift": {"type": "send", "channel": "email", "message": "bday", "next": "out"},
        "out": {"type": "exit"},
    },
    "messages": {"bday": {"channel": "email", "body": "Happy birthday"}},
    "default_timezone": "Europe/Rome",
}


def test_birthdays_enter_once_on_the_day_at_local_time(store: Store) -> None:
    world = World(
        traits={
            "today": {"birthday": "1990-11-23"},
            "leap": {"birthday": "2000-02-29"},
            "tomorrow": {"birthday": "1985-11-24"},
            "none": {},
        }
    )
    runner = Runner(world.environment())
    _activate(store, "birthday", BIRTHDAY)
    early = datetime(2026, 11, 23, 7, 59, tzinfo=UTC)  # 08:59 in Rome
    with store.write() as conn:
        assert runner.enter_by_date(conn, business_id="b", now=early) == 0
    for minutes in (1, 90, 600):
        with store.write() as conn:
            runner.enter_by_date(conn, business_id="b", now=early + timedelta(minutes=minutes))
    assert _runs(store) == [("today", "exited")]
    # A 29 February birthday falls on 28 February in 2027.
    with store.write() as conn:
        runner.enter_by_date(conn, business_id="b", now=datetime(2027, 2, 28, 10, tzinfo=UTC))
    assert ("leap", "exited") in _runs(store)


WIN_BACK: dict[str, Any] = {
    "entry": {"type": "audience", "audience": "likely-to-churn"},
    "start": "offer",
    "nodes": {
        "offer": {"type": "send", "channel": "email", "message": "offer", "next": "wait"},
        "wait": {
            "type": "wait_for_audience",
            "audience": "likely-to-churn",
            "change": "exit",
            "timeout": "14d",
            "on_change": "saved",
            "on_timeout": "lost",
        },
        "saved": {"type": "update_trait", "trait": "won_back", "value": True, "next": "out"},
        "lost": {"type": "exit"},
        "out": {"type": "exit"},
    },
    "messages": {"offer": {"channel": "email", "body": "We miss you"}},
}


def test_audience_entry_and_waiting_for_the_person_to_leave_it(store: Store) -> None:
    world = World()
    runner = Runner(world.environment())
    _activate(store, "win-back", WIN_BACK)
    with store.write() as conn:
        runner.handle_audience_changes(
            conn,
            business_id="b",
            changes=[
                ("p1", "likely-to-churn", True),
                ("p2", "likely-to-churn", True),
                ("p3", "other", True),
            ],
            now=T0,
        )
    with store.read() as conn:
        assert len(conn.execute(select(journey_outbox)).all()) == 2
    with store.write() as conn:
        runner.handle_audience_changes(
            conn,
            business_id="b",
            changes=[("p1", "likely-to-churn", False)],
            now=T0 + timedelta(days=2),
        )
    runner.fire_due(store, now=T0 + timedelta(days=15))
    assert _runs(store) == [("p1", "exited"), ("p2", "exited")]
    assert world.traits["p1"]["won_back"] is True
    assert "won_back" not in world.traits.get("p2", {})
