"""The profile read API: lookups, authentication and errors."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.core.settings import Settings
from accord.process.worker import drain
from accord.store.db import Store

# Events here carry no consent and no location; this business keeps them, as its
# rule for unknown locations ("XX") says (the default is the strictest regime).
pytestmark = pytest.mark.keeps_unknown_location


def _collect_and_process(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    auth = "Basic " + base64.b64encode(f"{keys.write_key}:".encode()).decode()
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    client.post(
        "/v1/identify",
        headers=headers,
        json={"userId": "u-7", "anonymousId": "anon-7", "traits": {"email": "Zoe@Example.org"}},
    )
    client.post("/v1/track", headers=headers, json={"userId": "u-7", "event": "Order Completed"})
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=100, lease=timedelta(seconds=60))


@pytest.mark.parametrize(
    "query",
    ["user_id=u-7", "anonymous_id=anon-7", "email=zoe@example.org", "email=ZOE@example.org"],
)
def test_profile_found_by_each_identifier(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings, query: str
) -> None:
    _collect_and_process(client, keys, store, settings)
    response = client.get(
        f"/api/profiles?{query}", headers={"Authorization": f"Bearer {keys.admin_token}"}
    )
    assert response.status_code == 200, response.text
    profile = response.json()
    assert profile["traits"] == {"email": "Zoe@Example.org"}
    assert [e["type"] for e in profile["recent_events"]] == ["track", "identify"]


def test_errors(client: TestClient, keys: Bootstrap, store: Store, settings: Settings) -> None:
    _collect_and_process(client, keys, store, settings)
    bearer = {"Authorization": f"Bearer {keys.admin_token}"}
    assert client.get("/api/profiles?user_id=u-7").status_code == 401
    assert (
        client.get(
            "/api/profiles?user_id=u-7", headers={"Authorization": "Bearer wrong"}
        ).status_code
        == 401
    )
    missing = client.get("/api/profiles?user_id=nobody", headers=bearer)
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    both = client.get("/api/profiles?user_id=u-7&email=a@b.c", headers=bearer)
    assert both.status_code == 400
    assert both.json()["problems"][0]["field"] == "query"
    assert client.get("/api/profiles", headers=bearer).status_code == 400


def test_profiles_of_another_business_are_invisible(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    from accord.accounts.service import bootstrap

    _collect_and_process(client, keys, store, settings)
    other = bootstrap(store, name="Someone Else")
    response = client.get(
        "/api/profiles?user_id=u-7", headers={"Authorization": f"Bearer {other.admin_token}"}
    )
    assert response.status_code == 404


def test_detail_shows_reachable_channels_and_audiences(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    from accord.consent import config
    from accord.consent.models import PropertyIn
    from accord.consent.service import record_consent
    from accord.messaging.service import suppress_email

    with store.write() as conn:
        config.create_property(
            conn, business_id=keys.business_id, spec=PropertyIn(key="web", name="Web")
        )
        for anonymous_id, marketing in (("anon-ann", True), ("anon-bo", False)):
            record_consent(
                conn,
                business_id=keys.business_id,
                property_key="web",
                purposes={"marketing": marketing},
                source="api",
                anonymous_id=anonymous_id,
            )
    bearer = {"Authorization": f"Bearer {keys.admin_token}"}
    created = client.post(
        "/api/audiences",
        json={"name": "Known by phone", "slug": "with-phone", "text": "trait phone exists"},
        headers=bearer,
    )
    assert created.status_code == 201, created.text
    auth = (keys.write_key, "")
    for anonymous_id, traits in (
        ("anon-ann", {"email": "ann@example.org", "phone": "+33612345678"}),
        ("anon-bo", {"email": "bo@example.org", "phone": "+33612345679"}),
        ("anon-cy", {"email": "cy@example.org"}),
    ):
        client.post("/v1/identify", json={"anonymousId": anonymous_id, "traits": traits}, auth=auth)
        client.post(
            "/v1/track",
            json={"anonymousId": anonymous_id, "event": "Order Completed"},
            auth=auth,
        )
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=100, lease=timedelta(seconds=60))

    def detail(anonymous_id: str) -> dict[str, object]:
        found = client.get(f"/api/profiles?anonymous_id={anonymous_id}", headers=bearer).json()
        response = client.get(f"/api/profiles/{found['id']}", headers=bearer)
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    ann = detail("anon-ann")
    # Consent for marketing and an address: email, SMS and WhatsApp (by phone); no push
    # subscription among the traits.
    assert ann["reachable_channels"] == ["email", "sms", "whatsapp"]
    assert ann["consent"]["marketing"] is True  # type: ignore[index]
    slugs = {a["slug"] for a in ann["audiences"]}  # type: ignore[attr-defined]
    assert {"with-phone", "purchased-7d"} <= slugs
    # Refused marketing, or never asked: no channel.
    assert detail("anon-bo")["reachable_channels"] == []
    cy = detail("anon-cy")
    assert cy["reachable_channels"] == []
    assert "with-phone" not in {a["slug"] for a in cy["audiences"]}  # type: ignore[attr-defined]
    # Unsubscribed from email: the other channels stay.
    with store.write() as conn:
        suppress_email(
            conn, business_id=keys.business_id, email="ann@example.org", reason="unsubscribed"
        )
    assert detail("anon-ann")["reachable_channels"] == ["sms", "whatsapp"]
