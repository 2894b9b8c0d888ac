"""The journeys admin API over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy

from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from tests.journeys.helpers import ABANDONED_CART


def _auth(keys: Bootstrap) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.admin_token}"}


def test_create_activate_version_and_report(client: TestClient, keys: Bootstrap) -> None:
    body = {"key": "cart", "name": "Abandoned cart", "definition": ABANDONED_CART}
    created = client.post("/api/journeys", json=body, headers=_auth(keys))
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "draft"
    active = client.post(
        "/api/journeys/cart/status", json={"status": "active"}, headers=_auth(keys)
    )
    assert active.json()["status"] == "active"
    again = client.put(
        "/api/journeys/cart/definition", json={"definition": ABANDONED_CART}, headers=_auth(keys)
    )
    assert again.json()["current_version"] == 2
    report = client.get("/api/journeys/cart/report", headers=_auth(keys)).json()
    assert report["summary"]["entered"] == 0
    assert [j["key"] for j in client.get("/api/journeys", headers=_auth(keys)).json()] == ["cart"]
    assert client.get("/api/profiles/nobody/journeys", headers=_auth(keys)).json() == []


def test_an_invalid_graph_is_a_400_naming_the_node(client: TestClient, keys: Bootstrap) -> None:
    broken = copy.deepcopy(ABANDONED_CART)
    broken["nodes"]["remind"]["next"] = "nowhere"
    response = client.post(
        "/api/journeys",
        json={"key": "cart", "name": "Cart", "definition": broken},
        headers=_auth(keys),
    )
    assert response.status_code == 400
    assert {
        "field": "nodes.remind",
        "reason": "leads to unknown node 'nowhere'",
    } in response.json()["problems"]
    assert client.get("/api/journeys", headers=_auth(keys)).json() == []


def test_journeys_need_a_token_and_stay_in_their_business(
    client: TestClient, keys: Bootstrap
) -> None:
    assert client.get("/api/journeys").status_code == 401
    assert client.get("/api/journeys/cart", headers=_auth(keys)).status_code == 404
