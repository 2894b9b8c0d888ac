"""The admin API of profiles and the identity graph."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.core.settings import Settings
from accord.process.email import record_in_ledger
from accord.process.worker import drain
from accord.store.db import Store

# Events here carry no consent and no location; this business keeps them, as its
# rule for unknown locations ("XX") says (the default is the strictest regime).
pytestmark = pytest.mark.keeps_unknown_location


def _send(client: TestClient, keys: Bootstrap, kind: str, body: dict[str, Any]) -> None:
    auth = "Basic " + base64.b64encode(f"{keys.write_key}:".encode()).decode()
    response = client.post(f"/v1/{kind}", headers={"Authorization": auth}, json=body)
    assert response.status_code == 200, response.text


def _drain(store: Store, settings: Settings) -> None:
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=100, lease=timedelta(seconds=60))


def test_profile_routes(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    rules = client.put(
        "/api/identity/rules", headers=admin, json={"custom_kinds": ["loyalty_card"]}
    )
    assert rules.status_code == 200, rules.text
    assert "loyalty_card" in rules.json()["priority"]
    bad = client.put("/api/identity/rules", headers=admin, json={"blocked_patterns": ["("]})
    assert bad.status_code == 400
    assert bad.json()["problems"][0]["field"] == "blocked_patterns"

    _send(
        client,
        keys,
        "identify",
        {
            "anonymousId": "a-1",
            "timestamp": "2026-11-10T10:00:00Z",
            "traits": {
                "email": "Ann@Example.org",
                "phone": "+33 6 12 34 56 78",
                "loyalty_card": "L-7",
            },
        },
    )
    _send(
        client,
        keys,
        "track",
        {
            "anonymousId": "a-1",
            "event": "Order Completed",
            "timestamp": "2026-11-10T10:05:00Z",
            "properties": {"revenue": 40, "products": [{"product_id": "p1", "category": "hats"}]},
        },
    )
    _send(
        client,
        keys,
        "page",
        {"anonymousId": "a-2", "name": "Home", "timestamp": "2026-11-10T10:50:00Z"},
    )
    _send(
        client,
        keys,
        "identify",
        {
            "anonymousId": "a-2",
            "timestamp": "2026-11-10T11:00:00Z",
            "traits": {"email": "ann@example.org", "plan": "pro"},
        },
    )
    _drain(store, settings)

    for query in [
        "email=ANN@example.org",
        "phone=%2B33612345678",
        "loyalty_card=L-7",
        "anonymous_id=a-2",
    ]:
        found = client.get(f"/api/profiles?{query}", headers=admin)
        assert found.status_code == 200, (query, found.text)
    profile = found.json()
    assert {i["kind"] for i in profile["identifiers"]} == {
        "anonymous_id",
        "email",
        "phone",
        "loyalty_card",
    }
    assert profile["computed"]["total_spend"] == 40
    assert profile["traits"]["plan"] == "pro"
    unknown = client.get("/api/profiles?shoe_size=42", headers=admin)
    assert unknown.status_code == 400
    assert unknown.json()["problems"][0]["field"] == "shoe_size"
    assert client.get("/api/profiles?email=null", headers=admin).status_code == 400

    pid = profile["id"]
    detail = client.get(f"/api/profiles/{pid}", headers=admin).json()
    # The consent ledger is wired in: this person has made no decision yet.
    assert detail["consent"] == {}
    # An address for email, SMS and WhatsApp, but no consent: no channel reaches them.
    assert detail["reachable_channels"] == []
    assert isinstance(detail["audiences"], list)
    timeline = client.get(f"/api/profiles/{pid}/timeline?limit=2", headers=admin).json()
    assert [e["type"] for e in timeline] == ["identify", "page"]
    earlier = client.get(
        f"/api/profiles/{pid}/timeline?before=2026-11-10T10:30:00", headers=admin
    ).json()
    assert [e["type"] for e in earlier] == ["track", "identify"]
    assert client.get("/api/profiles/prof_nope", headers=admin).status_code == 404

    # Two anonymous profiles were joined by the email: one merge, with its evidence.
    merges = client.get(f"/api/profiles/{pid}/merges", headers=admin).json()
    assert len(merges) == 1
    assert merges[0]["evidence"]["rule"] == "same_event"
    edges = client.get(f"/api/profiles/{pid}/edges", headers=admin).json()
    link = next(
        e for e in edges if {e["a"]["value"], e["b"]["value"]} == {"a-2", "ann@example.org"}
    )
    split = client.post(
        f"/api/identity/edges/{link['id']}/unmerge", headers=admin, json={"reason": "test"}
    )
    assert split.status_code == 200, split.text
    assert sorted(split.json()["events"].values()) == [1, 3]
    again = client.post(f"/api/identity/edges/{link['id']}/unmerge", headers=admin)
    assert again.status_code == 409

    assert client.get("/api/identity/reviews", headers=admin).json() == []
    assert client.get("/api/identity/reviews/rev_x/diff", headers=admin).status_code == 404
    assert client.post("/api/identity/reviews/rev_x/accept", headers=admin).status_code == 404
    assert client.get("/api/identity/rules").status_code == 401


def test_consent_state_comes_from_the_ledger(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    with store.write() as conn:
        record_in_ledger(
            conn,
            business_id=keys.business_id,
            anonymous_id="a1",
            user_id=None,
            purposes={"analytics": True, "marketing": False},
            source="api",
            evidence={},
        )
    _send(client, keys, "track", {"userId": "u1", "anonymousId": "a1", "event": "X"})
    _drain(store, settings)
    pid = client.get("/api/profiles?user_id=u1", headers=admin).json()["id"]
    detail = client.get(f"/api/profiles/{pid}", headers=admin).json()
    assert detail["consent"] == {"analytics": True, "marketing": False, "necessary": True}
