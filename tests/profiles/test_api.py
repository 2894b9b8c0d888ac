"""The profile read API: lookups, authentication and errors."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.collect.worker import drain
from accord.core.settings import Settings
from accord.store.db import Store


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
