"""`audiences.refresh.refresh` hands the entries and exits it finds to journeys, exactly once:
an audience that is not real time changes only at refresh, and journeys that start on
it (or wait for it) must hear of those changes too."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from accord.accounts.models import Bootstrap, SourceRef
from accord.audiences import definitions
from accord.audiences.models import AudienceIn
from accord.collect.consent_gate import KeepEverything
from accord.collect.service import append
from accord.core.clock import utcnow
from accord.core.outbound import OutboundPolicy
from accord.core.settings import Settings
from accord.journeys import service as journeys
from accord.journeys.models import journey_runs
from accord.process.jobs import default_kinds
from accord.process.kinds import JobContext
from accord.process.worker import drain
from accord.profiles.models import profile_identifiers
from accord.store.db import Store

THANKS: dict[str, Any] = {
    "entry": {"type": "audience", "audience": "ever-bought"},
    "start": "mark",
    "nodes": {
        "mark": {"type": "update_trait", "trait": "thanked", "value": True, "next": "out"},
        "out": {"type": "exit"},
    },
}


def _event(n: int, name: str, anonymous_id: str) -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        "messageId": f"m{n}",
        "anonymousId": anonymous_id,
        "timestamp": "2026-11-10T10:00:00.000Z",
    }


def test_people_a_refresh_finds_enter_the_journeys_on_that_audience_once(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    business = keys.business_id
    source = SourceRef(business_id=business, source_id=keys.source_id)
    events = [_event(1, "Order Completed", "anon-ann"), _event(2, "Product Viewed", "anon-bob")]
    append(store, source=source, events=events, gate=KeepEverything(), received_at=utcnow())
    lake = settings.resolved_lake_url()
    assert drain(store, lake_url=lake, batch_size=10, lease=timedelta(minutes=1)) == 2
    now = utcnow()
    with store.write() as conn:
        journeys.create_journey(
            conn,
            business_id=business,
            key="thanks",
            name="Thanks",
            definition=THANKS,
            now=now,
            outbound=OutboundPolicy(),
        )
        journeys.set_status(conn, business_id=business, key="thanks", status="active", now=now)
        audience = definitions.create_audience(
            conn,
            business_id=business,
            audience=AudienceIn(
                name="Ever bought", slug="ever-bought", text='did "Order Completed"'
            ),
        )
        assert not audience.realtime
        ann = conn.execute(
            select(profile_identifiers.c.profile_id).where(
                profile_identifiers.c.value == "anon-ann"
            )
        ).scalar_one()
    job = default_kinds()["audiences.refresh"]

    def refresh(at: datetime) -> float:
        context = JobContext(
            settings=settings,
            store=store,
            business_id=business,
            target=audience.id,
            now=at,
            state={},
        )
        return job.run(context).counts["entered"]

    def runs() -> list[tuple[str, str]]:
        with store.read() as conn:
            rows = conn.execute(select(journey_runs.c.profile_id, journey_runs.c.status)).all()
        return [(r.profile_id, r.status) for r in rows]

    assert refresh(now) == 1
    assert runs() == [(ann, "exited")]
    # Run again (a retry, the next hour): nothing changed, nobody enters twice.
    assert refresh(now + timedelta(minutes=1)) == 0
    assert runs() == [(ann, "exited")]
