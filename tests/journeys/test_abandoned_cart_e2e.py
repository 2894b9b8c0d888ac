"""The abandoned-cart journey end to end: events over HTTP, the worker, a controllable
clock for the hour, the reminder received by a real SMTP server, the purchase converting."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from accord.accounts.models import Bootstrap
from accord.consent import config
from accord.consent.models import PropertyIn
from accord.consent.service import record_consent
from accord.core.clock import utcnow
from accord.core.settings import Settings
from accord.journeys.models import journey_runs
from accord.journeys.outbox import dispatch
from accord.journeys.runner import Runner
from accord.process.journeys import email_channel, environment, plain_text
from accord.process.worker import drain
from accord.store.db import Store
from tests.journeys.helpers import ABANDONED_CART
from tests.smtp_sink import SmtpSink

# Events here carry no consent and no location; this business keeps them, as its
# rule for unknown locations ("XX") says (the default is the strictest regime).
pytestmark = pytest.mark.keeps_unknown_location


def _basic(keys: Bootstrap) -> tuple[str, str]:
    return (keys.write_key, "")


def _setup(client: TestClient, store: Store, keys: Bootstrap, people: dict[str, bool]) -> None:
    with store.write() as conn:
        config.create_property(
            conn, business_id=keys.business_id, spec=PropertyIn(key="shop-web", name="Shop")
        )
        for anonymous_id, marketing in people.items():
            record_consent(
                conn,
                business_id=keys.business_id,
                property_key="shop-web",
                purposes={"marketing": marketing},
                source="api",
                anonymous_id=anonymous_id,
            )
    headers = {"Authorization": f"Bearer {keys.admin_token}"}
    created = client.post(
        "/api/journeys",
        json={"key": "cart", "name": "Abandoned cart", "definition": ABANDONED_CART},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    client.post("/api/journeys/cart/status", json={"status": "active"}, headers=headers)
    for anonymous_id in people:
        identify = {
            "anonymousId": anonymous_id,
            "traits": {"email": f"{anonymous_id}@example.com", "first_name": anonymous_id.title()},
        }
        sent = client.post("/v1/identify", json=identify, auth=_basic(keys))
        assert sent.status_code == 200


def _track(
    client: TestClient, keys: Bootstrap, anonymous_id: str, event: str, **props: Any
) -> None:
    body = {"anonymousId": anonymous_id, "event": event, "properties": props}
    assert client.post("/v1/track", json=body, auth=_basic(keys)).status_code == 200


def _process(store: Store, settings: Settings) -> None:
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=500, lease=timedelta(minutes=5))


def _statuses(store: Store) -> dict[str, str]:
    with store.read() as conn:
        rows = conn.execute(select(journey_runs.c.profile_id, journey_runs.c.status)).all()
    return {r.profile_id: r.status for r in rows}


def test_abandoned_cart_reminds_once_and_a_purchase_converts(
    client: TestClient, store: Store, keys: Bootstrap, settings: Settings, sink: SmtpSink
) -> None:
    _setup(client, store, keys, {"ann": True, "bob": True, "cat": False})
    for person in ("ann", "bob", "cat"):
        _track(client, keys, person, "Cart Updated", cart_id=f"c-{person}")
    # Bob buys within the hour: nothing is sent to him.
    _track(client, keys, "bob", "Order Completed", order_id="o1")
    _process(store, settings)

    runner = Runner(environment())
    mail = Settings(**{**settings.model_dump(), "smtp_host": sink.host, "smtp_port": sink.port})
    channels = {"email": email_channel(mail, store)}
    assert runner.fire_due(store, now=utcnow() + timedelta(minutes=59)) == 0
    assert runner.fire_due(store, now=utcnow() + timedelta(hours=1, seconds=1)) == 2
    assert dispatch(store, runner, channels) == 1

    reminder = sink.wait_for("ann@example.com")
    assert reminder["Subject"] == "You left something behind, Ann"
    assert reminder["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sink.to("bob@example.com") == [] and sink.to("cat@example.com") == []

    _track(client, keys, "ann", "Order Completed", order_id="o2")
    _process(store, settings)
    assert sorted(_statuses(store).values()) == ["converted", "converted", "exited"]


def test_plain_text_of_a_message() -> None:
    assert plain_text("<h1>Hi &amp; welcome</h1><p>Line</p><style>p{}</style>") == (
        "Hi & welcome\nLine"
    )
