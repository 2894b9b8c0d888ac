"""Known and anonymous profiles: a profile is known once it holds an identifier a person
gave (user id, email, phone, custom), anonymous while it holds only browser or device ids."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from accord.accounts.models import Bootstrap, SourceRef
from accord.accounts.service import bootstrap
from accord.collect.consent_gate import KeepEverything
from accord.collect.service import append
from accord.core.clock import iso, utcnow
from accord.core.settings import Settings
from accord.process.worker import drain
from accord.profiles.service import known_and_anonymous
from accord.store.db import Store


def _event(n: int, **ids: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Viewed",
        "messageId": f"m{n}",
        "timestamp": iso(utcnow()),
        **ids,
    }


def test_profiles_are_counted_known_or_anonymous_per_business(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    other = bootstrap(store, name="Other shop")
    events = [
        _event(1, userId="u1"),
        _event(2, anonymousId="a1", context={"traits": {"email": "a1@example.com"}}),
        _event(3, anonymousId="a2"),
        _event(4, anonymousId="a3", context={"device": {"id": "d3"}}),
    ]
    for business, source, batch in (
        (keys.business_id, keys.source_id, events),
        (other.business_id, other.source_id, [_event(9, anonymousId="z")]),
    ):
        append(
            store,
            source=SourceRef(business_id=business, source_id=source),
            events=batch,
            gate=KeepEverything(),
            received_at=utcnow(),
        )
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=100, lease=timedelta(minutes=1))
    with store.read() as conn:
        mine = known_and_anonymous(conn, business_id=keys.business_id)
        theirs = known_and_anonymous(conn, business_id=other.business_id)
    assert (mine.known, mine.anonymous, mine.total) == (2, 2, 4)
    assert (theirs.known, theirs.anonymous) == (0, 1)
