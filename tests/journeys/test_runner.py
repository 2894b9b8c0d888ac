"""The runner on SQLite and PostgreSQL: waits, event waits, goals, splits, rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from accord.core.outbound import OutboundPolicy
from accord.journeys import analytics, policy, service
from accord.journeys.graph import QuietHours
from accord.journeys.models import (
    journey_outbox,
    journey_runs,
    journey_steps,
    journey_timers,
    journey_waits,
)
from accord.journeys.runner import Runner
from accord.store.db import Store
from tests.journeys.helpers import ABANDONED_CART, World, track

BIZ = "biz_1"
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _journey(store: Store, definition: dict[str, Any], key: str = "cart") -> str:
    with store.write() as conn:
        view = service.create_journey(
            conn,
            business_id=BIZ,
            key=key,
            name=key.title(),
            definition=definition,
            now=T0,
            outbound=OutboundPolicy(),
        )
        service.set_status(conn, business_id=BIZ, key=key, status="active", now=T0)
    return view.id


def _events(
    runner: Runner, store: Store, profile: str, *events: dict[str, Any], at: datetime
) -> int:
    with store.write() as conn:
        return runner.handle_events(
            conn, business_id=BIZ, events=[(profile, e) for e in events], now=at
        )


def _outbox(store: Store) -> list[Any]:
    with store.read() as conn:
        return list(conn.execute(select(journey_outbox).order_by(journey_outbox.c.created_at)))


def _status(store: Store, profile: str) -> list[str]:
    with store.read() as conn:
        return list(
            conn.execute(
                select(journey_runs.c.status).where(journey_runs.c.profile_id == profile)
            ).scalars()
        )


def test_abandoned_cart_reminds_after_an_hour_without_purchase(store: Store) -> None:
    runner = Runner(World().environment())
    _journey(store, ABANDONED_CART)
    _events(runner, store, "p1", track("Cart Updated", cart_id="c1"), at=T0)
    assert runner.fire_due(store, now=T0 + timedelta(minutes=59)) == 0
    assert _outbox(store) == []
    assert runner.fire_due(store, now=T0 + timedelta(hours=1)) == 1
    [message] = _outbox(store)
    assert (message.profile_id, message.channel, message.message) == (
        "p1",
        "email",
        "cart-reminder",
    )
    assert _status(store, "p1") == ["exited"]
    # A purchase within the goal window credits the journey, after the reminder too.
    _events(runner, store, "p1", track("Order Completed"), at=T0 + timedelta(hours=2))
    assert _status(store, "p1") == ["converted"]


def test_purchase_inside_the_hour_sends_nothing_and_converts(store: Store) -> None:
    runner = Runner(World().environment())
    _journey(store, ABANDONED_CART)
    _events(runner, store, "p1", track("Cart Updated", cart_id="c1"), at=T0)
    _events(runner, store, "p1", track("Order Completed"), at=T0 + timedelta(minutes=20))
    assert runner.fire_due(store, now=T0 + timedelta(hours=2)) == 0
    assert _outbox(store) == []
    assert _status(store, "p1") == ["converted"]
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(journey_timers)).scalar_one() == 0


def test_one_chunk_of_events_enters_and_converts_in_order(store: Store) -> None:
    # The worker hands a chunk of many people's events at once: a pass started by an
    # event is credited by a later event of the same chunk, as if they came one by one.
    runner = Runner(World().environment())
    _journey(store, ABANDONED_CART)
    with store.write() as conn:
        runner.handle_events(
            conn,
            business_id=BIZ,
            events=[
                ("p2", track("Order Completed")),
                ("p1", track("Cart Updated", cart_id="c1")),
                ("p2", track("Product Viewed")),
                ("p1", track("Order Completed")),
                ("p3", track("Cart Updated", cart_id="c3")),
            ],
            now=T0,
        )
    assert _status(store, "p1") == ["converted"]
    assert _status(store, "p2") == []
    assert _status(store, "p3") == ["active"]


def test_the_same_cart_enters_once(store: Store) -> None:
    runner = Runner(World().environment())
    _journey(store, ABANDONED_CART)
    for minute in range(3):
        _events(
            runner,
            store,
            "p1",
            track("Cart Updated", cart_id="c1"),
            at=T0 + timedelta(minutes=minute),
        )
    assert _status(store, "p1") == ["active"]


def test_a_timer_fires_once_even_when_asked_twice(store: Store) -> None:
    runner = Runner(World().environment())
    _journey(store, ABANDONED_CART)
    _events(runner, store, "p1", track("Cart Updated", cart_id="c1"), at=T0)
    later = T0 + timedelta(hours=1, seconds=1)
    assert runner.fire_due(store, now=later) == 1
    assert runner.fire_due(store, now=later) == 0
    assert len(_outbox(store)) == 1


@pytest.mark.parametrize(
    ("blocked", "traits", "expected"),
    [
        ({("p1", "email"): "no consent for marketing email"}, {}, "no consent for marketing email"),
        ({("p1", "email"): "suppressed"}, {}, "suppressed"),
    ],
)
def test_unreachable_people_are_skipped_with_the_reason(
    store: Store, blocked: dict[tuple[str, str], str], traits: dict[str, Any], expected: str
) -> None:
    world = World(blocked=blocked, traits={"p1": traits})
    runner = Runner(world.environment())
    _journey(store, ABANDONED_CART)
    _events(runner, store, "p1", track("Cart Updated", cart_id="c1"), at=T0)
    runner.fire_due(store, now=T0 + timedelta(hours=1))
    assert _outbox(store) == []
    with store.read() as conn:
        skipped = conn.execute(
            select(journey_steps.c.detail).where(journey_steps.c.outcome == "skipped")
        ).scalar_one()
    assert expected in skipped


def test_quiet_hours_delay_the_message_to_the_morning_in_the_persons_zone(store: Store) -> None:
    definition = {
        **ABANDONED_CART,
        "quiet_hours": {"start": "21:00", "end": "08:00", "mode": "delay"},
    }
    world = World(traits={"p1": {"timezone": "Europe/Rome"}})
    runner = Runner(world.environment())
    _journey(store, definition)
    evening = datetime(2026, 11, 23, 20, 30, tzinfo=UTC)  # 21:30 in Rome
    _events(runner, store, "p1", track("Cart Updated", cart_id="c1"), at=evening)
    runner.fire_due(store, now=evening + timedelta(hours=1))
    assert _outbox(store) == []
    morning = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)  # 08:00 in Rome
    assert runner.fire_due(store, now=morning - timedelta(seconds=1)) == 0
    assert runner.fire_due(store, now=morning) == 1
    assert len(_outbox(store)) == 1


@pytest.mark.parametrize(
    ("start", "end", "mode", "utc_hour", "action"),
    [
        ("21:00", "08:00", "delay", 20, "delay"),  # 21:00 in Rome: the window starts
        ("21:00", "08:00", "delay", 7, "send"),  # 08:00 in Rome: the window has ended
        ("21:00", "08:00", "skip", 2, "skip"),
        ("12:00", "14:00", "delay", 12, "delay"),  # 13:00 in Rome, inside a daytime window
        ("09:00", "09:00", "delay", 8, "send"),  # start == end: no quiet hours
    ],
)
def test_quiet_hours_are_reachs_clock_in_the_persons_zone(
    start: str, end: str, mode: str, utc_hour: int, action: str
) -> None:
    now = datetime(2026, 11, 24, utc_hour, 0, tzinfo=UTC)
    decision = policy.decide_send(
        reachable=True,
        unreachable_reason="",
        now=now,
        zone=ZoneInfo("Europe/Rome"),
        quiet=QuietHours.model_validate({"start": start, "end": end, "mode": mode}),
        sent_in_window=0,
        cap=None,
    )
    assert decision.action == action
    if action == "delay":
        assert decision.until is not None
        assert decision.until.astimezone(ZoneInfo("Europe/Rome")).strftime("%H:%M") == end


def test_frequency_cap_skips_beyond_the_limit(store: Store) -> None:
    definition = {**ABANDONED_CART, "caps": {"email": {"max": 1, "per": "7d"}}}
    runner = Runner(World().environment())
    _journey(store, definition)
    for n, cart in enumerate(["c1", "c2"]):
        start = T0 + timedelta(hours=2 * n)
        _events(runner, store, "p1", track("Cart Updated", cart_id=cart), at=start)
        runner.fire_due(store, now=start + timedelta(hours=1))
    assert len(_outbox(store)) == 1


def test_reentry_never_keeps_a_person_out(store: Store) -> None:
    definition = {**ABANDONED_CART, "reentry": {"mode": "never"}}
    runner = Runner(World().environment())
    _journey(store, definition)
    _events(runner, store, "p1", track("Cart Updated", cart_id="c1"), at=T0)
    _events(runner, store, "p1", track("Order Completed"), at=T0 + timedelta(minutes=1))
    _events(runner, store, "p1", track("Cart Updated", cart_id="c2"), at=T0 + timedelta(minutes=2))
    assert _status(store, "p1") == ["converted"]


def test_branch_and_trait_update_follow_the_person(store: Store) -> None:
    definition = {
        "entry": {"type": "api"},
        "start": "vip",
        "nodes": {
            "vip": {
                "type": "branch",
                "condition": {"kind": "trait", "trait": "tier", "op": "=", "value": "gold"},
                "then": "mark",
                "otherwise": "out",
            },
            "mark": {"type": "update_trait", "trait": "welcomed", "value": True, "next": "out"},
            "out": {"type": "exit"},
        },
    }
    world = World(traits={"gold": {"tier": "gold"}, "plain": {}})
    runner = Runner(world.environment())
    _journey(store, definition, key="welcome")
    with store.write() as conn:
        for person in ("gold", "plain"):
            service.trigger(
                conn,
                runner,
                business_id=BIZ,
                key="welcome",
                profile_id=person,
                entry_key=person,
                context={},
                now=T0,
            )
    assert world.traits["gold"]["welcomed"] is True
    assert "welcomed" not in world.traits["plain"]
    with store.read() as conn:
        path = service.person_path(conn, business_id=BIZ, profile_id="gold")
    assert [s.outcome for s in path[0].steps] == ["entered", "branched", "trait_set", "exited"]


def test_new_version_applies_to_new_entries_only(store: Store) -> None:
    runner = Runner(World().environment())
    _journey(store, ABANDONED_CART)
    _events(runner, store, "p1", track("Cart Updated", cart_id="c1"), at=T0)
    changed = {**ABANDONED_CART, "nodes": {**ABANDONED_CART["nodes"]}}
    changed["nodes"]["remind"] = {
        "type": "send",
        "channel": "sms",
        "message": "cart-sms",
        "next": "done",
    }
    with store.write() as conn:
        service.publish_version(
            conn, business_id=BIZ, key="cart", definition=changed, now=T0, outbound=OutboundPolicy()
        )
    _events(runner, store, "p2", track("Cart Updated", cart_id="c2"), at=T0)
    runner.fire_due(store, now=T0 + timedelta(hours=1))
    sent = {(m.profile_id, m.channel) for m in _outbox(store)}
    assert sent == {("p1", "email"), ("p2", "sms")}


def test_one_batch_moves_people_from_wait_to_wait_and_out_leaving_only_the_new_rows(
    store: Store,
) -> None:
    """A batch of firings writes at its end: a timed-out event wait must give way to the
    next one (same run, same waits key) and an exit must take its pending timer along."""
    definition = {
        "entry": {"type": "event", "event": "Cart Updated", "dedupe": "properties.cart_id"},
        "start": "first",
        "nodes": {
            "first": {
                "type": "wait_for_event",
                "event": "Order Completed",
                "timeout": "1h",
                "on_event": "out",
                "on_timeout": "second",
            },
            "second": {
                "type": "wait_for_event",
                "event": "Checkout Started",
                "timeout": "1h",
                "on_event": "out",
                "on_timeout": "out",
            },
            "out": {"type": "exit"},
        },
    }
    runner = Runner(World().environment())
    _journey(store, definition, key="chain")
    for n in range(3):
        _events(runner, store, f"p{n}", track("Cart Updated", cart_id=f"c{n}"), at=T0)

    def rows() -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
        with store.read() as conn:
            waits = conn.execute(
                select(journey_waits.c.profile_id, journey_waits.c.node).order_by(
                    journey_waits.c.profile_id
                )
            ).all()
            timers = conn.execute(
                select(journey_runs.c.profile_id, journey_timers.c.node, journey_timers.c.kind)
                .join(journey_runs, journey_runs.c.id == journey_timers.c.run_id)
                .order_by(journey_runs.c.profile_id)
            ).all()
        return [tuple(w) for w in waits], [tuple(t) for t in timers]

    assert runner.fire_due(store, now=T0 + timedelta(hours=1)) == 3
    assert rows() == (
        [(f"p{n}", "second") for n in range(3)],
        [(f"p{n}", "second", "timeout") for n in range(3)],
    )
    # The event resumes p0 outside a batch; the others time out of the second wait.
    _events(runner, store, "p0", track("Checkout Started"), at=T0 + timedelta(minutes=70))
    assert runner.fire_due(store, now=T0 + timedelta(hours=2)) == 2
    assert rows() == ([], [])
    assert sorted(_status(store, f"p{n}")[0] for n in range(3)) == ["exited"] * 3
    with store.read() as conn:
        outcomes = conn.execute(
            select(journey_steps.c.node, journey_steps.c.outcome)
            .join(journey_runs, journey_runs.c.id == journey_steps.c.run_id)
            .where(journey_runs.c.profile_id == "p1")
            .order_by(journey_steps.c.id)
        ).all()
    assert [tuple(o) for o in outcomes] == [
        ("entry", "entered"),
        ("first", "waiting"),
        ("first", "timed_out"),
        ("second", "waiting"),
        ("second", "timed_out"),
        ("out", "exited"),
    ]


def test_entries_and_conversions_are_counted_per_utc_day(store: Store) -> None:
    runner = Runner(World().environment())
    journey_id = _journey(store, ABANDONED_CART)
    _events(runner, store, "p1", track("Cart Updated", cart_id="c1"), at=T0)
    _events(runner, store, "p1", track("Order Completed"), at=T0 + timedelta(minutes=20))
    _events(runner, store, "p2", track("Cart Updated", cart_id="c2"), at=T0 + timedelta(days=1))
    _events(runner, store, "p3", track("Cart Updated", cart_id="c3"), at=T0 + timedelta(days=1))
    with store.read() as conn:
        days = analytics.per_day(conn, journey_id=journey_id, since=T0 - timedelta(hours=12))
        later = analytics.per_day(conn, journey_id=journey_id, since=T0 + timedelta(hours=1))
    assert days == {"2026-11-23": (1, 1), "2026-11-24": (2, 0)}
    assert later == {"2026-11-24": (2, 0)}
