"""The journeys admin API over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import copy
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from accord.accounts.models import Bootstrap
from accord.core.settings import Settings
from accord.process.worker import drain
from accord.profiles.service import find_profile_id
from accord.store.db import Store
from tests.journeys.helpers import ABANDONED_CART

# Events here carry no consent and no location; this business keeps them, as its
# rule for unknown locations ("XX") says (the default is the strictest regime).
pytestmark = pytest.mark.keeps_unknown_location


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


WELCOME = {
    "entry": {"type": "api"},
    "start": "mark",
    "nodes": {
        "mark": {"type": "update_trait", "trait": "welcomed", "value": True, "next": "out"},
        "out": {"type": "exit"},
    },
}


def test_item_16_a_person_enters_an_api_journey_once_per_entry_key(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    basic = "Basic " + base64.b64encode(f"{keys.write_key}:".encode()).decode()
    client.post(
        "/v1/identify",
        headers={"Authorization": basic, "Content-Type": "application/json"},
        json={"userId": "u-1", "traits": {"email": "ann@example.org"}},
    )
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=100, lease=timedelta(seconds=60))
    with store.read() as conn:
        profile_id = find_profile_id(
            conn, business_id=keys.business_id, kind="user_id", value="u-1"
        )
    body = {"key": "welcome", "name": "Welcome", "definition": WELCOME}
    assert client.post("/api/journeys", json=body, headers=_auth(keys)).status_code == 201
    activated = client.post(
        "/api/journeys/welcome/status", json={"status": "active"}, headers=_auth(keys)
    )
    assert activated.status_code == 200, activated.text

    def enter(person: str, entry_key: str) -> Response:
        return client.post(
            "/api/journeys/welcome/entries",
            json={"profile_id": person, "entry_key": entry_key},
            headers=_auth(keys),
        )

    first = enter(profile_id, "signup-1")
    assert first.status_code == 200, first.text
    assert first.json()["entered"] is True and first.json()["run_id"]
    assert enter(profile_id, "signup-1").json() == {"entered": False, "run_id": None}
    assert enter("nobody", "signup-2").status_code == 404
    path = client.get(f"/api/profiles/{profile_id}/journeys", headers=_auth(keys)).json()
    assert path[0]["steps"][0]["outcome"] == "entered"
    cart = {"key": "cart", "name": "Cart", "definition": ABANDONED_CART}
    assert client.post("/api/journeys", json=cart, headers=_auth(keys)).status_code == 201
    refused = client.post(
        "/api/journeys/cart/entries",
        json={"profile_id": profile_id, "entry_key": "k"},
        headers=_auth(keys),
    )
    assert refused.status_code == 400, refused.text  # entered by events, not the API


def test_item_1_ssrf_journey_webhook_destination_refused_at_save(
    client: TestClient, keys: Bootstrap
) -> None:
    definition = copy.deepcopy(ABANDONED_CART)
    definition["nodes"]["remind"] = {"type": "webhook", "destination": "crm", "next": "done"}
    for url in ("http://127.0.0.1:8000/hook", "http://169.254.169.254/latest/meta-data/"):
        definition["destinations"] = {"crm": url}
        body = {"key": "cart", "name": "Cart", "definition": definition}
        created = client.post("/api/journeys", json=body, headers=_auth(keys))
        assert created.status_code == 400, created.text
        [problem] = created.json()["problems"]
        assert (
            problem["field"] == "destinations.crm" and "ACCORD_OUTBOUND_ALLOW" in problem["reason"]
        )
    assert client.get("/api/journeys", headers=_auth(keys)).json() == []
    # A public destination is saved; a new version cannot point it inside either.
    definition["destinations"] = {"crm": "https://hooks.shop.example/accord"}
    body = {"key": "cart", "name": "Cart", "definition": definition}
    assert client.post("/api/journeys", json=body, headers=_auth(keys)).status_code == 201
    definition["destinations"] = {"crm": "http://10.0.0.5/hook"}
    again = client.put(
        "/api/journeys/cart/definition", json={"definition": definition}, headers=_auth(keys)
    )
    assert again.status_code == 400
    assert again.json()["problems"][0]["field"] == "destinations.crm"
    current = client.get("/api/journeys/cart", headers=_auth(keys)).json()
    assert current["current_version"] == 1
