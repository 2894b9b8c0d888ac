"""`journeys.date_entry` under a clock the test controls: people in two time zones enter a
birthday journey once their own local 09:00 has passed, and once a year, whether the
job is run at given instants or by the scheduler walking through the day."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.core.settings import Settings
from accord.process.jobs import default_kinds
from accord.process.kinds import JobContext
from accord.process.scheduler import Scheduler
from accord.process.worker import drain
from accord.store.db import Store

# Events here carry no consent and no location; this business keeps them, as its
# rule for unknown locations ("XX") says (the default is the strictest regime).
pytestmark = pytest.mark.keeps_unknown_location


DAY = date(2027, 1, 15)
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
BIRTHDAYS: dict[str, Any] = {
    "entry": {"type": "date_trait", "trait": "birthday", "at": "09:00"},
    "start": "greet",
    "nodes": {
        "greet": {"type": "update_trait", "trait": "greeted", "value": True, "next": "out"},
        "out": {"type": "exit"},
    },
    "timezone_trait": "timezone",
    "default_timezone": "UTC",
}


def local(zone: ZoneInfo, clock: str, day: date = DAY) -> datetime:
    return datetime.combine(day, time.fromisoformat(clock), tzinfo=zone).astimezone(UTC)


@pytest.fixture
def people(client: TestClient, store: Store, settings: Settings, keys: Bootstrap) -> dict[str, str]:
    """Two people born on 15 January, in Paris and in New York, by their profile ids."""
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    body = {"key": "birthdays", "name": "Birthdays", "definition": BIRTHDAYS}
    assert client.post("/api/journeys", json=body, headers=admin).status_code == 201
    activate = client.post(
        "/api/journeys/birthdays/status", json={"status": "active"}, headers=admin
    )
    assert activate.status_code == 200, activate.text
    zones = {"paris": "Europe/Paris", "new-york": "America/New_York"}
    for name, zone in zones.items():
        identify = {"anonymousId": name, "traits": {"birthday": "1990-01-15", "timezone": zone}}
        sent = client.post("/v1/identify", json=identify, auth=(keys.write_key, ""))
        assert sent.status_code == 200, sent.text
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=100, lease=timedelta(minutes=5))
    found = {}
    for name in zones:
        response = client.get("/api/profiles", params={"anonymous_id": name}, headers=admin)
        assert response.status_code == 200, response.text
        found[name] = response.json()["id"]
    return found


def entries(client: TestClient, keys: Bootstrap, profile_id: str) -> list[datetime]:
    """When the person entered the journey, each time."""
    response = client.get(
        f"/api/profiles/{profile_id}/journeys",
        headers={"Authorization": f"Bearer {keys.admin_token}"},
    )
    assert response.status_code == 200, response.text
    return sorted(datetime.fromisoformat(run["entered_at"]) for run in response.json())


def test_each_person_enters_once_their_own_nine_oclock_has_passed(
    client: TestClient, store: Store, settings: Settings, keys: Bootstrap, people: dict[str, str]
) -> None:
    job = default_kinds()["journeys.date_entry"]

    def run_at(now: datetime) -> dict[str, int]:
        context = JobContext(
            settings=settings,
            store=store,
            business_id=keys.business_id,
            target=None,
            now=now,
            state={},
        )
        assert job.run(context).counts["entered"] >= 0
        return {name: len(entries(client, keys, pid)) for name, pid in people.items()}

    assert run_at(local(PARIS, "08:59")) == {"paris": 0, "new-york": 0}
    assert run_at(local(PARIS, "09:01")) == {"paris": 1, "new-york": 0}
    assert run_at(local(PARIS, "09:16")) == {"paris": 1, "new-york": 0}
    assert run_at(local(NEW_YORK, "08:59")) == {"paris": 1, "new-york": 0}
    assert run_at(local(NEW_YORK, "09:01")) == {"paris": 1, "new-york": 1}
    # Still 15 January in New York, and before 09:00 on the 16th in Paris: the same
    # birthdays, entered already.
    assert run_at(local(NEW_YORK, "23:30")) == {"paris": 1, "new-york": 1}
    assert run_at(local(PARIS, "08:30", DAY + timedelta(days=1))) == {"paris": 1, "new-york": 1}
    # A year later, each enters again once their 09:00 has come.
    next_year = DAY.replace(year=DAY.year + 1)
    assert run_at(local(PARIS, "08:59", next_year)) == {"paris": 1, "new-york": 1}
    assert run_at(local(PARIS, "09:01", next_year)) == {"paris": 2, "new-york": 1}
    assert run_at(local(NEW_YORK, "09:01", next_year)) == {"paris": 2, "new-york": 2}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_the_scheduler_enters_each_person_within_a_run_of_their_local_hour(
    client: TestClient, store: Store, settings: Settings, keys: Bootstrap, people: dict[str, str]
) -> None:
    """The job as the worker runs it: every 15 minutes, on the scheduler's clock."""
    clock = Clock(datetime.combine(DAY, time(0, 0), tzinfo=UTC))
    kinds = {"journeys.date_entry": default_kinds()["journeys.date_entry"]}
    scheduler = Scheduler(store, settings, kinds, clock=clock)
    # From midnight UTC to the next morning, looking every 5 minutes.
    while clock.now < datetime.combine(DAY + timedelta(days=1), time(10, 0), tzinfo=UTC):
        scheduler.run_until_idle(timeout=60)
        clock.now += timedelta(minutes=5)
    every = timedelta(minutes=15)
    (paris,) = entries(client, keys, people["paris"])
    assert local(PARIS, "09:00") <= paris < local(PARIS, "09:00") + every
    (new_york,) = entries(client, keys, people["new-york"])
    assert local(NEW_YORK, "09:00") <= new_york < local(NEW_YORK, "09:00") + every
