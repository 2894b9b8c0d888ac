"""Send-time optimisation and next-best channel: the estimates and their use in the runner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from accord.accounts.models import Bootstrap
from accord.core.clock import utcnow
from accord.core.outbound import OutboundPolicy
from accord.core.settings import Settings
from accord.journeys import service
from accord.journeys.analytics import smart_comparison
from accord.journeys.engagement import JourneyEngagement
from accord.journeys.models import journey_outbox, journey_runs, journey_timers
from accord.journeys.runner import Runner
from accord.journeys.smart import ChannelStats, best_hour, hourly_counts, next_best_channel
from accord.profiles.service import find_profile_id
from accord.store.db import Store
from tests.identity.helpers import ev, process
from tests.journeys.helpers import World

ROME = ZoneInfo("Europe/Rome")
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_a_person_who_opens_in_the_evening_gets_the_evening() -> None:
    evenings = [datetime(2026, 11, d, 19, 40, tzinfo=UTC) for d in range(1, 8)]  # 20:40 Rome
    population = hourly_counts([datetime(2026, 11, 1, 8, tzinfo=UTC)] * 100, ROME)
    assert best_hour(hourly_counts(evenings, ROME), population, fallback=10) == (20, "person")


def test_without_own_history_the_business_hour_and_then_the_fallback() -> None:
    population = hourly_counts([datetime(2026, 11, 1, 13, tzinfo=UTC)] * 10, ZoneInfo("UTC"))
    assert best_hour([0.0] * 24, population, fallback=10) == (13, "business")
    assert best_hour([0.0] * 24, [0.0] * 24, fallback=10) == (10, "fallback")


@given(st.lists(st.integers(0, 23), max_size=50), st.lists(st.integers(0, 23), max_size=50))
def test_best_hour_is_always_a_valid_hour(own: list[int], pop: list[int]) -> None:
    personal = [float(own.count(h)) for h in range(24)]
    population = [float(pop.count(h)) for h in range(24)]
    hour, source = best_hour(personal, population, fallback=9)
    assert 0 <= hour <= 23
    assert source == ("person" if own else "business" if pop else "fallback")


def test_next_best_channel_weighs_the_person_against_the_business() -> None:
    population = {"email": ChannelStats(1000, 50), "sms": ChannelStats(1000, 40)}
    # Without own history the business-wide rates decide.
    assert next_best_channel(["sms", "email"], ["sms", "email"], {}, population) == "email"
    # A person who answers SMS and ignores email gets SMS.
    personal = {"email": ChannelStats(10, 0), "sms": ChannelStats(3, 2)}
    assert next_best_channel(["email", "sms"], ["email", "sms"], personal, population) == "sms"
    # Only reachable channels count.
    assert next_best_channel(["email", "sms"], ["email"], personal, population) == "email"
    assert next_best_channel(["email", "sms"], [], personal, population) is None


BEST: dict[str, Any] = {
    "entry": {"type": "api"},
    "start": "when",
    "nodes": {
        "when": {"type": "wait", "until_best_hour": True, "fallback_hour": 10, "next": "send"},
        "send": {
            "type": "send",
            "channel": "best",
            "options": {"email": "e", "sms": "s"},
            "next": "out",
        },
        "out": {"type": "exit"},
    },
    "messages": {"e": {"channel": "email", "body": "Hi"}, "s": {"channel": "sms", "body": "Hi"}},
    "smart_holdout": 0.2,
    "default_timezone": "Europe/Rome",
}


def test_the_runner_waits_for_the_best_hour_and_uses_a_reachable_channel(store: Store) -> None:
    world = World(blocked={(f"p{n}", "email"): "no consent" for n in range(0, 200, 2)})
    runner = Runner(world.environment())
    with store.write() as conn:
        service.create_journey(
            conn,
            business_id="b",
            key="best",
            name="Best",
            definition=BEST,
            now=T0,
            outbound=OutboundPolicy(),
        )
        service.set_status(conn, business_id="b", key="best", status="active", now=T0)
        for n in range(200):
            service.trigger(
                conn,
                runner,
                business_id="b",
                key="best",
                profile_id=f"p{n}",
                entry_key=str(n),
                context={},
                now=T0,
            )
    with store.read() as conn:
        holdout = set(
            conn.execute(select(journey_runs.c.profile_id).where(journey_runs.c.holdout)).scalars()
        )
        dues = {t.due_at for t in conn.execute(select(journey_timers))}
    assert 15 <= len(holdout) <= 70
    # Nobody has history: everyone outside the holdout waits for 10:00 in Rome.
    assert dues == {datetime(2026, 11, 24, 9, 0, tzinfo=UTC)}
    runner.fire_due(store, now=T0 + timedelta(days=1))
    with store.read() as conn:
        sent = {(m.profile_id, m.channel) for m in conn.execute(select(journey_outbox))}
        comparison = smart_comparison(
            conn, journey_id=conn.execute(select(journey_runs.c.journey_id)).scalars().first() or ""
        )
    assert len(sent) == 200
    for profile, channel in sent:
        if int(profile[1:]) % 2 == 0:
            assert channel == "sms"
    assert comparison.holdout.people == len(holdout)


def test_item_16_send_time_optimisation_counts_imported_email_opens(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    """Opens brought in from another email tool place the person's engagement on the clock."""
    rome = ZoneInfo("Europe/Rome")
    today = utcnow().astimezone(rome).replace(minute=10, second=0, microsecond=0)
    # 20:10 in Rome, on each of the last five days; a page view in the morning is no open,
    # nor is an event whose name only contains "Email Opened".
    opens = [(today - timedelta(days=d)).replace(hour=20) for d in range(1, 6)]
    events = [ev("identify", userId="u-1", traits={"email": "ann@example.org"})]
    events += [
        ev("track", userId="u-1", event="Email Opened", timestamp=at.isoformat()) for at in opens
    ]
    events.append(
        ev(
            "track",
            userId="u-1",
            event="Page Viewed",
            timestamp=(today - timedelta(days=1)).replace(hour=8).isoformat(),
        )
    )
    events.append(
        ev(
            "track",
            userId="u-1",
            event="Email Opened Elsewhere",
            timestamp=(today - timedelta(days=1)).replace(hour=9).isoformat(),
        )
    )
    process(store, keys, settings.resolved_lake_url(), events, batch=50)
    engagement = JourneyEngagement()
    with store.read() as conn:
        person = find_profile_id(conn, business_id=keys.business_id, kind="user_id", value="u-1")
        personal = engagement.personal_hours(
            conn, business_id=keys.business_id, profile_id=person, zone=rome
        )
        population = engagement.population_hours(conn, business_id=keys.business_id)
    assert personal[20] == 5 and sum(personal) == 5
    # Business-wide hours are counted in UTC (20:10 in Rome is 19:10 UTC in winter).
    assert population[opens[0].astimezone(UTC).hour] == 5
    assert sum(population) == 5
    assert best_hour(personal, [0.0] * 24, fallback=10) == (20, "person")
